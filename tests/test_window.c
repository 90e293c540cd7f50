/* Sliding-window layers keep a ring of their window's cells instead of the whole context.
 * On a gemma3-shaped model (every generated layer a window layer) the ring must give what
 * the whole-context cache gives, past the point where positions wrap, with steps that wrap
 * inside themselves; truncation must keep only what the ring still holds. */
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

#define MODEL CAIRN_BINARY_DIR "/test_window_gemma3.gguf"
#define N_VOCAB 4096
#define N_TOKENS 600 /* past gemma3's window of 512 */
#define N_CTX 640
#define N_BATCH 6 /* so that some steps wrap inside the ring */
#define RING_CELLS (512 + N_BATCH - 1)

static int32_t tokens[N_TOKENS];

static int setup(void **state) {
    (void)state;
    (void)gm_main; /* the tool's entry point, not used by the test */
    gm_options opt = {.shape = "gemma3-1b",
                      .type = "F32",
                      .out_path = MODEL,
                      .n_layers = 2,
                      .n_vocab = N_VOCAB,
                      .seed = 7,
                      .weight_std = 0.02f};
    gm_stats stats;
    cairn_err err = {{0}};
    if (gm_generate(&opt, &stats, &err) != 0) {
        fprintf(stderr, "generating the model: %s\n", err.msg);
        return -1;
    }
    uint32_t x = 12345;
    for (int i = 0; i < N_TOKENS; i++) {
        x = x * 1664525u + 1013904223u;
        tokens[i] = (int32_t)(x >> 20) % N_VOCAB;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    remove(MODEL);
    return 0;
}

static cairn_pipeline *load(bool swa_full) {
    cairn_shard_config cfg = {0};
    cfg.model_path = MODEL;
    cfg.last_layer = -1;
    cfg.n_ctx = N_CTX;
    cfg.n_threads = 2;
    cfg.n_batch = N_BATCH;
    cfg.swa_full = swa_full;
    cfg.kv_f32 = true; /* F16 would round sums in an order the cells' order decides */
    cairn_pipeline *p = NULL;
    cairn_err err = {{0}};
    if (cairn_pipeline_load_ggml(&cfg, NULL, 0, &p, &err) != 0) {
        fail_msg("loading: %s", err.msg);
    }
    return p;
}

static float *all_logits(cairn_pipeline *p, int from, int n) {
    float *out = malloc((size_t)n * N_VOCAB * sizeof(float));
    assert_non_null(out);
    cairn_err err = {{0}};
    if (cairn_pipeline_forward(p, 0, tokens + from, n, true, out, &err) != 0) {
        fail_msg("forward: %s", err.msg);
    }
    return out;
}

/* The cells hold the same keys in another order, so sums differ in rounding only (an F32
 * model and cache: no activation quantization turns rounding into steps), far below what
 * one lost or misplaced key changes. Returns the largest difference over the rows,
 * relative to the largest logit. */
static double relative_diff(const float *a, const float *b, int rows) {
    double diff = 0.0, scale = 0.0;
    for (size_t i = 0; i < (size_t)rows * N_VOCAB; i++) {
        diff = fmax(diff, fabs((double)a[i] - (double)b[i]));
        scale = fmax(scale, fabs((double)a[i]));
    }
    return diff / scale;
}

/* Measured: 3e-5 when right; 1e-2 with a ring one cell short, 7e-2 with misplaced writes. */
#define RING_TOLERANCE 1e-3

static void test_ring_matches_whole_context(void **state) {
    (void)state;
    cairn_pipeline *full = load(true), *ring = load(false);
    float *want = all_logits(full, 0, N_TOKENS);
    float *got = all_logits(ring, 0, N_TOKENS);
    double before_wrap = relative_diff(want, got, RING_CELLS);
    double after_wrap = relative_diff(want + (size_t)RING_CELLS * N_VOCAB,
                                      got + (size_t)RING_CELLS * N_VOCAB, N_TOKENS - RING_CELLS);
    printf("relative difference: %.3g before the ring wraps, %.3g after\n", before_wrap,
           after_wrap);
    assert_true(before_wrap == 0.0);
    assert_true(after_wrap < RING_TOLERANCE);
    free(want);
    free(got);
    cairn_pipeline_free(full);
    cairn_pipeline_free(ring);
}

static void test_truncate_keeps_only_what_the_ring_holds(void **state) {
    (void)state;
    cairn_pipeline *full = load(true), *ring = load(false);
    float *want = all_logits(full, 0, N_TOKENS);
    free(all_logits(ring, 0, N_TOKENS));
    cairn_err err = {{0}};
    /* The last position's window reaches back 511 positions: all still in the ring. */
    assert_int_equal(cairn_pipeline_seq_truncate(ring, 0, N_TOKENS - 1, &err), 0);
    assert_int_equal(cairn_pipeline_seq_len(ring, 0), N_TOKENS - 1);
    float *again = all_logits(ring, N_TOKENS - 1, 1);
    assert_true(relative_diff(want + (size_t)(N_TOKENS - 1) * N_VOCAB, again, 1) < RING_TOLERANCE);
    free(again);
    /* Position 100's window needs position 0 on, overwritten long ago: nothing is kept. */
    assert_int_equal(cairn_pipeline_seq_truncate(ring, 0, 100, &err), 0);
    assert_int_equal(cairn_pipeline_seq_len(ring, 0), 0);
    /* The whole-context cache keeps any prefix. */
    assert_int_equal(cairn_pipeline_seq_truncate(full, 0, 100, &err), 0);
    assert_int_equal(cairn_pipeline_seq_len(full, 0), 100);
    free(want);
    cairn_pipeline_free(full);
    cairn_pipeline_free(ring);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_matches_whole_context),
        cmocka_unit_test(test_truncate_keeps_only_what_the_ring_holds),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
