/* model: what a model costs in memory when placed by layers (see cairn_model_footprint). */
#include "model/model.h"
#include "util/defaults.h"

#include <stdlib.h>
#include <string.h>

/* The engine's context when none is configured: the training context, at most this (the
 * rule of cairn_shard_config.n_ctx in src/engine/ggml_engine.c). */
/* The engine's largest context. */
#define ENGINE_MAX_CTX (1 << 20)
/* Bytes of one cached K or V element: the engine keeps its KV cache in F16. */
#define KV_ELEMENT_BYTES 2

/* Whether a tensor is part of one of the model's layers; blocks past them (next-token
 * prediction) are never loaded. */
static bool in_a_layer(const char *name, int n_layer) {
    if (strncmp(name, "blk.", 4) != 0) {
        return false;
    }
    char *end = NULL;
    long il = strtol(name + 4, &end, 10);
    return end != name + 4 && *end == '.' && il >= 0 && il < n_layer;
}

static uint64_t tensor_bytes(const cairn_model_file *m, const char *name) {
    const cairn_tensor_info *t = cairn_model_tensor(m, name);
    return t ? t->size : 0;
}

static int resolve_context(const cairn_hparams *hp, int n_ctx, int n_seq, cairn_footprint *out,
                           cairn_err *err) {
    int ctx = n_ctx > 0 ? n_ctx : hp->n_ctx_train;
    if (n_ctx <= 0 && ctx > CAIRN_DEFAULT_MAX_CTX) {
        ctx = CAIRN_DEFAULT_MAX_CTX;
    }
    if (ctx <= 0 || ctx > ENGINE_MAX_CTX) {
        return cairn_fail(err, "a context of %d positions is not in 1..%d", ctx, ENGINE_MAX_CTX);
    }
    out->n_ctx = ctx;
    out->n_seq = n_seq > 0 ? n_seq : 1;
    return 0;
}

/* Sorts every tensor into the layers, the embeddings, the head or what every shard loads. */
static void count_tensors(const cairn_model_file *m, cairn_footprint *out) {
    uint64_t embd = tensor_bytes(m, "token_embd.weight");
    out->embd_bytes = embd;
    out->head_bytes = tensor_bytes(m, "output_norm.weight") +
                      (m->hp.tied_embeddings ? embd : tensor_bytes(m, "output.weight"));
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const char *name = m->tensors[i].name;
        if (in_a_layer(name, m->hp.n_layer)) {
            out->layer_weight_bytes += m->tensors[i].size;
        } else if (strncmp(name, "blk.", 4) != 0 && strcmp(name, "token_embd.weight") != 0 &&
                   strcmp(name, "output_norm.weight") != 0 && strcmp(name, "output.weight") != 0) {
            out->shared_bytes += m->tensors[i].size;
        }
    }
}

int cairn_model_footprint_of(const cairn_model_file *m, int n_ctx, int n_seq, cairn_footprint *out,
                             cairn_err *err) {
    memset(out, 0, sizeof *out);
    if (!m->has_hparams || m->hp.n_layer <= 0) {
        return cairn_fail(err, "%s has no layers (a vocabulary-only file?)", m->path);
    }
    const cairn_hparams *hp = &m->hp;
    if (resolve_context(hp, n_ctx, n_seq, out, err) != 0) {
        return -1;
    }
    out->n_layers = (uint32_t)hp->n_layer;
    count_tensors(m, out);
    /* Per layer, one cell per position of every sequence. */
    uint64_t cells = (uint64_t)out->n_ctx * (uint64_t)out->n_seq;
    uint64_t row = cairn_kv_cell_values(hp);
    /* Sliding-window layers keep only their window's cells: the layers' average, rounded
     * up, is what placement counts per layer. */
    uint64_t window_cells =
        (uint64_t)cairn_swa_cells(hp, out->n_ctx, CAIRN_DEFAULT_BATCH) * (uint64_t)out->n_seq;
    uint64_t all_cells = 0;
    for (int il = 0; il < hp->n_layer; il++) {
        all_cells += cairn_layer_is_swa(hp, il) ? window_cells : cells;
    }
    uint64_t total = 0;
    if (cairn_mul_overflows(row, all_cells, &total) ||
        cairn_mul_overflows(total, KV_ELEMENT_BYTES, &total)) {
        return cairn_fail(err, "a KV cache of %d x %d positions is too large", out->n_seq,
                          out->n_ctx);
    }
    out->layer_kv_bytes = (total + out->n_layers - 1) / out->n_layers;
    /* Layers differ little; rounding the average up and counting what every shard loads
     * once per layer keeps the estimate on the safe side. */
    uint64_t average = (out->layer_weight_bytes + out->n_layers - 1) / out->n_layers;
    out->layer_bytes = average + out->layer_kv_bytes + out->shared_bytes;
    return 0;
}

int cairn_model_footprint(const char *path, int n_ctx, int n_seq, cairn_footprint *out,
                          cairn_err *err) {
    cairn_model_file *m = NULL;
    if (cairn_model_open(path, &m, err) != 0) {
        return -1;
    }
    int rc = cairn_model_footprint_of(m, n_ctx, n_seq, out, err);
    cairn_model_close(m);
    return rc;
}
