/*
 * engine: runs a shard of a transformer, i.e. the layer range [first, last) of a model.
 * A shard takes token ids (if it holds the first layer) or hidden states (otherwise) and
 * returns hidden states or, if it holds the last layer, logits. Each sequence has its own
 * KV slot inside the shard that holds its layers.
 *
 * Two implementations share this interface: the ggml engine (real models from GGUF files)
 * and the dummy engine (deterministic arithmetic, no file, for cluster tests). Chaining
 * shards of one model in order gives exactly the unsplit model's results.
 *
 * The engine owns its weights mapping, compute buffers and KV caches. It must never
 * tokenize, sample, or know about the network: those belong to their own modules.
 */
#ifndef CAIRN_ENGINE_H
#define CAIRN_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "util/util.h"

typedef void (*cairn_progress_fn)(void *user, int done, int total);

typedef struct cairn_shard_config {
    const char *model_path;
    int first_layer;            /* inclusive */
    int last_layer;             /* exclusive; -1 means the model's layer count */
    int n_ctx;                  /* positions per sequence; 0: min(training context, 4096) */
    int n_seq;                  /* independent sequences (KV slots); 0 means 1 */
    int n_threads;              /* 0: all logical CPUs */
    int n_batch;                /* most tokens per compute step; longer inputs are split; 0: 512 */
    bool use_mmap;              /* use the weights in place in the file mapping instead of copying
                                   them to memory (less memory, slower on some systems) */
    bool swa_full;              /* sliding-window layers keep every position, not a ring of
                                   the window: more memory, any prefix stays reusable */
    bool kv_f32;                /* keys and values in F32, not F16: twice the cache memory
                                   (placement counts F16), no rounding of what is stored */
    cairn_progress_fn progress; /* optional: called as tensors are loaded */
    void *progress_user;
} cairn_shard_config;

typedef struct cairn_shard_info {
    int first_layer, last_layer, n_layer; /* n_layer: the whole model's */
    int n_embd, n_vocab, n_ctx, n_seq, n_batch;
    bool is_first;         /* takes token ids */
    bool is_last;          /* returns logits */
    bool keeps_prefixes;   /* truncating a sequence keeps any prefix asked for: no layer of
                              the model keeps only a window's ring (the same on every shard) */
    uint64_t weight_bytes; /* tensor data this shard uses */
} cairn_shard_info;

/* One step of one sequence. Positions continue from the sequence's current length. */
typedef struct cairn_batch {
    int seq;
    int n_tokens;
    const int32_t *tokens; /* first shard: n_tokens ids */
    const float *hidden;   /* other shards: n_tokens * n_embd floats, token-major */
    bool all_logits;       /* last shard: logits of every token instead of the last only */
} cairn_batch;

typedef struct cairn_shard cairn_shard;

typedef struct cairn_shard_ops {
    const char *name;
    /* out receives cairn_shard_output_floats() floats. */
    int (*forward)(cairn_shard *s, const cairn_batch *batch, float *out, cairn_err *err);
    /* Optional: several sequences in one step (see cairn_shard_forward_many); without it
     * they run one after another. */
    int (*forward_many)(cairn_shard *s, const cairn_batch *batches, int n, float *const *outs,
                        cairn_err *err);
    /* Forgets positions >= n_keep of a sequence (0 clears it). */
    int (*seq_truncate)(cairn_shard *s, int seq, int n_keep, cairn_err *err);
    int (*seq_len)(const cairn_shard *s, int seq);
    void (*destroy)(cairn_shard *s);
} cairn_shard_ops;

struct cairn_shard {
    const cairn_shard_ops *ops;
    cairn_shard_info info;
};

int cairn_shard_load_ggml(const cairn_shard_config *cfg, cairn_shard **out, cairn_err *err);

/* The dummy engine: a fake model whose "hidden states" and logits are cheap deterministic
 * functions of the sequence so far, so a pipeline of dummy shards behaves like a model
 * (same inputs, same tokens; split anywhere, same results) without any file. */
typedef struct cairn_dummy_config {
    int n_layer, first_layer, last_layer; /* last_layer -1: n_layer */
    int n_vocab;                          /* 0: 256 */
    int n_embd;                           /* 0: 16 */
    int n_ctx;                            /* 0: 4096 */
    int n_seq;                            /* 0: 1 */
    int n_batch;                          /* 0: 512 */
    uint64_t seed;
    int delay_ms_per_token; /* simulated compute time per token per layer */
} cairn_dummy_config;

int cairn_shard_create_dummy(const cairn_dummy_config *cfg, cairn_shard **out, cairn_err *err);

size_t cairn_shard_output_floats(const cairn_shard *s, const cairn_batch *batch);
int cairn_shard_forward(cairn_shard *s, const cairn_batch *batch, float *out, cairn_err *err);
/* One compute step for the steps of n different sequences, at most n_batch tokens in all:
 * every weight is read once for all of them, which is what makes serving many requests at
 * once faster than serving them in turns. Each sequence attends only over its own cells;
 * outs[i] receives cairn_shard_output_floats(s, &batches[i]) floats. */
int cairn_shard_forward_many(cairn_shard *s, const cairn_batch *batches, int n, float *const *outs,
                             cairn_err *err);
int cairn_shard_seq_truncate(cairn_shard *s, int seq, int n_keep, cairn_err *err);
int cairn_shard_seq_len(const cairn_shard *s, int seq);
void cairn_shard_free(cairn_shard *s);

/* A chain of shards of one model in one process, in layer order, covering all layers. It
 * owns the shards given to it. Feeding tokens returns the last shard's logits. */
typedef struct cairn_pipeline cairn_pipeline;

int cairn_pipeline_new(cairn_shard **shards, int n_shards, cairn_pipeline **out, cairn_err *err);
/* Loads the model split at the given cut points (n_cuts may be 0 for one shard). */
int cairn_pipeline_load_ggml(const cairn_shard_config *base, const int *cuts, int n_cuts,
                             cairn_pipeline **out, cairn_err *err);
const cairn_shard_info *cairn_pipeline_info(const cairn_pipeline *p); /* of the whole chain */
/* Runs tokens through every shard; logits (n_vocab, or n_tokens*n_vocab with all_logits)
 * go to out. */
int cairn_pipeline_forward(cairn_pipeline *p, int seq, const int32_t *tokens, int n_tokens,
                           bool all_logits, float *out, cairn_err *err);
/* Keeps the first n_keep positions of a sequence, or none where a sliding-window layer's
 * ring has already overwritten keys that the next position's window would need: read
 * cairn_pipeline_seq_len afterwards for what is kept. */
int cairn_pipeline_seq_truncate(cairn_pipeline *p, int seq, int n_keep, cairn_err *err);
int cairn_pipeline_seq_len(const cairn_pipeline *p, int seq);
void cairn_pipeline_free(cairn_pipeline *p);

#endif
