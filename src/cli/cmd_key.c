/* cli key: `cairn key new` prints a random cluster key, for --key, --key-file or
 * CAIRN_CLUSTER_KEY: a passphrase people choose can be guessed offline from one recorded
 * handshake, a random key cannot. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cluster/secure.h"

int cmd_key(int argc, char **argv) {
    const cli_command cmd = {"key",
                             "usage: cairn key new",
                             "Prints a new random cluster key (256 bits, as hex) for --key, "
                             "--key-file or CAIRN_CLUSTER_KEY; give the same key to every node.",
                             NULL,
                             0,
                             1};
    const char *action = NULL;
    int status;
    if (!cli_parse_args(&cmd, argc, argv, &action, &status)) {
        return status;
    }
    if (strcmp(action, "new") != 0) {
        cli_error("unknown key action '%s' (expected new)", action);
        return CLI_USAGE;
    }
    char secret[CAIRN_CLUSTER_SECRET_SIZE];
    cairn_err err = {{0}};
    if (cairn_cluster_key_new_secret(secret, &err) != 0) {
        cli_error("%s", err.msg);
        return CLI_ERROR;
    }
    printf("%s\n", secret);
    return CLI_OK;
}
