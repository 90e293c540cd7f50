/* model: the architectures cairn runs, as their GGUF files describe them: the name each one
 * goes by, and the tensors each layer holds with their shapes. Validation (model.c) and the
 * engine's loader both read the same list, so what is checked is exactly what is loaded. */
#include <string.h>

#include "model/model.h"

static const char *const arch_names[CAIRN_ARCH_COUNT] = {
    [CAIRN_ARCH_LLAMA] = "llama",         [CAIRN_ARCH_QWEN2] = "qwen2",
    [CAIRN_ARCH_QWEN3] = "qwen3",         [CAIRN_ARCH_QWEN3MOE] = "qwen3moe",
    [CAIRN_ARCH_GEMMA3] = "gemma3",       [CAIRN_ARCH_PHI3] = "phi3",
    [CAIRN_ARCH_GPT_OSS] = "gpt-oss",     [CAIRN_ARCH_GLM4MOE] = "glm4moe",
    [CAIRN_ARCH_DEEPSEEK2] = "deepseek2",
};

const char *cairn_arch_name(cairn_arch arch) {
    return arch >= 0 && arch < CAIRN_ARCH_COUNT ? arch_names[arch] : "unknown";
}

int cairn_arch_from_name(const char *name, cairn_arch *out) {
    for (int a = 0; a < CAIRN_ARCH_COUNT; a++) {
        if (strcmp(name, arch_names[a]) == 0) {
            *out = (cairn_arch)a;
            return 0;
        }
    }
    return -1;
}

bool cairn_rope_is_neox(const cairn_hparams *hp) {
    return hp->arch != CAIRN_ARCH_LLAMA && hp->arch != CAIRN_ARCH_DEEPSEEK2;
}

bool cairn_layer_is_swa(const cairn_hparams *hp, int il) {
    return hp->n_swa > 0 && hp->swa_period > 0 && il % hp->swa_period < hp->swa_period - 1;
}

bool cairn_layer_has_experts(const cairn_hparams *hp, int il) {
    return hp->n_expert > 0 && il >= hp->n_layer_dense_lead;
}

uint64_t cairn_kv_cell_values(const cairn_hparams *hp) {
    uint64_t value_dims = hp->kv_lora_rank > 0 ? 0 : (uint64_t)hp->head_dim_v;
    return ((uint64_t)hp->head_dim_k + value_dims) * (uint64_t)hp->n_head_kv;
}

int cairn_swa_cells(const cairn_hparams *hp, int n_ctx, int n_batch) {
    int64_t cells = (int64_t)hp->n_swa + n_batch - 1;
    return cells < n_ctx ? (int)cells : n_ctx;
}

static const char *const tensor_names[CAIRN_LT_COUNT] = {
    [CAIRN_LT_ATTN_NORM] = "attn_norm.weight",
    [CAIRN_LT_ATTN_Q] = "attn_q.weight",
    [CAIRN_LT_ATTN_K] = "attn_k.weight",
    [CAIRN_LT_ATTN_V] = "attn_v.weight",
    [CAIRN_LT_ATTN_QKV] = "attn_qkv.weight",
    [CAIRN_LT_ATTN_OUT] = "attn_output.weight",
    [CAIRN_LT_ATTN_Q_BIAS] = "attn_q.bias",
    [CAIRN_LT_ATTN_K_BIAS] = "attn_k.bias",
    [CAIRN_LT_ATTN_V_BIAS] = "attn_v.bias",
    [CAIRN_LT_ATTN_OUT_BIAS] = "attn_output.bias",
    [CAIRN_LT_ATTN_Q_NORM] = "attn_q_norm.weight",
    [CAIRN_LT_ATTN_K_NORM] = "attn_k_norm.weight",
    [CAIRN_LT_ATTN_POST_NORM] = "post_attention_norm.weight",
    [CAIRN_LT_ATTN_SINKS] = "attn_sinks.weight",
    [CAIRN_LT_FFN_NORM] = "ffn_norm.weight",
    [CAIRN_LT_FFN_GATE] = "ffn_gate.weight",
    [CAIRN_LT_FFN_UP] = "ffn_up.weight",
    [CAIRN_LT_FFN_DOWN] = "ffn_down.weight",
    [CAIRN_LT_FFN_POST_NORM] = "post_ffw_norm.weight",
    [CAIRN_LT_FFN_GATE_INP] = "ffn_gate_inp.weight",
    [CAIRN_LT_FFN_GATE_INP_BIAS] = "ffn_gate_inp.bias",
    [CAIRN_LT_FFN_GATE_EXPS] = "ffn_gate_exps.weight",
    [CAIRN_LT_FFN_UP_EXPS] = "ffn_up_exps.weight",
    [CAIRN_LT_FFN_DOWN_EXPS] = "ffn_down_exps.weight",
    [CAIRN_LT_FFN_GATE_EXPS_BIAS] = "ffn_gate_exps.bias",
    [CAIRN_LT_FFN_UP_EXPS_BIAS] = "ffn_up_exps.bias",
    [CAIRN_LT_FFN_DOWN_EXPS_BIAS] = "ffn_down_exps.bias",
    [CAIRN_LT_FFN_EXP_PROBS_B] = "exp_probs_b.bias",
    [CAIRN_LT_FFN_GATE_SHEXP] = "ffn_gate_shexp.weight",
    [CAIRN_LT_FFN_UP_SHEXP] = "ffn_up_shexp.weight",
    [CAIRN_LT_FFN_DOWN_SHEXP] = "ffn_down_shexp.weight",
    [CAIRN_LT_ATTN_Q_A] = "attn_q_a.weight",
    [CAIRN_LT_ATTN_Q_A_NORM] = "attn_q_a_norm.weight",
    [CAIRN_LT_ATTN_Q_B] = "attn_q_b.weight",
    [CAIRN_LT_ATTN_KV_A_MQA] = "attn_kv_a_mqa.weight",
    [CAIRN_LT_ATTN_KV_A_NORM] = "attn_kv_a_norm.weight",
    [CAIRN_LT_ATTN_K_B] = "attn_k_b.weight",
    [CAIRN_LT_ATTN_V_B] = "attn_v_b.weight",
};

const char *cairn_layer_tensor_name(cairn_layer_tensor t) {
    return t >= 0 && t < CAIRN_LT_COUNT ? tensor_names[t] : "?";
}

/* Appends specs in order; a small builder keeps each family's list one line per tensor. */
typedef struct spec_list {
    cairn_tensor_spec *out;
    int n;
} spec_list;

static void add(spec_list *l, cairn_layer_tensor role, bool matrix, int64_t ne0, int64_t ne1,
                int64_t ne2, bool required) {
    l->out[l->n++] = (cairn_tensor_spec){role, matrix, {ne0, ne1, ne2}, required};
}

#define MATRIX(l, role, ne0, ne1) add(l, role, true, ne0, ne1, 0, true)
/* a matrix per expert, or per head */
#define STACKED(l, role, ne0, ne1, ne2) add(l, role, true, ne0, ne1, ne2, true)
#define VECTOR(l, role, ne0, required) add(l, role, false, ne0, 0, 0, required)

static void latent_attention_specs(const cairn_hparams *hp, spec_list *l) {
    const int64_t embd = hp->n_embd, heads = hp->n_head, rope = hp->rope_dims;
    const int64_t q = heads * hp->mla_head_dim_k, kv = hp->kv_lora_rank;
    VECTOR(l, CAIRN_LT_ATTN_NORM, embd, true);
    if (hp->q_lora_rank > 0) {
        MATRIX(l, CAIRN_LT_ATTN_Q_A, embd, hp->q_lora_rank);
        VECTOR(l, CAIRN_LT_ATTN_Q_A_NORM, hp->q_lora_rank, true);
        MATRIX(l, CAIRN_LT_ATTN_Q_B, hp->q_lora_rank, q);
    } else {
        MATRIX(l, CAIRN_LT_ATTN_Q, embd, q);
    }
    MATRIX(l, CAIRN_LT_ATTN_KV_A_MQA, embd, kv + rope);
    VECTOR(l, CAIRN_LT_ATTN_KV_A_NORM, kv, true);
    STACKED(l, CAIRN_LT_ATTN_K_B, hp->mla_head_dim_k - rope, kv, heads);
    STACKED(l, CAIRN_LT_ATTN_V_B, kv, hp->mla_head_dim_v, heads);
    MATRIX(l, CAIRN_LT_ATTN_OUT, heads * hp->mla_head_dim_v, embd);
}

static void attention_specs(const cairn_hparams *hp, spec_list *l) {
    if (hp->arch == CAIRN_ARCH_DEEPSEEK2) {
        latent_attention_specs(hp, l);
        return;
    }
    const int64_t embd = hp->n_embd;
    const int64_t q = (int64_t)hp->n_head * hp->head_dim_k;
    const int64_t k = (int64_t)hp->n_head_kv * hp->head_dim_k;
    const int64_t v = (int64_t)hp->n_head_kv * hp->head_dim_v;
    const int64_t o = (int64_t)hp->n_head * hp->head_dim_v;
    const bool qkv_bias = hp->arch == CAIRN_ARCH_QWEN2 || hp->arch == CAIRN_ARCH_GPT_OSS;
    const bool qk_norm = hp->arch == CAIRN_ARCH_QWEN3 || hp->arch == CAIRN_ARCH_QWEN3MOE ||
                         hp->arch == CAIRN_ARCH_GEMMA3;
    const bool glm = hp->arch == CAIRN_ARCH_GLM4MOE;
    VECTOR(l, CAIRN_LT_ATTN_NORM, embd, true);
    if (hp->arch == CAIRN_ARCH_PHI3) {
        MATRIX(l, CAIRN_LT_ATTN_QKV, embd, q + k + v);
    } else {
        MATRIX(l, CAIRN_LT_ATTN_Q, embd, q);
        MATRIX(l, CAIRN_LT_ATTN_K, embd, k);
        MATRIX(l, CAIRN_LT_ATTN_V, embd, v);
    }
    VECTOR(l, CAIRN_LT_ATTN_Q_BIAS, q, qkv_bias);
    VECTOR(l, CAIRN_LT_ATTN_K_BIAS, k, qkv_bias);
    VECTOR(l, CAIRN_LT_ATTN_V_BIAS, v, qkv_bias);
    VECTOR(l, CAIRN_LT_ATTN_Q_NORM, hp->head_dim_k, qk_norm);
    VECTOR(l, CAIRN_LT_ATTN_K_NORM, hp->head_dim_k, qk_norm);
    MATRIX(l, CAIRN_LT_ATTN_OUT, o, embd);
    VECTOR(l, CAIRN_LT_ATTN_OUT_BIAS, embd, hp->arch == CAIRN_ARCH_GPT_OSS);
    if (hp->arch == CAIRN_ARCH_GPT_OSS) {
        VECTOR(l, CAIRN_LT_ATTN_SINKS, hp->n_head, true);
    }
    /* gemma3 normalizes the attention output; gpt-oss and glm4moe call their pre-FFN norm so */
    if (hp->arch == CAIRN_ARCH_GEMMA3 || hp->arch == CAIRN_ARCH_GPT_OSS || glm) {
        VECTOR(l, CAIRN_LT_ATTN_POST_NORM, embd, true);
    }
}

static void expert_specs(const cairn_hparams *hp, spec_list *l) {
    const int64_t embd = hp->n_embd, ff = hp->n_ff_exp, n = hp->n_expert;
    const bool biased = hp->arch == CAIRN_ARCH_GPT_OSS;
    MATRIX(l, CAIRN_LT_FFN_GATE_INP, embd, n);
    VECTOR(l, CAIRN_LT_FFN_GATE_INP_BIAS, n, biased);
    /* glm4moe always has a selection bias; deepseek2 from V3 on */
    VECTOR(l, CAIRN_LT_FFN_EXP_PROBS_B, n, hp->arch == CAIRN_ARCH_GLM4MOE);
    STACKED(l, CAIRN_LT_FFN_GATE_EXPS, embd, ff, n);
    STACKED(l, CAIRN_LT_FFN_UP_EXPS, embd, ff, n);
    STACKED(l, CAIRN_LT_FFN_DOWN_EXPS, ff, embd, n);
    if (biased) {
        add(l, CAIRN_LT_FFN_GATE_EXPS_BIAS, false, ff, n, 0, true);
        add(l, CAIRN_LT_FFN_UP_EXPS_BIAS, false, ff, n, 0, true);
        add(l, CAIRN_LT_FFN_DOWN_EXPS_BIAS, false, embd, n, 0, true);
    }
    if (hp->n_expert_shared > 0) {
        const int64_t shared = (int64_t)hp->n_ff_exp * hp->n_expert_shared;
        MATRIX(l, CAIRN_LT_FFN_GATE_SHEXP, embd, shared);
        MATRIX(l, CAIRN_LT_FFN_UP_SHEXP, embd, shared);
        MATRIX(l, CAIRN_LT_FFN_DOWN_SHEXP, shared, embd);
    }
}

static void ffn_specs(const cairn_hparams *hp, int il, spec_list *l) {
    const int64_t embd = hp->n_embd, ff = hp->n_ff;
    if (hp->arch != CAIRN_ARCH_GPT_OSS && hp->arch != CAIRN_ARCH_GLM4MOE) {
        VECTOR(l, CAIRN_LT_FFN_NORM, embd, true);
    }
    if (cairn_layer_has_experts(hp, il)) {
        expert_specs(hp, l);
    } else if (hp->arch == CAIRN_ARCH_PHI3) {
        MATRIX(l, CAIRN_LT_FFN_UP, embd, 2 * ff);
        MATRIX(l, CAIRN_LT_FFN_DOWN, ff, embd);
    } else {
        MATRIX(l, CAIRN_LT_FFN_GATE, embd, ff);
        MATRIX(l, CAIRN_LT_FFN_UP, embd, ff);
        MATRIX(l, CAIRN_LT_FFN_DOWN, ff, embd);
    }
    if (hp->arch == CAIRN_ARCH_GEMMA3) {
        VECTOR(l, CAIRN_LT_FFN_POST_NORM, embd, true);
    }
}

int cairn_layer_specs(const cairn_hparams *hp, int il, cairn_tensor_spec out[CAIRN_LT_COUNT]) {
    spec_list l = {out, 0};
    attention_specs(hp, &l);
    ffn_specs(hp, il, &l);
    return l.n;
}
