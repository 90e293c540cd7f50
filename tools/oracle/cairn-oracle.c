/*
 * cairn-oracle: the independent truth cairn's engine, tokenizer and chat templates are
 * checked against. It runs the pinned llama.cpp (the same source tree whose ggml cairn
 * builds on) through llama.h only, and writes what it computed in the formats cairn's
 * tools read (tools/logits_file.h), so tests compare numbers rather than text.
 *
 *   logits   -m MODEL --tokens ID,... -n N -o OUT.bin [-t THREADS]
 *   tokenize -m MODEL -p TEXT
 *   template (-m MODEL | --template FILE) --messages FILE.json [--add-generation-prompt]
 *            [--bos TEXT] [--eos TEXT]          (oracle-template.cpp: llama.cpp's Jinja)
 *
 * Plain evaluation on purpose: no warm-up run (common_init's warm-up would leave nothing in
 * the cache, but we do not depend on that), one sequence, the CPU only, the whole prompt in
 * one micro-batch, flash attention on and an F16 KV cache, because that is what cairn's
 * engine computes with (ggml_flash_attn_ext over an F16 cache); the default (auto) picks the
 * same on CPU, but saying it keeps the comparison fixed.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama.h"
#include "logits_file.h"

int cairn_oracle_template(const char *model, const char *template_path, const char *messages,
                          bool add_generation_prompt, const char *bos, const char *eos);

typedef struct oracle_args {
    const char *model, *tokens, *out, *prompt, *template_path, *messages, *bos, *eos;
    int n_gen, n_threads;
    bool add_generation_prompt;
} oracle_args;

static void oracle_usage(FILE *f) {
    fprintf(f, "usage: cairn-oracle logits -m MODEL --tokens ID,ID,... -n N -o OUT.bin [-t N]\n"
               "       cairn-oracle tokenize -m MODEL -p TEXT\n"
               "       cairn-oracle template (-m MODEL | --template FILE.jinja)\n"
               "                    --messages MESSAGES.json [--add-generation-prompt]\n"
               "                    [--bos TEXT] [--eos TEXT]\n");
}

static int oracle_error(const char *what, const char *detail) {
    fprintf(stderr, "cairn-oracle: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    return 1;
}

/* Keeps llama.cpp quiet but for errors, so stdout carries only results. */
static void oracle_log(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (level == GGML_LOG_LEVEL_ERROR) {
        fputs(text, stderr);
    }
}

static int oracle_parse(int argc, char **argv, oracle_args *a) {
    memset(a, 0, sizeof *a);
    a->n_gen = -1;
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        const char **str = strcmp(o, "-m") == 0                           ? &a->model
                           : strcmp(o, "--tokens") == 0                   ? &a->tokens
                           : strcmp(o, "-o") == 0                         ? &a->out
                           : strcmp(o, "-p") == 0                         ? &a->prompt
                           : strcmp(o, "--template") == 0                 ? &a->template_path
                           : strcmp(o, "--messages") == 0                 ? &a->messages
                           : strcmp(o, "--bos") == 0                      ? &a->bos
                           : strcmp(o, "--eos") == 0                      ? &a->eos
                           : strcmp(o, "-n") == 0 || strcmp(o, "-t") == 0 ? &v
                                                                          : NULL;
        if (strcmp(o, "--add-generation-prompt") == 0) {
            a->add_generation_prompt = true;
            continue;
        }
        if (!str || !v) {
            return oracle_error(str ? "missing value of" : "unknown option", o);
        }
        if (strcmp(o, "-n") == 0 || strcmp(o, "-t") == 0) {
            char *end = NULL;
            long n = strtol(v, &end, 10);
            if (*end != '\0' || n < 0 || n > 1 << 20) {
                return oracle_error("not a count", v);
            }
            *(o[1] == 'n' ? &a->n_gen : &a->n_threads) = (int)n;
        }
        *str = v;
        i++;
    }
    return 0;
}

static struct llama_model *oracle_load(const char *path, bool vocab_only) {
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    mp.vocab_only = vocab_only;
    return llama_model_load_from_file(path, mp);
}

static struct llama_context *oracle_context(struct llama_model *model, int n_ctx, int n_prompt,
                                            int n_threads) {
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)n_ctx;
    cp.n_batch = (uint32_t)n_prompt;
    cp.n_ubatch = (uint32_t)n_prompt; /* the prompt in one graph, as cairn computes it */
    cp.n_seq_max = 1;
    cp.n_threads = n_threads;
    cp.n_threads_batch = n_threads;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_ENABLED;
    cp.type_k = GGML_TYPE_F16;
    cp.type_v = GGML_TYPE_F16;
    cp.no_perf = true;
    return llama_init_from_model(model, cp);
}

/* Decodes tokens[first, first + n) at their positions, keeping logits for each one. */
static int oracle_decode(struct llama_context *ctx, const int32_t *tokens, int first, int n) {
    struct llama_batch b = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) {
        b.token[i] = tokens[first + i];
        b.pos[i] = first + i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = 1;
    }
    b.n_tokens = n;
    int rc = llama_decode(ctx, b);
    llama_batch_free(b);
    return rc;
}

static int oracle_collect(struct llama_context *ctx, clgt_file *f, int first, int n) {
    for (int i = 0; i < n; i++) {
        const float *row = llama_get_logits_ith(ctx, i);
        if (!row) {
            return -1;
        }
        memcpy(f->logits + (size_t)(first + i) * f->n_vocab, row, sizeof(float) * f->n_vocab);
    }
    return 0;
}

/* The prompt in one batch, then each greedy token fed back alone (its logits row is kept,
 * so the file has one row per token of the sequence). */
static int oracle_run(struct llama_context *ctx, clgt_file *f, int n_prompt) {
    if (oracle_decode(ctx, f->tokens, 0, n_prompt) != 0 ||
        oracle_collect(ctx, f, 0, n_prompt) != 0) {
        return oracle_error("decoding the prompt failed", NULL);
    }
    for (int p = n_prompt; p < (int)f->n_positions; p++) {
        f->tokens[p] = clgt_argmax(f->logits + (size_t)(p - 1) * f->n_vocab, f->n_vocab);
        if (oracle_decode(ctx, f->tokens, p, 1) != 0 || oracle_collect(ctx, f, p, 1) != 0) {
            return oracle_error("decoding a generated token failed", NULL);
        }
    }
    return 0;
}

static int oracle_logits(const oracle_args *a) {
    int32_t *prompt = NULL;
    int n_prompt = a->tokens ? clgt_parse_tokens(a->tokens, &prompt) : -1;
    if (!a->model || !a->out || a->n_gen < 0 || n_prompt <= 0) {
        free(prompt);
        return oracle_error("logits needs -m, --tokens ID,..., -n and -o", NULL);
    }
    struct llama_model *model = oracle_load(a->model, false);
    if (!model) {
        free(prompt);
        return oracle_error("cannot load", a->model);
    }
    clgt_file f = {.n_vocab = (uint32_t)llama_vocab_n_tokens(llama_model_get_vocab(model)),
                   .n_positions = (uint32_t)(n_prompt + a->n_gen)};
    f.tokens = calloc(f.n_positions, sizeof *f.tokens);
    f.logits = calloc((size_t)f.n_positions * f.n_vocab, sizeof *f.logits);
    struct llama_context *ctx = oracle_context(model, (int)f.n_positions, n_prompt, a->n_threads);
    int rc = !f.tokens || !f.logits || !ctx ? oracle_error("cannot set up the context", NULL) : 0;
    for (int i = 0; rc == 0 && i < n_prompt; i++) {
        rc = prompt[i] < (int32_t)f.n_vocab ? 0 : oracle_error("token id out of range", NULL);
        f.tokens[i] = prompt[i];
    }
    rc = rc == 0 ? oracle_run(ctx, &f, n_prompt) : rc;
    clgt_msg m;
    if (rc == 0 && clgt_write(a->out, &f, &m) != 0) {
        rc = oracle_error(m.text, NULL);
    }
    llama_free(ctx);
    llama_model_free(model);
    clgt_free(&f);
    free(prompt);
    return rc;
}

static int oracle_tokenize(const oracle_args *a) {
    if (!a->model || !a->prompt) {
        return oracle_error("tokenize needs -m and -p", NULL);
    }
    struct llama_model *model = oracle_load(a->model, true);
    if (!model) {
        return oracle_error("cannot load", a->model);
    }
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    int len = (int)strlen(a->prompt);
    int cap = len + 8;
    llama_token *ids = malloc(sizeof *ids * (size_t)cap);
    /* add_special: BOS/EOS as the model's metadata asks; parse_special off: plain text. */
    int n = ids ? llama_tokenize(vocab, a->prompt, len, ids, cap, true, false) : -1;
    for (int i = 0; i < n; i++) {
        printf("%s%d", i ? "," : "", ids[i]);
    }
    printf("\n");
    free(ids);
    llama_model_free(model);
    return n < 0 ? oracle_error("tokenizing failed", NULL) : 0;
}

int main(int argc, char **argv) {
    oracle_args a;
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        oracle_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (oracle_parse(argc, argv, &a) != 0) {
        return 2;
    }
    llama_log_set(oracle_log, NULL);
    ggml_log_set(oracle_log, NULL); /* ggml's own messages (weight repacking) too */
    llama_backend_init();
    int rc = 2;
    if (strcmp(argv[1], "logits") == 0) {
        rc = oracle_logits(&a);
    } else if (strcmp(argv[1], "tokenize") == 0) {
        rc = oracle_tokenize(&a);
    } else if (strcmp(argv[1], "template") == 0) {
        rc = cairn_oracle_template(a.model, a.template_path, a.messages, a.add_generation_prompt,
                                   a.bos, a.eos);
    } else {
        oracle_usage(stderr);
    }
    llama_backend_free();
    return rc;
}
