/*
 * cli: the cairn command. Parses arguments, loads what a command needs, prints results and
 * errors (one line on stderr, non-zero exit). The only module that talks to the user's
 * terminal; all real work happens in the library modules.
 */
#ifndef CAIRN_CLI_H
#define CAIRN_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "generation/generation.h"
#include "tokenizer/tokenizer.h"
#include "util/util.h"

enum { CLI_OK = 0, CLI_ERROR = 1, CLI_USAGE = 2 };

typedef enum cli_kind { OPT_FLAG, OPT_INT, OPT_FLOAT, OPT_U64, OPT_STR, OPT_STR_LIST } cli_kind;

#define CLI_MAX_LIST 16
typedef struct cli_str_list {
    const char *items[CLI_MAX_LIST];
    size_t n;
} cli_str_list;

typedef struct cli_option {
    const char *long_name;
    char short_name; /* 0 for none */
    cli_kind kind;
    void *dest; /* bool*, int*, float*, uint64_t*, const char**, cli_str_list* */
    const char *meta;
    const char *help;
} cli_option;

typedef struct cli_command {
    const char *name;
    const char *usage;   /* "cairn generate -m FILE -p TEXT [options]" */
    const char *summary; /* one line */
    const cli_option *options;
    size_t n_options;
    int n_positional; /* required positional arguments */
} cli_command;

/* Parses argv (after the command name). Returns CLI_OK, CLI_USAGE (error printed), or -1 when
 * --help was printed. Positional arguments go to positional[]. */
int cli_parse(const cli_command *cmd, int argc, char **argv, const char **positional);
void cli_print_help(const cli_command *cmd);
/* cli_parse for a command's entry point: true when the command should run; otherwise the
 * exit status to return is in *status (0 after --help). */
bool cli_parse_args(const cli_command *cmd, int argc, char **argv, const char **positional,
                    int *status);
/* Prints "cairn: error: MSG" on stderr. */
void cli_error(const char *fmt, ...) CAIRN_PRINTF(1, 2);

/* Options shared by every command that loads a model. */
typedef struct cli_model_options {
    const char *model;
    int threads;
    int ctx_size;
    int batch_size;
    const char *layers; /* cut points "A:B" */
    bool mmap;
} cli_model_options;

#define CLI_MODEL_OPTIONS(mo)                                                                      \
    {"model", 'm', OPT_STR, &(mo).model, "FILE", "GGUF model file (required)"},                    \
        {"threads", 't', OPT_INT, &(mo).threads, "N", "compute threads (default: all CPUs)"},      \
        {"ctx-size",     'c', OPT_INT,                                                             \
         &(mo).ctx_size, "N", "context positions (default: the model's, at most 4096)"},           \
        {"batch-size", 'b', OPT_INT, &(mo).batch_size, "N", "most tokens per compute step (512)"}, \
        {"layers",     0,     OPT_STR,                                                             \
         &(mo).layers, "A:B", "split the model at these layers into chained shards, e.g. 2:4"},    \
    {                                                                                              \
        "mmap", 0, OPT_FLAG, &(mo).mmap, NULL,                                                     \
            "use weights in place in the file (less memory, slower on some systems)"               \
    }

/* cli_parse_args for a command that loads a model: -m is required. */
bool cli_parse_model_args(const cli_command *cmd, int argc, char **argv,
                          const cli_model_options *mo, int *status);
/* Loads the model (split as --layers says), showing progress on a terminal. */
int cli_load_pipeline(const cli_model_options *mo, int n_seq, cairn_pipeline **out);
int cli_load_tokenizer(const char *path, cairn_tokenizer **out);

/* Sampling options shared by generate and chat. */
typedef struct cli_sampling_options {
    cairn_generation_params gen;
    cli_str_list stops;
    uint64_t seed; /* CLI_SEED_FROM_CLOCK unless --seed was given */
} cli_sampling_options;
#define CLI_SEED_FROM_CLOCK UINT64_MAX

void cli_sampling_defaults(cli_sampling_options *so);
#define CLI_SAMPLING_OPTIONS(so)                                                                     \
    {"temp",    0,                                                                                   \
     OPT_FLOAT, &(so).gen.sampling.temperature,                                                      \
     "T",       "temperature; 0 is greedy (default 0.8)"},                                           \
        {"top-k", 0, OPT_INT, &(so).gen.sampling.top_k, "K", "keep the K most likely (40; 0: off)"}, \
        {"top-p", 0, OPT_FLOAT, &(so).gen.sampling.top_p, "P", "nucleus sampling (0.95; 1: off)"},   \
        {"min-p",   0,                                                                               \
         OPT_FLOAT, &(so).gen.sampling.min_p,                                                        \
         "P",       "minimum relative probability (0.05)"},                                          \
        {"repeat-penalty",                                                                           \
         0,                                                                                          \
         OPT_FLOAT,                                                                                  \
         &(so).gen.sampling.repeat_penalty,                                                          \
         "X",                                                                                        \
         "penalise repeated tokens (1: off)"},                                                       \
        {"repeat-last-n",                                                                            \
         0,                                                                                          \
         OPT_INT,                                                                                    \
         &(so).gen.sampling.repeat_last_n,                                                           \
         "N",                                                                                        \
         "tokens the penalties look back on (64)"},                                                  \
        {"frequency-penalty",                                                                        \
         0,                                                                                          \
         OPT_FLOAT,                                                                                  \
         &(so).gen.sampling.frequency_penalty,                                                       \
         "X",                                                                                        \
         "subtract X per earlier occurrence (0)"},                                                   \
        {"presence-penalty",                                                                         \
         0,                                                                                          \
         OPT_FLOAT,                                                                                  \
         &(so).gen.sampling.presence_penalty,                                                        \
         "X",                                                                                        \
         "subtract X if the token occurred (0)"},                                                    \
        {"seed", 's', OPT_U64, &(so).seed, "S", "random seed (default: from the clock)"},            \
        {"stop", 0, OPT_STR_LIST, &(so).stops, "TEXT", "stop when TEXT is generated (repeatable)"},  \
    {                                                                                                \
        "n-predict", 'n', OPT_INT, &(so).gen.max_tokens, "N",                                        \
            "most tokens to generate (default 256; 0: until the context is full)"                    \
    }

/* Fills the parameters that depend on parsing (seed, stop strings). */
void cli_sampling_finish(cli_sampling_options *so);

int cmd_generate(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_service(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_nodes(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_place(int argc, char **argv);
int cmd_delete(int argc, char **argv);
int cmd_pull(int argc, char **argv);

/* The key of a node's API: the --api-key value, else the CAIRN_API_KEY variable, else NULL
 * (also what `cairn run --api-key` falls back to, so one variable serves both ends). */
const char *cli_api_key(const char *given);
#define CLI_API_KEY_HELP "the node's API key, if it was run with one (or CAIRN_API_KEY)"

/* The node a command calls: --api HOST:PORT and --api-key KEY. */
typedef struct cli_api {
    char host[256];
    uint16_t port;
    const char *key; /* NULL: the API takes requests without one */
} cli_api;
#define CLI_API_OPTIONS(address, key)                                                              \
    {"api",      0,           OPT_STR,                                                             \
     &(address), "HOST:PORT", "the node to ask (default " CAIRN_API_DEFAULT_ADDRESS ")"},          \
    {                                                                                              \
        "api-key", 0, OPT_STR, &(key), "KEY", CLI_API_KEY_HELP                                     \
    }
/* The parsed --api address and the key (CLI_OK, or CLI_USAGE with the error printed). */
int cli_api_target(const char *address, const char *key, cli_api *out);
/* `cairn generate --cluster`: the completion from the running cluster's instance of model. */
int cli_generate_on_cluster(const cli_api *api, const char *model, const char *prompt,
                            const cli_sampling_options *so, bool ids, bool verbose);

#endif
