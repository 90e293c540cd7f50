/* cli: `cairn generate`: one completion of a prompt, streamed to stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "cli/cli.h"

typedef struct generate_output {
    bool ids;
    int n_printed;
} generate_output;

static int print_token(void *user, int32_t token, const char *text, size_t len) {
    generate_output *go = user;
    if (go->ids) {
        if (token >= 0) {
            printf(go->n_printed++ ? " %d" : "%d", (int)token);
        }
    } else {
        fwrite(text, 1, len, stdout);
    }
    fflush(stdout);
    return 0;
}

static void print_stats(const cairn_generation_result *r) {
    double prefill_tps = r->prefill_seconds > 0 ? r->n_prompt / r->prefill_seconds : 0;
    double decode_tps = r->decode_seconds > 0 ? r->n_generated / r->decode_seconds : 0;
    fprintf(stderr,
            "prompt: %d tokens (%.1f tokens/s); generated: %d tokens (%.1f tokens/s); "
            "finish: %s\n",
            r->n_prompt, prefill_tps, r->n_generated, decode_tps,
            cairn_finish_reason_name(r->finish));
}

static int run(const cli_model_options *mo, cli_sampling_options *so, const char *prompt, bool ids,
               bool verbose) {
    cairn_tokenizer *tok = NULL;
    cairn_pipeline *p = NULL;
    int32_t *prompt_ids = NULL;
    size_t n_prompt = 0;
    int rc = cli_load_tokenizer(mo->model, &tok);
    if (rc == CLI_OK) {
        rc = cli_load_pipeline(mo, 1, &p);
    }
    cairn_err err = {{0}};
    if (rc == CLI_OK &&
        cairn_tokenize(tok, prompt, strlen(prompt), true, true, &prompt_ids, &n_prompt, &err)) {
        cli_error("tokenizing the prompt: %s", err.msg);
        rc = CLI_ERROR;
    }
    if (rc == CLI_OK) {
        const cairn_shard_info *info = cairn_pipeline_info(p);
        cairn_pipeline_seq ps = {p, 0};
        cairn_generation_target target = {cairn_pipeline_seq_forward, &ps, info->n_vocab,
                                          info->n_ctx, 0};
        generate_output go = {ids, 0};
        cairn_generation_result res;
        if (cairn_generate(&target, tok, prompt_ids, (int)n_prompt, &so->gen, print_token, &go,
                           &res, &err) != 0) {
            fputc('\n', stdout);
            cli_error("%s", err.msg);
            rc = CLI_ERROR;
        } else {
            fputc('\n', stdout);
            if (verbose) {
                print_stats(&res);
            }
        }
    }
    free(prompt_ids);
    cairn_pipeline_free(p);
    cairn_tokenizer_free(tok);
    return rc;
}

int cmd_generate(int argc, char **argv) {
    cli_model_options mo = {0};
    cli_sampling_options so;
    cli_sampling_defaults(&so);
    const char *prompt = NULL;
    bool ids = false, verbose = false, cluster = false;
    const char *address = CAIRN_API_DEFAULT_ADDRESS, *key = NULL;
    const cli_option options[] = {
        CLI_MODEL_OPTIONS(mo),
        {"prompt", 'p', OPT_STR, &prompt, "TEXT", "the prompt (required)"},
        CLI_SAMPLING_OPTIONS(so),
        {"ids", 0, OPT_FLAG, &ids, NULL, "print generated token ids instead of text"},
        {"verbose", 'v', OPT_FLAG, &verbose, NULL, "print timing statistics on stderr"},
        {"cluster", 0, OPT_FLAG, &cluster, NULL,
         "generate on the running cluster: -m names a model placed there"},
        {"api", 0, OPT_STR, &address, "HOST:PORT",
         "with --cluster: the node to ask (" CAIRN_API_DEFAULT_ADDRESS ")"},
        {"api-key", 0, OPT_STR, &key, "KEY", "with --cluster: " CLI_API_KEY_HELP},
    };
    const cli_command cmd = {"generate",
                             "usage: cairn generate -m FILE -p TEXT [options]",
                             "Generates a completion of TEXT with the model and streams it.",
                             options,
                             CAIRN_ARRAY_LEN(options),
                             0};
    int status;
    if (!cli_parse_model_args(&cmd, argc, argv, &mo, &status)) {
        return status;
    }
    if (!prompt) {
        cli_error("no prompt given (-p TEXT)");
        return CLI_USAGE;
    }
    cli_sampling_finish(&so);
    if (cluster) {
        cli_api api;
        status = cli_api_target(address, key, &api);
        return status == CLI_OK ? cli_generate_on_cluster(&api, mo.model, prompt, &so, ids, verbose)
                                : status;
    }
    return run(&mo, &so, prompt, ids, verbose);
}
