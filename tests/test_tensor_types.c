/* The engine computes with every tensor type ggml's CPU backend supports: the same random
 * weights (tiny-llama-256, whose rows all fit the K-quants' 256-element blocks) are written
 * in each type, run through the engine, and compared twice.
 *
 * Against the F32 model: the type's rounding of the weights. Random weights have none of
 * the redundancy of a trained model, so this error compounds through the layers and is large
 * for the coarse types (Q2_K's logits keep little of the F32 ones); the per-type bounds are
 * 1.3 to 2.5 times what each type shows here (listed at `cases`), ordered by precision.
 *
 * Against an F32 copy of the type's own rounded weights: only what the type's kernels do
 * differently, i.e. activations rounded to F16/BF16 or an 8-bit block format and sums taken
 * in another order. That is the same small amount for every type, and it is what proves the
 * kernels right: a misread block or scale in a single matrix moves logits far more (shown by
 * test_kernel_check_has_teeth).
 *
 * Every run feeds the F32 model's tokens (its prompt and greedy continuation), so a near tie
 * that a coarse type breaks differently cannot turn into a different continuation. Weights
 * are N(0, 0.05), not the generator's default 0.02: with small weights attention is nearly
 * uniform, so q and k (and their kernels) would hardly reach the logits; with larger ones
 * rounding errors compound more. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define CAIRN_GENMODEL_NO_MAIN
#include "../tools/cairn-genmodel.c"

#include "engine/engine.h"
#include "model/model.h"

#define SHAPE "tiny-llama-256"
#define SEED 11
#define WEIGHT_STD 0.05f
#define N_PROMPT 8
#define N_STEPS 4
#define N_ROWS (N_PROMPT + N_STEPS)
#define N_CTX 32
#define MIN_LOGIT_STD 0.5
/* What a type's kernels may add to the F32 kernels on the same values (observed at most
 * 0.11 and 0.024, BF16 and F16 far less), in the logits' standard deviation. */
#define KERNEL_MAX 0.25
#define KERNEL_RMS 0.05

typedef struct type_case {
    const char *name;
    enum ggml_type type;
    double rms, max; /* bounds on the logits' distance to F32's, in their standard deviation */
} type_case;

/* Finest first. Observed (rms, max): F16 0.0013 0.005, BF16 0.008 0.035, Q8_0 0.025 0.11,
 * Q6_K 0.068 0.29, Q5_1 0.13 0.56, Q5_K 0.14 0.53, Q5_0 0.16 0.69, Q4_K 0.27 1.23, Q4_1 0.32
 * 1.31, Q4_0 0.33 1.39, Q3_K 0.48 2.22, Q2_K 0.92 3.41. Unrelated logits of the same spread
 * would be 1.41 apart in rms. */
static const type_case cases[] = {
    {"F16", GGML_TYPE_F16, 0.003, 0.01},  {"BF16", GGML_TYPE_BF16, 0.015, 0.06},
    {"Q8_0", GGML_TYPE_Q8_0, 0.04, 0.18}, {"Q6_K", GGML_TYPE_Q6_K, 0.1, 0.45},
    {"Q5_1", GGML_TYPE_Q5_1, 0.25, 1.0},  {"Q5_K", GGML_TYPE_Q5_K, 0.25, 1.0},
    {"Q5_0", GGML_TYPE_Q5_0, 0.25, 1.0},  {"Q4_K", GGML_TYPE_Q4_K, 0.5, 2.0},
    {"Q4_1", GGML_TYPE_Q4_1, 0.5, 2.0},   {"Q4_0", GGML_TYPE_Q4_0, 0.5, 2.0},
    {"Q3_K", GGML_TYPE_Q3_K, 0.75, 3.3},  {"Q2_K", GGML_TYPE_Q2_K, 1.2, 5.0},
};

/* Logits of every prompt position, then of each step; tokens[] is the whole input. */
typedef struct trace {
    int n_vocab;
    int32_t tokens[N_ROWS];
    float *logits; /* N_ROWS * n_vocab */
} trace;

/* Arbitrary ids inside the generator's 512-token synthesized vocabulary. */
static const int32_t prompt[N_PROMPT] = {1, 17, 300, 42, 99, 256, 7, 411};

/* ---- models ---- */

static void model_path(char *buf, size_t size, const char *type) {
    snprintf(buf, size, "%s/test_tensor_types_%s.gguf", CAIRN_BINARY_DIR, type);
}

static void generate(const char *type, const char *path) {
    gm_options opt = {
        .shape = SHAPE, .type = type, .out_path = path, .seed = SEED, .weight_std = WEIGHT_STD};
    gm_stats stats;
    cairn_err err = {{0}};
    if (gm_generate(&opt, &stats, &err) != 0) {
        fail_msg("generating %s %s: %s", SHAPE, type, err.msg);
    }
}

/* The model opens, and every weight matrix really is of the type (no fallback). */
static void check_opens_as(const char *path, enum ggml_type type) {
    cairn_model_file *m = NULL;
    cairn_err err = {{0}};
    if (cairn_model_open(path, &m, &err) != 0) {
        fail_msg("cairn_model_open(%s): %s", path, err.msg);
    }
    assert_int_equal(m->hp.n_embd, 256);
    assert_int_equal(m->hp.n_layer, 2);
    int n_matrices = 0;
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const cairn_tensor_info *t = &m->tensors[i];
        if (t->n_dims == 2) {
            if (t->type != (int)type) {
                fail_msg("%s is %s, expected %s", t->name, ggml_type_name((enum ggml_type)t->type),
                         ggml_type_name(type));
            }
            n_matrices++;
        }
    }
    assert_int_equal(n_matrices, 2 + 2 * 7);
    cairn_model_close(m);
}

/* ---- traces ---- */

static int32_t argmax(const float *v, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++) {
        best = v[i] > v[best] ? i : best;
    }
    return best;
}

static float *row_of(const trace *t, int row) {
    return t->logits + (size_t)row * (size_t)t->n_vocab;
}

static void trace_free(trace *t) {
    free(t->logits);
    t->logits = NULL;
}

static cairn_pipeline *load(const char *path, const int *cuts, int n_cuts, bool use_mmap) {
    cairn_shard_config cfg = {0};
    cfg.model_path = path;
    cfg.last_layer = -1;
    cfg.n_ctx = N_CTX;
    cfg.n_threads = 1;
    cfg.use_mmap = use_mmap;
    cairn_pipeline *p = NULL;
    cairn_err err = {{0}};
    if (cairn_pipeline_load_ggml(&cfg, cuts, n_cuts, &p, &err) != 0) {
        fail_msg("loading %s: %s", path, err.msg);
    }
    return p;
}

/* The prompt in one batch with every position's logits, then single-token steps. The
 * steps take `forced` tokens when given, else the greedy pick of the previous row. */
static void run_trace(const char *path, const int *cuts, int n_cuts, bool use_mmap,
                      const int32_t *forced, trace *t) {
    cairn_pipeline *p = load(path, cuts, n_cuts, use_mmap);
    cairn_err err = {{0}};
    memset(t, 0, sizeof *t);
    t->n_vocab = cairn_pipeline_info(p)->n_vocab;
    t->logits = calloc((size_t)N_ROWS * (size_t)t->n_vocab, sizeof(float));
    assert_non_null(t->logits);
    memcpy(t->tokens, prompt, sizeof prompt);
    if (cairn_pipeline_forward(p, 0, prompt, N_PROMPT, true, t->logits, &err) != 0) {
        fail_msg("%s: prompt: %s", path, err.msg);
    }
    for (int s = 0; s < N_STEPS; s++) {
        const int row = N_PROMPT + s;
        t->tokens[row] = forced ? forced[row] : argmax(row_of(t, row - 1), t->n_vocab);
        if (cairn_pipeline_forward(p, 0, &t->tokens[row], 1, false, row_of(t, row), &err) != 0) {
            fail_msg("%s: step %d: %s", path, s, err.msg);
        }
    }
    cairn_pipeline_free(p);
}

static double logit_std(const trace *t) {
    const size_t n = (size_t)N_ROWS * (size_t)t->n_vocab;
    double sum = 0.0, sq = 0.0;
    for (size_t i = 0; i < n; i++) {
        sum += t->logits[i];
        sq += (double)t->logits[i] * t->logits[i];
    }
    double mean = sum / (double)n;
    return sqrt(sq / (double)n - mean * mean);
}

typedef struct diff {
    double max_abs, rms;
    int same_argmax; /* rows whose top logit is the same token */
} diff;

static diff compare(const trace *a, const trace *b) {
    assert_int_equal(a->n_vocab, b->n_vocab);
    diff d = {0.0, 0.0, 0};
    const size_t n = (size_t)N_ROWS * (size_t)a->n_vocab;
    for (size_t i = 0; i < n; i++) {
        double x = fabs((double)a->logits[i] - (double)b->logits[i]);
        d.max_abs = x > d.max_abs ? x : d.max_abs;
        d.rms += x * x;
    }
    d.rms = sqrt(d.rms / (double)n);
    for (int r = 0; r < N_ROWS; r++) {
        d.same_argmax += argmax(row_of(a, r), a->n_vocab) == argmax(row_of(b, r), b->n_vocab);
    }
    return d;
}

/* ---- the F32 baseline, shared by the tests ---- */

typedef struct baseline {
    trace f32;
    double std;
} baseline;

static int setup_baseline(void **state) {
    baseline *b = calloc(1, sizeof *b);
    if (b == NULL) {
        return -1;
    }
    char path[512];
    model_path(path, sizeof path, "F32");
    generate("F32", path);
    check_opens_as(path, GGML_TYPE_F32);
    run_trace(path, NULL, 0, false, NULL, &b->f32);
    remove(path);
    b->std = logit_std(&b->f32);
    print_message("F32 baseline: logit std %.3f, tokens", b->std);
    for (int i = 0; i < N_ROWS; i++) {
        print_message(" %d", (int)b->f32.tokens[i]);
    }
    print_message("\n");
    *state = b;
    return 0;
}

static int teardown_baseline(void **state) {
    baseline *b = *state;
    trace_free(&b->f32);
    free(b);
    return 0;
}

/* ---- every type against F32 ---- */

/* Swaps the two halves of every 32 values, as a kernel that paired the wrong nibbles would. */
static void garble(float *v, int64_t n) {
    for (int64_t at = 0; at + 32 <= n; at += 32) {
        for (int i = 0; i < 16; i++) {
            float t = v[at + i];
            v[at + i] = v[at + 16 + i];
            v[at + 16 + i] = t;
        }
    }
}

/* Writes an F32 copy of the model at src: the same metadata, every tensor dequantized with
 * ggml's to_float (the tensor named garbled, if any, then garbled). The engine then
 * multiplies exactly the values of the quantized file, but with F32 kernels. */
static void write_dequantized(const char *src, const char *dst, const char *garbled) {
    struct ggml_context *data = NULL;
    struct gguf_init_params params = {.no_alloc = false, .ctx = &data};
    struct gguf_context *in = gguf_init_from_file(src, params);
    assert_non_null(in);
    const int64_t n = gguf_get_n_tensors(in);
    size_t bytes = (size_t)(n + 1) * ggml_tensor_overhead();
    for (int64_t i = 0; i < n; i++) {
        bytes += (size_t)ggml_nelements(ggml_get_tensor(data, gguf_get_tensor_name(in, i))) *
                     sizeof(float) +
                 GGML_MEM_ALIGN;
    }
    struct ggml_init_params f32_params = {.mem_size = bytes, .mem_buffer = NULL, .no_alloc = false};
    struct ggml_context *f32 = ggml_init(f32_params);
    assert_non_null(f32);
    struct gguf_context *out = gguf_init_empty();
    gguf_set_kv(out, in);
    gguf_set_val_u32(out, "general.file_type", 0);
    gguf_remove_key(out, "general.quantization_version");
    for (int64_t i = 0; i < n; i++) {
        const struct ggml_tensor *t = ggml_get_tensor(data, gguf_get_tensor_name(in, i));
        struct ggml_tensor *c = ggml_new_tensor(f32, GGML_TYPE_F32, GGML_MAX_DIMS, t->ne);
        ggml_set_name(c, t->name);
        if (t->type == GGML_TYPE_F32) {
            memcpy(c->data, t->data, ggml_nbytes(t));
        } else {
            ggml_get_type_traits(t->type)->to_float(t->data, c->data, ggml_nelements(t));
        }
        if (garbled != NULL && strcmp(t->name, garbled) == 0) {
            garble(c->data, ggml_nelements(c));
        }
        gguf_add_tensor(out, c);
    }
    assert_true(gguf_write_to_file(out, dst, false));
    gguf_free(out);
    ggml_free(f32);
    gguf_free(in);
    ggml_free(data);
}

/* RMS of (rounded - exact) over RMS of exact for one matrix, straight from the generator's
 * values: how coarse the type is, for the report. */
static double weight_rounding(enum ggml_type type) {
    const gm_tensor_spec *spec = NULL;
    gm_options opt = {.shape = SHAPE,
                      .type = "F32",
                      .out_path = "unused",
                      .seed = SEED,
                      .weight_std = WEIGHT_STD};
    gm_plan p;
    cairn_err err = {{0}};
    if (gm_plan_init(&p, &opt, &err) != 0) {
        fail_msg("%s", err.msg);
    }
    for (int i = 0; i < p.n_tensors; i++) {
        spec = strcmp(p.tensors[i].name, "blk.0.ffn_up.weight") == 0 ? &p.tensors[i] : spec;
    }
    assert_non_null(spec);
    const size_t n = (size_t)(spec->ne0 * spec->ne1);
    float *exact = malloc(n * sizeof *exact), *back = malloc(n * sizeof *back);
    void *q = malloc(ggml_row_size(type, spec->ne0) * (size_t)spec->ne1);
    assert_true(exact && back && q);
    gm_rng rng;
    gm_rng_for_tensor(&rng, SEED, spec->name);
    gm_fill_values(&p, spec, &rng, exact, n);
    ggml_quantize_chunk(type, exact, q, 0, spec->ne1, spec->ne0, NULL);
    ggml_get_type_traits(type)->to_float(q, back, (int64_t)n);
    double err_sq = 0.0, sq = 0.0;
    for (size_t i = 0; i < n; i++) {
        err_sq += ((double)back[i] - exact[i]) * ((double)back[i] - exact[i]);
        sq += (double)exact[i] * exact[i];
    }
    free(exact);
    free(back);
    free(q);
    gm_plan_free(&p);
    return sqrt(err_sq / sq);
}

static void print_diff(const char *type, const char *what, diff d, double std) {
    print_message("%-5s %-26s max %.4f std, rms %.4f std, same top token %2d/%d\n", type, what,
                  d.max_abs / std, d.rms / std, d.same_argmax, N_ROWS);
}

static void check_kernels(const type_case *c, const char *mode, diff d, double std) {
    if (d.max_abs > KERNEL_MAX * std || d.rms > KERNEL_RMS * std) {
        fail_msg("%s %s: the type's kernels are %.4g (rms %.4g) away from F32 kernels on the "
                 "same values; at most %.3g (rms %.3g) expected",
                 c->name, mode, d.max_abs, d.rms, KERNEL_MAX * std, KERNEL_RMS * std);
    }
}

static void check_rounding(const type_case *c, const char *mode, diff d, double std) {
    if (d.max_abs > c->max * std || d.rms > c->rms * std) {
        fail_msg("%s %s: logits are %.4g (rms %.4g) away from F32's; at most %.3g (rms %.3g) "
                 "expected",
                 c->name, mode, d.max_abs, d.rms, c->max * std, c->rms * std);
    }
}

/* Weights copied into memory (repacked where the CPU backend has a layout for the type) and
 * weights used in place in the file mapping run different kernels: both are checked. */
static void check_type(const baseline *b, const type_case *c) {
    char path[512], copy_path[512], copy_name[32];
    model_path(path, sizeof path, c->name);
    snprintf(copy_name, sizeof copy_name, "%s_as_F32", c->name);
    model_path(copy_path, sizeof copy_path, copy_name);
    generate(c->name, path);
    check_opens_as(path, c->type);
    write_dequantized(path, copy_path, NULL);
    trace same_values;
    run_trace(copy_path, NULL, 0, false, b->f32.tokens, &same_values);
    remove(copy_path);
    print_message("%-5s weights rounded by %.4f of their rms (blk.0.ffn_up)\n", c->name,
                  weight_rounding(c->type));
    print_diff(c->name, "F32 kernels vs F32", compare(&same_values, &b->f32), b->std);
    for (int use_mmap = 0; use_mmap <= 1; use_mmap++) {
        const char *mode = use_mmap ? "mmap" : "copied";
        char what[64];
        trace t;
        run_trace(path, NULL, 0, use_mmap != 0, b->f32.tokens, &t);
        diff vs_f32 = compare(&t, &b->f32), vs_same = compare(&t, &same_values);
        snprintf(what, sizeof what, "%s vs F32", mode);
        print_diff(c->name, what, vs_f32, b->std);
        snprintf(what, sizeof what, "%s vs F32 kernels", mode);
        print_diff(c->name, what, vs_same, b->std);
        check_kernels(c, mode, vs_same, b->std);
        check_rounding(c, mode, vs_f32, b->std);
        trace_free(&t);
    }
    trace_free(&same_values);
    remove(path);
}

static void test_every_type_against_f32(void **state) {
    const baseline *b = *state;
    if (b->std < MIN_LOGIT_STD) {
        fail_msg("F32 logits too flat to compare (std %.4f)", b->std);
    }
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(cases); i++) {
        check_type(b, &cases[i]);
    }
}

/* The bounds are ordered by precision, so no type passes by a bound meant for a coarser
 * one, and the uniform kernel bound is tighter than the rounding bound of every type from
 * Q6_K down: for those, the kernel check is the stricter of the two. */
static void test_bounds_are_ordered(void **state) {
    (void)state;
    for (size_t i = 1; i < CAIRN_ARRAY_LEN(cases); i++) {
        assert_true(cases[i].rms >= cases[i - 1].rms && cases[i].max >= cases[i - 1].max);
        if (cases[i - 1].type == GGML_TYPE_Q8_0) {
            assert_true(KERNEL_RMS < cases[i].rms && KERNEL_MAX < cases[i].max);
        }
    }
}

/* One matrix whose 32-value blocks are read with their halves swapped (the F32 copy is
 * garbled, so the real kernels now look wrong) is far outside the kernel bound, in a
 * layer's first matrix and in its last. */
static void test_kernel_check_has_teeth(void **state) {
    const baseline *b = *state;
    static const char *const garbled[] = {"blk.0.attn_q.weight", "blk.1.ffn_down.weight"};
    char path[512], copy_path[512];
    model_path(path, sizeof path, "Q4_K");
    model_path(copy_path, sizeof copy_path, "Q4_K_garbled");
    generate("Q4_K", path);
    trace real;
    run_trace(path, NULL, 0, false, b->f32.tokens, &real);
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(garbled); i++) {
        write_dequantized(path, copy_path, garbled[i]);
        trace wrong;
        run_trace(copy_path, NULL, 0, false, b->f32.tokens, &wrong);
        diff d = compare(&real, &wrong);
        print_diff("Q4_K", garbled[i], d, b->std);
        if (d.max_abs <= 2.0 * KERNEL_MAX * b->std || d.rms <= 2.0 * KERNEL_RMS * b->std) {
            fail_msg("garbling %s moves logits by only %.4g (rms %.4g)", garbled[i], d.max_abs,
                     d.rms);
        }
        trace_free(&wrong);
    }
    trace_free(&real);
    remove(copy_path);
    remove(path);
}

/* ---- split invariance ---- */

static void check_split_invariance(const char *type) {
    char path[512];
    model_path(path, sizeof path, type);
    generate(type, path);
    trace whole;
    run_trace(path, NULL, 0, false, NULL, &whole);
    const int n_layer = gm_find_shape(SHAPE)->n_layer;
    for (int cut = 1; cut < n_layer; cut++) {
        trace split;
        run_trace(path, &cut, 1, false, NULL, &split);
        if (memcmp(whole.tokens, split.tokens, sizeof whole.tokens) != 0 ||
            memcmp(whole.logits, split.logits,
                   (size_t)N_ROWS * (size_t)whole.n_vocab * sizeof(float)) != 0) {
            fail_msg("%s cut at layer %d: logits differ from the unsplit model by up to %.3g", type,
                     cut, compare(&whole, &split).max_abs);
        }
        trace_free(&split);
    }
    trace_free(&whole);
    remove(path);
}

static void test_split_invariance_q4_k(void **state) {
    (void)state;
    check_split_invariance("Q4_K");
}

static void test_split_invariance_bf16(void **state) {
    (void)state;
    check_split_invariance("BF16");
}

/* ---- a type the CPU cannot compute with ---- */

/* Writes the model's header with every matrix of `type` and zero tensor data: the generator
 * cannot quantize to the types that ggml only uses internally. */
static void write_model_of_type(enum ggml_type type, const char *path) {
    gm_options opt = {.shape = SHAPE, .type = "F32", .out_path = path, .seed = SEED};
    const gm_type_info forced = {ggml_type_name(type), type, 0, GGML_TYPE_F16};
    gm_plan p;
    cairn_err err = {{0}};
    if (gm_plan_init(&p, &opt, &err) != 0) {
        fail_msg("%s", err.msg);
    }
    p.wtype = &forced;
    if (gm_add_tensor_infos(&p, &err) != 0) {
        fail_msg("%s", err.msg);
    }
    const size_t meta_size = gguf_get_meta_size(p.out);
    size_t data_size = 0;
    for (int64_t i = 0; i < gguf_get_n_tensors(p.out); i++) {
        size_t end = gguf_get_tensor_offset(p.out, i) + gguf_get_tensor_size(p.out, i);
        data_size = end > data_size ? end : data_size;
    }
    unsigned char *bytes = calloc(1, meta_size + data_size);
    assert_non_null(bytes);
    gguf_get_meta_data(p.out, bytes);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, meta_size + data_size, f), meta_size + data_size);
    assert_int_equal(fclose(f), 0);
    free(bytes);
    gm_plan_free(&p);
}

/* Q8_1 and Q8_K exist only as ggml's intermediate formats for activations: no CPU kernel
 * multiplies or dequantizes them. The loader names the tensor and the type. */
static void test_uncomputable_type_rejected(void **state) {
    (void)state;
    static const enum ggml_type types[] = {GGML_TYPE_Q8_1, GGML_TYPE_Q8_K};
    char path[512];
    model_path(path, sizeof path, "uncomputable");
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(types); i++) {
        write_model_of_type(types[i], path);
        cairn_model_file *m = NULL;
        cairn_err err = {{0}};
        assert_int_equal(cairn_model_open(path, &m, &err), -1);
        assert_null(m);
        print_message("%s: %s\n", ggml_type_name(types[i]), err.msg);
        assert_non_null(strstr(err.msg, "token_embd.weight"));
        assert_non_null(strstr(err.msg, ggml_type_name(types[i])));
        assert_non_null(strstr(err.msg, "cannot compute"));

        cairn_shard_config cfg = {
            .model_path = path, .last_layer = -1, .n_ctx = N_CTX, .n_threads = 1};
        cairn_pipeline *p = NULL;
        memset(&err, 0, sizeof err);
        assert_int_equal(cairn_pipeline_load_ggml(&cfg, NULL, 0, &p, &err), -1);
        assert_null(p);
        assert_non_null(strstr(err.msg, "cannot compute"));
    }
    remove(path);
}

int main(void) {
    (void)gm_main; /* the generator's command line is tested by test_genmodel */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_type_against_f32),
        cmocka_unit_test(test_bounds_are_ordered),
        cmocka_unit_test(test_kernel_check_has_teeth),
        cmocka_unit_test(test_split_invariance_q4_k),
        cmocka_unit_test(test_split_invariance_bf16),
        cmocka_unit_test(test_uncomputable_type_rejected),
    };
    return cmocka_run_group_tests(tests, setup_baseline, teardown_baseline);
}
