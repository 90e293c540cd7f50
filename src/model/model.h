/*
 * model: a GGUF model file as cairn understands it. Opens and validates the file (every
 * header field, offset and shape is checked before anything trusts it), reads metadata with
 * type-checked accessors, derives the transformer's hyperparameters, and locates tensors in
 * the read-only file mapping.
 *
 * Owns the gguf_context and the mapping of one file. Must never compute with tensors, never
 * touch tensor data it was not asked for (a shard maps only its own layers' pages), and
 * never abort on bad input: every defect becomes one clear error.
 */
#ifndef CAIRN_MODEL_H
#define CAIRN_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "platform/platform.h"
#include "util/util.h"

struct gguf_context;

/* ---- metadata access: never aborts on a wrong type, unlike gguf_get_val_* ---- */

/* Reads an integer key of any integer type (or bool) that fits in int64; returns 1 if found,
 * 0 if absent, -1 with err if present with a non-integer type. */
int cairn_meta_int(const struct gguf_context *g, const char *key, int64_t *out, cairn_err *err);
/* Reads a float32/float64 (or integer) key. Same return convention. */
int cairn_meta_float(const struct gguf_context *g, const char *key, double *out, cairn_err *err);
/* Reads a string key; *out points into the gguf_context. Same return convention. */
int cairn_meta_str(const struct gguf_context *g, const char *key, const char **out, cairn_err *err);
/* Reads a bool key. Same return convention. */
int cairn_meta_bool(const struct gguf_context *g, const char *key, bool *out, cairn_err *err);
/* Finds an array key of the given gguf element type; returns its length via *n. Same return
 * convention (-1 if the key is not an array of that type). */
int cairn_meta_array(const struct gguf_context *g, const char *key, int elem_type, size_t *n,
                     cairn_err *err);

/* ---- hyperparameters ---- */

typedef enum cairn_arch {
    CAIRN_ARCH_LLAMA,    /* Llama 2/3.x, Mistral, TinyLlama, SmolLM; Mixtral with experts */
    CAIRN_ARCH_QWEN2,    /* biases on q/k/v */
    CAIRN_ARCH_QWEN3,    /* per-head RMS norms on q and k */
    CAIRN_ARCH_QWEN3MOE, /* qwen3 attention, every layer a mixture of experts */
    CAIRN_ARCH_GEMMA3,   /* sliding-window and global layers, post norms, GELU, scaled embeddings */
    CAIRN_ARCH_PHI3,     /* fused qkv and gate/up matrices */
    CAIRN_ARCH_GPT_OSS,  /* attention sinks, alternating windows, biased experts */
    CAIRN_ARCH_GLM4MOE,  /* dense lead layers, sigmoid router with a bias, a shared expert */
    CAIRN_ARCH_DEEPSEEK2, /* multi-head latent attention; DeepSeek V2/V3, Kimi K2 */
    CAIRN_ARCH_COUNT
} cairn_arch;

typedef enum cairn_rope_scaling {
    CAIRN_ROPE_SCALING_NONE,
    CAIRN_ROPE_SCALING_LINEAR,
    CAIRN_ROPE_SCALING_YARN,
} cairn_rope_scaling;

/* How a mixture-of-experts layer turns router logits into expert weights (the values of
 * the GGUF key <arch>.expert_gating_func). */
typedef enum cairn_gating {
    CAIRN_GATING_SOFTMAX = 1,        /* softmax over all experts, then top-k */
    CAIRN_GATING_SIGMOID = 2,        /* sigmoid per expert, then top-k */
    CAIRN_GATING_SOFTMAX_WEIGHT = 3, /* top-k of the logits, softmax over the chosen */
} cairn_gating;

typedef struct cairn_hparams {
    cairn_arch arch;
    char arch_name[32];
    int n_vocab;
    int n_ctx_train;
    int n_embd;
    int n_layer;
    int n_head;
    int n_head_kv;
    int n_ff;
    int head_dim_k; /* per-head size of keys and queries */
    int head_dim_v; /* per-head size of values */
    int rope_dims;  /* leading dimensions of each head that are rotated */
    float rope_freq_base;
    float rope_freq_scale; /* 1 / linear scaling factor */
    cairn_rope_scaling rope_scaling;
    int rope_orig_ctx;      /* training context before scaling (YaRN) */
    float yarn_ext_factor;  /* 1 with YaRN scaling, else 0 */
    float yarn_attn_factor; /* 1 unless the file says otherwise */
    float yarn_beta_fast;
    float yarn_beta_slow;
    float norm_eps;
    bool has_rope_freqs;  /* per-dimension frequency factors (Llama 3.1+ scaling) */
    bool tied_embeddings; /* no output.weight: the head reuses token_embd */
    /* Mixture of experts; n_expert 0 for dense models. */
    int n_expert;
    int n_expert_used; /* experts each token is routed to */
    int n_ff_exp;      /* hidden size of one expert */
    cairn_gating gating;
    bool expert_weights_norm;   /* the chosen experts' weights are scaled to sum to 1 */
    float expert_weights_scale; /* then multiplied by this (1: unchanged) */
    int n_expert_shared;        /* experts every token goes through, as one wider network */
    int n_layer_dense_lead;     /* the first layers have a dense network instead */
    int n_expert_groups;        /* routing first picks n_group_used of this many groups */
    int n_group_used;
    int n_layer_nextn; /* trailing next-token-prediction blocks in the file; not run */
    /* Sliding-window attention: layer il sees only the last n_swa positions when
     * cairn_layer_is_swa says so; such layers rotate with rope_freq_base_swa. */
    int n_swa;      /* 0: every layer is global */
    int swa_period; /* of every swa_period layers, all but the last use the window */
    float rope_freq_base_swa;
    float attn_scale;   /* the factor on q.k before the softmax */
    float yarn_log_mul; /* DeepSeek's YaRN attention-temperature multiplier; 0: none */
    /* Multi-head latent attention (deepseek2): keys and values are decompressed per head
     * from one cached latent of kv_lora_rank values plus rope_dims rotated ones, so the
     * cache holds head_dim_k (= kv_lora_rank + rope_dims) values per position, once. */
    int q_lora_rank; /* 0: queries from one matrix */
    int kv_lora_rank;
    int mla_head_dim_k; /* per-head query/key size after decompression (rotated part included) */
    int mla_head_dim_v;
} cairn_hparams;

/* Whether q and k rotate as two halves per head ("neox"); llama and DeepSeek files store
 * them interleaved for rope's "normal" mode instead. */
bool cairn_rope_is_neox(const cairn_hparams *hp);
/* Whether layer il's network is a mixture of experts (else it is dense). */
bool cairn_layer_has_experts(const cairn_hparams *hp, int il);
/* Whether layer il attends over a sliding window rather than the whole context. */
bool cairn_layer_is_swa(const cairn_hparams *hp, int il);

/* Values one cell of a layer's cache holds: its keys, and its values unless attention is
 * latent (whose values are a part of the keys). */
uint64_t cairn_kv_cell_values(const cairn_hparams *hp);

/* The most tokens the engine computes in one step when not configured otherwise. */
#define CAIRN_DEFAULT_BATCH 512
/* Cells per sequence a sliding-window layer's cache needs: the window plus one step's new
 * tokens but the first (the oldest key a step's first token sees is n_swa - 1 back), at
 * most the context. Positions wrap around these cells. */
int cairn_swa_cells(const cairn_hparams *hp, int n_ctx, int n_batch);

/* ---- the tensors of one layer, as each architecture names and shapes them ---- */

typedef enum cairn_layer_tensor {
    CAIRN_LT_ATTN_NORM,
    CAIRN_LT_ATTN_Q,
    CAIRN_LT_ATTN_K,
    CAIRN_LT_ATTN_V,
    CAIRN_LT_ATTN_QKV, /* q, k and v in one matrix (phi3) */
    CAIRN_LT_ATTN_OUT,
    CAIRN_LT_ATTN_Q_BIAS,
    CAIRN_LT_ATTN_K_BIAS,
    CAIRN_LT_ATTN_V_BIAS,
    CAIRN_LT_ATTN_OUT_BIAS,
    CAIRN_LT_ATTN_Q_NORM,
    CAIRN_LT_ATTN_K_NORM,
    CAIRN_LT_ATTN_POST_NORM,
    CAIRN_LT_ATTN_SINKS,
    CAIRN_LT_FFN_NORM,
    CAIRN_LT_FFN_GATE,
    CAIRN_LT_FFN_UP, /* phi3: gate and up in one matrix of 2 * n_ff rows */
    CAIRN_LT_FFN_DOWN,
    CAIRN_LT_FFN_POST_NORM,
    CAIRN_LT_FFN_GATE_INP, /* the router */
    CAIRN_LT_FFN_GATE_INP_BIAS,
    CAIRN_LT_FFN_GATE_EXPS,
    CAIRN_LT_FFN_UP_EXPS,
    CAIRN_LT_FFN_DOWN_EXPS,
    CAIRN_LT_FFN_GATE_EXPS_BIAS,
    CAIRN_LT_FFN_UP_EXPS_BIAS,
    CAIRN_LT_FFN_DOWN_EXPS_BIAS,
    CAIRN_LT_FFN_EXP_PROBS_B, /* added to the router's scores to choose, not to weigh */
    CAIRN_LT_FFN_GATE_SHEXP,
    CAIRN_LT_FFN_UP_SHEXP,
    CAIRN_LT_FFN_DOWN_SHEXP,
    CAIRN_LT_ATTN_Q_A, /* multi-head latent attention (deepseek2) */
    CAIRN_LT_ATTN_Q_A_NORM,
    CAIRN_LT_ATTN_Q_B,
    CAIRN_LT_ATTN_KV_A_MQA,
    CAIRN_LT_ATTN_KV_A_NORM,
    CAIRN_LT_ATTN_K_B,
    CAIRN_LT_ATTN_V_B,
    CAIRN_LT_COUNT
} cairn_layer_tensor;

/* The file name of a layer tensor after "blk.N.", e.g. "attn_q.weight". */
const char *cairn_layer_tensor_name(cairn_layer_tensor t);

typedef struct cairn_tensor_spec {
    cairn_layer_tensor role;
    bool matrix;   /* multiplied with activations: any type the CPU computes with; else F32 */
    int64_t ne[3]; /* the shape; trailing dimensions of 1 do not count */
    bool required;
} cairn_tensor_spec;

/* The tensors layer il of a model with these hyperparameters has or may have, in the
 * order they are used; returns how many were written to out. */
int cairn_layer_specs(const cairn_hparams *hp, int il, cairn_tensor_spec out[CAIRN_LT_COUNT]);

/* ---- the file ---- */

/* One tensor as the file describes it, already validated against the file's size. */
typedef struct cairn_tensor_info {
    const char *name; /* points into the gguf_context */
    int type;         /* enum ggml_type */
    int n_dims;       /* as ggml_n_dims: trailing dimensions of size 1 do not count */
    int64_t ne[4];    /* all > 0; unused dimensions are 1 */
    uint64_t offset;  /* absolute byte offset in the file */
    uint64_t size;    /* bytes */
} cairn_tensor_info;

typedef struct cairn_model_file {
    char *path;
    struct gguf_context *gguf; /* metadata and tensor directory, no tensor data */
    cairn_mapped_file map;     /* the whole file, read-only; pages load on first touch */
    cairn_hparams hp;
    bool has_hparams; /* false for vocab-only files */
    int64_t n_tensors;
    cairn_tensor_info *tensors; /* n_tensors entries */
} cairn_model_file;

/* Opens and validates a GGUF file: header, metadata, every tensor's type, shape, offset and
 * size (inside the file, no overlaps), and (when the file has weights) the hyperparameters
 * and the presence and shape of every tensor the architecture needs. */
int cairn_model_open(const char *path, cairn_model_file **out, cairn_err *err);
/* Like cairn_model_open, but accepts files without weights (vocab-only GGUF). */
int cairn_model_open_metadata(const char *path, cairn_model_file **out, cairn_err *err);
void cairn_model_close(cairn_model_file *m);

/* The tensor called name, or NULL. */
const cairn_tensor_info *cairn_model_tensor(const cairn_model_file *m, const char *name);
/* Bytes of tensor data a shard [first, last) needs, counting embeddings on the first shard
 * and the output norm and head on the last (the token embedding again when the head is tied
 * to it), and rope_freqs on every shard. 0 for an empty or out-of-range layer range, and for
 * files opened without hyperparameters. */
uint64_t cairn_model_shard_bytes(const cairn_model_file *m, int first, int last);

/* ---- memory footprint, for placing a model by layers (src/model/footprint.c) ---- */

typedef struct cairn_footprint {
    uint32_t n_layers;
    int n_ctx;                   /* positions per sequence, resolved as the engine resolves them */
    int n_seq;                   /* sequences (KV slots) */
    uint64_t layer_weight_bytes; /* the tensors of all repeating blocks together */
    uint64_t layer_kv_bytes;     /* a layer's K and V cache (F16) for n_ctx x n_seq cells, on
                                    average (window layers hold fewer cells, latent attention
                                    keys alone) */
    uint64_t shared_bytes;       /* tensors every shard loads (rope_freqs) */
    /* One layer for placement: its average weights (rounded up), its KV cache, and the
     * shared tensors (counted once per layer: a safe overestimate, they are small). */
    uint64_t layer_bytes;
    uint64_t embd_bytes; /* extra on the first shard: the token embeddings */
    /* Extra on the last shard: the output norm and output matrix, or with tied embeddings
     * the token embeddings it maps again (counted even when one shard is both). */
    uint64_t head_bytes;
} cairn_footprint;

/* The footprint of an open model with the engine's KV cache for n_ctx positions (0: the
 * training context, at most 4096, exactly as cairn_shard_config.n_ctx) of n_seq sequences
 * (0: 1). Fails for files without layers. */
int cairn_model_footprint_of(const cairn_model_file *m, int n_ctx, int n_seq, cairn_footprint *out,
                             cairn_err *err);
/* The same for a file, opened (validated, mapped, no tensor data read) and closed again. */
int cairn_model_footprint(const char *path, int n_ctx, int n_seq, cairn_footprint *out,
                          cairn_err *err);

const char *cairn_arch_name(cairn_arch arch);
/* The architecture called name (general.architecture); -1 if cairn does not run it. */
int cairn_arch_from_name(const char *name, cairn_arch *out);

#endif
