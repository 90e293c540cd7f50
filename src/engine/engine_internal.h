/*
 * engine (internal): what the ggml engine's loader (ggml_engine.c), its shared transformer
 * blocks (blocks.c) and the graph builder of each architecture family (arch_*.c) share.
 *
 * A family's builder turns one layer's input [n_embd, n] into its output; everything around
 * the layers (embeddings, caches, masks, the head) is the loader's. Builders must never
 * allocate tensor data, read the file or keep state between steps: a step's graph is a pure
 * function of the weights, the inputs and the positions.
 */
#ifndef CAIRN_ENGINE_INTERNAL_H
#define CAIRN_ENGINE_INTERNAL_H

#include "engine/engine.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml.h"
#include "model/model.h"

typedef struct layer_weights {
    struct ggml_tensor *t[CAIRN_LT_COUNT]; /* NULL where the file has no such tensor */
    /* [head_dim * n_head_kv, n_seq * n_ctx] F16; no v_cache with latent attention, whose
     * values are the first kv_lora_rank of each key */
    struct ggml_tensor *k_cache, *v_cache;
    int cells; /* per sequence: n_ctx, or a sliding window's ring (cairn_swa_cells) */
} layer_weights;

typedef struct ggml_shard {
    cairn_shard base;
    cairn_model_file *model;
    cairn_hparams hp;
    ggml_backend_t backend;
    struct ggml_context *weights_ctx;  /* tensor headers of this shard's weights */
    ggml_backend_buffer_t weights_buf; /* a copy, or the mapped file range itself */
    struct ggml_context *repack_ctx;   /* matrix weights stored in the CPU's preferred layout */
    ggml_backend_buffer_t repack_buf;
    ggml_backend_buffer_type_t repack_type; /* NULL: no repacking */
    ggml_backend_buffer_t repack_probe;     /* zero-size, to ask whether a layout exists */
    struct ggml_context *cache_ctx;
    ggml_backend_buffer_t cache_buf;
    layer_weights *layers; /* indexed by layer - first_layer */
    struct ggml_tensor *tok_embd, *output_norm, *output, *rope_freqs;
    int *seq_len;
    int *seq_written; /* per sequence: one past the highest position written since it was
                         last cleared; window rings hold the last cells of these */
    int swa_cells;    /* the rings' size; 0 when no layer of the shard has a window */
    void *graph_mem;  /* scratch for graph metadata, reused every step */
    size_t graph_mem_size;
    size_t graph_nodes;
    ggml_gallocr_t alloc;
    /* a step's per-sequence and per-token inputs, sized for the largest step at load */
    struct step_seq *step_seqs;
    struct ggml_tensor **join_scratch;
    int *step_pos;
    int32_t *step_positions, *step_out_rows;
    int64_t *step_kv_rows, *step_kv_rows_swa;
} ggml_shard;

/* One sequence's part of a step: tokens [first, first + n) of the step, at positions
 * [pos, pos + n) of sequence seq, with the masks of its own cells. */
typedef struct step_seq {
    int seq, pos, n, first;
    struct ggml_tensor *mask;     /* causal, over every cell of the sequence */
    struct ggml_tensor *mask_swa; /* causal within the sliding window; NULL without one */
} step_seq;

/* The tensors a step's graph reads from the caller, filled in after allocation. */
typedef struct step_inputs {
    struct ggml_tensor *tokens, *hidden, *positions, *output;
    /* I64 [n]: the cache row each token's key goes to, in full caches and in window rings;
     * NULL where no layer of the shard has that kind of cache */
    struct ggml_tensor *kv_rows, *kv_rows_swa;
    struct ggml_tensor *out_rows; /* I32: the tokens whose logits are returned; NULL: all */
    step_seq *seqs;
    int n_seqs;
    struct ggml_tensor **join_scratch; /* n_seqs entries for joining their attention */
} step_inputs;

/* Everything a layer builder needs about the step it is part of. */
typedef struct layer_step {
    ggml_shard *s;
    struct ggml_context *ctx;
    struct ggml_cgraph *gf;
    const step_inputs *in;
    int n;  /* the step's new tokens, of every sequence */
    int il; /* the layer's index in the whole model */
} layer_step;

typedef struct ggml_tensor *(*layer_builder)(const layer_step *st, const layer_weights *w,
                                             struct ggml_tensor *x);

/* ---- shared blocks (blocks.c) ---- */

struct ggml_tensor *block_rms_norm(const layer_step *st, struct ggml_tensor *x,
                                   struct ggml_tensor *weight);

/* Rotates q or k [head_dim, heads, n] at the step's positions (a windowed layer's base). */
struct ggml_tensor *block_rope(const layer_step *st, struct ggml_tensor *x, bool swa);
/* Cells of a cache with `cells` per sequence that a step of n tokens at pos reads: every
 * position so far, until a window's ring is full. The attention's view and its mask agree
 * on this. */
static inline int block_cache_span(int pos, int n, int cells) {
    return pos + n < cells ? pos + n : cells;
}
/* Appends the step's keys k [k_dim, heads_kv, n] and values v (NULL: a cache of keys only,
 * whose values are the first v_dim of each key, as latent attention has) to the cells of
 * their sequences, then attends each sequence's queries q [head_dim, heads, n] over that
 * sequence's cells alone: [v_dim, heads, n]. The layer's window picks the masks; sinks may
 * be NULL. The writes are expanded into the graph first, so they come before the reads:
 * the CPU backend runs nodes in graph order. */
struct ggml_tensor *block_cache_attention(const layer_step *st, const layer_weights *w,
                                          struct ggml_tensor *q, struct ggml_tensor *k,
                                          struct ggml_tensor *v, int v_dim, float scale,
                                          struct ggml_tensor *sinks);

/* How a family's attention differs from plain multi-head attention with rope. */
typedef struct attention_options {
    bool scale_q_first; /* multiply q by the scale before attending (phi3, gemma3) */
} attention_options;

/* Self-attention of the new tokens over the sequence's cells: projects q, k and v (split
 * from a fused matrix where there is one), normalizes q and k per head where the layer
 * has those norms, rotates them, appends k and v to the cache, attends (with sinks and the
 * sliding window where the layer has them) and projects the result back. */
struct ggml_tensor *block_attention(const layer_step *st, const layer_weights *w,
                                    struct ggml_tensor *x, const attention_options *opt);

typedef enum ffn_activation { FFN_SWIGLU, FFN_GEGLU, FFN_SWIGLU_OAI } ffn_activation;

/* A gated feed-forward network: down(act(gate x) * up x); with no gate matrix, the up
 * matrix holds gate and up rows together (phi3). */
struct ggml_tensor *block_ffn(const layer_step *st, const layer_weights *w, struct ggml_tensor *x,
                              ffn_activation act);

/* A mixture of experts: the router picks n_expert_used experts per token and their
 * outputs are summed with the router's weights, plus the shared experts' output where the
 * layer has them. Only the chosen experts are computed. */
struct ggml_tensor *block_moe(const layer_step *st, const layer_weights *w, struct ggml_tensor *x,
                              ffn_activation act);

/* ---- the families (arch_*.c) ---- */

struct ggml_tensor *llama_layer(const layer_step *st, const layer_weights *w,
                                struct ggml_tensor *x);
struct ggml_tensor *gemma3_layer(const layer_step *st, const layer_weights *w,
                                 struct ggml_tensor *x);
struct ggml_tensor *phi3_layer(const layer_step *st, const layer_weights *w, struct ggml_tensor *x);
struct ggml_tensor *glm4moe_layer(const layer_step *st, const layer_weights *w,
                                  struct ggml_tensor *x);
struct ggml_tensor *deepseek2_layer(const layer_step *st, const layer_weights *w,
                                    struct ggml_tensor *x);
struct ggml_tensor *gpt_oss_layer(const layer_step *st, const layer_weights *w,
                                  struct ggml_tensor *x);

#endif
