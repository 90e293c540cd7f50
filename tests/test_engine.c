/* Engine tests on the real stories260K model: known greedy output and logits, split
 * invariance (bit for bit), independent sequences, truncation and the context limit. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/engine.h"

#define MODEL_F32 CAIRN_SHARED_DIR "/models/stories260K.gguf"
#define MODEL_Q8 CAIRN_SHARED_DIR "/models/stories260K-q8_0.gguf"
#define MODEL_Q4 CAIRN_SHARED_DIR "/models/stories260K-q4_0.gguf"
#define MODEL_TINY_F16 CAIRN_SHARED_DIR "/models/llama-2-tiny-random.gguf"
#define N_VOCAB 512
#define N_LAYER 5

/* From ../shared/models/README.md: greedy from BOS, 60 tokens. */
static const int32_t greedy_from_bos[60] = {
    403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426,
    338, 401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433,
    426, 385, 328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 426, 338,
    391, 266, 267, 337, 335, 312, 432, 398, 312, 286, 267, 414, 270, 333, 415};

static cairn_shard_config config_for(const char *path) {
    cairn_shard_config cfg = {0};
    cfg.model_path = path;
    cfg.last_layer = -1;
    cfg.n_ctx = 256;
    cfg.n_seq = 2;
    cfg.n_threads = 1;
    return cfg;
}

static cairn_pipeline *load_split(const char *path, const int *cuts, int n_cuts) {
    cairn_shard_config cfg = config_for(path);
    cairn_pipeline *p = NULL;
    cairn_err err = {{0}};
    if (cairn_pipeline_load_ggml(&cfg, cuts, n_cuts, &p, &err) != 0) {
        fail_msg("loading %s: %s", path, err.msg);
    }
    return p;
}

static int32_t argmax(const float *logits, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++) {
        if (logits[i] > logits[best]) {
            best = i;
        }
    }
    return best;
}

static void forward_ok(cairn_pipeline *p, int seq, const int32_t *tokens, int n, float *out) {
    cairn_err err = {{0}};
    if (cairn_pipeline_forward(p, seq, tokens, n, false, out, &err) != 0) {
        fail_msg("forward: %s", err.msg);
    }
}

/* Greedy decoding from BOS; returns the 60 generated ids. */
static void greedy_run(cairn_pipeline *p, int seq, int32_t *ids, int n) {
    float logits[N_VOCAB];
    int32_t token = 1;
    for (int i = 0; i < n; i++) {
        forward_ok(p, seq, &token, 1, logits);
        token = argmax(logits, N_VOCAB);
        ids[i] = token;
    }
}

static void check_greedy(const char *path) {
    cairn_pipeline *p = load_split(path, NULL, 0);
    int32_t ids[60];
    greedy_run(p, 0, ids, 60);
    for (int i = 0; i < 60; i++) {
        if (ids[i] != greedy_from_bos[i]) {
            fail_msg("%s: token %d is %d, expected %d", path, i, (int)ids[i],
                     (int)greedy_from_bos[i]);
        }
    }
    cairn_pipeline_free(p);
}

static void test_greedy_f32(void **state) {
    (void)state;
    check_greedy(MODEL_F32);
}

static void test_greedy_q8(void **state) {
    (void)state;
    check_greedy(MODEL_Q8);
}

static void test_logits_after_bos(void **state) {
    (void)state;
    static const float expected[8] = {-6.22291f, 8.40434f,  -6.22374f, -6.22254f,
                                      -6.22195f, -6.22288f, -6.22188f, -6.22342f};
    cairn_pipeline *p = load_split(MODEL_F32, NULL, 0);
    float logits[N_VOCAB];
    int32_t bos = 1;
    forward_ok(p, 0, &bos, 1, logits);
    for (int i = 0; i < 8; i++) {
        if (fabsf(logits[i] - expected[i]) > 1e-3f) {
            fail_msg("logit %d after BOS is %f, expected %f", i, logits[i], expected[i]);
        }
    }
    cairn_pipeline_free(p);
}

static void test_top5_after_prompt(void **state) {
    (void)state;
    static const int32_t prompt[5] = {1, 403, 407, 261, 378}; /* BOS "Once upon a time" */
    static const int32_t top_ids[5] = {432, 383, 322, 353, 323};
    static const float top_logits[5] = {17.798f, 14.282f, 9.710f, 9.586f, 9.138f};
    cairn_pipeline *p = load_split(MODEL_F32, NULL, 0);
    float logits[N_VOCAB];
    forward_ok(p, 0, prompt, 5, logits);
    for (int k = 0; k < 5; k++) {
        int32_t best = argmax(logits, N_VOCAB);
        if (best != top_ids[k] || fabsf(logits[best] - top_logits[k]) > 5e-3f) {
            fail_msg("rank %d: token %d (%.3f), expected %d (%.3f)", k, (int)best, logits[best],
                     (int)top_ids[k], top_logits[k]);
        }
        logits[best] = -INFINITY;
    }
    cairn_pipeline_free(p);
}

/* Runs a prompt through the pipeline and then greedy steps, recording every logit. */
#define SPLIT_PROMPT 12
#define SPLIT_STEPS 10
static void run_trace(cairn_pipeline *p, float *trace) {
    static const int32_t prompt[SPLIT_PROMPT] = {1,   403, 407, 261, 378, 432,
                                                 383, 286, 261, 376, 298, 315};
    float *row = trace;
    forward_ok(p, 0, prompt, SPLIT_PROMPT, row);
    for (int i = 0; i < SPLIT_STEPS; i++) {
        int32_t next = argmax(row, N_VOCAB);
        row += N_VOCAB;
        forward_ok(p, 0, &next, 1, row);
    }
}

static void check_split_invariance(const char *path) {
    size_t trace_len = (size_t)(SPLIT_STEPS + 1) * N_VOCAB;
    float *whole = malloc(trace_len * sizeof(float));
    float *split = malloc(trace_len * sizeof(float));
    assert_non_null(whole);
    assert_non_null(split);
    cairn_pipeline *p = load_split(path, NULL, 0);
    run_trace(p, whole);
    cairn_pipeline_free(p);
    int checked = 0;
    for (int a = 1; a < N_LAYER; a++) {
        int cuts2[1] = {a};
        p = load_split(path, cuts2, 1);
        run_trace(p, split);
        cairn_pipeline_free(p);
        if (memcmp(whole, split, trace_len * sizeof(float)) != 0) {
            fail_msg("%s split at %d differs from the whole model", path, a);
        }
        checked++;
        for (int b = a + 1; b < N_LAYER; b++) {
            int cuts3[2] = {a, b};
            p = load_split(path, cuts3, 2);
            run_trace(p, split);
            cairn_pipeline_free(p);
            if (memcmp(whole, split, trace_len * sizeof(float)) != 0) {
                fail_msg("%s split at %d and %d differs from the whole model", path, a, b);
            }
            checked++;
        }
    }
    assert_int_equal(checked, 4 + 6); /* every cut into 2 and into 3 non-empty shards */
    free(whole);
    free(split);
}

static void test_split_invariance_f32(void **state) {
    (void)state;
    check_split_invariance(MODEL_F32);
}

static void test_split_invariance_q8(void **state) {
    (void)state;
    check_split_invariance(MODEL_Q8);
}

/* Q4_0 weights are stored in the CPU's repacked layout: splitting must not change that. */
static void test_split_invariance_q4(void **state) {
    (void)state;
    check_split_invariance(MODEL_Q4);
}

/* Two sequences advanced in alternation give what each gives alone. */
static void test_sequences_independent(void **state) {
    (void)state;
    cairn_pipeline *p = load_split(MODEL_F32, NULL, 0);
    int32_t alone[20], mixed_a[20], mixed_b[20];
    greedy_run(p, 0, alone, 20);
    cairn_pipeline_seq_truncate(p, 0, 0, NULL);

    float la[N_VOCAB], lb[N_VOCAB];
    int32_t ta = 1, tb_prompt[3] = {1, 403, 407}, tb;
    forward_ok(p, 1, tb_prompt, 3, lb);
    tb = argmax(lb, N_VOCAB);
    for (int i = 0; i < 20; i++) {
        forward_ok(p, 0, &ta, 1, la);
        ta = mixed_a[i] = argmax(la, N_VOCAB);
        forward_ok(p, 1, &tb, 1, lb);
        tb = mixed_b[i] = argmax(lb, N_VOCAB);
    }
    assert_memory_equal(alone, mixed_a, sizeof(alone));
    assert_int_equal(cairn_pipeline_seq_len(p, 0), 20);
    assert_int_equal(cairn_pipeline_seq_len(p, 1), 23);
    (void)mixed_b;
    cairn_pipeline_free(p);
}

/* Truncating a sequence and feeding the same tokens again reproduces the logits. */
static void test_truncate_and_replay(void **state) {
    (void)state;
    cairn_pipeline *p = load_split(MODEL_Q8, (int[]){2}, 1);
    static const int32_t prompt[6] = {1, 403, 407, 261, 378, 432};
    float first[N_VOCAB], again[N_VOCAB];
    forward_ok(p, 0, prompt, 6, first);
    cairn_err err = {{0}};
    assert_int_equal(cairn_pipeline_seq_truncate(p, 0, 3, &err), 0);
    assert_int_equal(cairn_pipeline_seq_len(p, 0), 3);
    forward_ok(p, 0, prompt + 3, 3, again);
    assert_memory_equal(first, again, sizeof(first));
    cairn_pipeline_free(p);
}

/* Prefill in small chunks computes exactly what prefill in one step computes. */
static void test_chunked_prefill(void **state) {
    (void)state;
    static const int32_t prompt[9] = {1, 403, 407, 261, 378, 432, 383, 286, 261};
    cairn_shard_config cfg = config_for(MODEL_F32);
    cfg.n_batch = 2;
    cairn_pipeline *chunked = NULL;
    cairn_err err = {{0}};
    assert_int_equal(cairn_pipeline_load_ggml(&cfg, NULL, 0, &chunked, &err), 0);
    cairn_pipeline *whole = load_split(MODEL_F32, NULL, 0);
    float a[N_VOCAB], b[N_VOCAB];
    forward_ok(chunked, 0, prompt, 9, a);
    forward_ok(whole, 0, prompt, 9, b);
    assert_memory_equal(a, b, sizeof a);
    cairn_pipeline_free(chunked);
    cairn_pipeline_free(whole);
}

static void test_context_limit(void **state) {
    (void)state;
    cairn_shard_config cfg = config_for(MODEL_F32);
    cfg.n_ctx = 8;
    cairn_pipeline *p = NULL;
    cairn_err err = {{0}};
    assert_int_equal(cairn_pipeline_load_ggml(&cfg, (int[]){3}, 1, &p, &err), 0);
    int32_t tokens[9] = {1, 403, 407, 261, 378, 432, 383, 286, 261};
    float logits[N_VOCAB];
    assert_int_equal(cairn_pipeline_forward(p, 0, tokens, 6, false, logits, &err), 0);
    assert_int_equal(cairn_pipeline_forward(p, 0, tokens, 3, false, logits, &err), -1);
    assert_non_null(strstr(err.msg, "context"));
    /* A failed step leaves the sequence as it was. */
    assert_int_equal(cairn_pipeline_seq_len(p, 0), 6);
    assert_int_equal(cairn_pipeline_forward(p, 0, tokens, 2, false, logits, &err), 0);
    cairn_pipeline_free(p);
}

static void test_bad_inputs(void **state) {
    (void)state;
    cairn_pipeline *p = load_split(MODEL_F32, NULL, 0);
    cairn_err err = {{0}};
    float logits[N_VOCAB];
    int32_t bad = N_VOCAB;
    assert_int_equal(cairn_pipeline_forward(p, 0, &bad, 1, false, logits, &err), -1);
    assert_non_null(strstr(err.msg, "vocabulary"));
    int32_t ok = 1;
    assert_int_equal(cairn_pipeline_forward(p, 7, &ok, 1, false, logits, &err), -1);
    assert_non_null(strstr(err.msg, "sequence"));
    cairn_pipeline_free(p);

    cairn_shard_config cfg = config_for(MODEL_F32);
    cairn_shard *s = NULL;
    cfg.first_layer = 3;
    cfg.last_layer = 9;
    assert_int_equal(cairn_shard_load_ggml(&cfg, &s, &err), -1);
    assert_non_null(strstr(err.msg, "layer range"));
    cfg.first_layer = 2;
    cfg.last_layer = 2;
    assert_int_equal(cairn_shard_load_ggml(&cfg, &s, &err), -1);
    assert_non_null(strstr(err.msg, "non-empty"));
    cfg.model_path = CAIRN_SHARED_DIR "/models/does-not-exist.gguf";
    cfg.first_layer = 0;
    cfg.last_layer = -1;
    assert_int_equal(cairn_shard_load_ggml(&cfg, &s, &err), -1);
    assert_null(s);
}

/* A shard holds only its own weights: the middle of a 3-way split is smaller than the model. */
static void test_shard_weight_bytes(void **state) {
    (void)state;
    cairn_shard_config cfg = config_for(MODEL_F32);
    cairn_shard *whole = NULL, *middle = NULL;
    cairn_err err = {{0}};
    assert_int_equal(cairn_shard_load_ggml(&cfg, &whole, &err), 0);
    cfg.first_layer = 2;
    cfg.last_layer = 3;
    assert_int_equal(cairn_shard_load_ggml(&cfg, &middle, &err), 0);
    assert_false(middle->info.is_first);
    assert_false(middle->info.is_last);
    assert_true(middle->info.weight_bytes * 4 < whole->info.weight_bytes);
    cairn_shard_free(whole);
    cairn_shard_free(middle);
}

/* Nodes of a cluster run with different thread counts: results must not depend on them. */
static void test_thread_count_invariance(void **state) {
    (void)state;
    size_t trace_len = (size_t)(SPLIT_STEPS + 1) * N_VOCAB;
    float *one = malloc(trace_len * sizeof(float)), *two = malloc(trace_len * sizeof(float));
    assert_non_null(one);
    assert_non_null(two);
    const char *paths[3] = {MODEL_F32, MODEL_Q8, MODEL_Q4};
    for (int m = 0; m < 3; m++) {
        cairn_shard_config cfg = config_for(paths[m]);
        cairn_pipeline *p = NULL;
        cairn_err err = {{0}};
        assert_int_equal(cairn_pipeline_load_ggml(&cfg, NULL, 0, &p, &err), 0);
        run_trace(p, one);
        cairn_pipeline_free(p);
        cfg.n_threads = 3;
        assert_int_equal(cairn_pipeline_load_ggml(&cfg, (int[]){2}, 1, &p, &err), 0);
        run_trace(p, two);
        cairn_pipeline_free(p);
        assert_memory_equal(one, two, trace_len * sizeof(float));
    }
    free(one);
    free(two);
}

/* A stream resumed on another placement recomputes the tokens it already sent in one
 * prefill (chunked at the batch size), on other threads: the logits that follow must be
 * the uninterrupted run's, bit for bit, at every point it may resume from, including past
 * 64 tokens in a step and 512 cached positions, where ggml has kernels of its own. */
#define RESUME_STEPS 640
#define RESUME_CTX 1024

static void decode_trace(cairn_pipeline *p, const int32_t *prompt, int n_prompt, int32_t *ids,
                         float *trace) {
    forward_ok(p, 0, prompt, n_prompt, trace);
    for (int i = 0; i < RESUME_STEPS; i++) {
        ids[i] = argmax(trace + (size_t)i * N_VOCAB, N_VOCAB);
        forward_ok(p, 0, &ids[i], 1, trace + (size_t)(i + 1) * N_VOCAB);
    }
}

static void check_resume_exact(const char *path) {
    static const int32_t prompt[5] = {1, 403, 407, 261, 378};
    int32_t *all = malloc((5 + RESUME_STEPS) * sizeof *all);
    float *trace = malloc((size_t)(RESUME_STEPS + 1) * N_VOCAB * sizeof *trace);
    float resumed[N_VOCAB];
    assert_non_null(all);
    assert_non_null(trace);
    cairn_shard_config cfg = config_for(path);
    cfg.n_ctx = RESUME_CTX;
    cairn_pipeline *p = NULL;
    cairn_err err = {{0}};
    assert_int_equal(cairn_pipeline_load_ggml(&cfg, NULL, 0, &p, &err), 0);
    memcpy(all, prompt, sizeof prompt);
    decode_trace(p, prompt, 5, all + 5, trace);
    cairn_pipeline_free(p);

    cfg.n_threads = 2;
    cfg.n_batch = 300;
    assert_int_equal(cairn_pipeline_load_ggml(&cfg, (int[]){2}, 1, &p, &err), 0);
    int differ = 0, first = -1;
    for (int k = 1; k <= RESUME_STEPS; k += 13) {
        assert_int_equal(cairn_pipeline_seq_truncate(p, 1, 0, &err), 0);
        forward_ok(p, 1, all, 5 + k, resumed);
        if (memcmp(resumed, trace + (size_t)k * N_VOCAB, sizeof resumed) != 0) {
            differ++;
            first = first < 0 ? k : first;
        }
    }
    cairn_pipeline_free(p);
    free(all);
    free(trace);
    if (differ) {
        fail_msg("%s: logits after %d of the resume points differ (first after %d tokens)", path,
                 differ, first);
    }
}

static void test_resume_exact(void **state) {
    (void)state;
    check_resume_exact(MODEL_F32);
    check_resume_exact(MODEL_Q8);
    check_resume_exact(MODEL_Q4);
}

/* Weights used in place in the mapping compute exactly what copied weights compute. */
static void test_mmap_mode_same_results(void **state) {
    (void)state;
    size_t trace_len = (size_t)(SPLIT_STEPS + 1) * N_VOCAB;
    float *copied = malloc(trace_len * sizeof(float)), *mapped = malloc(trace_len * sizeof(float));
    assert_non_null(copied);
    assert_non_null(mapped);
    cairn_shard_config cfg = config_for(MODEL_Q8);
    cairn_pipeline *p = NULL;
    cairn_err err = {{0}};
    assert_int_equal(cairn_pipeline_load_ggml(&cfg, NULL, 0, &p, &err), 0);
    run_trace(p, copied);
    cairn_pipeline_free(p);
    cfg.use_mmap = true;
    assert_int_equal(cairn_pipeline_load_ggml(&cfg, (int[]){3}, 1, &p, &err), 0);
    run_trace(p, mapped);
    cairn_pipeline_free(p);
    assert_memory_equal(copied, mapped, trace_len * sizeof(float));
    free(copied);
    free(mapped);
}

static void test_f16_and_q4_models_run(void **state) {
    (void)state;
    const char *paths[2] = {MODEL_TINY_F16, MODEL_Q4};
    for (int m = 0; m < 2; m++) {
        cairn_pipeline *p = load_split(paths[m], NULL, 0);
        int n_vocab = cairn_pipeline_info(p)->n_vocab;
        float *logits = malloc((size_t)n_vocab * sizeof(float));
        int32_t tokens[4] = {1, 10, 20, 30};
        forward_ok(p, 0, tokens, 4, logits);
        for (int i = 0; i < n_vocab; i++) {
            assert_true(isfinite(logits[i]));
        }
        free(logits);
        cairn_pipeline_free(p);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_f32),
        cmocka_unit_test(test_greedy_q8),
        cmocka_unit_test(test_logits_after_bos),
        cmocka_unit_test(test_top5_after_prompt),
        cmocka_unit_test(test_split_invariance_f32),
        cmocka_unit_test(test_split_invariance_q8),
        cmocka_unit_test(test_split_invariance_q4),
        cmocka_unit_test(test_sequences_independent),
        cmocka_unit_test(test_truncate_and_replay),
        cmocka_unit_test(test_chunked_prefill),
        cmocka_unit_test(test_context_limit),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_shard_weight_bytes),
        cmocka_unit_test(test_thread_count_invariance),
        cmocka_unit_test(test_resume_exact),
        cmocka_unit_test(test_mmap_mode_same_results),
        cmocka_unit_test(test_f16_and_q4_models_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
