/* Tests of the sampler, log-probabilities and stop strings. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sampling/sampling.h"

/* ---- helpers ---- */

static cairn_sampler *make_sampler(const cairn_sampling_params *p, int n_vocab) {
    cairn_sampler *s = NULL;
    cairn_err err = {{0}};
    int rc = cairn_sampler_new(p, n_vocab, &s, &err);
    if (rc != 0) {
        print_error("sampler_new: %s\n", err.msg);
    }
    assert_int_equal(rc, 0);
    assert_non_null(s);
    return s;
}

/* Plain sampling with every filter off, so tests switch on exactly one. */
static cairn_sampling_params plain(float temperature, uint64_t seed) {
    cairn_sampling_params p;
    cairn_sampling_defaults(&p);
    p.temperature = temperature;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = seed;
    return p;
}

/* Logits whose softmax at temperature 1 is exactly the given probabilities. */
static void logits_from_probs(const double *probs, int n, float *logits) {
    for (int i = 0; i < n; i++) {
        logits[i] = probs[i] > 0 ? (float)log(probs[i]) : -INFINITY;
    }
}

static void count_draws(cairn_sampler *s, const float *logits, int n_vocab, int draws,
                        int *counts) {
    memset(counts, 0, sizeof(int) * (size_t)n_vocab);
    for (int i = 0; i < draws; i++) {
        int32_t t = cairn_sampler_sample(s, logits);
        assert_true(t >= 0 && t < n_vocab);
        counts[t]++;
    }
}

static void fill_pseudo_random(float *logits, int n, uint32_t seed) {
    uint32_t x = seed * 2654435761u + 1u;
    for (int i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        logits[i] = (float)(x >> 8) / (float)(1u << 24) * 10.0f - 5.0f;
    }
}

/* ---- greedy and its equivalents ---- */

static void test_greedy_is_argmax(void **state) {
    (void)state;
    float logits[8] = {0.1f, 2.0f, -1.0f, 3.5f, 3.4f, 0.0f, -7.0f, 1.0f};
    cairn_sampling_params p = plain(0.0f, 1);
    cairn_sampler *s = make_sampler(&p, 8);
    assert_int_equal(cairn_sampler_sample(s, logits), 3);
    p.temperature = -1.0f;
    cairn_sampler *neg = make_sampler(&p, 8);
    assert_int_equal(cairn_sampler_sample(neg, logits), 3);
    float ties[8] = {1.0f, 5.0f, 5.0f, 5.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    assert_int_equal(cairn_sampler_sample(s, ties), 1);
    float nan_first[8] = {NAN, 0.5f, 0.25f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    assert_int_equal(cairn_sampler_sample(s, nan_first), 1);
    cairn_sampler_free(s);
    cairn_sampler_free(neg);
}

static void test_logits_not_modified(void **state) {
    (void)state;
    enum { N = 500 };
    float logits[N], copy[N];
    fill_pseudo_random(logits, N, 7);
    memcpy(copy, logits, sizeof(logits));
    cairn_sampling_params p;
    cairn_sampling_defaults(&p);
    p.repeat_penalty = 1.3f;
    p.frequency_penalty = 0.5f;
    p.presence_penalty = 0.5f;
    cairn_sampler *s = make_sampler(&p, N);
    for (int i = 0; i < 20; i++) {
        cairn_sampler_accept(s, cairn_sampler_sample(s, logits));
    }
    assert_memory_equal(logits, copy, sizeof(logits));
    cairn_sampler_free(s);
}

static void test_tiny_temperature_is_greedy(void **state) {
    (void)state;
    enum { N = 1000 };
    float logits[N];
    for (int round = 0; round < 20; round++) {
        fill_pseudo_random(logits, N, (uint32_t)round);
        cairn_sampling_params greedy = plain(0.0f, 3);
        cairn_sampling_params cold = plain(1e-6f, (uint64_t)round);
        cairn_sampler *g = make_sampler(&greedy, N);
        cairn_sampler *c = make_sampler(&cold, N);
        int32_t want = cairn_sampler_sample(g, logits);
        for (int i = 0; i < 10; i++) {
            assert_int_equal(cairn_sampler_sample(c, logits), want);
        }
        cairn_sampler_free(g);
        cairn_sampler_free(c);
    }
}

static void test_extreme_logits(void **state) {
    (void)state;
    /* A temperature so small that logit / temperature overflows, and infinite logits. */
    float logits[4] = {10.0f, 30.0f, 20.0f, -INFINITY};
    cairn_sampling_params p = plain(1e-38f, 2);
    cairn_sampler *s = make_sampler(&p, 4);
    assert_int_equal(cairn_sampler_sample(s, logits), 1);
    float inf[4] = {INFINITY, 0.0f, INFINITY, NAN};
    for (int i = 0; i < 50; i++) {
        int32_t t = cairn_sampler_sample(s, inf);
        assert_true(t == 0 || t == 2);
    }
    float none[4] = {-INFINITY, -INFINITY, NAN, -INFINITY};
    assert_int_equal(cairn_sampler_sample(s, none), 0);
    cairn_sampler_free(s);
}

static void test_top_k_one_is_greedy(void **state) {
    (void)state;
    enum { N = 5000 };
    float logits[N];
    cairn_sampling_params p = plain(1.5f, 99);
    p.top_k = 1;
    cairn_sampler *s = make_sampler(&p, N);
    for (int round = 0; round < 20; round++) {
        fill_pseudo_random(logits, N, (uint32_t)round + 100);
        int32_t best = 0;
        for (int i = 1; i < N; i++) {
            if (logits[i] > logits[best]) {
                best = i;
            }
        }
        assert_int_equal(cairn_sampler_sample(s, logits), best);
    }
    cairn_sampler_free(s);
}

/* ---- filters: exact candidate sets ---- */

static void assert_candidates(cairn_sampler *s, const float *logits, const int32_t *want,
                              int n_want) {
    const int32_t *ids = NULL;
    const float *probs = NULL;
    int n = cairn_sampler_candidates(s, logits, &ids, &probs);
    assert_int_equal(n, n_want);
    double sum = 0;
    for (int i = 0; i < n; i++) {
        assert_int_equal(ids[i], want[i]);
        sum += probs[i];
    }
    assert_true(fabs(sum - 1.0) < 1e-5);
}

static void test_top_k_candidates(void **state) {
    (void)state;
    enum { N = 2000 };
    float logits[N];
    for (int i = 0; i < N; i++) {
        logits[i] = (float)((i * 7919) % N) / 100.0f; /* a permutation of distinct values */
    }
    cairn_sampling_params p = plain(1.0f, 1);
    p.top_k = 5;
    cairn_sampler *s = make_sampler(&p, N);
    /* The 5 largest values are 19.99 .. 19.95, i.e. (i * 7919) % N = 1999 .. 1995. */
    int32_t want[5];
    for (int v = 0; v < 5; v++) {
        for (int i = 0; i < N; i++) {
            if ((i * 7919) % N == N - 1 - v) {
                want[v] = i;
            }
        }
    }
    assert_candidates(s, logits, want, 5);
    cairn_sampler_free(s);

    /* Ties: equal logits rank by id, so the lowest ids win. */
    float flat[10] = {0};
    p.top_k = 3;
    s = make_sampler(&p, 10);
    int32_t lowest[3] = {0, 1, 2};
    assert_candidates(s, flat, lowest, 3);
    cairn_sampler_free(s);
}

static void test_top_p_candidates(void **state) {
    (void)state;
    double probs[5] = {0.05, 0.4, 0.25, 0.2, 0.1};
    float logits[5];
    logits_from_probs(probs, 5, logits);
    cairn_sampling_params p = plain(1.0f, 5);
    p.top_p = 0.6f; /* 0.4 < 0.6 <= 0.65: ids 1 and 2 */
    cairn_sampler *s = make_sampler(&p, 5);
    int32_t two[2] = {1, 2};
    assert_candidates(s, logits, two, 2);
    cairn_sampler_free(s);

    p.top_p = 0.8f; /* 0.65 < 0.8 <= 0.85: ids 1, 2, 3 */
    s = make_sampler(&p, 5);
    int32_t three[3] = {1, 2, 3};
    assert_candidates(s, logits, three, 3);
    cairn_sampler_free(s);

    p.top_p = 0.0f; /* always at least one */
    s = make_sampler(&p, 5);
    int32_t one[1] = {1};
    assert_candidates(s, logits, one, 1);
    cairn_sampler_free(s);
}

static void test_top_p_wide_nucleus(void **state) {
    (void)state;
    /* A flat distribution needs a nucleus far larger than the first ranking round; powers
     * of two keep the sums exact, and ties rank by id. */
    enum { N = 16384 };
    float *logits = calloc(N, sizeof(float));
    assert_non_null(logits);
    cairn_sampling_params p = plain(1.0f, 5);
    p.top_p = 0.5f;
    cairn_sampler *s = make_sampler(&p, N);
    const int32_t *ids = NULL;
    const float *probs = NULL;
    assert_int_equal(cairn_sampler_candidates(s, logits, &ids, &probs), N / 2);
    for (int i = 0; i < N / 2; i++) {
        assert_int_equal(ids[i], i);
    }
    cairn_sampler_free(s);
    free(logits);
}

static const float *sort_key; /* for the reference sort below */

static int by_logit_desc(const void *a, const void *b) {
    int32_t ia = *(const int32_t *)a, ib = *(const int32_t *)b;
    if (sort_key[ia] != sort_key[ib]) {
        return sort_key[ia] > sort_key[ib] ? -1 : 1;
    }
    return ia < ib ? -1 : 1;
}

/* The nucleus computed the slow, obvious way: sort everything, softmax, take the prefix. */
static int reference_nucleus(const float *logits, int n, float temperature, float top_p,
                             int32_t *order) {
    for (int i = 0; i < n; i++) {
        order[i] = i;
    }
    sort_key = logits;
    qsort(order, (size_t)n, sizeof(int32_t), by_logit_desc);
    double z = 0;
    for (int i = 0; i < n; i++) {
        z += exp(((double)logits[i] - logits[order[0]]) / temperature);
    }
    double cum = 0;
    for (int i = 0; i < n; i++) {
        cum += exp(((double)logits[order[i]] - logits[order[0]]) / temperature) / z;
        if (cum >= top_p) {
            return i + 1;
        }
    }
    return n;
}

static void test_top_p_matches_reference(void **state) {
    (void)state;
    enum { N = 5000 };
    float *logits = malloc(sizeof(float) * N);
    int32_t *order = malloc(sizeof(int32_t) * N);
    assert_non_null(logits);
    assert_non_null(order);
    const float top_ps[] = {0.0f, 0.1f, 0.5f, 0.9f, 0.99f};
    const float temps[] = {0.3f, 1.0f, 3.0f};
    for (int round = 0; round < 4; round++) {
        fill_pseudo_random(logits, N, (uint32_t)round + 50);
        if (round == 3) {
            for (int i = 0; i < N; i++) {
                logits[i] = (float)(i % 7); /* many ties */
            }
        }
        for (size_t t = 0; t < CAIRN_ARRAY_LEN(temps); t++) {
            for (size_t q = 0; q < CAIRN_ARRAY_LEN(top_ps); q++) {
                cairn_sampling_params p = plain(temps[t], 1);
                p.top_p = top_ps[q];
                cairn_sampler *s = make_sampler(&p, N);
                const int32_t *ids = NULL;
                const float *probs = NULL;
                int n = cairn_sampler_candidates(s, logits, &ids, &probs);
                int want = reference_nucleus(logits, N, temps[t], top_ps[q], order);
                /* float rounding may move the edge by a token when it sits on a boundary */
                assert_true(abs(n - want) <= 1);
                int common = n < want ? n : want;
                assert_memory_equal(ids, order, sizeof(int32_t) * (size_t)common);
                cairn_sampler_free(s);
            }
        }
    }
    free(logits);
    free(order);
}

static void test_min_p_candidates(void **state) {
    (void)state;
    double probs[5] = {0.05, 0.4, 0.25, 0.2, 0.1};
    float logits[5];
    logits_from_probs(probs, 5, logits);
    cairn_sampling_params p = plain(1.0f, 5);
    p.min_p = 0.3f; /* threshold 0.12: ids 1, 2, 3 (no sorting needed: id order) */
    cairn_sampler *s = make_sampler(&p, 5);
    int32_t want[3] = {1, 2, 3};
    assert_candidates(s, logits, want, 3);
    cairn_sampler_free(s);

    p.min_p = 0.55f; /* threshold 0.22: ids 1, 2 */
    s = make_sampler(&p, 5);
    int32_t two[2] = {1, 2};
    assert_candidates(s, logits, two, 2);
    cairn_sampler_free(s);
}

static void test_top_p_statistics(void **state) {
    (void)state;
    double probs[5] = {0.05, 0.4, 0.25, 0.2, 0.1};
    float logits[5];
    logits_from_probs(probs, 5, logits);
    cairn_sampling_params p = plain(1.0f, 1234);
    p.top_p = 0.6f;
    cairn_sampler *s = make_sampler(&p, 5);
    int counts[5];
    enum { DRAWS = 20000 };
    count_draws(s, logits, 5, DRAWS, counts);
    assert_int_equal(counts[0] + counts[3] + counts[4], 0);
    /* Renormalised: 0.4 / 0.65 ~ 0.615 and 0.25 / 0.65 ~ 0.385; 5 sigma is about 0.017. */
    double f1 = (double)counts[1] / DRAWS;
    assert_true(fabs(f1 - 0.4 / 0.65) < 0.02);
    cairn_sampler_free(s);
}

static void test_min_p_statistics(void **state) {
    (void)state;
    double probs[5] = {0.05, 0.4, 0.25, 0.2, 0.1};
    float logits[5];
    logits_from_probs(probs, 5, logits);
    cairn_sampling_params p = plain(1.0f, 77);
    p.min_p = 0.3f;
    cairn_sampler *s = make_sampler(&p, 5);
    int counts[5];
    enum { DRAWS = 20000 };
    count_draws(s, logits, 5, DRAWS, counts);
    assert_int_equal(counts[0] + counts[4], 0);
    assert_true(fabs((double)counts[1] / DRAWS - 0.4 / 0.85) < 0.02);
    assert_true(fabs((double)counts[2] / DRAWS - 0.25 / 0.85) < 0.02);
    assert_true(fabs((double)counts[3] / DRAWS - 0.2 / 0.85) < 0.02);
    cairn_sampler_free(s);
}

static void test_unfiltered_statistics_and_temperature(void **state) {
    (void)state;
    double probs[4] = {0.1, 0.2, 0.3, 0.4};
    float logits[4];
    logits_from_probs(probs, 4, logits);
    cairn_sampling_params p = plain(1.0f, 42);
    cairn_sampler *s = make_sampler(&p, 4);
    int counts[4];
    enum { DRAWS = 20000 };
    count_draws(s, logits, 4, DRAWS, counts);
    for (int i = 0; i < 4; i++) {
        assert_true(fabs((double)counts[i] / DRAWS - probs[i]) < 0.02);
    }
    cairn_sampler_free(s);

    /* Temperature 2 turns p into sqrt(p), renormalised. */
    p.temperature = 2.0f;
    s = make_sampler(&p, 4);
    count_draws(s, logits, 4, DRAWS, counts);
    double z = 0;
    for (int i = 0; i < 4; i++) {
        z += sqrt(probs[i]);
    }
    for (int i = 0; i < 4; i++) {
        assert_true(fabs((double)counts[i] / DRAWS - sqrt(probs[i]) / z) < 0.02);
    }
    cairn_sampler_free(s);
}

static void test_top_k_large_vocabulary(void **state) {
    (void)state;
    /* With a large vocabulary and top_k 2 only the two best can ever come out. */
    enum { N = 150000 };
    float *logits = malloc(sizeof(float) * N);
    assert_non_null(logits);
    fill_pseudo_random(logits, N, 5);
    logits[123456] = 9.0f;
    logits[77] = 8.5f;
    cairn_sampling_params p = plain(5.0f, 8);
    p.top_k = 2;
    cairn_sampler *s = make_sampler(&p, N);
    int seen_a = 0, seen_b = 0;
    for (int i = 0; i < 200; i++) {
        int32_t t = cairn_sampler_sample(s, logits);
        assert_true(t == 123456 || t == 77);
        seen_a += t == 123456;
        seen_b += t == 77;
    }
    assert_true(seen_a > 0 && seen_b > 0);
    cairn_sampler_free(s);
    free(logits);
}

/* ---- penalties ---- */

static void test_repeat_penalty(void **state) {
    (void)state;
    float logits[4] = {2.0f, 1.8f, -1.0f, -1.1f};
    cairn_sampling_params p = plain(0.0f, 0);
    p.repeat_penalty = 1.2f; /* 2.0 / 1.2 = 1.67 < 1.8 */
    cairn_sampler *s = make_sampler(&p, 4);
    assert_int_equal(cairn_sampler_sample(s, logits), 0);
    cairn_sampler_accept(s, 0);
    assert_int_equal(cairn_sampler_sample(s, logits), 1);
    cairn_sampler_free(s);

    /* Negative logits get multiplied, so they fall further. */
    float negative[2] = {-1.0f, -1.1f};
    s = make_sampler(&p, 2);
    cairn_sampler_accept(s, 0);
    assert_int_equal(cairn_sampler_sample(s, negative), 1);
    cairn_sampler_free(s);
}

static void test_repeat_window(void **state) {
    (void)state;
    float logits[4] = {2.0f, 1.8f, 0.0f, 0.0f};
    cairn_sampling_params p = plain(0.0f, 0);
    p.repeat_penalty = 1.5f;
    p.repeat_last_n = 3;
    cairn_sampler *s = make_sampler(&p, 4);
    cairn_sampler_accept(s, 0);
    assert_int_equal(cairn_sampler_sample(s, logits), 1);
    cairn_sampler_accept(s, 2);
    cairn_sampler_accept(s, 3);
    assert_int_equal(cairn_sampler_sample(s, logits), 1); /* 0 is still in the window */
    cairn_sampler_accept(s, 2);                           /* pushes 0 out */
    assert_int_equal(cairn_sampler_sample(s, logits), 0);
    cairn_sampler_accept(s, 0);
    cairn_sampler_reset(s);
    assert_int_equal(cairn_sampler_sample(s, logits), 0);
    cairn_sampler_free(s);
}

static void test_frequency_penalty(void **state) {
    (void)state;
    float logits[3] = {3.0f, 2.0f, 1.0f};
    cairn_sampling_params p = plain(0.0f, 0);
    p.frequency_penalty = 0.6f;
    cairn_sampler *s = make_sampler(&p, 3);
    cairn_sampler_accept(s, 0);
    assert_int_equal(cairn_sampler_sample(s, logits), 0); /* 3.0 - 0.6 = 2.4 > 2.0 */
    cairn_sampler_accept(s, 0);
    assert_int_equal(cairn_sampler_sample(s, logits), 1); /* 3.0 - 1.2 = 1.8 < 2.0 */
    cairn_sampler_free(s);
}

static void test_presence_penalty(void **state) {
    (void)state;
    float logits[3] = {3.0f, 2.0f, 1.0f};
    cairn_sampling_params p = plain(0.0f, 0);
    p.presence_penalty = 0.6f;
    cairn_sampler *s = make_sampler(&p, 3);
    for (int i = 0; i < 5; i++) {
        cairn_sampler_accept(s, 0); /* counted once however often it occurs */
    }
    assert_int_equal(cairn_sampler_sample(s, logits), 0);
    cairn_sampler_free(s);

    p.presence_penalty = 1.5f;
    s = make_sampler(&p, 3);
    cairn_sampler_accept(s, 0);
    assert_int_equal(cairn_sampler_sample(s, logits), 1);
    cairn_sampler_accept(s, 1);
    assert_int_equal(cairn_sampler_sample(s, logits), 0); /* 1.5 vs 0.5 vs 1.0 */
    cairn_sampler_free(s);
}

static void test_out_of_range_history_ignored(void **state) {
    (void)state;
    float logits[3] = {3.0f, 2.0f, 1.0f};
    cairn_sampling_params p = plain(0.0f, 0);
    p.presence_penalty = 5.0f;
    cairn_sampler *s = make_sampler(&p, 3);
    cairn_sampler_accept(s, -1);
    cairn_sampler_accept(s, 3);
    assert_int_equal(cairn_sampler_sample(s, logits), 0);
    cairn_sampler_free(s);
}

/* ---- reproducibility ---- */

static void draw_sequence(uint64_t seed, int32_t *out, int n) {
    enum { N = 1000 };
    float logits[N];
    cairn_sampling_params p;
    cairn_sampling_defaults(&p);
    p.temperature = 1.2f;
    p.top_k = 100;
    p.top_p = 0.98f;
    p.min_p = 0.0f;
    p.seed = seed;
    cairn_sampler *s = make_sampler(&p, N);
    for (int i = 0; i < n; i++) {
        fill_pseudo_random(logits, N, (uint32_t)i);
        out[i] = cairn_sampler_sample(s, logits);
        cairn_sampler_accept(s, out[i]);
    }
    cairn_sampler_free(s);
}

static void test_seed_reproducibility(void **state) {
    (void)state;
    int32_t a[100], b[100], c[100];
    draw_sequence(1, a, 100);
    draw_sequence(1, b, 100);
    draw_sequence(2, c, 100);
    assert_memory_equal(a, b, sizeof(a));
    int differ = 0;
    for (int i = 0; i < 100; i++) {
        differ += a[i] != c[i];
    }
    assert_true(differ > 10);
}

static void test_reset_replays(void **state) {
    (void)state;
    double probs[4] = {0.25, 0.25, 0.25, 0.25};
    float logits[4];
    logits_from_probs(probs, 4, logits);
    cairn_sampling_params p = plain(1.0f, 9);
    cairn_sampler *s = make_sampler(&p, 4);
    int32_t first[50];
    for (int i = 0; i < 50; i++) {
        first[i] = cairn_sampler_sample(s, logits);
    }
    cairn_sampler_reset(s);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(cairn_sampler_sample(s, logits), first[i]);
    }
    cairn_sampler_free(s);
}

/* ---- parameter validation ---- */

static void expect_rejected(const cairn_sampling_params *p, int n_vocab) {
    static int sentinel;
    cairn_sampler *s = (cairn_sampler *)&sentinel; /* must be reset to NULL */
    cairn_err err = {{0}};
    assert_int_equal(cairn_sampler_new(p, n_vocab, &s, &err), -1);
    assert_null(s);
    assert_true(strlen(err.msg) > 0);
}

static void test_invalid_params(void **state) {
    (void)state;
    cairn_sampling_params ok;
    cairn_sampling_defaults(&ok);
    expect_rejected(&ok, 0);
    cairn_sampling_params p = ok;
    p.temperature = NAN;
    expect_rejected(&p, 10);
    p = ok;
    p.temperature = INFINITY;
    expect_rejected(&p, 10);
    p = ok;
    p.top_k = -1;
    expect_rejected(&p, 10);
    p = ok;
    p.top_p = -0.1f;
    expect_rejected(&p, 10);
    p = ok;
    p.top_p = NAN;
    expect_rejected(&p, 10);
    p = ok;
    p.min_p = 1.5f;
    expect_rejected(&p, 10);
    p = ok;
    p.min_p = -0.5f;
    expect_rejected(&p, 10);
    p = ok;
    p.repeat_penalty = 0.0f;
    expect_rejected(&p, 10);
    p = ok;
    p.repeat_last_n = -1;
    expect_rejected(&p, 10);
    p = ok;
    p.frequency_penalty = NAN;
    expect_rejected(&p, 10);
    p = ok;
    p.presence_penalty = -INFINITY;
    expect_rejected(&p, 10);
}

static void test_defaults(void **state) {
    (void)state;
    cairn_sampling_params p;
    cairn_sampling_defaults(&p);
    assert_true(p.temperature == 0.8f && p.top_k == 40 && p.top_p == 0.95f && p.min_p == 0.05f);
    assert_true(p.repeat_penalty == 1.0f && p.repeat_last_n == 64);
    assert_true(p.frequency_penalty == 0.0f && p.presence_penalty == 0.0f && p.seed == 0);
}

/* ---- log-probabilities ---- */

static void test_logprobs(void **state) {
    (void)state;
    enum { N = 300 };
    float logits[N];
    fill_pseudo_random(logits, N, 11);
    double total = 0;
    for (int i = 0; i < N; i++) {
        float lp = cairn_logprob_of(logits, N, i);
        assert_true(lp <= 0.0f);
        total += exp(lp);
    }
    assert_true(fabs(total - 1.0) < 1e-5);
    assert_true(isinf(cairn_logprob_of(logits, N, N)));
    assert_true(isinf(cairn_logprob_of(logits, N, -1)));

    int32_t ids[10];
    float lps[10];
    assert_int_equal(cairn_logprobs_top(logits, N, 10, ids, lps), 10);
    for (int i = 0; i < 10; i++) {
        assert_true(fabsf(lps[i] - cairn_logprob_of(logits, N, ids[i])) < 1e-6f);
        if (i > 0) {
            assert_true(lps[i] <= lps[i - 1]);
        }
    }
    /* ids[0] is the argmax and nothing outside the list beats the last entry */
    for (int i = 0; i < N; i++) {
        int listed = 0;
        for (int j = 0; j < 10; j++) {
            listed |= ids[j] == i;
        }
        if (!listed) {
            assert_true(logits[i] <= logits[ids[9]]);
        }
    }
    assert_int_equal(cairn_logprobs_top(logits, 3, 10, ids, lps), 3);
    assert_int_equal(cairn_logprobs_top(logits, N, 0, ids, lps), 0);

    float uniform[4] = {1, 1, 1, 1};
    assert_int_equal(cairn_logprobs_top(uniform, 4, 4, ids, lps), 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(ids[i], i);
        assert_true(fabsf(lps[i] - logf(0.25f)) < 1e-6f);
    }
}

/* ---- stop strings ---- */

typedef struct stop_run {
    cairn_stop_matcher *m;
    cairn_buf out;
} stop_run;

static stop_run stop_start(const char *const *stops, size_t n) {
    stop_run r = {0};
    cairn_err err = {{0}};
    assert_int_equal(cairn_stop_matcher_new(stops, n, &r.m, &err), 0);
    return r;
}

static int stop_push(stop_run *r, const char *text) {
    return cairn_stop_matcher_push(r->m, text, strlen(text), &r->out);
}

static const char *stop_text(const stop_run *r) {
    return r->out.len ? r->out.data : "";
}

static void stop_end(stop_run *r) {
    cairn_stop_matcher_free(r->m);
    cairn_buf_free(&r->out);
}

static void test_stop_in_one_chunk(void **state) {
    (void)state;
    const char *stops[] = {"STOP"};
    stop_run r = stop_start(stops, 1);
    assert_int_equal(stop_push(&r, "hello STOP world"), 1);
    assert_string_equal(stop_text(&r), "hello ");
    assert_int_equal(stop_push(&r, "more"), 1);
    assert_int_equal(cairn_stop_matcher_flush(r.m, &r.out), 0);
    assert_string_equal(stop_text(&r), "hello ");
    stop_end(&r);
}

static void test_stop_across_chunks(void **state) {
    (void)state;
    const char *stops[] = {"</end>"};
    stop_run r = stop_start(stops, 1);
    assert_int_equal(stop_push(&r, "abc</"), 0);
    assert_string_equal(stop_text(&r), "abc");
    assert_int_equal(stop_push(&r, "e"), 0);
    assert_string_equal(stop_text(&r), "abc");
    assert_int_equal(stop_push(&r, "nd"), 0);
    assert_int_equal(stop_push(&r, ">tail"), 1);
    assert_string_equal(stop_text(&r), "abc");
    stop_end(&r);
}

static void test_stop_prefix_released(void **state) {
    (void)state;
    const char *stops[] = {"\n\nUser:"};
    stop_run r = stop_start(stops, 1);
    assert_int_equal(stop_push(&r, "line\n"), 0);
    assert_string_equal(stop_text(&r), "line");
    assert_int_equal(stop_push(&r, "\nUs"), 0);
    assert_string_equal(stop_text(&r), "line");
    assert_int_equal(stop_push(&r, "ually"), 0); /* not the stop after all */
    assert_string_equal(stop_text(&r), "line\n\nUsually");
    assert_int_equal(stop_push(&r, "\n\nUse"), 0);
    assert_int_equal(cairn_stop_matcher_flush(r.m, &r.out), 0);
    assert_string_equal(stop_text(&r), "line\n\nUsually\n\nUse");
    stop_end(&r);
}

static void test_stop_multiple(void **state) {
    (void)state;
    const char *stops[] = {"world", "lo w", "xyz"};
    stop_run r = stop_start(stops, 3);
    /* "lo w" starts earlier than "world", so the text ends before it, and it is the one
     * that matched */
    assert_int_equal(cairn_stop_matcher_matched(r.m), -1);
    assert_int_equal(stop_push(&r, "hello world"), 1);
    assert_string_equal(stop_text(&r), "hel");
    assert_int_equal(cairn_stop_matcher_matched(r.m), 1);
    stop_end(&r);

    r = stop_start(stops, 3);
    assert_int_equal(stop_push(&r, "axy"), 0);
    assert_string_equal(stop_text(&r), "a");
    assert_int_equal(cairn_stop_matcher_matched(r.m), -1);
    assert_int_equal(stop_push(&r, "xyz"), 1); /* "xy" + "xyz": the second one matches */
    assert_string_equal(stop_text(&r), "axy");
    assert_int_equal(cairn_stop_matcher_matched(r.m), 2);
    stop_end(&r);

    r = stop_start(stops, 0); /* no stops: everything passes through */
    assert_int_equal(stop_push(&r, "world"), 0);
    assert_string_equal(stop_text(&r), "world");
    stop_end(&r);
}

static void test_stop_utf8(void **state) {
    (void)state;
    /* "é" is C3 A9; a stop string starting with its second byte would hold back half a
     * character, which must not be split: the whole character waits. */
    const char *stops[] = {"\xA9X"};
    stop_run r = stop_start(stops, 1);
    assert_int_equal(stop_push(&r, "caf\xC3\xA9"), 0);
    assert_string_equal(stop_text(&r), "caf");
    assert_int_equal(stop_push(&r, "!"), 0);
    assert_string_equal(stop_text(&r), "caf\xC3\xA9!");
    stop_end(&r);

    /* A character split across pushes is held until it is complete. */
    const char *plain_stop[] = {"zzz"};
    r = stop_start(plain_stop, 1);
    assert_int_equal(stop_push(&r, "\xE2\x82"), 0);
    assert_int_equal(r.out.len, 0);
    assert_int_equal(stop_push(&r, "\xAC!"), 0);
    assert_string_equal(stop_text(&r), "\xE2\x82\xAC!");
    stop_end(&r);

    /* A multi-byte stop string split inside a character. */
    const char *euro[] = {"\xE2\x82\xAC"
                          "5"};
    r = stop_start(euro, 1);
    assert_int_equal(stop_push(&r, "price \xE2\x82"), 0);
    assert_string_equal(stop_text(&r), "price ");
    assert_int_equal(stop_push(&r, "\xAC"), 0);
    assert_string_equal(stop_text(&r), "price ");
    assert_int_equal(stop_push(&r, "5 total"), 1);
    assert_string_equal(stop_text(&r), "price ");
    stop_end(&r);
}

static void test_stop_rejects_empty(void **state) {
    (void)state;
    const char *stops[] = {"ok", ""};
    cairn_stop_matcher *m = NULL;
    cairn_err err = {{0}};
    assert_int_equal(cairn_stop_matcher_new(stops, 2, &m, &err), -1);
    assert_null(m);
    assert_true(strlen(err.msg) > 0);
    const char *null_stop[] = {NULL};
    assert_int_equal(cairn_stop_matcher_new(null_stop, 1, &m, &err), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_is_argmax),
        cmocka_unit_test(test_logits_not_modified),
        cmocka_unit_test(test_tiny_temperature_is_greedy),
        cmocka_unit_test(test_extreme_logits),
        cmocka_unit_test(test_top_k_one_is_greedy),
        cmocka_unit_test(test_top_k_candidates),
        cmocka_unit_test(test_top_p_candidates),
        cmocka_unit_test(test_top_p_wide_nucleus),
        cmocka_unit_test(test_top_p_matches_reference),
        cmocka_unit_test(test_min_p_candidates),
        cmocka_unit_test(test_top_p_statistics),
        cmocka_unit_test(test_min_p_statistics),
        cmocka_unit_test(test_unfiltered_statistics_and_temperature),
        cmocka_unit_test(test_top_k_large_vocabulary),
        cmocka_unit_test(test_repeat_penalty),
        cmocka_unit_test(test_repeat_window),
        cmocka_unit_test(test_frequency_penalty),
        cmocka_unit_test(test_presence_penalty),
        cmocka_unit_test(test_out_of_range_history_ignored),
        cmocka_unit_test(test_seed_reproducibility),
        cmocka_unit_test(test_reset_replays),
        cmocka_unit_test(test_invalid_params),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_logprobs),
        cmocka_unit_test(test_stop_in_one_chunk),
        cmocka_unit_test(test_stop_across_chunks),
        cmocka_unit_test(test_stop_prefix_released),
        cmocka_unit_test(test_stop_multiple),
        cmocka_unit_test(test_stop_utf8),
        cmocka_unit_test(test_stop_rejects_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
