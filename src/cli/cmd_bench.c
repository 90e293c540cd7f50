/* cli: `cairn bench`: prefill and decode speed of a model on this machine, and how many
 * bytes each decoded token reads, which with the memory bandwidth gives the speed limit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "ggml.h"
#include "model/model.h"
#include "platform/platform.h"

typedef struct bench_options {
    int n_prompt, n_gen, repeats;
    float bandwidth_gbs;
} bench_options;

typedef struct bench_figures {
    double prefill_tps[16], decode_tps[16];
    int runs;
} bench_figures;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double best(const double *v, int n) {
    double b = 0;
    for (int i = 0; i < n; i++) {
        b = v[i] > b ? v[i] : b;
    }
    return b;
}

/* Deterministic ordinary tokens (ids past the first few, which are usually special). */
static void make_prompt(int32_t *ids, int n, int n_vocab) {
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        ids[i] = 3 + (int32_t)(x % (uint64_t)(n_vocab > 4 ? n_vocab - 3 : 1));
    }
}

static int one_run(cairn_pipeline *p, const int32_t *prompt, const bench_options *bo, float *logits,
                   double *prefill_tps, double *decode_tps, cairn_err *err) {
    int n_vocab = cairn_pipeline_info(p)->n_vocab;
    cairn_pipeline_seq_truncate(p, 0, 0, NULL);
    double t0 = cairn_now_seconds();
    if (cairn_pipeline_forward(p, 0, prompt, bo->n_prompt, false, logits, err) != 0) {
        return -1;
    }
    double t1 = cairn_now_seconds();
    for (int i = 0; i < bo->n_gen; i++) {
        int32_t next = cairn_argmax(logits, n_vocab);
        if (cairn_pipeline_forward(p, 0, &next, 1, false, logits, err) != 0) {
            return -1;
        }
    }
    double t2 = cairn_now_seconds();
    *prefill_tps = bo->n_prompt / (t1 - t0);
    *decode_tps = bo->n_gen / (t2 - t1);
    return 0;
}

/* The cache a decode step at pos reads: each layer's keys and values (latent attention: the
 * keys alone, its values are part of them) of every position, a window layer's of its
 * window only (the masked cells of its ring are skipped). */
static double kv_bytes_read(const cairn_hparams *hp, int pos) {
    double row = (double)cairn_kv_cell_values(hp) * 2.0; /* F16 */
    double total = 0.0;
    for (int il = 0; il < hp->n_layer; il++) {
        bool window = cairn_layer_is_swa(hp, il) && pos > hp->n_swa;
        total += row * (window ? hp->n_swa : pos);
    }
    return total;
}

/* Bytes a decode step reads: every layer's weights, but of the experts' stacks only the
 * experts a token is routed to, the output norm and head (token embeddings only for one
 * row unless they are the head), and the KV cache so far. */
static double decode_bytes_per_token(const cairn_model_file *m, int mean_pos) {
    const cairn_hparams *hp = &m->hp;
    double bytes = (double)cairn_model_shard_bytes(m, 0, hp->n_layer);
    const cairn_tensor_info *embd = cairn_model_tensor(m, "token_embd.weight");
    if (embd && !hp->tied_embeddings) {
        bytes -= (double)embd->size;
    }
    if (hp->n_expert > 0) {
        double unread = 1.0 - (double)hp->n_expert_used / (double)hp->n_expert;
        for (int64_t i = 0; i < m->n_tensors; i++) {
            if (strstr(m->tensors[i].name, "_exps.")) {
                bytes -= unread * (double)m->tensors[i].size;
            }
        }
    }
    return bytes + kv_bytes_read(hp, mean_pos);
}

static void report(const cairn_model_file *m, const cli_model_options *mo, const bench_options *bo,
                   bench_figures *f) {
    char cpu[128];
    cairn_cpu_model(cpu, sizeof(cpu));
    int threads = mo->threads > 0 ? mo->threads : cairn_cpu_count();
    printf("model:    %s (%s, %d layers, %.1f MiB)\n", mo->model, m->hp.arch_name, m->hp.n_layer,
           (double)m->map.size / (1024.0 * 1024.0));
    printf("build:    %s, ggml %s; CPU: %s; threads: %d\n", CAIRN_BUILD_FLAVOR, ggml_version(),
           cpu[0] ? cpu : "unknown", threads);
    double pre_med = median(f->prefill_tps, f->runs), dec_med = median(f->decode_tps, f->runs);
    printf("prefill:  %d tokens: %.1f tokens/s median, %.1f best (%d runs)\n", bo->n_prompt,
           pre_med, best(f->prefill_tps, f->runs), f->runs);
    printf("decode:   %d tokens: %.2f tokens/s median, %.2f best\n", bo->n_gen, dec_med,
           best(f->decode_tps, f->runs));
    double bpt = decode_bytes_per_token(m, bo->n_prompt + bo->n_gen / 2);
    printf("reads:    %.1f MB per decoded token; at the median speed %.1f GB/s\n", bpt / 1e6,
           bpt * dec_med / 1e9);
    if (bo->bandwidth_gbs > 0) {
        double roofline = bo->bandwidth_gbs * 1e9 / bpt;
        printf("roofline: %.2f tokens/s at %.1f GB/s; decode reaches %.0f%% of it\n", roofline,
               (double)bo->bandwidth_gbs, 100.0 * best(f->decode_tps, f->runs) / roofline);
    }
    printf("memory:   peak resident %.1f MiB\n", (double)cairn_peak_rss() / (1024.0 * 1024.0));
}

static int run(cli_model_options *mo, const bench_options *bo) {
    cairn_model_file *m = NULL;
    cairn_err err = {{0}};
    if (cairn_model_open(mo->model, &m, &err) != 0) {
        cli_error("%s", err.msg);
        return CLI_ERROR;
    }
    if (mo->ctx_size <= 0) {
        mo->ctx_size = bo->n_prompt + bo->n_gen + 1;
    }
    cairn_pipeline *p = NULL;
    int rc = cli_load_pipeline(mo, 1, &p);
    int32_t *prompt = malloc((size_t)bo->n_prompt * sizeof(int32_t));
    float *logits = malloc((size_t)m->hp.n_vocab * sizeof(float));
    bench_figures f = {{0}, {0}, 0};
    if (rc == CLI_OK && (!prompt || !logits)) {
        cli_error("out of memory");
        rc = CLI_ERROR;
    }
    if (rc == CLI_OK) {
        make_prompt(prompt, bo->n_prompt, m->hp.n_vocab);
        /* A short warm-up run so the first measured run does not pay for page faults. */
        int32_t warm[8];
        make_prompt(warm, 8, m->hp.n_vocab);
        if (cairn_pipeline_forward(p, 0, warm, 8, false, logits, &err) != 0) {
            rc = CLI_ERROR;
        }
        for (int r = 0; rc == CLI_OK && r < bo->repeats; r++, f.runs++) {
            if (one_run(p, prompt, bo, logits, &f.prefill_tps[r], &f.decode_tps[r], &err) != 0) {
                rc = CLI_ERROR;
            }
        }
        if (rc == CLI_OK) {
            report(m, mo, bo, &f);
        } else {
            cli_error("%s", err.msg);
        }
    }
    free(prompt);
    free(logits);
    cairn_pipeline_free(p);
    cairn_model_close(m);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    cli_model_options mo = {0};
    bench_options bo = {512, 128, 3, 0};
    const cli_option options[] = {
        CLI_MODEL_OPTIONS(mo),
        {"n-prompt", 'p', OPT_INT, &bo.n_prompt, "N", "prompt tokens to prefill (512)"},
        {"n-gen", 'n', OPT_INT, &bo.n_gen, "N", "tokens to decode (128)"},
        {"repeats", 'r', OPT_INT, &bo.repeats, "N", "measured runs, 1..16 (3)"},
        {"bandwidth", 0, OPT_FLOAT, &bo.bandwidth_gbs, "GB/S",
         "memory read bandwidth, to compare decode with its roofline"},
    };
    const cli_command cmd = {"bench",
                             "usage: cairn bench -m FILE [-p 512] [-n 128] [-t T]",
                             "Measures prefill and decode speed and the bytes read per token.",
                             options,
                             CAIRN_ARRAY_LEN(options),
                             0};
    int rc;
    if (!cli_parse_model_args(&cmd, argc, argv, &mo, &rc)) {
        return rc;
    }
    if (bo.n_prompt < 1 || bo.n_gen < 1 || bo.repeats < 1 || bo.repeats > 16) {
        cli_error("-p and -n must be at least 1 and -r between 1 and 16");
        return CLI_USAGE;
    }
    return run(&mo, &bo);
}
