/* sampling: the token sampler and log-probabilities (see sampling.h). */
#include "sampling/sampling.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Generous bound on the penalty window so its allocation can never be absurd. */
#define MAX_REPEAT_LAST_N (1 << 20)

struct cairn_sampler {
    cairn_sampling_params params;
    int n_vocab;
    cairn_rng rng;
    int32_t *history; /* ring of the last params.repeat_last_n accepted tokens */
    int history_len;
    int history_next;
    int *counts; /* per-id occurrence counts, all zero between uses */
    float *work; /* the logits after sanitising and penalties, indexed by id */
    int32_t *ids;
    float *vals; /* logits of ids, later their probabilities */
};

void cairn_sampling_defaults(cairn_sampling_params *p) {
    memset(p, 0, sizeof(*p));
    p->temperature = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
}

/* ---- top-k selection ---- */

/* The order every ranking uses: higher logit first, equal logits by lower id, so results
 * never depend on the selection algorithm. */
static bool ranks_before(float va, int32_t ia, float vb, int32_t ib) {
    return va > vb || (va == vb && ia < ib);
}

static void swap_entries(int32_t *ids, float *vals, int a, int b) {
    int32_t ti = ids[a];
    ids[a] = ids[b];
    ids[b] = ti;
    float tv = vals[a];
    vals[a] = vals[b];
    vals[b] = tv;
}

/* Heap whose root is the entry ranked last, so it is the one a better candidate evicts. */
static void sift_down(int32_t *ids, float *vals, int n, int i) {
    for (;;) {
        int worst = i;
        int l = 2 * i + 1;
        int r = l + 1;
        if (l < n && ranks_before(vals[worst], ids[worst], vals[l], ids[l])) {
            worst = l;
        }
        if (r < n && ranks_before(vals[worst], ids[worst], vals[r], ids[r])) {
            worst = r;
        }
        if (worst == i) {
            return;
        }
        swap_entries(ids, vals, i, worst);
        i = worst;
    }
}

/* Writes the k best of logits[0..n) into ids/vals, best first: O(n log k), so a 150k
 * vocabulary with top-k 40 is never fully sorted. k == n gives a full sort. */
static void select_top(const float *logits, int n, int k, int32_t *ids, float *vals) {
    for (int i = 0; i < k; i++) {
        ids[i] = i;
        vals[i] = logits[i];
    }
    for (int i = k / 2 - 1; i >= 0; i--) {
        sift_down(ids, vals, k, i);
    }
    for (int i = k; i < n; i++) {
        if (ranks_before(logits[i], i, vals[0], ids[0])) {
            ids[0] = i;
            vals[0] = logits[i];
            sift_down(ids, vals, k, 0);
        }
    }
    /* Heap sort: moving the worst to the end each time leaves the best at the front. */
    for (int end = k - 1; end > 0; end--) {
        swap_entries(ids, vals, 0, end);
        sift_down(ids, vals, end, 0);
    }
}

/* ---- sampler ---- */

static int validate_params(const cairn_sampling_params *p, int n_vocab, cairn_err *err) {
    if (n_vocab <= 0) {
        return cairn_fail(err, "sampler needs a vocabulary, got %d tokens", n_vocab);
    }
    if (isnan(p->temperature) || isinf(p->temperature)) {
        return cairn_fail(err, "temperature must be a finite number");
    }
    if (p->top_k < 0) {
        return cairn_fail(err, "top_k must be >= 0 (0 turns it off), got %d", p->top_k);
    }
    if (!(p->top_p >= 0.0f) || isinf(p->top_p)) {
        return cairn_fail(err, "top_p must be a finite number >= 0, got %g", (double)p->top_p);
    }
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f)) {
        return cairn_fail(err, "min_p must be within [0, 1], got %g", (double)p->min_p);
    }
    if (!(p->repeat_penalty > 0.0f) || isinf(p->repeat_penalty)) {
        return cairn_fail(err, "repeat_penalty must be a finite number > 0, got %g",
                          (double)p->repeat_penalty);
    }
    if (p->repeat_last_n < 0 || p->repeat_last_n > MAX_REPEAT_LAST_N) {
        return cairn_fail(err, "repeat_last_n must be within [0, %d], got %d", MAX_REPEAT_LAST_N,
                          p->repeat_last_n);
    }
    if (isnan(p->frequency_penalty) || isinf(p->frequency_penalty)) {
        return cairn_fail(err, "frequency_penalty must be a finite number");
    }
    if (isnan(p->presence_penalty) || isinf(p->presence_penalty)) {
        return cairn_fail(err, "presence_penalty must be a finite number");
    }
    return 0;
}

int cairn_sampler_new(const cairn_sampling_params *p, int n_vocab, cairn_sampler **out,
                      cairn_err *err) {
    *out = NULL;
    if (validate_params(p, n_vocab, err) != 0) {
        return -1;
    }
    cairn_sampler *s = calloc(1, sizeof(*s));
    if (!s) {
        return cairn_fail(err, "out of memory for a sampler");
    }
    s->params = *p;
    s->n_vocab = n_vocab;
    size_t n = (size_t)n_vocab;
    s->history = malloc(sizeof(int32_t) * (size_t)(p->repeat_last_n > 0 ? p->repeat_last_n : 1));
    s->counts = calloc(n, sizeof(int));
    s->work = malloc(sizeof(float) * n);
    s->ids = malloc(sizeof(int32_t) * n);
    s->vals = malloc(sizeof(float) * n);
    if (!s->history || !s->counts || !s->work || !s->ids || !s->vals) {
        cairn_sampler_free(s);
        return cairn_fail(err, "out of memory for a sampler over %d tokens", n_vocab);
    }
    cairn_rng_seed(&s->rng, p->seed);
    *out = s;
    return 0;
}

void cairn_sampler_free(cairn_sampler *s) {
    if (!s) {
        return;
    }
    free(s->history);
    free(s->counts);
    free(s->work);
    free(s->ids);
    free(s->vals);
    free(s);
}

void cairn_sampler_reset(cairn_sampler *s) {
    s->history_len = 0;
    s->history_next = 0;
    cairn_rng_seed(&s->rng, s->params.seed);
}

void cairn_sampler_accept(cairn_sampler *s, int32_t token) {
    int cap = s->params.repeat_last_n;
    if (cap == 0 || token < 0 || token >= s->n_vocab) {
        return;
    }
    s->history[s->history_next] = token;
    s->history_next = (s->history_next + 1) % cap;
    if (s->history_len < cap) {
        s->history_len++;
    }
}

static bool penalties_active(const cairn_sampling_params *p) {
    return p->repeat_penalty != 1.0f || p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f;
}

/* Penalises each distinct token of the window once, with its count in the window. */
static void apply_penalties(cairn_sampler *s) {
    const cairn_sampling_params *p = &s->params;
    for (int i = 0; i < s->history_len; i++) {
        s->counts[s->history[i]]++;
    }
    for (int i = 0; i < s->history_len; i++) {
        int32_t t = s->history[i];
        int count = s->counts[t];
        if (count == 0) {
            continue; /* already penalised */
        }
        s->counts[t] = 0;
        float v = s->work[t];
        if (v > 0.0f) {
            v /= p->repeat_penalty;
        } else {
            v *= p->repeat_penalty;
        }
        v -= (float)count * p->frequency_penalty + p->presence_penalty;
        s->work[t] = v;
    }
}

static void prepare_work(cairn_sampler *s, const float *logits) {
    for (int i = 0; i < s->n_vocab; i++) {
        s->work[i] = isnan(logits[i]) ? -INFINITY : logits[i];
    }
    if (penalties_active(&s->params)) {
        apply_penalties(s);
    }
}

int32_t cairn_argmax(const float *v, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++) {
        if (v[i] > v[best]) {
            best = i;
        }
    }
    return best;
}

/* Turns vals into probabilities at the sampler's temperature; false if all are -inf.
 * Subtracting the maximum before dividing keeps a tiny temperature from overflowing, and
 * comparing with it first keeps an infinite logit from producing inf - inf. */
static bool softmax(float *vals, int n, float temperature) {
    float max = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (vals[i] > max) {
            max = vals[i];
        }
    }
    if (isinf(max) && max < 0) {
        return false;
    }
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        vals[i] = vals[i] == max ? 1.0f : expf((vals[i] - max) / temperature);
        sum += vals[i];
    }
    for (int i = 0; i < n; i++) {
        vals[i] = (float)(vals[i] / sum);
    }
    return true;
}

/* Keeps the shortest most-likely-first prefix whose mass reaches top_p (at least one). */
static int cut_top_p(const float *probs, int n, float top_p) {
    double cum = 0.0;
    for (int i = 0; i < n; i++) {
        cum += probs[i];
        if (cum >= top_p) {
            return i + 1;
        }
    }
    return n;
}

/* Keeps tokens with p >= min_p * max p, preserving their order. */
static int cut_min_p(int32_t *ids, float *probs, int n, float min_p) {
    float max = 0.0f;
    for (int i = 0; i < n; i++) {
        if (probs[i] > max) {
            max = probs[i];
        }
    }
    float threshold = min_p * max;
    int kept = 0;
    for (int i = 0; i < n; i++) {
        if (probs[i] >= threshold) {
            ids[kept] = ids[i];
            probs[kept] = probs[i];
            kept++;
        }
    }
    return kept;
}

static void renormalise(float *probs, int n) {
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        sum += probs[i];
    }
    for (int i = 0; i < n; i++) {
        probs[i] = (float)(probs[i] / sum);
    }
}

static int single_candidate(cairn_sampler *s, int32_t id) {
    s->ids[0] = id;
    s->vals[0] = 1.0f;
    return 1;
}

/* Moves entry `pick` to the end of [lo, hi), then everything ranked before it to the
 * front; returns the pivot's final position. */
static int partition(int32_t *ids, float *vals, int lo, int hi, int pick) {
    swap_entries(ids, vals, pick, hi - 1);
    float pv = vals[hi - 1];
    int32_t pi = ids[hi - 1];
    int store = lo;
    for (int i = lo; i < hi - 1; i++) {
        if (ranks_before(vals[i], ids[i], pv, pi)) {
            swap_entries(ids, vals, i, store++);
        }
    }
    swap_entries(ids, vals, store, hi - 1);
    return store;
}

static int median_of_three(const int32_t *ids, const float *vals, int a, int b, int c) {
    bool ab = ranks_before(vals[a], ids[a], vals[b], ids[b]);
    bool bc = ranks_before(vals[b], ids[b], vals[c], ids[c]);
    bool ac = ranks_before(vals[a], ids[a], vals[c], ids[c]);
    if (ab == bc) {
        return b;
    }
    return ab == ac ? c : a;
}

/* Moves the smallest most-likely-first set of probabilities reaching `mass` to the front
 * (in no particular order) and returns its size, at least 1: a quickselect on accumulated
 * mass, so a broad nucleus costs O(n) rather than a sort of the whole vocabulary. */
static int select_by_mass(int32_t *ids, float *vals, int n, double mass) {
    int lo = 0, hi = n; /* [0, lo) is taken; the answer ends within [lo, hi] */
    while (hi - lo > 1) {
        int pick = median_of_three(ids, vals, lo, lo + (hi - lo) / 2, hi - 1);
        int m = partition(ids, vals, lo, hi, pick);
        double above = 0.0;
        for (int i = lo; i < m; i++) {
            above += vals[i];
        }
        if (above >= mass && m > lo) {
            hi = m;
        } else if (above + vals[m] >= mass) {
            return m + 1;
        } else {
            mass -= above + vals[m];
            lo = m + 1;
        }
    }
    return hi; /* one entry left, or rounding left the whole vocabulary short of mass */
}

/* Heap sort of ids/vals, best first. */
static void sort_ranked(int32_t *ids, float *vals, int n) {
    for (int i = n / 2 - 1; i >= 0; i--) {
        sift_down(ids, vals, n, i);
    }
    for (int end = n - 1; end > 0; end--) {
        swap_entries(ids, vals, 0, end);
        sift_down(ids, vals, end, 0);
    }
}

/* Top-p without top-k: only the nucleus gets sorted, never the whole vocabulary. Returns 0
 * if every logit is -inf. */
static int nucleus(cairn_sampler *s, float temperature, float top_p) {
    int n = s->n_vocab;
    for (int i = 0; i < n; i++) {
        s->ids[i] = i;
        s->vals[i] = s->work[i];
    }
    if (!softmax(s->vals, n, temperature)) {
        return 0;
    }
    int kept = select_by_mass(s->ids, s->vals, n, top_p);
    sort_ranked(s->ids, s->vals, kept);
    return kept;
}

/* Top-k then temperature and softmax then top-p, in that order; 0 if every logit is -inf. */
static int ranked_candidates(cairn_sampler *s) {
    const cairn_sampling_params *p = &s->params;
    int n = s->n_vocab;
    if (p->top_k > 0 && p->top_k < n) {
        n = p->top_k;
        select_top(s->work, s->n_vocab, n, s->ids, s->vals);
    } else if (p->top_p < 1.0f) {
        return nucleus(s, p->temperature, p->top_p);
    } else {
        for (int i = 0; i < n; i++) {
            s->ids[i] = i;
            s->vals[i] = s->work[i];
        }
    }
    if (!softmax(s->vals, n, p->temperature)) {
        return 0;
    }
    return p->top_p < 1.0f ? cut_top_p(s->vals, n, p->top_p) : n;
}

static int filter(cairn_sampler *s, const float *logits) {
    const cairn_sampling_params *p = &s->params;
    prepare_work(s, logits);
    if (p->temperature <= 0.0f) {
        return single_candidate(s, cairn_argmax(s->work, s->n_vocab));
    }
    int n = ranked_candidates(s);
    if (n == 0) {
        return single_candidate(s, cairn_argmax(s->work, s->n_vocab));
    }
    if (p->min_p > 0.0f) {
        n = cut_min_p(s->ids, s->vals, n, p->min_p);
    }
    renormalise(s->vals, n);
    return n;
}

int cairn_sampler_candidates(cairn_sampler *s, const float *logits, const int32_t **ids,
                             const float **probs) {
    int n = filter(s, logits);
    *ids = s->ids;
    *probs = s->vals;
    return n;
}

int32_t cairn_sampler_sample(cairn_sampler *s, const float *logits) {
    int n = filter(s, logits);
    if (n == 1) {
        return s->ids[0]; /* no draw, so greedy runs leave the PRNG where it was */
    }
    double r = cairn_rng_uniform(&s->rng);
    double cum = 0.0;
    for (int i = 0; i < n; i++) {
        cum += s->vals[i];
        if (r < cum) {
            return s->ids[i];
        }
    }
    return s->ids[n - 1]; /* rounding left r just above the total */
}

/* ---- log-probabilities ---- */

static double log_sum_exp(const float *logits, int n) {
    float max = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (logits[i] > max) {
            max = logits[i];
        }
    }
    if (isinf(max)) {
        return max;
    }
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        sum += exp((double)logits[i] - max);
    }
    return max + log(sum);
}

int cairn_logprobs_top(const float *logits, int n_vocab, int k, int32_t *ids, float *logprobs) {
    if (n_vocab <= 0 || k <= 0) {
        return 0;
    }
    if (k > n_vocab) {
        k = n_vocab;
    }
    select_top(logits, n_vocab, k, ids, logprobs);
    double lse = log_sum_exp(logits, n_vocab);
    for (int i = 0; i < k; i++) {
        logprobs[i] = (float)((double)logprobs[i] - lse);
    }
    return k;
}

float cairn_logprob_of(const float *logits, int n_vocab, int32_t id) {
    if (id < 0 || id >= n_vocab) {
        return -INFINITY;
    }
    return (float)((double)logits[id] - log_sum_exp(logits, n_vocab));
}
