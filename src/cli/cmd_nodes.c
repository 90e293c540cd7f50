/* cli: `cairn nodes`: the nodes of the running cluster, from a node's GET /state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "cli/cli.h"

/* A node on the LAN answers in milliseconds; this only bounds a node that hangs. */
#define NODES_TIMEOUT_MS 10000

int cmd_nodes(int argc, char **argv) {
    const char *address = CAIRN_API_DEFAULT_ADDRESS, *key = NULL;
    bool json = false;
    const cli_option options[] = {
        CLI_API_OPTIONS(address, key),
        {"json", 0, OPT_FLAG, &json, NULL, "print the cluster state as the node sends it (JSON)"},
    };
    const cli_command cmd = {"nodes",
                             "usage: cairn nodes [--api HOST:PORT] [--api-key KEY] [--json]",
                             "Lists the nodes of the running cluster, as a node of it sees them.",
                             options,
                             CAIRN_ARRAY_LEN(options),
                             0};
    int status;
    if (!cli_parse_args(&cmd, argc, argv, NULL, &status)) {
        return status;
    }
    cli_api api;
    if ((status = cli_api_target(address, key, &api)) != CLI_OK) {
        return status;
    }
    char *body = NULL;
    cairn_err err = {{0}};
    if (cairn_api_fetch(api.host, api.port, api.key, "/state", CAIRN_API_MAX_STATE_BYTES,
                        NODES_TIMEOUT_MS, &body, &err) != 0) {
        cli_error("%s", err.msg);
        return CLI_ERROR;
    }
    int rc = CLI_OK;
    if (json) {
        size_t len = strlen(body);
        fputs(body, stdout);
        if (len == 0 || body[len - 1] != '\n') {
            fputc('\n', stdout);
        }
    } else if (cairn_api_print_nodes(body, stdout, &err) != 0) {
        cli_error("%s answered /state with something other than a cluster state: %s", address,
                  err.msg);
        rc = CLI_ERROR;
    }
    free(body);
    return rc;
}
