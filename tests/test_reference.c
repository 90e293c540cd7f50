/* The ggml engine against a plain-C reference forward pass (tests/reference_model.h): on
 * random-weight llama, llama3, qwen2 and qwen3 models generated at test time and on the real
 * stories260K model; split invariance of the newer architectures; and proof that the
 * comparison notices a single wrong convention.
 *
 * Tolerance: the engine's flash attention rounds queries to F16 and accumulates the weighted
 * values in an F16 buffer; the reference cannot share those roundings without copying ggml's
 * loop order, so they remain. On these models they move logits by at most about 0.0035 of the
 * logits' standard deviation (F16 weights, which also round activations, are the worst case).
 * TOLERANCE allows 0.005 of it; every wrong convention tried moves logits by at least 0.012
 * of it, most by far more. */
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
#include "reference_model.h"

#define STORIES CAIRN_SHARED_DIR "/models/stories260K.gguf"
#define N_PROMPT 7
#define N_STEPS 5
#define N_ROWS (N_PROMPT + N_STEPS)
#define N_CTX 64
#define SEED 7
#define TOLERANCE 0.005 /* of the logits' standard deviation */
#define MIN_LOGIT_STD 0.1
/* Weight matrices N(0, 0.08) instead of the generator's N(0, 0.02): see sharpen(). */
#define SHARPEN 4.0f

typedef struct trace {
    int n_vocab;
    float *logits;               /* N_ROWS rows: every prompt position, then each step */
    int32_t tokens[N_STEPS + 1]; /* greedy picks after the prompt and after each step */
} trace;

/* Arbitrary ids inside the 512-token vocabulary the generator synthesizes. */
static const int32_t random_prompt[N_PROMPT] = {1, 17, 300, 42, 99, 256, 7};

/* ---- models ---- */

static void model_path(char *buf, size_t size, const char *shape, const char *type) {
    snprintf(buf, size, "%s/test_reference_%s_%s.gguf", CAIRN_BINARY_DIR, shape, type);
}

static void generate(const char *shape, const char *type, const char *path) {
    gm_options opt = {.shape = shape, .type = type, .out_path = path, .seed = SEED};
    gm_stats stats;
    cairn_err err = {{0}};
    if (gm_generate(&opt, &stats, &err) != 0) {
        fail_msg("generating %s %s: %s", shape, type, err.msg);
    }
}

static void scale_tensor_data(unsigned char *data, size_t size, enum ggml_type type, float factor) {
    if (type == GGML_TYPE_F32) {
        for (size_t at = 0; at < size; at += sizeof(float)) {
            float v;
            memcpy(&v, data + at, sizeof v);
            v *= factor;
            memcpy(data + at, &v, sizeof v);
        }
        return;
    }
    if (type != GGML_TYPE_F16 && type != GGML_TYPE_Q8_0) {
        fail_msg("cannot scale a %s tensor", ggml_type_name(type));
    }
    /* F16 values, or Q8_0 blocks that start with their F16 scale */
    size_t stride = type == GGML_TYPE_F16 ? sizeof(ggml_fp16_t) : ggml_type_size(type);
    for (size_t at = 0; at < size; at += stride) {
        ggml_fp16_t h;
        memcpy(&h, data + at, sizeof h);
        h = ggml_fp32_to_fp16(ggml_fp16_to_fp32(h) * factor);
        memcpy(data + at, &h, sizeof h);
    }
}

/* Multiplies every weight matrix of the file in place by a power of two (exact in F32, F16
 * and Q8_0 scales). With the generator's N(0, 0.02) weights, attention scores are so small
 * that attention is nearly a plain average: positions, and so RoPE mistakes, barely show in
 * the logits. Four times larger weights give attention that depends on positions. */
static void sharpen(const char *path, float factor) {
    struct gguf_init_params params = {.no_alloc = true, .ctx = NULL};
    struct gguf_context *g = gguf_init_from_file(path, params);
    assert_non_null(g);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    for (int64_t id = 0; id < gguf_get_n_tensors(g); id++) {
        if (gguf_get_tensor_ne(g, id)[1] == 1) {
            continue; /* norms, biases and rope factors keep their values */
        }
        size_t size = gguf_get_tensor_size(g, id);
        long offset = (long)(gguf_get_data_offset(g) + gguf_get_tensor_offset(g, id));
        unsigned char *data = malloc(size);
        assert_non_null(data);
        assert_int_equal(fseek(f, offset, SEEK_SET), 0);
        assert_int_equal(fread(data, 1, size, f), size);
        scale_tensor_data(data, size, gguf_get_tensor_type(g, id), factor);
        assert_int_equal(fseek(f, offset, SEEK_SET), 0);
        assert_int_equal(fwrite(data, 1, size, f), size);
        free(data);
    }
    assert_int_equal(fclose(f), 0);
    gguf_free(g);
}

/* ---- traces ---- */

static int32_t argmax(const float *v, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++) {
        if (v[i] > v[best]) {
            best = i;
        }
    }
    return best;
}

static float *row_of(const trace *t, int row) {
    return t->logits + (size_t)row * (size_t)t->n_vocab;
}

static void trace_init(trace *t, int n_vocab) {
    memset(t, 0, sizeof *t);
    t->n_vocab = n_vocab;
    t->logits = calloc((size_t)N_ROWS * (size_t)n_vocab, sizeof(float));
    assert_non_null(t->logits);
}

static void trace_free(trace *t) {
    free(t->logits);
    t->logits = NULL;
}

/* The prompt in one batch with every position's logits, then greedy single-token steps. */
static void engine_trace(const char *path, const int *cuts, int n_cuts, const int32_t *prompt,
                         trace *t) {
    cairn_shard_config cfg = {0};
    cfg.model_path = path;
    cfg.last_layer = -1;
    cfg.n_ctx = N_CTX;
    cfg.n_threads = 1;
    cairn_pipeline *p = NULL;
    cairn_err err = {{0}};
    if (cairn_pipeline_load_ggml(&cfg, cuts, n_cuts, &p, &err) != 0) {
        fail_msg("loading %s: %s", path, err.msg);
    }
    trace_init(t, cairn_pipeline_info(p)->n_vocab);
    if (cairn_pipeline_forward(p, 0, prompt, N_PROMPT, true, t->logits, &err) != 0) {
        fail_msg("engine prompt: %s", err.msg);
    }
    t->tokens[0] = argmax(row_of(t, N_PROMPT - 1), t->n_vocab);
    for (int s = 0; s < N_STEPS; s++) {
        if (cairn_pipeline_forward(p, 0, &t->tokens[s], 1, false, row_of(t, N_PROMPT + s), &err) !=
            0) {
            fail_msg("engine step %d: %s", s, err.msg);
        }
        t->tokens[s + 1] = argmax(row_of(t, N_PROMPT + s), t->n_vocab);
    }
    cairn_pipeline_free(p);
}

/* The same sequence through the reference, one token at a time. */
static void reference_trace(const char *path, const ref_variant *variant, const int32_t *prompt,
                            trace *t) {
    ref_model *m = NULL;
    cairn_err err = {{0}};
    if (ref_model_load(path, variant, N_CTX, &m, &err) != 0) {
        fail_msg("%s", err.msg);
    }
    trace_init(t, m->n_vocab);
    for (int i = 0; i < N_PROMPT; i++) {
        if (ref_forward(m, prompt[i], row_of(t, i), &err) != 0) {
            fail_msg("%s", err.msg);
        }
    }
    t->tokens[0] = argmax(row_of(t, N_PROMPT - 1), t->n_vocab);
    for (int s = 0; s < N_STEPS; s++) {
        if (ref_forward(m, t->tokens[s], row_of(t, N_PROMPT + s), &err) != 0) {
            fail_msg("%s", err.msg);
        }
        t->tokens[s + 1] = argmax(row_of(t, N_PROMPT + s), t->n_vocab);
    }
    ref_model_free(m);
}

static double max_abs_diff(const trace *a, const trace *b) {
    assert_int_equal(a->n_vocab, b->n_vocab);
    double worst = 0.0;
    for (size_t i = 0; i < (size_t)N_ROWS * (size_t)a->n_vocab; i++) {
        double d = fabs((double)a->logits[i] - (double)b->logits[i]);
        worst = d > worst ? d : worst;
    }
    return worst;
}

static double logit_std(const trace *t) {
    size_t n = (size_t)N_ROWS * (size_t)t->n_vocab;
    double sum = 0.0, sq = 0.0;
    for (size_t i = 0; i < n; i++) {
        sum += t->logits[i];
        sq += (double)t->logits[i] * t->logits[i];
    }
    double mean = sum / (double)n;
    return sqrt(sq / (double)n - mean * mean);
}

static bool same_tokens(const trace *a, const trace *b) {
    return memcmp(a->tokens, b->tokens, sizeof a->tokens) == 0;
}

/* ---- engine against reference ---- */

/* Both traces agree: same greedy tokens, logits within TOLERANCE of their spread. */
static void check_agree(const char *what, const char *path, const int32_t *prompt) {
    trace eng, ref;
    ref_variant correct = {0};
    engine_trace(path, NULL, 0, prompt, &eng);
    reference_trace(path, &correct, prompt, &ref);
    double std = logit_std(&ref), diff = max_abs_diff(&eng, &ref);
    print_message("%-24s logit std %.4f  max |engine - reference| %.3g (%.4f std)  tokens", what,
                  std, diff, diff / std);
    for (int i = 0; i <= N_STEPS; i++) {
        print_message(" %d", (int)eng.tokens[i]);
    }
    print_message("\n");
    if (std < MIN_LOGIT_STD) {
        fail_msg("%s: logits too flat to compare (std %.4f)", what, std);
    }
    for (int i = 0; i <= N_STEPS; i++) {
        if (eng.tokens[i] != ref.tokens[i]) {
            fail_msg("%s: greedy token %d is %d in the engine, %d in the reference", what, i,
                     (int)eng.tokens[i], (int)ref.tokens[i]);
        }
    }
    if (diff > TOLERANCE * std) {
        fail_msg("%s: logits differ by %.3g, more than %.3g", what, diff, TOLERANCE * std);
    }
    trace_free(&eng);
    trace_free(&ref);
}

/* The generator's model as it is, then with sharper weights. */
static void check_shape(const char *shape, const char *type) {
    char path[512], what[64];
    model_path(path, sizeof path, shape, type);
    generate(shape, type, path);
    snprintf(what, sizeof what, "%s %s", shape, type);
    check_agree(what, path, random_prompt);
    sharpen(path, SHARPEN);
    snprintf(what, sizeof what, "%s %s x%g", shape, type, (double)SHARPEN);
    check_agree(what, path, random_prompt);
    remove(path);
}

static void test_tiny_llama_f32(void **state) {
    (void)state;
    check_shape("tiny-llama", "F32");
}

static void test_tiny_llama_f16(void **state) {
    (void)state;
    check_shape("tiny-llama", "F16");
}

static void test_tiny_llama3_f32(void **state) {
    (void)state;
    check_shape("tiny-llama3", "F32");
}

static void test_tiny_qwen2_f32(void **state) {
    (void)state;
    check_shape("tiny-qwen2", "F32");
}

static void test_tiny_qwen3_f32(void **state) {
    (void)state;
    check_shape("tiny-qwen3", "F32");
}

/* A trained model checks the reference itself: it must continue "Once upon a time, there"
 * exactly as the published greedy output does, and agree with the engine. */
static void test_stories260k(void **state) {
    (void)state;
    static const int32_t prompt[N_PROMPT] = {1, 403, 407, 261, 378, 432, 383};
    static const int32_t known[N_STEPS + 1] = {286, 261, 376, 298, 315, 421};
    trace ref;
    ref_variant correct = {0};
    reference_trace(STORIES, &correct, prompt, &ref);
    for (int i = 0; i <= N_STEPS; i++) {
        if (ref.tokens[i] != known[i]) {
            fail_msg("reference token %d is %d, the known output has %d", i, (int)ref.tokens[i],
                     (int)known[i]);
        }
    }
    trace_free(&ref);
    check_agree("stories260K F32", STORIES, prompt);
}

/* ---- split invariance ---- */

/* The engine quantizes activations to Q8_0 for Q8_0 weights, which the reference (weights
 * dequantized, activations exact) does not: about 0.07 of the logits' spread here. The
 * looser bound still catches a wrong convention (0.8 and more). */
#define Q8_TOLERANCE 0.15

static void check_close_to_reference(const char *shape, const char *path, const trace *eng) {
    trace ref;
    ref_variant correct = {0};
    reference_trace(path, &correct, random_prompt, &ref);
    double std = logit_std(&ref), diff = max_abs_diff(eng, &ref);
    print_message("%-12s Q8_0 x%-6g logit std %.4f  max |engine - reference| %.3g (%.4f std)\n",
                  shape, (double)SHARPEN, std, diff, diff / std);
    if (!same_tokens(eng, &ref) || diff > Q8_TOLERANCE * std) {
        fail_msg("%s Q8_0: the engine is %.3g away from the reference", shape, diff);
    }
    trace_free(&ref);
}

static void check_split_invariance(const char *shape) {
    char path[512];
    model_path(path, sizeof path, shape, "Q8_0");
    generate(shape, "Q8_0", path);
    sharpen(path, SHARPEN);
    trace whole;
    engine_trace(path, NULL, 0, random_prompt, &whole);
    check_close_to_reference(shape, path, &whole);
    int n_layer = -1;
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(gm_shapes); i++) {
        n_layer = strcmp(gm_shapes[i].name, shape) == 0 ? gm_shapes[i].n_layer : n_layer;
    }
    assert_true(n_layer > 1);
    for (int cut = 1; cut < n_layer; cut++) {
        trace split;
        engine_trace(path, &cut, 1, random_prompt, &split);
        if (memcmp(whole.logits, split.logits,
                   (size_t)N_ROWS * (size_t)whole.n_vocab * sizeof(float)) != 0 ||
            !same_tokens(&whole, &split)) {
            fail_msg("%s Q8_0 cut at layer %d: logits differ from the unsplit model by up to "
                     "%.3g",
                     shape, cut, max_abs_diff(&whole, &split));
        }
        trace_free(&split);
    }
    trace_free(&whole);
    remove(path);
}

static void test_split_invariance_qwen2(void **state) {
    (void)state;
    check_split_invariance("tiny-qwen2");
}

static void test_split_invariance_qwen3(void **state) {
    (void)state;
    check_split_invariance("tiny-qwen3");
}

static void test_split_invariance_llama3(void **state) {
    (void)state;
    check_split_invariance("tiny-llama3");
}

/* ---- the comparison has teeth ---- */

typedef struct wrong_case {
    const char *what;
    ref_variant variant;
} wrong_case;

/* Each wrong convention, alone, puts the reference outside the tolerance. */
static void check_wrong_variants(const char *shape, const wrong_case *cases, size_t n) {
    char path[512];
    model_path(path, sizeof path, shape, "F32");
    generate(shape, "F32", path);
    sharpen(path, SHARPEN);
    trace eng;
    engine_trace(path, NULL, 0, random_prompt, &eng);
    for (size_t i = 0; i < n; i++) {
        trace bad;
        reference_trace(path, &cases[i].variant, random_prompt, &bad);
        double std = logit_std(&bad), diff = max_abs_diff(&eng, &bad);
        print_message("%-12s %-28s max |engine - wrong reference| %.3g (%.4f std)\n", shape,
                      cases[i].what, diff, diff / std);
        if (diff <= TOLERANCE * std) {
            fail_msg("%s: the reference with %s still matches the engine (diff %.3g)", shape,
                     cases[i].what, diff);
        }
        trace_free(&bad);
    }
    trace_free(&eng);
    remove(path);
}

static void test_wrong_llama(void **state) {
    (void)state;
    const wrong_case cases[] = {
        {"first/second-half rope", {.rope = REF_ROPE_HALVES}},
        {"kv head h mod n_head_kv", {.interleaved_gqa = true}},
    };
    check_wrong_variants("tiny-llama", cases, CAIRN_ARRAY_LEN(cases));
}

static void test_wrong_llama3(void **state) {
    (void)state;
    const wrong_case cases[] = {
        {"first/second-half rope", {.rope = REF_ROPE_HALVES}},
        {"no rope freq factors", {.ignore_freq_factors = true}},
        {"freq times factor", {.multiply_freq_factors = true}},
        {"kv head h mod n_head_kv", {.interleaved_gqa = true}},
    };
    check_wrong_variants("tiny-llama3", cases, CAIRN_ARRAY_LEN(cases));
}

static void test_wrong_qwen2(void **state) {
    (void)state;
    const wrong_case cases[] = {
        {"adjacent-pair rope", {.rope = REF_ROPE_ADJACENT}},
        {"kv head h mod n_head_kv", {.interleaved_gqa = true}},
    };
    check_wrong_variants("tiny-qwen2", cases, CAIRN_ARRAY_LEN(cases));
}

static void test_wrong_qwen3(void **state) {
    (void)state;
    const wrong_case cases[] = {
        {"adjacent-pair rope", {.rope = REF_ROPE_ADJACENT}},
        {"no q/k norms", {.skip_qk_norm = true}},
        {"kv head h mod n_head_kv", {.interleaved_gqa = true}},
    };
    check_wrong_variants("tiny-qwen3", cases, CAIRN_ARRAY_LEN(cases));
}

int main(void) {
    (void)gm_main; /* the generator's command line is tested by test_genmodel */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_llama_f32),
        cmocka_unit_test(test_tiny_llama_f16),
        cmocka_unit_test(test_tiny_llama3_f32),
        cmocka_unit_test(test_tiny_qwen2_f32),
        cmocka_unit_test(test_tiny_qwen3_f32),
        cmocka_unit_test(test_stories260k),
        cmocka_unit_test(test_split_invariance_qwen2),
        cmocka_unit_test(test_split_invariance_qwen3),
        cmocka_unit_test(test_split_invariance_llama3),
        cmocka_unit_test(test_wrong_llama),
        cmocka_unit_test(test_wrong_llama3),
        cmocka_unit_test(test_wrong_qwen2),
        cmocka_unit_test(test_wrong_qwen3),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
