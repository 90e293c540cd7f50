/*
 * cairn-genmodel: writes a GGUF model with random weights in the exact tensor shapes and
 * metadata of a real model (llama.cpp's tensor names and keys), so benchmarks and engine
 * tests can run on realistic sizes without downloading trained weights.
 *
 * The weights are not a trained model: outputs are gibberish by design. What is real is
 * everything that decides speed and memory: shapes, types, layout, vocabulary size. Every
 * tensor type ggml's CPU backend computes with is available (gm_types), so tests can check
 * the engine on each against the same weights in F32: a seed gives the same values in every
 * type, before rounding.
 *
 * The tokenizer is copied from a vocab-only GGUF (--vocab). When the shape's vocabulary is
 * larger than the file's, the token list is padded with unused control tokens
 * "<|cairn_pad_N|>" (N = token id) so token_embd/output keep their real shape; tiny shapes
 * take the vocabulary size of the file. Without --vocab a minimal SentencePiece-style
 * vocabulary (<unk>, <s>, </s>, the 256 byte tokens, then padding) is synthesized.
 *
 * Tensor data is streamed to the file tensor by tensor in bounded chunks, so GB-sized models
 * need only a few MiB of memory. Output goes to OUT.tmp first and is renamed on success, so a
 * file at OUT is always complete.
 *
 * tests/test_genmodel.c includes this file with CAIRN_GENMODEL_NO_MAIN defined.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"
#include "gguf.h"
#include "model/model.h"
#include "platform/platform.h"
#include "util/util.h"

#define GM_ALIGNMENT 32
#define GM_INIT_STD 0.02f
#define GM_NORM_STD 0.02f
/* Floats generated and quantized per step: bounds memory whatever the tensor size. */
#define GM_CHUNK_ELEMS (4u << 20)
#define GM_MAX_LAYERS 1024
#define GM_MAX_EXPERTS 4096
#define GM_MAX_WIDTH (1 << 20)
#define GM_MAX_VOCAB (1 << 22)
/* llama.cpp's token types */
#define GM_TOKEN_NORMAL 1
#define GM_TOKEN_UNKNOWN 2
#define GM_TOKEN_CONTROL 3
#define GM_TOKEN_BYTE 6
#define GM_MAX_STD 16.0f
#define GM_SYNTH_TINY_VOCAB 512

/* Llama 3.1+ "llama3" rope scaling; factor 0 means the model does not use it. */
typedef struct gm_llama3_rope {
    float factor;
    float low_freq_factor;
    float high_freq_factor;
    int orig_ctx;
} gm_llama3_rope;

#define GM_NO_LLAMA3                                                                               \
    { 0.0f, 0.0f, 0.0f, 0 }

/* What families other than dense llama-style models add: experts, sliding windows, YaRN. */
typedef struct gm_family {
    int n_expert, n_expert_used, n_ff_exp; /* 0 experts: dense */
    int n_swa;                             /* the sliding window; 0: none */
    float yarn_factor;                     /* 0: no YaRN scaling */
    int yarn_orig_ctx;
    int n_expert_shared;
    int n_dense_lead;  /* leading layers with a dense network */
    int gating;        /* written as expert_gating_func when not 0 */
    bool weights_norm; /* written as expert_weights_norm */
    int rope_dims;     /* 0: the whole head */
    int n_nextn;       /* next-token-prediction blocks counted in block_count, not written */
    /* latent attention (deepseek2): the shape's head_dim is kv_lora + rope_dims */
    int kv_lora, q_lora, mla_k, mla_v;
    float yarn_log_mul;          /* as the file stores it: 0.1 * mscale_all_dim */
    int n_groups, n_groups_used; /* group-limited routing; 0: none */
    float weights_scale;         /* written as expert_weights_scale when not 0 */
    bool selection_bias;         /* exp_probs_b.bias, where the family has it optionally */
} gm_family;

#define GM_DENSE                                                                                   \
    { 0, 0, 0, 0, 0.0f, 0, 0, 0, 0, false, 0, 0, 0, 0, 0, 0, 0.0f, 0, 0, 0.0f, false }

typedef struct gm_shape {
    const char *name;
    const char *arch;
    const char *model_name;
    int n_layer, n_embd, n_head, n_head_kv;
    int head_dim;        /* 0: n_embd / n_head */
    bool write_head_dim; /* the original config names head_dim, so converters write it */
    int n_ff;
    int n_vocab; /* 0: the vocabulary file's size */
    int n_ctx;
    float rope_base;
    float norm_eps;
    bool tied;     /* no output.weight: the head reuses token_embd */
    bool qkv_bias; /* qwen2 */
    bool qk_norm;  /* qwen3 */
    gm_llama3_rope llama3;
    const char *vocab_hint; /* the shared vocab file that fits this shape */
    gm_family family;       /* beyond a dense llama-style model */
} gm_shape;

/* Values from each model's published config.json. */
static const gm_shape gm_shapes[] = {
    {"tinyllama-1.1b",
     "llama",
     "TinyLlama 1.1B (random weights)",
     22,
     2048,
     32,
     4,
     0,
     false,
     5632,
     32000,
     2048,
     10000.0f,
     1e-5f,
     false,
     false,
     false,
     GM_NO_LLAMA3,
     "ggml-vocab-llama-spm.gguf",
     GM_DENSE},
    {"llama-3.2-1b",
     "llama",
     "Llama 3.2 1B (random weights)",
     16,
     2048,
     32,
     8,
     64,
     true,
     8192,
     128256,
     131072,
     500000.0f,
     1e-5f,
     true,
     false,
     false,
     {32.0f, 1.0f, 4.0f, 8192},
     "ggml-vocab-gpt-2.gguf",
     GM_DENSE},
    {"qwen2.5-0.5b",
     "qwen2",
     "Qwen2.5 0.5B (random weights)",
     24,
     896,
     14,
     2,
     0,
     false,
     4864,
     151936,
     32768,
     1000000.0f,
     1e-6f,
     true,
     true,
     false,
     GM_NO_LLAMA3,
     "ggml-vocab-gpt-2.gguf",
     GM_DENSE},
    {"qwen3-0.6b",
     "qwen3",
     "Qwen3 0.6B (random weights)",
     28,
     1024,
     16,
     8,
     128,
     true,
     3072,
     151936,
     40960,
     1000000.0f,
     1e-6f,
     true,
     false,
     true,
     GM_NO_LLAMA3,
     "ggml-vocab-gpt-2.gguf",
     GM_DENSE},
    {"tiny-llama",
     "llama",
     "tiny llama (random weights)",
     4,
     64,
     4,
     2,
     0,
     false,
     128,
     0,
     2048,
     10000.0f,
     1e-5f,
     false,
     false,
     false,
     GM_NO_LLAMA3,
     "ggml-vocab-llama-spm.gguf",
     GM_DENSE},
    /* every matrix row (embd 256, ffn 512 for ffn_down) a whole number of the K-quants'
     * 256-element super-blocks, so K-quant files hold no fallback types */
    {"tiny-llama-256",
     "llama",
     "tiny llama 256 (random weights)",
     2,
     256,
     4,
     2,
     0,
     false,
     512,
     0,
     2048,
     10000.0f,
     1e-5f,
     false,
     false,
     false,
     GM_NO_LLAMA3,
     "ggml-vocab-llama-spm.gguf",
     GM_DENSE},
    {"tiny-llama3",
     "llama",
     "tiny llama3 (random weights)",
     4,
     64,
     4,
     2,
     16,
     true,
     128,
     0,
     8192,
     500000.0f,
     1e-5f,
     true,
     false,
     false,
     {32.0f, 1.0f, 4.0f, 1024},
     "ggml-vocab-gpt-2.gguf",
     GM_DENSE},
    {"tiny-qwen2",
     "qwen2",
     "tiny qwen2 (random weights)",
     4,
     64,
     4,
     2,
     0,
     false,
     128,
     0,
     2048,
     1000000.0f,
     1e-6f,
     true,
     true,
     false,
     GM_NO_LLAMA3,
     "ggml-vocab-gpt-2.gguf",
     GM_DENSE},
    /* head_dim 32 with 4 heads: q is 128 wide while the embedding is 64, as in qwen3-0.6b */
    {"tiny-qwen3",
     "qwen3",
     "tiny qwen3 (random weights)",
     4,
     64,
     4,
     2,
     32,
     true,
     128,
     0,
     2048,
     1000000.0f,
     1e-6f,
     true,
     false,
     true,
     GM_NO_LLAMA3,
     "ggml-vocab-gpt-2.gguf",
     GM_DENSE},
    /* Real configurations of the families beyond llama (their config.json); tests take
     * fewer layers and a smaller vocabulary where the full one is not needed. */
    {.name = "qwen3moe-30b-a3b",
     .arch = "qwen3moe",
     .model_name = "Qwen3 30B-A3B (random weights)",
     .n_layer = 48,
     .n_embd = 2048,
     .n_head = 32,
     .n_head_kv = 4,
     .head_dim = 128,
     .write_head_dim = true,
     .n_ff = 6144,
     .n_vocab = 151936,
     .n_ctx = 40960,
     .rope_base = 1000000.0f,
     .norm_eps = 1e-6f,
     .qk_norm = true,
     .vocab_hint = "ggml-vocab-gpt-2.gguf",
     .family = {.n_expert = 128, .n_expert_used = 8, .n_ff_exp = 768}},
    {.name = "mixtral-8x7b",
     .arch = "llama",
     .model_name = "Mixtral 8x7B (random weights)",
     .n_layer = 32,
     .n_embd = 4096,
     .n_head = 32,
     .n_head_kv = 8,
     .n_ff = 14336,
     .n_vocab = 32000,
     .n_ctx = 32768,
     .rope_base = 1000000.0f,
     .norm_eps = 1e-5f,
     .vocab_hint = "ggml-vocab-llama-spm.gguf",
     .family = {.n_expert = 8, .n_expert_used = 2, .n_ff_exp = 14336}},
    {.name = "gemma3-1b",
     .arch = "gemma3",
     .model_name = "Gemma 3 1B (random weights)",
     .n_layer = 26,
     .n_embd = 1152,
     .n_head = 4,
     .n_head_kv = 1,
     .head_dim = 256,
     .write_head_dim = true,
     .n_ff = 6912,
     .n_vocab = 262144,
     .n_ctx = 32768,
     .rope_base = 1000000.0f,
     .norm_eps = 1e-6f,
     .tied = true,
     .qk_norm = true,
     .vocab_hint = "ggml-vocab-llama-spm.gguf",
     .family = {.n_swa = 512}},
    {.name = "phi3-mini-4k",
     .arch = "phi3",
     .model_name = "Phi-3 mini 4k (random weights)",
     .n_layer = 32,
     .n_embd = 3072,
     .n_head = 32,
     .n_head_kv = 32,
     .n_ff = 8192,
     .n_vocab = 32064,
     .n_ctx = 4096,
     .rope_base = 10000.0f,
     .norm_eps = 1e-5f,
     .vocab_hint = "ggml-vocab-phi-3.gguf"},
    {.name = "glm-4.5-air",
     .arch = "glm4moe",
     .model_name = "GLM 4.5 Air (random weights)",
     .n_layer = 46,
     .n_embd = 4096,
     .n_head = 96,
     .n_head_kv = 8,
     .head_dim = 128,
     .write_head_dim = true,
     .n_ff = 10944,
     .n_vocab = 151552,
     .n_ctx = 131072,
     .rope_base = 1000000.0f,
     .norm_eps = 1e-5f,
     .qkv_bias = true,
     .vocab_hint = "ggml-vocab-gpt-2.gguf",
     .family = {.n_expert = 128,
                .n_expert_used = 8,
                .n_ff_exp = 1408,
                .n_expert_shared = 1,
                .n_dense_lead = 1,
                .gating = 2,
                .weights_norm = true,
                .rope_dims = 64,
                .n_nextn = 1}},
    {.name = "deepseek-v2-lite",
     .arch = "deepseek2",
     .model_name = "DeepSeek V2 Lite (random weights)",
     .n_layer = 27,
     .n_embd = 2048,
     .n_head = 16,
     .n_head_kv = 1,
     .head_dim = 576,
     .write_head_dim = true,
     .n_ff = 10944,
     .n_vocab = 102400,
     .n_ctx = 163840,
     .rope_base = 10000.0f,
     .norm_eps = 1e-6f,
     .vocab_hint = "ggml-vocab-gpt-2.gguf",
     .family = {.n_expert = 64,
                .n_expert_used = 6,
                .n_ff_exp = 1408,
                .n_expert_shared = 2,
                .n_dense_lead = 1,
                .gating = 1,
                .weights_norm = false,
                .rope_dims = 64,
                .yarn_factor = 40.0f,
                .yarn_orig_ctx = 4096,
                .kv_lora = 512,
                .mla_k = 192,
                .mla_v = 128,
                .yarn_log_mul = 0.0707f}},
    /* DeepSeek V3's router (sigmoid scores, a selection bias, 8 groups of which 4 are
     * kept, scaled weights) and query compression at a fraction of its widths: V3 itself
     * needs 12 GB per layer even at Q8_0. */
    {.name = "deepseek-v3-small",
     .arch = "deepseek2",
     .model_name = "DeepSeek V3 routing, small widths (random weights)",
     .n_layer = 4,
     .n_embd = 1024,
     .n_head = 16,
     .n_head_kv = 1,
     .head_dim = 576,
     .write_head_dim = true,
     .n_ff = 2048,
     .n_vocab = 129280,
     .n_ctx = 163840,
     .rope_base = 10000.0f,
     .norm_eps = 1e-6f,
     .vocab_hint = "ggml-vocab-gpt-2.gguf",
     .family = {.n_expert = 64,
                .n_expert_used = 8,
                .n_ff_exp = 256,
                .n_expert_shared = 1,
                .n_dense_lead = 1,
                .gating = 2,
                .weights_norm = true,
                .rope_dims = 64,
                .yarn_factor = 40.0f,
                .yarn_orig_ctx = 4096,
                .kv_lora = 512,
                .q_lora = 384,
                .mla_k = 192,
                .mla_v = 128,
                .yarn_log_mul = 0.1f,
                .n_groups = 8,
                .n_groups_used = 4,
                .weights_scale = 2.5f,
                .selection_bias = true}},
    {.name = "gpt-oss-20b",
     .arch = "gpt-oss",
     .model_name = "gpt-oss 20B (random weights)",
     .n_layer = 24,
     .n_embd = 2880,
     .n_head = 64,
     .n_head_kv = 8,
     .head_dim = 64,
     .write_head_dim = true,
     .n_ff = 2880,
     .n_vocab = 201088,
     .n_ctx = 131072,
     .rope_base = 150000.0f,
     .norm_eps = 1e-5f,
     .qkv_bias = true,
     .vocab_hint = "ggml-vocab-gpt-2.gguf",
     .family = {.n_expert = 32,
                .n_expert_used = 4,
                .n_ff_exp = 2880,
                .n_swa = 128,
                .yarn_factor = 32.0f,
                .yarn_orig_ctx = 4096}},
};

typedef struct gm_options {
    const char *shape;
    const char *type; /* a name in gm_types */
    const char *out_path;
    const char *vocab_path; /* NULL: synthesized vocabulary */
    int n_layers;           /* 0: the shape's */
    int n_experts;          /* routed experts kept; 0: the shape's */
    int n_ff_exp;           /* each expert's width; 0: the shape's */
    int n_swa;              /* the sliding window of a shape that has one; 0: the shape's */
    int n_vocab;            /* 0: the shape's (or the file's for tiny shapes) */
    uint64_t seed;
    float weight_std; /* of the weight matrices; 0: GM_INIT_STD */
} gm_options;

typedef struct gm_stats {
    int n_tensors;
    int n_vocab;
    int n_pad_tokens;
    uint64_t file_bytes;
    double seconds;
} gm_stats;

typedef enum gm_kind {
    GM_MATRIX,     /* random, the requested type */
    GM_NORM,       /* about 1, F32 */
    GM_BIAS,       /* random, F32 */
    GM_ROPE_FREQS, /* computed llama3 frequency divisors, F32 */
} gm_kind;

typedef struct gm_tensor_spec {
    char name[GGML_MAX_NAME];
    gm_kind kind;
    int64_t ne0, ne1; /* ne1 is 1 for vectors */
    int64_t ne2;      /* experts; 1 for everything else */
} gm_tensor_spec;

/* Everything one generation run owns; gm_plan_free releases it. */
typedef struct gm_plan {
    const gm_shape *shape;
    gm_shape resolved; /* the shape with layer count and vocabulary settled */
    const struct gm_type_info *wtype;
    float weight_std;
    gm_tensor_spec *tensors;
    int n_tensors;
    struct gguf_context *vocab; /* NULL when synthesized */
    struct gguf_context *out;
    struct ggml_context *meta_ctx;
    int n_vocab_file;
} gm_plan;

/* ---- random numbers: cairn_rng, seeded per tensor ---- */

typedef cairn_rng gm_rng;

/* Each tensor's stream depends only on the seed and its name, so a tensor's values do not
 * change with --layers or with the order tensors are written in. */
static void gm_rng_for_tensor(gm_rng *r, uint64_t seed, const char *name) {
    uint64_t h = 0xCBF29CE484222325ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h = (h ^ *p) * 0x100000001B3ull;
    }
    uint64_t x = seed ^ h;
    for (int i = 0; i < 4; i++) {
        r->s[i] = cairn_splitmix64(&x);
    }
}

/* Normal-ish values: the sum of four 16-bit uniforms (Irwin-Hall), rescaled to mean 0 and
 * standard deviation std. Bounded at 3.46 std and far cheaper than Box-Muller, which
 * matters at a billion values. */
static void gm_fill_normalish(gm_rng *r, float *out, size_t n, float mean, float std) {
    const float scale = std * 1.7320508f / 65536.0f; /* sqrt(12 / 4) per unit uniform */
    for (size_t i = 0; i < n; i++) {
        uint64_t v = cairn_rng_next(r);
        uint32_t sum = (uint32_t)(v & 0xFFFF) + (uint32_t)((v >> 16) & 0xFFFF) +
                       (uint32_t)((v >> 32) & 0xFFFF) + (uint32_t)(v >> 48);
        out[i] = mean + ((float)sum - 2.0f * 65535.5f) * scale;
    }
}

/* ---- shapes and types ---- */

static const gm_shape *gm_find_shape(const char *name) {
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(gm_shapes); i++) {
        if (strcmp(gm_shapes[i].name, name) == 0) {
            return &gm_shapes[i];
        }
    }
    return NULL;
}

/* The weight types: every type ggml's CPU backend computes with that quantizes without an
 * importance matrix. file_type is llama.cpp's general.file_type for a file of that type; a
 * K-quant maps to its "_S" mix, whose main type it is. fallback serves rows the type's block
 * size does not divide: for K-quants the types llama.cpp's quantizer falls back to, F16 for
 * the others (whose 32-value blocks fit every real model's rows anyway). */
typedef struct gm_type_info {
    const char *name;
    enum ggml_type type;
    uint32_t file_type;
    enum ggml_type fallback;
} gm_type_info;

static const gm_type_info gm_types[] = {
    {"F32", GGML_TYPE_F32, 0, GGML_TYPE_F32},       {"F16", GGML_TYPE_F16, 1, GGML_TYPE_F16},
    {"BF16", GGML_TYPE_BF16, 32, GGML_TYPE_BF16},   {"Q8_0", GGML_TYPE_Q8_0, 7, GGML_TYPE_F16},
    {"Q4_0", GGML_TYPE_Q4_0, 2, GGML_TYPE_F16},     {"Q4_1", GGML_TYPE_Q4_1, 3, GGML_TYPE_F16},
    {"Q5_0", GGML_TYPE_Q5_0, 8, GGML_TYPE_F16},     {"Q5_1", GGML_TYPE_Q5_1, 9, GGML_TYPE_F16},
    {"Q2_K", GGML_TYPE_Q2_K, 10, GGML_TYPE_IQ4_NL}, {"Q3_K", GGML_TYPE_Q3_K, 11, GGML_TYPE_IQ4_NL},
    {"Q4_K", GGML_TYPE_Q4_K, 14, GGML_TYPE_Q5_0},   {"Q5_K", GGML_TYPE_Q5_K, 16, GGML_TYPE_Q5_1},
    {"Q6_K", GGML_TYPE_Q6_K, 18, GGML_TYPE_Q8_0},
};

static const gm_type_info *gm_find_type(const char *name) {
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(gm_types); i++) {
        if (strcmp(gm_types[i].name, name) == 0) {
            return &gm_types[i];
        }
    }
    return NULL;
}

static int gm_parse_type(const char *s, const gm_type_info **out, cairn_err *err) {
    *out = gm_find_type(s);
    if (*out == NULL) {
        return cairn_fail(err, "unknown type '%.32s' (see --help)", s);
    }
    if (ggml_quantize_requires_imatrix((*out)->type)) {
        return cairn_fail(err, "type %s needs an importance matrix", s);
    }
    return 0;
}

static int gm_head_dim(const gm_shape *s) {
    return s->head_dim > 0 ? s->head_dim : s->n_embd / s->n_head;
}

/* Weight matrices, token_embd and output included, take the requested type, like
 * llama.cpp's quantizer with --pure. Its default K-quant recipes keep token_embd and the
 * output head in Q4_K..Q6_K; one type everywhere instead makes every type also go through
 * get_rows (the embedding lookup), not only through matrix products. A row length the
 * type's block size does not divide takes the type's fallback, then F16. */
static enum ggml_type gm_tensor_type(const gm_plan *p, const gm_tensor_spec *t) {
    if (t->kind != GM_MATRIX) {
        return GGML_TYPE_F32;
    }
    const enum ggml_type tries[] = {p->wtype->type, p->wtype->fallback};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(tries); i++) {
        if (t->ne0 % ggml_blck_size(tries[i]) == 0) {
            return tries[i];
        }
    }
    return GGML_TYPE_F16;
}

/* ---- the tensor list ---- */

static void gm_spec(gm_tensor_spec *out, int *n, const char *name, gm_kind kind, int64_t ne0,
                    int64_t ne1) {
    gm_tensor_spec *t = &out[(*n)++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->kind = kind;
    t->ne0 = ne0;
    t->ne1 = ne1;
    t->ne2 = 1;
}

/* The shape as cairn's model module describes a file of it: the tensor list of each layer
 * comes from there (cairn_layer_specs), so a file written here holds exactly the tensors the
 * family has. Whether those are the names and shapes real files use is what running the
 * files through the reference implementation checks. */
static cairn_hparams gm_hparams(const gm_shape *s) {
    cairn_hparams hp = {0};
    if (cairn_arch_from_name(s->arch, &hp.arch) != 0) {
        hp.arch = CAIRN_ARCH_LLAMA;
    }
    hp.n_embd = s->n_embd;
    hp.n_head = s->n_head;
    hp.n_head_kv = s->n_head_kv;
    hp.head_dim_k = hp.head_dim_v = gm_head_dim(s);
    hp.n_ff = s->n_ff;
    hp.n_expert = s->family.n_expert;
    hp.n_expert_used = s->family.n_expert_used;
    hp.n_ff_exp = s->family.n_ff_exp;
    hp.n_expert_shared = s->family.n_expert_shared;
    hp.n_layer_dense_lead = s->family.n_dense_lead;
    hp.rope_dims = s->family.rope_dims > 0 ? s->family.rope_dims : hp.head_dim_k;
    hp.kv_lora_rank = s->family.kv_lora;
    hp.q_lora_rank = s->family.q_lora;
    hp.mla_head_dim_k = s->family.mla_k;
    hp.mla_head_dim_v = s->family.mla_v;
    if (hp.kv_lora_rank > 0) {
        hp.head_dim_v = hp.kv_lora_rank;
    }
    return hp;
}

static gm_kind gm_kind_of(const cairn_tensor_spec *t) {
    if (t->matrix) {
        return GM_MATRIX;
    }
    const char *name = cairn_layer_tensor_name(t->role);
    size_t len = strlen(name);
    return len > 11 && strcmp(name + len - 11, "norm.weight") == 0 ? GM_NORM : GM_BIAS;
}

static void gm_layer_specs(const gm_shape *s, int il, gm_tensor_spec *out, int *n) {
    cairn_hparams hp = gm_hparams(s);
    cairn_tensor_spec specs[CAIRN_LT_COUNT];
    int count = cairn_layer_specs(&hp, il, specs);
    for (int i = 0; i < count; i++) {
        const cairn_tensor_spec *t = &specs[i];
        bool qkv_bias = t->role == CAIRN_LT_ATTN_Q_BIAS || t->role == CAIRN_LT_ATTN_K_BIAS ||
                        t->role == CAIRN_LT_ATTN_V_BIAS;
        bool wanted = (qkv_bias && s->qkv_bias) ||
                      (t->role == CAIRN_LT_FFN_EXP_PROBS_B && s->family.selection_bias);
        if (!t->required && !wanted) {
            continue;
        }
        char name[GGML_MAX_NAME];
        snprintf(name, sizeof name, "blk.%d.%s", il, cairn_layer_tensor_name(t->role));
        gm_spec(out, n, name, gm_kind_of(t), t->ne[0], t->ne[1] > 0 ? t->ne[1] : 1);
        out[*n - 1].ne2 = t->ne[2] > 0 ? t->ne[2] : 1;
    }
}

enum { GM_MAX_PER_LAYER = CAIRN_LT_COUNT };

static int gm_build_specs(gm_plan *p, cairn_err *err) {
    const gm_shape *s = &p->resolved;
    p->tensors = calloc((size_t)s->n_layer * GM_MAX_PER_LAYER + 4, sizeof *p->tensors);
    if (p->tensors == NULL) {
        return cairn_fail(err, "out of memory for the tensor list");
    }
    int n = 0;
    gm_spec(p->tensors, &n, "token_embd.weight", GM_MATRIX, s->n_embd, s->n_vocab);
    if (s->llama3.factor > 0.0f) {
        gm_spec(p->tensors, &n, "rope_freqs.weight", GM_ROPE_FREQS, gm_head_dim(s) / 2, 1);
    }
    for (int il = 0; il < s->n_layer; il++) {
        gm_layer_specs(s, il, p->tensors, &n);
    }
    gm_spec(p->tensors, &n, "output_norm.weight", GM_NORM, s->n_embd, 1);
    if (!s->tied) {
        gm_spec(p->tensors, &n, "output.weight", GM_MATRIX, s->n_embd, s->n_vocab);
    }
    p->n_tensors = n;
    return 0;
}

/* ---- tokenizer metadata ---- */

static int gm_load_vocab(gm_plan *p, const char *path, cairn_err *err) {
    struct gguf_init_params params = {.no_alloc = true, .ctx = NULL};
    FILE *probe = cairn_fopen(path, "rb");
    if (probe == NULL) {
        return cairn_fail(err, "cannot open vocab file %s: %s", path, strerror(errno));
    }
    fclose(probe);
    p->vocab = gguf_init_from_file(path, params);
    if (p->vocab == NULL) {
        return cairn_fail(err, "%s is not a valid GGUF file", path);
    }
    int64_t id = gguf_find_key(p->vocab, "tokenizer.ggml.tokens");
    if (id < 0 || gguf_get_kv_type(p->vocab, id) != GGUF_TYPE_ARRAY ||
        gguf_get_arr_type(p->vocab, id) != GGUF_TYPE_STRING) {
        return cairn_fail(err, "%s has no tokenizer.ggml.tokens string array", path);
    }
    size_t n = gguf_get_arr_n(p->vocab, id);
    if (n < 1 || n > GM_MAX_VOCAB) {
        return cairn_fail(err, "%s has %zu tokens (expected 1..%d)", path, n, GM_MAX_VOCAB);
    }
    p->n_vocab_file = (int)n;
    return 0;
}

static char *gm_pad_token_name(int id) {
    char tmp[48];
    snprintf(tmp, sizeof tmp, "<|cairn_pad_%d|>", id);
    return cairn_strdup(tmp);
}

/* Sets the tokens array: the first n_file entries from the vocab (or synthesized), the rest
 * padding. Owns the temporary name strings it makes. */
static int gm_set_tokens(gm_plan *p, int n_file, cairn_err *err) {
    const int n = p->resolved.n_vocab;
    const char **names = calloc((size_t)n, sizeof *names);
    char **owned = calloc((size_t)n, sizeof *owned);
    int rc = 0;
    if (names == NULL || owned == NULL) {
        rc = cairn_fail(err, "out of memory for %d token names", n);
        goto done;
    }
    int64_t id = p->vocab ? gguf_find_key(p->vocab, "tokenizer.ggml.tokens") : -1;
    for (int i = 0; i < n && rc == 0; i++) {
        char tmp[16];
        if (i < n_file && id >= 0) {
            names[i] = gguf_get_arr_str(p->vocab, id, (size_t)i);
        } else if (i < n_file) {
            static const char *const specials[] = {"<unk>", "<s>", "</s>"};
            snprintf(tmp, sizeof tmp, "<0x%02X>", (unsigned)(i - 3));
            names[i] = owned[i] = cairn_strdup(i < 3 ? specials[i] : tmp);
        } else {
            names[i] = owned[i] = gm_pad_token_name(i);
        }
        if (names[i] == NULL) {
            rc = cairn_fail(err, "out of memory for token names");
        }
    }
    if (rc == 0) {
        gguf_set_arr_str(p->out, "tokenizer.ggml.tokens", names, (size_t)n);
    }
done:
    for (int i = 0; owned != NULL && i < n; i++) {
        free(owned[i]);
    }
    free(owned);
    free(names);
    return rc;
}

/* Copies a per-token numeric array (scores, token_type) and pads it with pad_value. */
static int gm_set_padded_array(gm_plan *p, const char *key, enum gguf_type type,
                               const void *pad_value, cairn_err *err) {
    int64_t id = gguf_find_key(p->vocab, key);
    if (id < 0) {
        return 0;
    }
    if (gguf_get_kv_type(p->vocab, id) != GGUF_TYPE_ARRAY ||
        gguf_get_arr_type(p->vocab, id) != type ||
        gguf_get_arr_n(p->vocab, id) != (size_t)p->n_vocab_file) {
        return cairn_fail(err, "vocab key %s is not an array of %d %s", key, p->n_vocab_file,
                          gguf_type_name(type));
    }
    const size_t n = (size_t)p->resolved.n_vocab, elem = 4; /* f32 and i32 */
    unsigned char *data = malloc(n * elem);
    if (data == NULL) {
        return cairn_fail(err, "out of memory for %s", key);
    }
    memcpy(data, gguf_get_arr_data(p->vocab, id), (size_t)p->n_vocab_file * elem);
    for (size_t i = (size_t)p->n_vocab_file; i < n; i++) {
        memcpy(data + i * elem, pad_value, elem);
    }
    gguf_set_arr_data(p->out, key, type, data, n);
    free(data);
    return 0;
}

static int gm_copy_string_array(gm_plan *p, int64_t id, const char *key, cairn_err *err) {
    size_t n = gguf_get_arr_n(p->vocab, id);
    const char **strs = calloc(n > 0 ? n : 1, sizeof *strs);
    if (strs == NULL) {
        return cairn_fail(err, "out of memory for %s", key);
    }
    for (size_t i = 0; i < n; i++) {
        strs[i] = gguf_get_arr_str(p->vocab, id, i);
    }
    gguf_set_arr_str(p->out, key, strs, n);
    free(strs);
    return 0;
}

static void gm_copy_scalar(gm_plan *p, int64_t id, const char *key) {
    const struct gguf_context *v = p->vocab;
    switch (gguf_get_kv_type(v, id)) {
    case GGUF_TYPE_UINT8: gguf_set_val_u8(p->out, key, gguf_get_val_u8(v, id)); break;
    case GGUF_TYPE_INT8: gguf_set_val_i8(p->out, key, gguf_get_val_i8(v, id)); break;
    case GGUF_TYPE_UINT16: gguf_set_val_u16(p->out, key, gguf_get_val_u16(v, id)); break;
    case GGUF_TYPE_INT16: gguf_set_val_i16(p->out, key, gguf_get_val_i16(v, id)); break;
    case GGUF_TYPE_UINT32: gguf_set_val_u32(p->out, key, gguf_get_val_u32(v, id)); break;
    case GGUF_TYPE_INT32: gguf_set_val_i32(p->out, key, gguf_get_val_i32(v, id)); break;
    case GGUF_TYPE_FLOAT32: gguf_set_val_f32(p->out, key, gguf_get_val_f32(v, id)); break;
    case GGUF_TYPE_UINT64: gguf_set_val_u64(p->out, key, gguf_get_val_u64(v, id)); break;
    case GGUF_TYPE_INT64: gguf_set_val_i64(p->out, key, gguf_get_val_i64(v, id)); break;
    case GGUF_TYPE_FLOAT64: gguf_set_val_f64(p->out, key, gguf_get_val_f64(v, id)); break;
    case GGUF_TYPE_BOOL: gguf_set_val_bool(p->out, key, gguf_get_val_bool(v, id)); break;
    case GGUF_TYPE_STRING: gguf_set_val_str(p->out, key, gguf_get_val_str(v, id)); break;
    default: break; /* arrays are handled by the caller */
    }
}

/* Copies every tokenizer.* key; the per-token arrays are padded to the model's n_vocab. */
static int gm_copy_tokenizer(gm_plan *p, cairn_err *err) {
    const float pad_score = -1000.0f;
    const int32_t pad_type = GM_TOKEN_CONTROL;
    if (gm_set_tokens(p, p->n_vocab_file, err) != 0 ||
        gm_set_padded_array(p, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, &pad_score, err) ||
        gm_set_padded_array(p, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, &pad_type, err)) {
        return -1;
    }
    for (int64_t id = 0; id < gguf_get_n_kv(p->vocab); id++) {
        const char *key = gguf_get_key(p->vocab, id);
        if (!cairn_str_starts_with(key, "tokenizer.") || gguf_find_key(p->out, key) >= 0) {
            continue;
        }
        if (gguf_get_kv_type(p->vocab, id) != GGUF_TYPE_ARRAY) {
            gm_copy_scalar(p, id, key);
        } else if (gguf_get_arr_type(p->vocab, id) == GGUF_TYPE_STRING) {
            if (gm_copy_string_array(p, id, key, err) != 0) {
                return -1;
            }
        } else if (gguf_get_arr_type(p->vocab, id) != GGUF_TYPE_ARRAY) {
            gguf_set_arr_data(p->out, key, gguf_get_arr_type(p->vocab, id),
                              gguf_get_arr_data(p->vocab, id), gguf_get_arr_n(p->vocab, id));
        }
    }
    return 0;
}

/* A byte-fallback SentencePiece vocabulary: enough to tokenize any text, one byte a token. */
static int gm_synth_tokenizer(gm_plan *p, cairn_err *err) {
    const int n = p->resolved.n_vocab, n_real = 3 + 256;
    float *scores = malloc((size_t)n * sizeof *scores);
    int32_t *types = malloc((size_t)n * sizeof *types);
    int rc = 0;
    if (scores == NULL || types == NULL) {
        rc = cairn_fail(err, "out of memory for the synthesized vocabulary");
    }
    for (int i = 0; rc == 0 && i < n; i++) {
        scores[i] = i < n_real ? 0.0f : -1000.0f;
        types[i] = i == 0                 ? GM_TOKEN_UNKNOWN
                   : i < 3 || i >= n_real ? GM_TOKEN_CONTROL
                                          : GM_TOKEN_BYTE;
    }
    if (rc == 0 && gm_set_tokens(p, n_real, err) == 0) {
        gguf_set_val_str(p->out, "tokenizer.ggml.model", "llama");
        gguf_set_val_str(p->out, "tokenizer.ggml.pre", "default");
        gguf_set_arr_data(p->out, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, (size_t)n);
        gguf_set_arr_data(p->out, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, (size_t)n);
        gguf_set_val_u32(p->out, "tokenizer.ggml.unknown_token_id", 0);
        gguf_set_val_u32(p->out, "tokenizer.ggml.bos_token_id", 1);
        gguf_set_val_u32(p->out, "tokenizer.ggml.eos_token_id", 2);
        gguf_set_val_bool(p->out, "tokenizer.ggml.add_bos_token", true);
    } else {
        rc = -1;
    }
    free(scores);
    free(types);
    return rc;
}

/* ---- model metadata ---- */

static void gm_set_arch_u32(gm_plan *p, const char *suffix, uint32_t v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", p->resolved.arch, suffix);
    gguf_set_val_u32(p->out, key, v);
}

static void gm_set_arch_f32(gm_plan *p, const char *suffix, float v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", p->resolved.arch, suffix);
    gguf_set_val_f32(p->out, key, v);
}

/* The keys converters write for experts, windows and YaRN; Mixtral's experts are as wide as
 * its feed_forward_length, so llama files have no expert_feed_forward_length. */
static void gm_set_family_meta(gm_plan *p) {
    const gm_shape *s = &p->resolved;
    const gm_family *f = &s->family;
    if (f->n_expert > 0) {
        gm_set_arch_u32(p, "expert_count", (uint32_t)f->n_expert);
        gm_set_arch_u32(p, "expert_used_count", (uint32_t)f->n_expert_used);
        if (strcmp(s->arch, "llama") != 0) {
            gm_set_arch_u32(p, "expert_feed_forward_length", (uint32_t)f->n_ff_exp);
        }
    }
    if (f->n_expert_shared > 0) {
        gm_set_arch_u32(p, "expert_shared_count", (uint32_t)f->n_expert_shared);
    }
    if (f->n_dense_lead > 0) {
        gm_set_arch_u32(p, "leading_dense_block_count", (uint32_t)f->n_dense_lead);
    }
    if (f->gating != 0) {
        gm_set_arch_u32(p, "expert_gating_func", (uint32_t)f->gating);
        char key[128];
        snprintf(key, sizeof key, "%s.expert_weights_norm", s->arch);
        gguf_set_val_bool(p->out, key, f->weights_norm);
    }
    if (f->kv_lora > 0) {
        /* q_lora_rank 0 is written too (converters leave the key out for the Lite models),
         * so a file with fewer layers than the Lite models still loads as one elsewhere */
        gm_set_arch_u32(p, "attention.q_lora_rank", (uint32_t)f->q_lora);
        gm_set_arch_u32(p, "attention.kv_lora_rank", (uint32_t)f->kv_lora);
        gm_set_arch_u32(p, "attention.key_length_mla", (uint32_t)f->mla_k);
        gm_set_arch_u32(p, "attention.value_length_mla", (uint32_t)f->mla_v);
    }
    if (f->weights_scale > 0.0f || f->kv_lora > 0) {
        gm_set_arch_f32(p, "expert_weights_scale",
                        f->weights_scale > 0.0f ? f->weights_scale : 1.0f);
    }
    if (f->n_groups > 0) {
        gm_set_arch_u32(p, "expert_group_count", (uint32_t)f->n_groups);
        gm_set_arch_u32(p, "expert_group_used_count", (uint32_t)f->n_groups_used);
    }
    if (f->yarn_log_mul > 0.0f) {
        gm_set_arch_f32(p, "rope.scaling.yarn_log_multiplier", f->yarn_log_mul);
    }
    if (f->n_nextn > 0) {
        gm_set_arch_u32(p, "nextn_predict_layers", (uint32_t)f->n_nextn);
    }
    if (f->n_swa > 0) {
        gm_set_arch_u32(p, "attention.sliding_window", (uint32_t)f->n_swa);
    }
    if (f->yarn_factor > 0.0f) {
        char key[128];
        snprintf(key, sizeof key, "%s.rope.scaling.type", s->arch);
        gguf_set_val_str(p->out, key, "yarn");
        gm_set_arch_f32(p, "rope.scaling.factor", f->yarn_factor);
        gm_set_arch_u32(p, "rope.scaling.original_context_length", (uint32_t)f->yarn_orig_ctx);
    }
}

/* Keys in the order llama.cpp's converter writes them. Llama 3 rope scaling has no keys of
 * its own there: it lives entirely in the rope_freqs tensor. */
static void gm_set_model_meta(gm_plan *p, uint64_t seed) {
    const gm_shape *s = &p->resolved;
    char desc[160];
    snprintf(desc, sizeof desc,
             "random weights from cairn-genmodel (shape %s, seed %llu): not a "
             "trained model",
             s->name, (unsigned long long)seed);
    gguf_set_val_str(p->out, "general.architecture", s->arch);
    gguf_set_val_str(p->out, "general.name", s->model_name);
    gguf_set_val_str(p->out, "general.description", desc);
    gguf_set_val_u32(p->out, "general.alignment", GM_ALIGNMENT);
    gguf_set_val_u32(p->out, "general.file_type", p->wtype->file_type);
    if (ggml_is_quantized(p->wtype->type)) {
        gguf_set_val_u32(p->out, "general.quantization_version", GGML_QNT_VERSION);
    }
    gm_set_arch_u32(p, "context_length", (uint32_t)s->n_ctx);
    gm_set_arch_u32(p, "embedding_length", (uint32_t)s->n_embd);
    gm_set_arch_u32(p, "block_count", (uint32_t)(s->n_layer + s->family.n_nextn));
    gm_set_arch_u32(p, "feed_forward_length", (uint32_t)s->n_ff);
    gm_set_arch_u32(p, "attention.head_count", (uint32_t)s->n_head);
    gm_set_arch_u32(p, "attention.head_count_kv", (uint32_t)s->n_head_kv);
    gm_set_arch_f32(p, "rope.freq_base", s->rope_base);
    gm_set_arch_f32(p, "attention.layer_norm_rms_epsilon", s->norm_eps);
    if (s->write_head_dim) {
        const gm_family *f = &s->family;
        gm_set_arch_u32(p, "attention.key_length", (uint32_t)gm_head_dim(s));
        gm_set_arch_u32(p, "attention.value_length",
                        (uint32_t)(f->kv_lora > 0 ? f->kv_lora : gm_head_dim(s)));
    }
    gm_set_arch_u32(p, "rope.dimension_count",
                    (uint32_t)(s->family.rope_dims > 0 ? s->family.rope_dims : gm_head_dim(s)));
    if (strcmp(s->arch, "llama") == 0) {
        gm_set_arch_u32(p, "vocab_size", (uint32_t)s->n_vocab);
    }
    gm_set_family_meta(p);
}

/* ---- planning ---- */

static int gm_resolve_vocab(gm_plan *p, const gm_options *opt, cairn_err *err) {
    gm_shape *s = &p->resolved;
    if (opt->vocab_path != NULL) {
        if (gm_load_vocab(p, opt->vocab_path, err) != 0) {
            return -1;
        }
    } else {
        p->n_vocab_file = 3 + 256;
    }
    int want = opt->n_vocab > 0  ? opt->n_vocab
               : s->n_vocab > 0  ? s->n_vocab
               : opt->vocab_path ? p->n_vocab_file
                                 : GM_SYNTH_TINY_VOCAB;
    if (want < p->n_vocab_file) {
        return cairn_fail(err, "the vocabulary has %d tokens, more than the %d of shape %s",
                          p->n_vocab_file, want, s->name);
    }
    if (want > GM_MAX_VOCAB) {
        return cairn_fail(err, "vocabulary size %d is above %d", want, GM_MAX_VOCAB);
    }
    s->n_vocab = want;
    return 0;
}

/* Fewer or narrower experts keep every other dimension of the shape: models small enough
 * for tests that still route as the family does. */
static int gm_override_experts(gm_shape *shape, const gm_options *opt, cairn_err *err) {
    gm_family *f = &shape->family;
    if (opt->n_experts == 0 && opt->n_ff_exp == 0) {
        return 0;
    }
    if (f->n_expert == 0) {
        return cairn_fail(err, "--experts and --expert-ff need a shape with experts");
    }
    if (opt->n_experts > 0) {
        int groups = f->n_groups > 0 ? f->n_groups : 1;
        if (opt->n_experts < f->n_expert_used || opt->n_experts % groups != 0 ||
            opt->n_experts > f->n_expert) {
            return cairn_fail(err,
                              "--experts must be %d..%d (the experts each token uses, up to the "
                              "shape's) and a multiple of the %d expert groups",
                              f->n_expert_used, f->n_expert, groups);
        }
        if (f->n_groups > 0 && opt->n_experts / groups * f->n_groups_used < f->n_expert_used) {
            return cairn_fail(err,
                              "--experts %d leaves the used groups fewer experts than a "
                              "token uses",
                              opt->n_experts);
        }
        f->n_expert = opt->n_experts;
    }
    if (opt->n_ff_exp > 0) {
        f->n_ff_exp = opt->n_ff_exp;
        if (strcmp(shape->arch, "llama") == 0) {
            shape->n_ff = opt->n_ff_exp; /* llama's experts are as wide as its network */
        }
    }
    return 0;
}

static int gm_plan_init(gm_plan *p, const gm_options *opt, cairn_err *err) {
    memset(p, 0, sizeof *p);
    p->shape = gm_find_shape(opt->shape != NULL ? opt->shape : "");
    if (p->shape == NULL) {
        return cairn_fail(err, "unknown shape '%.64s' (see --help)", opt->shape ? opt->shape : "");
    }
    if (gm_parse_type(opt->type != NULL ? opt->type : "", &p->wtype, err) != 0) {
        return -1;
    }
    p->weight_std = opt->weight_std == 0.0f ? GM_INIT_STD : opt->weight_std;
    if (!(p->weight_std > 0.0f && p->weight_std <= GM_MAX_STD)) {
        return cairn_fail(err, "the weights' standard deviation must be in (0, %g]",
                          (double)GM_MAX_STD);
    }
    p->resolved = *p->shape;
    if (opt->n_layers < 0 || opt->n_layers > GM_MAX_LAYERS) {
        return cairn_fail(err, "--layers must be 1..%d", GM_MAX_LAYERS);
    }
    if (opt->n_layers > 0) {
        p->resolved.n_layer = opt->n_layers;
    }
    if (gm_override_experts(&p->resolved, opt, err) != 0) {
        return -1;
    }
    if (opt->n_swa > 0) {
        if (p->resolved.family.n_swa == 0) {
            return cairn_fail(err, "--window needs a shape with a sliding window");
        }
        p->resolved.family.n_swa = opt->n_swa;
    }
    if (gm_resolve_vocab(p, opt, err) != 0 || gm_build_specs(p, err) != 0) {
        return -1;
    }
    p->out = gguf_init_empty();
    if (p->out == NULL) {
        return cairn_fail(err, "cannot create a GGUF context");
    }
    gm_set_model_meta(p, opt->seed);
    return p->vocab != NULL ? gm_copy_tokenizer(p, err) : gm_synth_tokenizer(p, err);
}

/* Registers every tensor's name, type and shape; no data is held. */
static int gm_add_tensor_infos(gm_plan *p, cairn_err *err) {
    struct ggml_init_params params = {
        .mem_size = (size_t)(p->n_tensors + 1) * ggml_tensor_overhead(),
        .mem_buffer = NULL,
        .no_alloc = true,
    };
    p->meta_ctx = ggml_init(params);
    if (p->meta_ctx == NULL) {
        return cairn_fail(err, "cannot create a ggml context for %d tensors", p->n_tensors);
    }
    for (int i = 0; i < p->n_tensors; i++) {
        const gm_tensor_spec *t = &p->tensors[i];
        enum ggml_type type = gm_tensor_type(p, t);
        struct ggml_tensor *g = t->ne2 > 1
                                    ? ggml_new_tensor_3d(p->meta_ctx, type, t->ne0, t->ne1, t->ne2)
                                : t->ne1 > 1 || t->kind == GM_MATRIX
                                    ? ggml_new_tensor_2d(p->meta_ctx, type, t->ne0, t->ne1)
                                    : ggml_new_tensor_1d(p->meta_ctx, type, t->ne0);
        ggml_set_name(g, t->name);
        gguf_add_tensor(p->out, g);
    }
    return 0;
}

static void gm_plan_free(gm_plan *p) {
    if (p->out != NULL) {
        gguf_free(p->out);
    }
    if (p->vocab != NULL) {
        gguf_free(p->vocab);
    }
    if (p->meta_ctx != NULL) {
        ggml_free(p->meta_ctx);
    }
    free(p->tensors);
    memset(p, 0, sizeof *p);
}

/* ---- tensor data ---- */

/* Llama 3 "llama3" rope scaling as frequency divisors per rotated pair: high frequencies
 * are kept, low ones divided by the factor, the band between blended smoothly. */
static void gm_llama3_freqs(const gm_shape *s, float *out, int n) {
    const gm_llama3_rope *r = &s->llama3;
    const double pi = 3.14159265358979323846;
    const double low_wavelen = r->orig_ctx / r->low_freq_factor;
    const double high_wavelen = r->orig_ctx / r->high_freq_factor;
    for (int i = 0; i < n; i++) {
        double freq = pow((double)s->rope_base, -(2.0 * i) / (2.0 * n));
        double wavelen = 2.0 * pi / freq;
        if (wavelen < high_wavelen) {
            out[i] = 1.0f;
        } else if (wavelen > low_wavelen) {
            out[i] = r->factor;
        } else {
            double smooth = (r->orig_ctx / wavelen - r->low_freq_factor) /
                            (r->high_freq_factor - r->low_freq_factor);
            out[i] = (float)(1.0 / ((1.0 - smooth) / r->factor + smooth));
        }
    }
}

typedef struct gm_writer {
    FILE *f;
    const char *path;
    uint64_t pos;
    float *src;     /* GM_CHUNK_ELEMS floats (or one row if longer) */
    void *dst;      /* the same rows converted */
    size_t src_cap; /* floats */
    size_t dst_cap; /* bytes */
} gm_writer;

static int gm_write(gm_writer *w, const void *data, size_t n, cairn_err *err) {
    if (n > 0 && fwrite(data, 1, n, w->f) != n) {
        return cairn_fail(err, "cannot write %s: %s", w->path, strerror(errno));
    }
    w->pos += n;
    return 0;
}

static int gm_pad_to(gm_writer *w, uint64_t offset, cairn_err *err) {
    static const unsigned char zeros[GM_ALIGNMENT];
    if (offset < w->pos || offset - w->pos > GM_ALIGNMENT) {
        return cairn_fail(err, "internal error: tensor offset %llu, file at %llu",
                          (unsigned long long)offset, (unsigned long long)w->pos);
    }
    return gm_write(w, zeros, (size_t)(offset - w->pos), err);
}

static int gm_reserve(gm_writer *w, size_t floats, size_t bytes, cairn_err *err) {
    if (floats > w->src_cap) {
        float *src = realloc(w->src, floats * sizeof *src);
        if (src == NULL) {
            return cairn_fail(err, "out of memory (%zu floats)", floats);
        }
        w->src = src;
        w->src_cap = floats;
    }
    if (bytes > w->dst_cap) {
        void *dst = realloc(w->dst, bytes);
        if (dst == NULL) {
            return cairn_fail(err, "out of memory (%zu bytes)", bytes);
        }
        w->dst = dst;
        w->dst_cap = bytes;
    }
    return 0;
}

static void gm_fill_values(const gm_plan *p, const gm_tensor_spec *t, gm_rng *rng, float *out,
                           size_t n) {
    switch (t->kind) {
    case GM_NORM: gm_fill_normalish(rng, out, n, 1.0f, GM_NORM_STD); break;
    case GM_ROPE_FREQS: gm_llama3_freqs(&p->resolved, out, (int)n); break;
    default: gm_fill_normalish(rng, out, n, 0.0f, p->weight_std); break;
    }
}

static int gm_write_tensor_data(gm_writer *w, const gm_plan *p, int idx, uint64_t seed,
                                cairn_err *err) {
    const gm_tensor_spec *t = &p->tensors[idx];
    const enum ggml_type type = gguf_get_tensor_type(p->out, idx);
    const size_t row_bytes = ggml_row_size(type, t->ne0);
    const int64_t rows_per_chunk =
        (int64_t)GM_CHUNK_ELEMS / t->ne0 > 0 ? (int64_t)GM_CHUNK_ELEMS / t->ne0 : 1;
    if (gm_reserve(w, (size_t)(rows_per_chunk * t->ne0), (size_t)rows_per_chunk * row_bytes, err) !=
        0) {
        return -1;
    }
    gm_rng rng;
    gm_rng_for_tensor(&rng, seed, t->name);
    const int64_t n_rows = t->ne1 * t->ne2; /* an expert's rows follow the previous one's */
    for (int64_t row = 0; row < n_rows; row += rows_per_chunk) {
        int64_t rows = n_rows - row < rows_per_chunk ? n_rows - row : rows_per_chunk;
        gm_fill_values(p, t, &rng, w->src, (size_t)(rows * t->ne0));
        size_t n = ggml_quantize_chunk(type, w->src, w->dst, 0, rows, t->ne0, NULL);
        if (gm_write(w, w->dst, n, err) != 0) {
            return -1;
        }
    }
    return 0;
}

static int gm_write_all(gm_writer *w, const gm_plan *p, uint64_t seed, cairn_err *err) {
    const size_t meta_size = gguf_get_meta_size(p->out);
    void *meta = malloc(meta_size);
    if (meta == NULL) {
        return cairn_fail(err, "out of memory for %zu bytes of metadata", meta_size);
    }
    gguf_get_meta_data(p->out, meta);
    int rc = gm_write(w, meta, meta_size, err);
    free(meta);
    for (int i = 0; rc == 0 && i < p->n_tensors; i++) {
        uint64_t offset = meta_size + gguf_get_tensor_offset(p->out, i);
        rc = gm_pad_to(w, offset, err);
        if (rc == 0) {
            rc = gm_write_tensor_data(w, p, i, seed, err);
        }
    }
    /* gguf's own writer pads after the last tensor too; match it byte for byte. */
    if (rc == 0) {
        rc = gm_pad_to(w, (w->pos + GM_ALIGNMENT - 1) / GM_ALIGNMENT * GM_ALIGNMENT, err);
    }
    return rc;
}

static int gm_write_file(const gm_plan *p, const char *path, uint64_t seed, uint64_t *bytes,
                         cairn_err *err) {
    cairn_buf tmp = {0};
    if (cairn_buf_printf(&tmp, "%s.tmp", path) != 0) {
        return cairn_fail(err, "out of memory");
    }
    gm_writer w = {.path = tmp.data};
    w.f = cairn_fopen(tmp.data, "wb");
    int rc = w.f != NULL ? 0 : cairn_fail(err, "cannot create %s: %s", tmp.data, strerror(errno));
    if (rc == 0) {
        rc = gm_write_all(&w, p, seed, err);
        if (fclose(w.f) != 0 && rc == 0) {
            rc = cairn_fail(err, "cannot write %s: %s", tmp.data, strerror(errno));
        }
        if (rc == 0) {
            rc = cairn_replace_file(tmp.data, path, err);
        }
        if (rc != 0) {
            remove(tmp.data);
        }
    }
    *bytes = w.pos;
    free(w.src);
    free(w.dst);
    cairn_buf_free(&tmp);
    return rc;
}

/* Generates the model described by opt into opt->out_path. */
static int gm_generate(const gm_options *opt, gm_stats *stats, cairn_err *err) {
    double start = cairn_now_seconds();
    gm_plan p;
    memset(stats, 0, sizeof *stats);
    if (opt->out_path == NULL || opt->out_path[0] == '\0') {
        return cairn_fail(err, "no output file given (-o OUT.gguf)");
    }
    int rc = gm_plan_init(&p, opt, err);
    if (rc == 0) {
        rc = gm_add_tensor_infos(&p, err);
    }
    if (rc == 0) {
        rc = gm_write_file(&p, opt->out_path, opt->seed, &stats->file_bytes, err);
    }
    stats->n_tensors = p.n_tensors;
    stats->n_vocab = p.resolved.n_vocab;
    stats->n_pad_tokens =
        p.resolved.n_vocab > p.n_vocab_file ? p.resolved.n_vocab - p.n_vocab_file : 0;
    stats->seconds = cairn_now_seconds() - start;
    gm_plan_free(&p);
    ggml_quantize_free();
    return rc;
}

/* ---- command line ---- */

static void gm_usage(FILE *f) {
    fprintf(f,
            "usage: cairn-genmodel --shape NAME --type TYPE -o OUT.gguf\n"
            "                      [--vocab VOCAB.gguf] [--layers N] [--vocab-size N] [--seed S]\n"
            "                      [--std X] [--experts N] [--expert-ff N] [--window N]\n"
            "\n"
            "Writes a GGUF model with random weights in the tensor shapes and metadata of a\n"
            "real model. Norm weights are about 1, other weights about N(0, 0.02); 1-D tensors\n"
            "stay F32, every weight matrix (token_embd and output included, as llama.cpp's\n"
            "quantizer does with --pure) takes --type, so each type is also used for the\n"
            "embedding lookup. general.file_type is llama.cpp's for that type (K-quants: the\n"
            "_S mix). Rows a type's block size does not divide (K-quants need multiples of\n"
            "256) fall back as llama.cpp does: Q2_K, Q3_K -> IQ4_NL, Q4_K -> Q5_0,\n"
            "Q5_K -> Q5_1, Q6_K -> Q8_0, then F16; tiny-llama-256 needs no fallback.\n"
            "\n"
            "  --type TYPE      ");
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(gm_types); i++) {
        fprintf(f, "%s%s", gm_types[i].name, i + 1 < CAIRN_ARRAY_LEN(gm_types) ? " " : "\n");
    }
    fprintf(f,
            "  --vocab FILE     copy all tokenizer.* keys from this vocab GGUF; when the shape's\n"
            "                   vocabulary is larger, tokens are padded with <|cairn_pad_N|>\n"
            "                   control tokens (default: a synthesized byte-level vocabulary)\n"
            "  --layers N       override the shape's layer count\n"
            "  --vocab-size N   override the shape's vocabulary size (padding as above)\n"
            "  --experts N      keep N routed experts (at least the used count; every other\n"
            "                   dimension stays the shape's), for models small enough to test\n"
            "  --expert-ff N    override each expert's feed-forward width\n"
            "  --window N       override the sliding window (small windows for tests)\n"
            "  --seed S         random seed (default 1); same seed, same bytes\n"
            "  --std X          standard deviation of the weights (default 0.02); larger\n"
            "                   weights give position-dependent attention and spread logits\n"
            "\n"
            "shapes (layers, embedding, heads/kv heads, ffn, vocab; suggested --vocab file):\n");
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(gm_shapes); i++) {
        const gm_shape *s = &gm_shapes[i];
        char vocab[24];
        snprintf(vocab, sizeof vocab, "%d", s->n_vocab);
        fprintf(f, "  %-15s %-5s %2d x %4d, %2d/%d heads, ffn %4d, vocab %-6s  %s\n", s->name,
                s->arch, s->n_layer, s->n_embd, s->n_head, s->n_head_kv, s->n_ff,
                s->n_vocab > 0 ? vocab : "file", s->vocab_hint);
    }
}

static int gm_parse_int(const char *flag, const char *s, long long max, long long *out,
                        cairn_err *err) {
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > max) {
        return cairn_fail(err, "%s: '%.32s' is not an integer in 0..%lld", flag, s, max);
    }
    *out = v;
    return 0;
}

static int gm_parse_std(const char *s, float *out, cairn_err *err) {
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v > 0.0 && v <= GM_MAX_STD)) {
        return cairn_fail(err, "--std: '%.32s' is not a number in (0, %g]", s, (double)GM_MAX_STD);
    }
    *out = (float)v;
    return 0;
}

typedef enum { GM_ARGS_OK, GM_ARGS_HELP, GM_ARGS_ERROR } gm_args_result;

static gm_args_result gm_parse_args(int argc, char **argv, gm_options *opt, cairn_err *err) {
    memset(opt, 0, sizeof *opt);
    opt->seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            return GM_ARGS_HELP;
        }
        if (i + 1 >= argc) {
            cairn_fail(err, "%.64s: missing value (or unknown option)", a);
            return GM_ARGS_ERROR;
        }
        const char *v = argv[++i];
        long long n = 0;
        int rc = 0;
        if (strcmp(a, "--shape") == 0) {
            opt->shape = v;
        } else if (strcmp(a, "--type") == 0) {
            opt->type = v;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            opt->out_path = v;
        } else if (strcmp(a, "--vocab") == 0) {
            opt->vocab_path = v;
        } else if (strcmp(a, "--layers") == 0) {
            rc = gm_parse_int(a, v, GM_MAX_LAYERS, &n, err);
            opt->n_layers = (int)n;
            rc = rc != 0 || n > 0 ? rc : cairn_fail(err, "--layers must be at least 1");
        } else if (strcmp(a, "--experts") == 0) {
            rc = gm_parse_int(a, v, GM_MAX_EXPERTS, &n, err);
            opt->n_experts = (int)n;
            rc = rc != 0 || n > 0 ? rc : cairn_fail(err, "--experts must be at least 1");
        } else if (strcmp(a, "--expert-ff") == 0) {
            rc = gm_parse_int(a, v, GM_MAX_WIDTH, &n, err);
            opt->n_ff_exp = (int)n;
            rc = rc != 0 || n > 0 ? rc : cairn_fail(err, "--expert-ff must be at least 1");
        } else if (strcmp(a, "--window") == 0) {
            rc = gm_parse_int(a, v, GM_MAX_WIDTH, &n, err);
            opt->n_swa = (int)n;
            rc = rc != 0 || n > 0 ? rc : cairn_fail(err, "--window must be at least 1");
        } else if (strcmp(a, "--vocab-size") == 0) {
            rc = gm_parse_int(a, v, GM_MAX_VOCAB, &n, err);
            opt->n_vocab = (int)n;
            rc = rc != 0 || n > 0 ? rc : cairn_fail(err, "--vocab-size must be at least 1");
        } else if (strcmp(a, "--std") == 0) {
            rc = gm_parse_std(v, &opt->weight_std, err);
        } else if (strcmp(a, "--seed") == 0) {
            rc = gm_parse_int(a, v, INT64_MAX, &n, err);
            opt->seed = (uint64_t)n;
        } else {
            rc = cairn_fail(err, "unknown option %.64s (see --help)", a);
        }
        if (rc != 0) {
            return GM_ARGS_ERROR;
        }
    }
    if (opt->shape == NULL || opt->type == NULL || opt->out_path == NULL) {
        cairn_fail(err, "--shape, --type and -o are required (see --help)");
        return GM_ARGS_ERROR;
    }
    return GM_ARGS_OK;
}

static int gm_main(int argc, char **argv) {
    gm_options opt;
    cairn_err err = {{0}};
    gm_args_result parsed = gm_parse_args(argc, argv, &opt, &err);
    if (parsed == GM_ARGS_HELP) {
        gm_usage(stdout);
        return 0;
    }
    gm_stats stats;
    if (parsed == GM_ARGS_ERROR || gm_generate(&opt, &stats, &err) != 0) {
        fprintf(stderr, "cairn-genmodel: %s\n", err.msg);
        return 1;
    }
    printf("wrote %s: shape %s, %s, %d tensors, vocab %d (%d padding tokens), %.1f MiB in "
           "%.2f s\n",
           opt.out_path, opt.shape, opt.type, stats.n_tensors, stats.n_vocab, stats.n_pad_tokens,
           (double)stats.file_bytes / (1024.0 * 1024.0), stats.seconds);
    return 0;
}

#ifndef CAIRN_GENMODEL_NO_MAIN
int main(int argc, char **argv) {
    return gm_main(argc, argv);
}
#endif
