/* cli: `cairn service install|uninstall`: registers the cairn node with the operating
 * system's service manager (on Windows, the Service Control Manager), so it starts at boot. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "platform/platform.h"

/* What the registered service runs: the node command, told which service it is. */
#define SERVICE_ARGS "run --service"

int cmd_service(int argc, char **argv) {
    const char *name = "cairn";
    const cli_option options[] = {
        {"name", 0, OPT_STR, &name, "NAME", "service name (default: cairn)"},
    };
    const cli_command cmd = {"service",
                             "usage: cairn service install|uninstall [--name NAME]",
                             "Registers cairn as a Windows service that runs 'cairn " SERVICE_ARGS
                             "' at boot, or "
                             "removes it (needs an Administrator prompt).",
                             options,
                             CAIRN_ARRAY_LEN(options),
                             1};
    const char *action = NULL;
    int status;
    if (!cli_parse_args(&cmd, argc, argv, &action, &status)) {
        return status;
    }
    cairn_err err = {{0}};
    if (strcmp(action, "install") == 0) {
        char args[256];
        snprintf(args, sizeof args, "%s \"%s\"", SERVICE_ARGS, name);
        if (cairn_service_install(name, "cairn node", args, &err) != 0) {
            cli_error("%s", err.msg);
            return CLI_ERROR;
        }
        printf("installed service '%s'; it starts at the next boot\n", name);
        return CLI_OK;
    }
    if (strcmp(action, "uninstall") == 0) {
        if (cairn_service_uninstall(name, &err) != 0) {
            cli_error("%s", err.msg);
            return CLI_ERROR;
        }
        printf("removed service '%s'\n", name);
        return CLI_OK;
    }
    cli_error("unknown service action '%s' (expected install or uninstall)", action);
    return CLI_USAGE;
}
