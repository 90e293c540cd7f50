/* cli: argument parsing and the loading helpers the commands share (see cli.h). */
#include "cli/cli.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "model/model.h"
#include "platform/platform.h"

void cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("cairn: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void cli_print_help(const cli_command *cmd) {
    printf("%s\n\n%s\n\nOptions:\n", cmd->usage, cmd->summary);
    for (size_t i = 0; i < cmd->n_options; i++) {
        const cli_option *o = &cmd->options[i];
        char left[64];
        if (o->short_name) {
            snprintf(left, sizeof(left), "-%c, --%s%s%s", o->short_name, o->long_name,
                     o->meta ? " " : "", o->meta ? o->meta : "");
        } else {
            snprintf(left, sizeof(left), "    --%s%s%s", o->long_name, o->meta ? " " : "",
                     o->meta ? o->meta : "");
        }
        printf("  %-28s %s\n", left, o->help);
    }
    printf("  %-28s %s\n", "-h, --help", "show this help");
}

static const cli_option *find_option(const cli_command *cmd, const char *arg) {
    for (size_t i = 0; i < cmd->n_options; i++) {
        const cli_option *o = &cmd->options[i];
        if (arg[1] == '-' ? strcmp(arg + 2, o->long_name) == 0
                          : (o->short_name && arg[1] == o->short_name && arg[2] == '\0')) {
            return o;
        }
    }
    return NULL;
}

static int parse_value(const cli_option *o, const char *name, const char *v) {
    char *end = NULL;
    errno = 0;
    switch (o->kind) {
    case OPT_INT: {
        long x = strtol(v, &end, 10);
        if (*v == '\0' || *end || errno || x < INT_MIN || x > INT_MAX)
            break;
        *(int *)o->dest = (int)x;
        return 0;
    }
    case OPT_FLOAT: {
        float x = strtof(v, &end);
        if (*v == '\0' || *end || errno || !isfinite(x))
            break;
        *(float *)o->dest = x;
        return 0;
    }
    case OPT_U64: {
        unsigned long long x = strtoull(v, &end, 10);
        if (*v == '\0' || *v == '-' || *end || errno)
            break;
        *(uint64_t *)o->dest = (uint64_t)x;
        return 0;
    }
    case OPT_STR: *(const char **)o->dest = v; return 0;
    case OPT_STR_LIST: {
        cli_str_list *l = o->dest;
        if (l->n == CLI_MAX_LIST) {
            cli_error("%s: at most %d values", name, CLI_MAX_LIST);
            return -1;
        }
        l->items[l->n++] = v;
        return 0;
    }
    case OPT_FLAG: break;
    }
    cli_error("%s: '%s' is not a valid %s", name, v,
              o->kind == OPT_FLOAT ? "number" : "non-negative integer");
    return -1;
}

int cli_parse(const cli_command *cmd, int argc, char **argv, const char **positional) {
    int n_pos = 0;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            cli_print_help(cmd);
            return -1;
        }
        if (arg[0] != '-' || arg[1] == '\0') {
            if (n_pos == cmd->n_positional || !positional) {
                cli_error("unexpected argument '%s' (see 'cairn %s --help')", arg, cmd->name);
                return CLI_USAGE;
            }
            positional[n_pos++] = arg;
            continue;
        }
        const cli_option *o = find_option(cmd, arg);
        if (!o) {
            cli_error("unknown option '%s' (see 'cairn %s --help')", arg, cmd->name);
            return CLI_USAGE;
        }
        if (o->kind == OPT_FLAG) {
            *(bool *)o->dest = true;
            continue;
        }
        if (i + 1 >= argc) {
            cli_error("%s needs a value (%s)", arg, o->meta ? o->meta : "");
            return CLI_USAGE;
        }
        if (parse_value(o, arg, argv[++i]) != 0) {
            return CLI_USAGE;
        }
    }
    if (n_pos < cmd->n_positional) {
        cli_error("missing argument (usage: %s)", cmd->usage);
        return CLI_USAGE;
    }
    return CLI_OK;
}

bool cli_parse_args(const cli_command *cmd, int argc, char **argv, const char **positional,
                    int *status) {
    int rc = cli_parse(cmd, argc, argv, positional);
    *status = rc < 0 ? CLI_OK : rc;
    return rc == CLI_OK;
}

bool cli_parse_model_args(const cli_command *cmd, int argc, char **argv,
                          const cli_model_options *mo, int *status) {
    if (!cli_parse_args(cmd, argc, argv, NULL, status)) {
        return false;
    }
    if (!mo->model) {
        cli_error("no model given (-m FILE)");
        *status = CLI_USAGE;
        return false;
    }
    return true;
}

typedef struct load_progress {
    bool show;
    int last_percent;
} load_progress;

static void show_progress(void *user, int done, int total) {
    load_progress *lp = user;
    int percent = total > 0 ? done * 100 / total : 100;
    if (lp->show && percent != lp->last_percent) {
        lp->last_percent = percent;
        fprintf(stderr, "\rloading model: %3d%%", percent);
        fflush(stderr);
    }
}

int cli_load_pipeline(const cli_model_options *mo, int n_seq, cairn_pipeline **out) {
    if (!mo->model) {
        cli_error("no model given (-m FILE)");
        return CLI_USAGE;
    }
    int cuts[64], n_cuts = 0;
    cairn_err err = {{0}};
    if (mo->layers) {
        n_cuts = cairn_parse_int_list(mo->layers, ':', cuts, 64, &err);
        if (n_cuts < 0) {
            cli_error("--layers: %s", err.msg);
            return CLI_USAGE;
        }
    }
    load_progress lp = {cairn_is_terminal(stderr), -1};
    cairn_shard_config cfg = {0};
    cfg.model_path = mo->model;
    cfg.last_layer = -1;
    cfg.n_ctx = mo->ctx_size;
    cfg.n_seq = n_seq;
    cfg.n_threads = mo->threads;
    cfg.n_batch = mo->batch_size;
    cfg.use_mmap = mo->mmap;
    cfg.progress = show_progress;
    cfg.progress_user = &lp;
    int rc = cairn_pipeline_load_ggml(&cfg, cuts, n_cuts, out, &err);
    if (lp.show && lp.last_percent >= 0) {
        fputs("\r\033[K", stderr);
    }
    if (rc != 0) {
        cli_error("%s", err.msg);
        return CLI_ERROR;
    }
    return CLI_OK;
}

int cli_load_tokenizer(const char *path, cairn_tokenizer **out) {
    cairn_err err = {{0}};
    cairn_model_file *m = NULL;
    if (cairn_model_open_metadata(path, &m, &err) != 0) {
        cli_error("%s", err.msg);
        return CLI_ERROR;
    }
    int rc = cairn_tokenizer_from_gguf(m->gguf, out, &err);
    cairn_model_close(m);
    if (rc != 0) {
        cli_error("%s: %s", path, err.msg);
        return CLI_ERROR;
    }
    return CLI_OK;
}

void cli_sampling_defaults(cli_sampling_options *so) {
    memset(so, 0, sizeof(*so));
    cairn_sampling_defaults(&so->gen.sampling);
    so->gen.max_tokens = 256;
    so->seed = CLI_SEED_FROM_CLOCK;
}

void cli_sampling_finish(cli_sampling_options *so) {
    if (so->seed == CLI_SEED_FROM_CLOCK) {
        so->seed = (uint64_t)time(NULL) ^ (uint64_t)(cairn_now_seconds() * 1e9);
    }
    so->gen.sampling.seed = so->seed;
    so->gen.stop = so->stops.items;
    so->gen.n_stop = so->stops.n;
}

const char *cli_api_key(const char *given) {
    const char *key = given ? given : getenv("CAIRN_API_KEY");
    return key && key[0] ? key : NULL;
}

int cli_api_target(const char *address, const char *key, cli_api *out) {
    cairn_err err = {{0}};
    if (cairn_parse_address(address, CAIRN_API_DEFAULT_PORT, out->host, sizeof out->host,
                            &out->port, &err) != 0) {
        cli_error("--api: %s", err.msg);
        return CLI_USAGE;
    }
    out->key = cli_api_key(key);
    return CLI_OK;
}
