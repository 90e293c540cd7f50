/*
 * cairn-logits: cairn's side of the comparison with the llama.cpp oracle
 * (tools/oracle/cairn-oracle). It computes logits through the public engine API only
 * (src/engine/engine.h: a pipeline of shards, logits of every position) and writes them in
 * the CLGT format of tools/logits_file.h, and compares two such files.
 *
 *   eval    -m MODEL --tokens ID,... [--layers A:B] [-t N] -o OUT.bin
 *           teacher-forced: exactly the given sequence, one row of logits per token
 *   greedy  -m MODEL --tokens ID,... -n N [--layers A:B] [-t N] -o OUT.bin
 *           the prompt in one batch, then N argmax tokens fed back one at a time (ties to
 *           the lowest id), as the oracle does
 *   compare A.bin B.bin [--tol X] [--top K] [--exact]
 *   tokens  FILE.bin        prints the file's token sequence as ID,ID,... (to feed a
 *                           sequence one engine produced to the other)
 *
 * compare fails (exit 1) when the vocabularies or token sequences differ, when the top-K
 * ids differ at a position (but for near-ties: two ids whose logits differ by no more than
 * the tolerance may swap places), when the largest absolute logit difference exceeds the
 * tolerance, or, with --exact, when any logit is not bit-identical.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "logits_file.h"
#include "util/util.h"

#define LG_MAX_CUTS 64
#define LG_MAX_TOP 64

typedef struct lg_args {
    const char *model, *tokens, *layers, *out;
    int n_gen, n_threads;
    const char *files[2];
    int n_files;
    double tol;
    int top;
    bool exact;
} lg_args;

static void lg_usage(FILE *f) {
    fprintf(f, "usage: cairn-logits eval -m MODEL --tokens ID,... [--layers A:B] [-t N] -o OUT\n"
               "       cairn-logits greedy -m MODEL --tokens ID,... -n N [--layers A:B] [-t N]"
               " -o OUT\n"
               "       cairn-logits compare A.bin B.bin [--tol X] [--top K] [--exact]\n"
               "       cairn-logits tokens FILE.bin\n");
}

static int lg_number(const char *flag, const char *v, double max, double *out, cairn_err *err) {
    char *end = NULL;
    double d = v ? strtod(v, &end) : -1.0;
    if (!v || *end != '\0' || !(d >= 0.0 && d <= max)) {
        return cairn_fail(err, "%s needs a number in 0..%g", flag, max);
    }
    *out = d;
    return 0;
}

/* One option with its value at argv[*i]; advances *i past the value. */
static int lg_option(lg_args *a, int argc, char **argv, int *i, cairn_err *err) {
    const char *o = argv[*i];
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    double d = 0.0;
    int rc = 0;
    if (strcmp(o, "--exact") == 0) {
        a->exact = true;
        return 0;
    }
    (*i)++;
    if (strcmp(o, "-m") == 0 || strcmp(o, "--tokens") == 0 || strcmp(o, "--layers") == 0 ||
        strcmp(o, "-o") == 0) {
        const char **dst = o[1] == 'm'   ? &a->model
                           : o[1] == 'o' ? &a->out
                           : o[2] == 't' ? &a->tokens
                                         : &a->layers;
        *dst = v;
        return v ? 0 : cairn_fail(err, "%s needs a value", o);
    }
    if (strcmp(o, "-n") == 0 || strcmp(o, "-t") == 0 || strcmp(o, "--top") == 0) {
        rc = lg_number(o, v, o[1] == 'n' ? 1 << 20 : o[1] == 't' ? 1024 : LG_MAX_TOP, &d, err);
        *(o[1] == 'n' ? &a->n_gen : o[1] == 't' ? &a->n_threads : &a->top) = (int)d;
        return rc;
    }
    if (strcmp(o, "--tol") == 0) {
        return lg_number(o, v, 1e9, &a->tol, err);
    }
    return cairn_fail(err, "unknown option %.64s", o);
}

static int lg_parse(int argc, char **argv, lg_args *a, cairn_err *err) {
    memset(a, 0, sizeof *a);
    a->n_gen = -1;
    a->tol = 1e-2;
    a->top = 5;
    for (int i = 2; i < argc; i++) {
        if (argv[i][0] != '-') {
            if (a->n_files == 2) {
                return cairn_fail(err, "unexpected argument %.64s", argv[i]);
            }
            a->files[a->n_files++] = argv[i];
        } else if (lg_option(a, argc, argv, &i, err) != 0) {
            return -1;
        }
    }
    return 0;
}

static int lg_load(const lg_args *a, int n_ctx, cairn_pipeline **p, cairn_err *err) {
    int cuts[LG_MAX_CUTS], n_cuts = 0;
    if (a->layers) {
        n_cuts = cairn_parse_int_list(a->layers, ':', cuts, LG_MAX_CUTS, err);
        if (n_cuts < 0) {
            return cairn_fail_prefix(err, "--layers");
        }
    }
    cairn_shard_config cfg = {0};
    cfg.model_path = a->model;
    cfg.last_layer = -1;
    cfg.n_ctx = n_ctx;
    cfg.n_seq = 1;
    cfg.n_threads = a->n_threads;
    cfg.n_batch = n_ctx; /* the prompt in one compute step, as the oracle evaluates it */
    return cairn_pipeline_load_ggml(&cfg, cuts, n_cuts, p, err);
}

static float *lg_row(clgt_file *f, int pos) {
    return f->logits + (size_t)pos * f->n_vocab;
}

/* Evaluates tokens[0, n_first) in one step, then each later position alone; in greedy mode
 * each later token is first chosen from the previous row. */
static int lg_run(cairn_pipeline *p, clgt_file *f, int n_first, bool greedy, cairn_err *err) {
    if (cairn_pipeline_forward(p, 0, f->tokens, n_first, true, f->logits, err) != 0) {
        return -1;
    }
    for (int pos = n_first; pos < (int)f->n_positions; pos++) {
        if (greedy) {
            f->tokens[pos] = clgt_argmax(lg_row(f, pos - 1), f->n_vocab);
        }
        if (cairn_pipeline_forward(p, 0, f->tokens + pos, 1, true, lg_row(f, pos), err) != 0) {
            return -1;
        }
    }
    return 0;
}

static int lg_compute(const lg_args *a, bool greedy, cairn_err *err) {
    int32_t *ids = NULL;
    int n_ids = a->tokens ? clgt_parse_tokens(a->tokens, &ids) : -1;
    if (!a->model || !a->out || n_ids <= 0 || (greedy && a->n_gen < 0)) {
        free(ids);
        return cairn_fail(err, "needs -m, --tokens ID,...,%s and -o", greedy ? " -n" : "");
    }
    int n_total = n_ids + (greedy ? a->n_gen : 0);
    cairn_pipeline *p = NULL;
    clgt_file f = {0};
    int rc = lg_load(a, n_total, &p, err);
    if (rc == 0) {
        f.n_vocab = (uint32_t)cairn_pipeline_info(p)->n_vocab;
        f.n_positions = (uint32_t)n_total;
        f.tokens = calloc((size_t)n_total, sizeof *f.tokens);
        f.logits = calloc((size_t)n_total * f.n_vocab, sizeof *f.logits);
        rc = f.tokens && f.logits ? 0 : cairn_fail(err, "out of memory");
    }
    if (rc == 0) {
        memcpy(f.tokens, ids, sizeof *ids * (size_t)n_ids);
        rc = lg_run(p, &f, n_ids, greedy, err);
    }
    clgt_msg m;
    if (rc == 0 && clgt_write(a->out, &f, &m) != 0) {
        rc = cairn_fail(err, "%s", m.text);
    }
    cairn_pipeline_free(p);
    clgt_free(&f);
    free(ids);
    return rc;
}

/* ---- compare ---- */

/* The k largest ids of a row, best first (ties to the lowest id, as clgt_argmax). */
static void lg_top(const float *row, uint32_t n_vocab, int k, int32_t *top) {
    for (int r = 0; r < k; r++) {
        int32_t best = -1;
        for (uint32_t i = 0; i < n_vocab; i++) {
            bool taken = false;
            for (int j = 0; j < r && !taken; j++) {
                taken = top[j] == (int32_t)i;
            }
            if (!taken && (best < 0 || row[i] > row[best])) {
                best = (int32_t)i;
            }
        }
        top[r] = best;
    }
}

/* Top-k disagreements at one position; a swap of two ids whose logits lie within tol of
 * each other in both files is a near-tie, not a disagreement. */
static int lg_top_mismatch(const float *ra, const float *rb, uint32_t n_vocab, int k, double tol) {
    int32_t ta[LG_MAX_TOP], tb[LG_MAX_TOP];
    lg_top(ra, n_vocab, k, ta);
    lg_top(rb, n_vocab, k, tb);
    int bad = 0;
    for (int r = 0; r < k; r++) {
        if (ta[r] != tb[r] && (fabs((double)ra[ta[r]] - ra[tb[r]]) > tol ||
                               fabs((double)rb[ta[r]] - rb[tb[r]]) > tol)) {
            bad++;
        }
    }
    return bad;
}

typedef struct lg_diff {
    double max_abs, max_logit;
    int pos, id;
    int top_bad_positions, first_top_bad;
    bool identical;
} lg_diff;

static void lg_diff_files(const clgt_file *a, const clgt_file *b, int n_pos, int k, double tol,
                          lg_diff *d) {
    memset(d, 0, sizeof *d);
    d->first_top_bad = -1;
    d->identical = true;
    for (int p = 0; p < n_pos; p++) {
        const float *ra = a->logits + (size_t)p * a->n_vocab;
        const float *rb = b->logits + (size_t)p * b->n_vocab;
        d->identical = d->identical && memcmp(ra, rb, sizeof(float) * a->n_vocab) == 0;
        for (uint32_t i = 0; i < a->n_vocab; i++) {
            double diff = fabs((double)ra[i] - rb[i]);
            d->max_logit = fmax(d->max_logit, fabs((double)ra[i]));
            if (diff > d->max_abs || isnan(diff)) {
                d->max_abs = isnan(diff) ? INFINITY : diff;
                d->pos = p;
                d->id = (int)i;
            }
        }
        if (lg_top_mismatch(ra, rb, a->n_vocab, k, tol) > 0) {
            d->first_top_bad = d->top_bad_positions++ == 0 ? p : d->first_top_bad;
        }
    }
}

/* Prints the first position where the sequences differ; 0 when they are the same. */
static int lg_compare_tokens(const clgt_file *a, const clgt_file *b) {
    uint32_t n = a->n_positions < b->n_positions ? a->n_positions : b->n_positions;
    for (uint32_t i = 0; i < n; i++) {
        if (a->tokens[i] != b->tokens[i]) {
            printf("tokens: first divergence at position %u: %d vs %d\n", i, a->tokens[i],
                   b->tokens[i]);
            return 1;
        }
    }
    if (a->n_positions != b->n_positions) {
        printf("tokens: lengths differ: %u vs %u\n", a->n_positions, b->n_positions);
        return 1;
    }
    printf("tokens: %u equal\n", n);
    return 0;
}

static int lg_report(const lg_args *a, const lg_diff *d) {
    int failed = 0;
    printf("max abs diff %.6g at position %d, id %d (largest |logit| %.4g; tolerance %g)\n",
           d->max_abs, d->pos, d->id, d->max_logit, a->exact ? 0.0 : a->tol);
    if (d->top_bad_positions > 0) {
        printf("top-%d ids differ at %d position(s), first at %d\n", a->top, d->top_bad_positions,
               d->first_top_bad);
        failed = 1;
    }
    if (a->exact && !d->identical) {
        printf("logits are not bit-identical\n");
        failed = 1;
    }
    if (!a->exact && !(d->max_abs <= a->tol)) {
        printf("max abs diff exceeds the tolerance\n");
        failed = 1;
    }
    return failed;
}

static int lg_compare(const lg_args *a, cairn_err *err) {
    if (a->n_files != 2 || a->top < 1) {
        return cairn_fail(err, "compare needs two files (and --top of at least 1)");
    }
    clgt_file fa, fb;
    clgt_msg m;
    if (clgt_read(a->files[0], &fa, &m) != 0) {
        return cairn_fail(err, "%s", m.text);
    }
    if (clgt_read(a->files[1], &fb, &m) != 0) {
        clgt_free(&fa);
        return cairn_fail(err, "%s", m.text);
    }
    int rc = -1;
    if (fa.n_vocab != fb.n_vocab) {
        cairn_fail(err, "vocabularies differ: %u vs %u", fa.n_vocab, fb.n_vocab);
    } else {
        int failed = lg_compare_tokens(&fa, &fb);
        int n_pos = (int)(fa.n_positions < fb.n_positions ? fa.n_positions : fb.n_positions);
        int k = a->top < (int)fa.n_vocab ? a->top : (int)fa.n_vocab;
        lg_diff d;
        lg_diff_files(&fa, &fb, n_pos, k, a->exact ? 0.0 : a->tol, &d);
        rc = lg_report(a, &d) || failed ? 1 : 0;
        printf("%s\n", rc ? "DIFFERENT" : "MATCH");
    }
    clgt_free(&fa);
    clgt_free(&fb);
    return rc;
}

static int lg_tokens(const lg_args *a, cairn_err *err) {
    clgt_file f;
    clgt_msg m;
    if (a->n_files != 1) {
        return cairn_fail(err, "tokens needs one file");
    }
    if (clgt_read(a->files[0], &f, &m) != 0) {
        return cairn_fail(err, "%s", m.text);
    }
    for (uint32_t i = 0; i < f.n_positions; i++) {
        printf("%s%d", i ? "," : "", f.tokens[i]);
    }
    printf("\n");
    clgt_free(&f);
    return 0;
}

int main(int argc, char **argv) {
    lg_args a;
    cairn_err err = {{0}};
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        lg_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (lg_parse(argc, argv, &a, &err) != 0) {
        fprintf(stderr, "cairn-logits: %s\n", err.msg);
        return 2;
    }
    int rc = 2;
    if (strcmp(argv[1], "eval") == 0 || strcmp(argv[1], "greedy") == 0) {
        rc = lg_compute(&a, argv[1][0] == 'g', &err) == 0 ? 0 : -1;
    } else if (strcmp(argv[1], "compare") == 0) {
        rc = lg_compare(&a, &err);
    } else if (strcmp(argv[1], "tokens") == 0) {
        rc = lg_tokens(&a, &err);
    } else {
        lg_usage(stderr);
    }
    if (rc < 0) {
        fprintf(stderr, "cairn-logits: %s\n", err.msg);
        return 1;
    }
    return rc;
}
