/*
 * engine: the dummy shard (see engine.h). A stand-in model for cluster tests: every number is
 * cheap arithmetic on hashes of (seed, token, position, layer), yet it behaves like a
 * transformer where it matters to the cluster: each layer keeps per-sequence state that
 * depends on all earlier positions, truncating a sequence is exact, and chaining shards
 * split at any layer gives bit-identical logits to one shard.
 *
 * Split invariance holds because layer l at position p depends only on its input at p and
 * its own state at p - 1, computed by the same function whichever shard runs it; hidden
 * states cross shards as plain floats. Only + - * / are used so the results do not depend
 * on a maths library.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "model/model.h"
#include "platform/platform.h"

#define DEFAULT_N_VOCAB 256
#define DEFAULT_N_EMBD 16
#define DEFAULT_N_CTX 4096

#define MAX_N_LAYER 4096
#define MAX_N_VOCAB (1 << 24)
#define MAX_N_EMBD (1 << 16)
#define MAX_N_CTX (1 << 24)
#define MAX_N_SEQ (1 << 16)
#define MAX_UNEMBED (1u << 28) /* floats: 1 GiB */

/* How much of a layer's state survives each position: below 1 keeps the state bounded
 * (|state| < 1 / (1 - DECAY)) however long the sequence. */
#define DECAY 0.875f
#define POSITION_SCALE 0.25f
#define LOGIT_SCALE 2.0f
/* Each layer adds at most this much to the residual stream, which keeps it bounded by the
 * layer count while the token's own embedding stays visible in the logits. */
#define RESIDUAL_SCALE 0.5f

/* Distinguishes the hash streams so weights, embeddings and positions never coincide. */
enum { TAG_EMBED = 1, TAG_POSITION, TAG_MIX_SELF, TAG_MIX_NEXT, TAG_BIAS, TAG_OUT, TAG_UNEMBED };

/* Per-layer weights; all n_embd long. */
enum { W_SELF, W_NEXT, W_BIAS, W_OUT, W_COUNT };

typedef struct dummy_seq {
    float *state; /* [position][local layer][n_embd]: each layer's state after that position */
    int len;
    int cap; /* positions allocated */
} dummy_seq;

typedef struct dummy_shard {
    cairn_shard base; /* first, so a cairn_shard * is a dummy_shard * */
    uint64_t seed;
    int delay_ms_per_token;
    int n_local;     /* layers this shard holds */
    float *weights;  /* [local layer][W_COUNT][n_embd] */
    float *unembed;  /* [n_vocab][n_embd], last shard only */
    dummy_seq *seqs; /* n_seq of them */
    float *x, *y;    /* n_embd scratch: a layer's input and output */
} dummy_shard;

static uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A value in [-1, 1) determined by its four inputs; 24 bits, so exact as a float. */
static float hash_unit(uint64_t seed, uint64_t tag, uint64_t a, uint64_t b) {
    uint64_t h = mix64(seed ^ mix64(tag ^ mix64(a ^ mix64(b))));
    return (float)(h >> 40) * 0x1.0p-23f - 1.0f;
}

/* A smooth squashing into (-1, 1) that needs no maths library. */
static float squash(float v) {
    return v / (1.0f + (v < 0.0f ? -v : v));
}

static float *layer_weights(const dummy_shard *d, int local, int which) {
    size_t n_embd = (size_t)d->base.info.n_embd;
    return d->weights + ((size_t)local * W_COUNT + (size_t)which) * n_embd;
}

static float *seq_state(const dummy_shard *d, const dummy_seq *q, int pos, int local) {
    size_t n_embd = (size_t)d->base.info.n_embd;
    return q->state + ((size_t)pos * (size_t)d->n_local + (size_t)local) * n_embd;
}

/* One layer at one position: mixes the input into a contribution, folds it into the
 * layer's running state (the "attention" over all earlier positions), and combines. */
static void run_layer(const dummy_shard *d, int local, int pos, const float *prev_state,
                      float *state, const float *x, float *y) {
    int n_embd = d->base.info.n_embd;
    int layer = d->base.info.first_layer + local;
    const float *w_self = layer_weights(d, local, W_SELF);
    const float *w_next = layer_weights(d, local, W_NEXT);
    const float *w_bias = layer_weights(d, local, W_BIAS);
    const float *w_out = layer_weights(d, local, W_OUT);
    for (int i = 0; i < n_embd; i++) {
        float position =
            POSITION_SCALE * hash_unit(d->seed, TAG_POSITION, (uint64_t)pos,
                                       (uint64_t)layer * (uint64_t)n_embd + (uint64_t)i);
        float self = x[i] * w_self[i];
        float next = x[(i + 1) % n_embd] * w_next[i];
        float contribution = squash(self + next + w_bias[i] + position);
        float kept = prev_state ? prev_state[i] * DECAY : 0.0f;
        state[i] = kept + contribution;
    }
    for (int i = 0; i < n_embd; i++) {
        float attended = squash(state[i] * w_out[i]);
        y[i] = x[i] + RESIDUAL_SCALE * attended;
    }
}

static void embed_token(const dummy_shard *d, int32_t token, float *x) {
    for (int i = 0; i < d->base.info.n_embd; i++) {
        x[i] = hash_unit(d->seed, TAG_EMBED, (uint64_t)token, (uint64_t)i);
    }
}

static void compute_logits(const dummy_shard *d, const float *h, float *logits) {
    int n_embd = d->base.info.n_embd;
    for (int v = 0; v < d->base.info.n_vocab; v++) {
        const float *row = d->unembed + (size_t)v * (size_t)n_embd;
        float sum = 0.0f;
        for (int i = 0; i < n_embd; i++) {
            sum += h[i] * row[i];
        }
        logits[v] = LOGIT_SCALE * sum;
    }
}

static int reserve_positions(dummy_seq *q, int need, size_t floats_per_pos, cairn_err *err) {
    if (need <= q->cap) {
        return 0;
    }
    int cap = q->cap ? q->cap : 64;
    while (cap < need) {
        cap = cap > MAX_N_CTX / 2 ? MAX_N_CTX : cap * 2;
    }
    float *state = realloc(q->state, (size_t)cap * floats_per_pos * sizeof(float));
    if (!state) {
        return cairn_fail(err, "out of memory for the dummy shard's state of %d positions", cap);
    }
    q->state = state;
    q->cap = cap;
    return 0;
}

/* Runs one token through this shard's layers; x holds its input and receives its output. */
static void run_token(dummy_shard *d, dummy_seq *q) {
    int pos = q->len;
    float *x = d->x;
    float *y = d->y;
    for (int local = 0; local < d->n_local; local++) {
        const float *prev = pos > 0 ? seq_state(d, q, pos - 1, local) : NULL;
        run_layer(d, local, pos, prev, seq_state(d, q, pos, local), x, y);
        float *t = x;
        x = y;
        y = t;
    }
    if (x != d->x) {
        memcpy(d->x, x, sizeof(float) * (size_t)d->base.info.n_embd);
    }
    q->len++;
}

static int dummy_forward(cairn_shard *s, const cairn_batch *b, float *out, cairn_err *err) {
    dummy_shard *d = (dummy_shard *)s;
    const cairn_shard_info *info = &s->info;
    dummy_seq *q = &d->seqs[b->seq];
    if (q->len + b->n_tokens > info->n_ctx) {
        return cairn_fail(err, "context full: sequence %d holds %d tokens, %d more exceed %d",
                          b->seq, q->len, b->n_tokens, info->n_ctx);
    }
    size_t floats_per_pos = (size_t)d->n_local * (size_t)info->n_embd;
    if (reserve_positions(q, q->len + b->n_tokens, floats_per_pos, err) != 0) {
        return -1;
    }
    size_t n_embd = (size_t)info->n_embd;
    for (int t = 0; t < b->n_tokens; t++) {
        if (info->is_first) {
            embed_token(d, b->tokens[t], d->x);
        } else {
            memcpy(d->x, b->hidden + (size_t)t * n_embd, sizeof(float) * n_embd);
        }
        run_token(d, q);
        if (!info->is_last) {
            memcpy(out + (size_t)t * n_embd, d->x, sizeof(float) * n_embd);
        } else if (b->all_logits) {
            compute_logits(d, d->x, out + (size_t)t * (size_t)info->n_vocab);
        } else if (t == b->n_tokens - 1) {
            compute_logits(d, d->x, out);
        }
    }
    if (d->delay_ms_per_token > 0) {
        cairn_sleep_ms(d->delay_ms_per_token * b->n_tokens * d->n_local);
    }
    return 0;
}

static int dummy_seq_truncate(cairn_shard *s, int seq, int n_keep, cairn_err *err) {
    dummy_shard *d = (dummy_shard *)s;
    dummy_seq *q = &d->seqs[seq];
    /* Each position's state was computed from the previous one only, so dropping the tail
     * leaves exactly the state a sequence of n_keep positions would have. */
    if (n_keep < q->len) {
        q->len = n_keep;
    }
    return 0;
}

static int dummy_seq_len(const cairn_shard *s, int seq) {
    const dummy_shard *d = (const dummy_shard *)s;
    return d->seqs[seq].len;
}

static void dummy_destroy(cairn_shard *s) {
    dummy_shard *d = (dummy_shard *)s;
    if (d->seqs) {
        for (int i = 0; i < s->info.n_seq; i++) {
            free(d->seqs[i].state);
        }
    }
    free(d->seqs);
    free(d->weights);
    free(d->unembed);
    free(d->x);
    free(d->y);
    free(d);
}

static const cairn_shard_ops dummy_ops = {
    .name = "dummy",
    .forward = dummy_forward,
    .seq_truncate = dummy_seq_truncate,
    .seq_len = dummy_seq_len,
    .destroy = dummy_destroy,
};

static int pick(int value, int fallback) {
    return value == 0 ? fallback : value;
}

static int check_range(const char *what, int value, int min, int max, cairn_err *err) {
    if (value < min || value > max) {
        return cairn_fail(err, "dummy shard: %s must be within [%d, %d], got %d", what, min, max,
                          value);
    }
    return 0;
}

/* Resolves defaults into info and checks every field. */
static int resolve_config(const cairn_dummy_config *cfg, cairn_shard_info *info, cairn_err *err) {
    memset(info, 0, sizeof(*info));
    info->n_layer = cfg->n_layer;
    info->first_layer = cfg->first_layer;
    info->last_layer = cfg->last_layer == -1 ? cfg->n_layer : cfg->last_layer;
    info->n_vocab = pick(cfg->n_vocab, DEFAULT_N_VOCAB);
    info->n_embd = pick(cfg->n_embd, DEFAULT_N_EMBD);
    info->n_ctx = pick(cfg->n_ctx, DEFAULT_N_CTX);
    info->n_seq = pick(cfg->n_seq, 1);
    info->n_batch = pick(cfg->n_batch, CAIRN_DEFAULT_BATCH);
    if (check_range("n_layer", info->n_layer, 1, MAX_N_LAYER, err) != 0 ||
        check_range("n_vocab", info->n_vocab, 1, MAX_N_VOCAB, err) != 0 ||
        check_range("n_embd", info->n_embd, 1, MAX_N_EMBD, err) != 0 ||
        check_range("n_ctx", info->n_ctx, 1, MAX_N_CTX, err) != 0 ||
        check_range("n_seq", info->n_seq, 1, MAX_N_SEQ, err) != 0 ||
        check_range("n_batch", info->n_batch, 1, MAX_N_CTX, err) != 0 ||
        check_range("delay_ms_per_token", cfg->delay_ms_per_token, 0, 60000, err) != 0) {
        return -1;
    }
    if (info->first_layer < 0 || info->first_layer >= info->n_layer ||
        info->last_layer <= info->first_layer || info->last_layer > info->n_layer) {
        return cairn_fail(err,
                          "dummy shard: layer range [%d, %d) is not a non-empty part of a "
                          "%d-layer model",
                          cfg->first_layer, cfg->last_layer, info->n_layer);
    }
    if ((uint64_t)info->n_vocab * (uint64_t)info->n_embd > MAX_UNEMBED) {
        return cairn_fail(err, "dummy shard: n_vocab * n_embd = %d * %d is too large",
                          info->n_vocab, info->n_embd);
    }
    info->is_first = info->first_layer == 0;
    info->is_last = info->last_layer == info->n_layer;
    info->keeps_prefixes = true;
    return 0;
}

static void fill_weights(dummy_shard *d) {
    const cairn_shard_info *info = &d->base.info;
    static const int tags[W_COUNT] = {TAG_MIX_SELF, TAG_MIX_NEXT, TAG_BIAS, TAG_OUT};
    for (int local = 0; local < d->n_local; local++) {
        uint64_t layer = (uint64_t)info->first_layer + (uint64_t)local;
        for (int w = 0; w < W_COUNT; w++) {
            float *row = layer_weights(d, local, w);
            for (int i = 0; i < info->n_embd; i++) {
                row[i] = hash_unit(d->seed, (uint64_t)tags[w], layer, (uint64_t)i);
            }
        }
    }
    if (!d->unembed) {
        return;
    }
    for (int v = 0; v < info->n_vocab; v++) {
        for (int i = 0; i < info->n_embd; i++) {
            d->unembed[(size_t)v * (size_t)info->n_embd + (size_t)i] =
                hash_unit(d->seed, TAG_UNEMBED, (uint64_t)v, (uint64_t)i);
        }
    }
}

static int allocate(dummy_shard *d, cairn_err *err) {
    const cairn_shard_info *info = &d->base.info;
    size_t n_embd = (size_t)info->n_embd;
    size_t n_weights = (size_t)d->n_local * W_COUNT * n_embd;
    size_t n_unembed = info->is_last ? (size_t)info->n_vocab * n_embd : 0;
    d->weights = malloc(sizeof(float) * n_weights);
    d->unembed = n_unembed ? malloc(sizeof(float) * n_unembed) : NULL;
    d->seqs = calloc((size_t)info->n_seq, sizeof(dummy_seq));
    d->x = malloc(sizeof(float) * n_embd);
    d->y = malloc(sizeof(float) * n_embd);
    if (!d->weights || (n_unembed && !d->unembed) || !d->seqs || !d->x || !d->y) {
        return cairn_fail(err, "out of memory for a dummy shard");
    }
    d->base.info.weight_bytes = (uint64_t)(n_weights + n_unembed) * sizeof(float);
    return 0;
}

int cairn_shard_create_dummy(const cairn_dummy_config *cfg, cairn_shard **out, cairn_err *err) {
    *out = NULL;
    cairn_shard_info info;
    if (resolve_config(cfg, &info, err) != 0) {
        return -1;
    }
    dummy_shard *d = calloc(1, sizeof(*d));
    if (!d) {
        return cairn_fail(err, "out of memory for a dummy shard");
    }
    d->base.ops = &dummy_ops;
    d->base.info = info;
    d->seed = cfg->seed;
    d->delay_ms_per_token = cfg->delay_ms_per_token;
    d->n_local = info.last_layer - info.first_layer;
    if (allocate(d, err) != 0) {
        dummy_destroy(&d->base);
        return -1;
    }
    fill_weights(d);
    *out = &d->base;
    return 0;
}
