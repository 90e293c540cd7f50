/* engine: the implementation-independent part of the shard interface (see engine.h). */
#include "engine/engine.h"

size_t cairn_shard_output_floats(const cairn_shard *s, const cairn_batch *batch) {
    if (s->info.is_last) {
        size_t rows = batch->all_logits ? (size_t)batch->n_tokens : 1;
        return rows * (size_t)s->info.n_vocab;
    }
    return (size_t)batch->n_tokens * (size_t)s->info.n_embd;
}

static int check_batch(const cairn_shard *s, const cairn_batch *b, cairn_err *err) {
    if (b->seq < 0 || b->seq >= s->info.n_seq) {
        return cairn_fail(err, "sequence %d does not exist (this shard has %d)", b->seq,
                          s->info.n_seq);
    }
    if (b->n_tokens <= 0) {
        return cairn_fail(err, "a batch needs at least one token");
    }
    if (s->info.is_first ? b->tokens == NULL : b->hidden == NULL) {
        return cairn_fail(err, "shard [%d, %d) takes %s", s->info.first_layer, s->info.last_layer,
                          s->info.is_first ? "token ids" : "hidden states");
    }
    if (s->info.is_first) {
        for (int i = 0; i < b->n_tokens; i++) {
            if (b->tokens[i] < 0 || b->tokens[i] >= s->info.n_vocab) {
                return cairn_fail(err, "token id %d is outside the vocabulary (0..%d)",
                                  (int)b->tokens[i], s->info.n_vocab - 1);
            }
        }
    }
    int have = s->ops->seq_len(s, b->seq);
    if (have + b->n_tokens > s->info.n_ctx) {
        return cairn_fail(err,
                          "context full: sequence %d holds %d tokens, %d more would exceed the "
                          "context limit of %d",
                          b->seq, have, b->n_tokens, s->info.n_ctx);
    }
    return 0;
}

int cairn_shard_forward(cairn_shard *s, const cairn_batch *batch, float *out, cairn_err *err) {
    if (check_batch(s, batch, err) != 0) {
        return -1;
    }
    return s->ops->forward(s, batch, out, err);
}

int cairn_shard_forward_many(cairn_shard *s, const cairn_batch *batches, int n, float *const *outs,
                             cairn_err *err) {
    int total = 0;
    for (int i = 0; i < n; i++) {
        if (check_batch(s, &batches[i], err) != 0) {
            return -1;
        }
        for (int j = 0; j < i; j++) {
            if (batches[j].seq == batches[i].seq) {
                return cairn_fail(err, "sequence %d appears twice in one step", batches[i].seq);
            }
        }
        total += batches[i].n_tokens;
    }
    if (n <= 0) {
        return 0;
    }
    if (n > 1 && total > s->info.n_batch) {
        return cairn_fail(err, "a step of %d tokens exceeds the batch of %d", total,
                          s->info.n_batch);
    }
    if (n == 1 || !s->ops->forward_many) {
        for (int i = 0; i < n; i++) {
            if (s->ops->forward(s, &batches[i], outs[i], err) != 0) {
                return -1;
            }
        }
        return 0;
    }
    return s->ops->forward_many(s, batches, n, outs, err);
}

int cairn_shard_seq_truncate(cairn_shard *s, int seq, int n_keep, cairn_err *err) {
    if (seq < 0 || seq >= s->info.n_seq) {
        return cairn_fail(err, "sequence %d does not exist", seq);
    }
    if (n_keep < 0) {
        return cairn_fail(err, "cannot keep %d positions", n_keep);
    }
    return s->ops->seq_truncate(s, seq, n_keep, err);
}

int cairn_shard_seq_len(const cairn_shard *s, int seq) {
    if (seq < 0 || seq >= s->info.n_seq) {
        return -1;
    }
    return s->ops->seq_len(s, seq);
}

void cairn_shard_free(cairn_shard *s) {
    if (s) {
        s->ops->destroy(s);
    }
}
