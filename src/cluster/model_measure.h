/*
 * model_measure: what a node learns about one of its model files off the loop: its SHA-256
 * and its memory footprint. A header of its own because src/model/model.h and
 * src/cluster/state.h each define a cairn_model_file (the GGUF file, and a profile's entry),
 * so no translation unit includes both.
 */
#ifndef CAIRN_CLUSTER_MODEL_MEASURE_H
#define CAIRN_CLUSTER_MODEL_MEASURE_H

#include <stdbool.h>
#include <stdint.h>

#include "util/util.h"

typedef struct model_measure {
    char sha256[65]; /* 64 hex digits */
    /* All 0 when the file is not a model this node can read. */
    uint32_t n_layers;
    uint64_t layer_bytes, embd_bytes, head_bytes;
} model_measure;

/* Hashes the file (asking keep_going(user) between chunks) and measures it for runners of
 * n_ctx positions and n_seq slots. Fails only when the hash does. Thread-safe. */
int model_measure_file(const char *path, int n_ctx, int n_seq, bool (*keep_going)(void *user),
                       void *user, model_measure *out, cairn_err *err);

#endif
