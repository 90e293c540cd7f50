/* cli: the cairn command's entry point: picks the subcommand. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "ggml.h"
#include "platform/platform.h"
#include "runner/runner.h"

typedef struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} subcommand;

static const subcommand subcommands[] = {
    {"run", cmd_run, "start this machine's node and join the cluster"},
    {"generate", cmd_generate, "generate a completion of a prompt"},
    {"chat", cmd_chat, "chat with a model interactively"},
    {"bench", cmd_bench, "measure prefill and decode speed"},
    {"info", cmd_info, "describe a GGUF model file"},
    {"nodes", cmd_nodes, "list the nodes of the running cluster"},
    {"place", cmd_place, "place an instance of a model on the cluster"},
    {"delete", cmd_delete, "delete a model instance from the cluster"},
    {"pull", cmd_pull, "download a GGUF model file from Hugging Face"},
    {"service", cmd_service, "install or remove cairn as a Windows service"},
    {"key", cmd_key, "print a new random cluster key (cairn key new)"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: cairn <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(subcommands); i++) {
        fprintf(out, "  %-10s %s\n", subcommands[i].name, subcommands[i].summary);
    }
    fprintf(out, "\n'cairn <command> --help' describes a command's options.\n");
}

/* cairn reports failures itself, each in one line; ggml's own chatter (and the messages
 * the model loader already turns into cairn errors) stays out of the user's terminal. */
static void quiet_ggml_log(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (level == GGML_LOG_LEVEL_ERROR && getenv("CAIRN_GGML_LOG")) {
        fputs(text, stderr);
    }
}

int main(int argc, char **argv) {
    cairn_console_init();
    cairn_err err = {{0}};
    if (cairn_args_utf8(&argc, &argv, &err) != 0) {
        cli_error("%s", err.msg);
        return CLI_ERROR;
    }
    ggml_log_set(quiet_ggml_log, NULL);
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("cairn %s (%s)\n", CAIRN_VERSION, CAIRN_BUILD_FLAVOR);
        return CLI_OK;
    }
    if (strcmp(name, "runner") == 0) {
        /* a node's worker starts this for one shard; it is not a command people type */
        return cairn_runner_main(argc - 1, argv + 1);
    }
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(subcommands); i++) {
        if (strcmp(name, subcommands[i].name) == 0) {
            return subcommands[i].run(argc - 2, argv + 2);
        }
    }
    cli_error("unknown command '%s' (see 'cairn --help')", name);
    return CLI_USAGE;
}
