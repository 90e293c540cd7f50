/* engine: a chain of shards of one model in one process (see engine.h). Hidden states pass
 * between shards as plain float arrays, exactly as they would cross the network. */
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

struct cairn_pipeline {
    cairn_shard **shards;
    int n_shards;
    cairn_shard_info info;
    float *hidden[2]; /* ping-pong buffers of n_batch * n_embd floats */
    size_t hidden_cap;
};

static int check_chain(cairn_shard **shards, int n, cairn_err *err) {
    if (n <= 0) {
        return cairn_fail(err, "a pipeline needs at least one shard");
    }
    for (int i = 0; i < n; i++) {
        if (!shards[i]) {
            return cairn_fail(err, "shard %d is missing", i);
        }
    }
    if (!shards[0]->info.is_first || !shards[n - 1]->info.is_last) {
        return cairn_fail(err, "a pipeline must start with the first layer and end with the last");
    }
    for (int i = 1; i < n; i++) {
        const cairn_shard_info *a = &shards[i - 1]->info, *b = &shards[i]->info;
        if (a->last_layer != b->first_layer || a->n_embd != b->n_embd || a->n_seq != b->n_seq ||
            a->n_layer != b->n_layer) {
            return cairn_fail(err, "shard %d [%d, %d) does not continue shard %d [%d, %d)", i,
                              b->first_layer, b->last_layer, i - 1, a->first_layer, a->last_layer);
        }
    }
    return 0;
}

int cairn_pipeline_new(cairn_shard **shards, int n_shards, cairn_pipeline **out, cairn_err *err) {
    *out = NULL;
    if (check_chain(shards, n_shards, err) != 0) {
        return -1;
    }
    cairn_pipeline *p = calloc(1, sizeof(*p));
    if (!p || !(p->shards = malloc((size_t)n_shards * sizeof(cairn_shard *)))) {
        free(p);
        return cairn_fail(err, "out of memory");
    }
    memcpy(p->shards, shards, (size_t)n_shards * sizeof(cairn_shard *));
    p->n_shards = n_shards;
    /* check_chain verified that every shard is present. */
    // NOLINTBEGIN(clang-analyzer-core.NullDereference)
    p->info = shards[0]->info;
    p->info.last_layer = shards[n_shards - 1]->info.last_layer;
    // NOLINTEND(clang-analyzer-core.NullDereference)
    p->info.is_last = true;
    p->info.weight_bytes = 0;
    for (int i = 0; i < n_shards; i++) {
        const cairn_shard_info *si = &shards[i]->info;
        p->info.weight_bytes += si->weight_bytes;
        p->info.n_ctx = si->n_ctx < p->info.n_ctx ? si->n_ctx : p->info.n_ctx;
    }
    *out = p;
    return 0;
}

int cairn_pipeline_load_ggml(const cairn_shard_config *base, const int *cuts, int n_cuts,
                             cairn_pipeline **out, cairn_err *err) {
    *out = NULL;
    int n_shards = n_cuts + 1;
    cairn_shard **shards = calloc((size_t)n_shards, sizeof(cairn_shard *));
    if (!shards) {
        return cairn_fail(err, "out of memory");
    }
    int rc = 0;
    for (int i = 0; i < n_shards && rc == 0; i++) {
        cairn_shard_config cfg = *base;
        cfg.first_layer = i == 0 ? 0 : cuts[i - 1];
        cfg.last_layer = i == n_cuts ? -1 : cuts[i];
        if (i < n_cuts && cuts[i] <= cfg.first_layer) {
            rc = cairn_fail(err, "cut points must be increasing and leave every shard a layer");
            break;
        }
        rc = cairn_shard_load_ggml(&cfg, &shards[i], err);
    }
    if (rc == 0) {
        rc = cairn_pipeline_new(shards, n_shards, out, err);
    }
    if (rc != 0) {
        for (int i = 0; i < n_shards; i++) {
            cairn_shard_free(shards[i]);
        }
    }
    free(shards);
    return rc;
}

const cairn_shard_info *cairn_pipeline_info(const cairn_pipeline *p) {
    return &p->info;
}

static int ensure_hidden(cairn_pipeline *p, size_t floats, cairn_err *err) {
    if (floats <= p->hidden_cap) {
        return 0;
    }
    for (int i = 0; i < 2; i++) {
        float *h = realloc(p->hidden[i], floats * sizeof(float));
        if (!h) {
            return cairn_fail(err, "out of memory");
        }
        p->hidden[i] = h;
    }
    p->hidden_cap = floats;
    return 0;
}

int cairn_pipeline_forward(cairn_pipeline *p, int seq, const int32_t *tokens, int n_tokens,
                           bool all_logits, float *out, cairn_err *err) {
    if (n_tokens > 0 && ensure_hidden(p, (size_t)n_tokens * (size_t)p->info.n_embd, err) != 0) {
        return -1;
    }
    const float *in = NULL;
    int start = cairn_pipeline_seq_len(p, seq);
    for (int i = 0; i < p->n_shards; i++) {
        cairn_shard *s = p->shards[i];
        cairn_batch b = {seq, n_tokens, i == 0 ? tokens : NULL, in, all_logits};
        float *dst = s->info.is_last ? out : p->hidden[i % 2];
        if (cairn_shard_forward(s, &b, dst, err) != 0) {
            /* Earlier shards (and earlier chunks of this one) already advanced: roll every
             * shard back so all of them still hold the same positions. */
            if (start >= 0) {
                for (int j = 0; j <= i; j++) {
                    cairn_shard_seq_truncate(p->shards[j], seq, start, NULL);
                }
            }
            return -1;
        }
        in = dst;
    }
    return 0;
}

int cairn_pipeline_seq_truncate(cairn_pipeline *p, int seq, int n_keep, cairn_err *err) {
    for (int i = 0; i < p->n_shards; i++) {
        if (cairn_shard_seq_truncate(p->shards[i], seq, n_keep, err) != 0) {
            return -1;
        }
    }
    return 0;
}

int cairn_pipeline_seq_len(const cairn_pipeline *p, int seq) {
    return cairn_shard_seq_len(p->shards[0], seq);
}

void cairn_pipeline_free(cairn_pipeline *p) {
    if (!p) {
        return;
    }
    for (int i = 0; i < p->n_shards; i++) {
        cairn_shard_free(p->shards[i]);
    }
    free(p->shards);
    free(p->hidden[0]);
    free(p->hidden[1]);
    free(p);
}
