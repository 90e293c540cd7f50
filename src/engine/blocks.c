/* engine: the transformer blocks every family is built from (see engine_internal.h).
 * Shapes in comments are ggml's: [fastest dimension, ...]; n is the step's new tokens. */
#include <math.h>

#include "engine/engine_internal.h"

struct ggml_tensor *block_rms_norm(const layer_step *st, struct ggml_tensor *x,
                                   struct ggml_tensor *weight) {
    return ggml_mul(st->ctx, ggml_rms_norm(st->ctx, x, st->s->hp.norm_eps), weight);
}

static struct ggml_tensor *add_bias(struct ggml_context *ctx, struct ggml_tensor *x,
                                    struct ggml_tensor *bias) {
    return bias ? ggml_add(ctx, x, bias) : x;
}

/* q [head_dim_k * n_head, n], k and v [head_dim * n_head_kv, n], from separate matrices or
 * as views of one fused product. */
static void project_qkv(const layer_step *st, const layer_weights *w, struct ggml_tensor *x,
                        struct ggml_tensor **q, struct ggml_tensor **k, struct ggml_tensor **v) {
    const cairn_hparams *hp = &st->s->hp;
    struct ggml_context *ctx = st->ctx;
    if (w->t[CAIRN_LT_ATTN_QKV]) {
        struct ggml_tensor *qkv = ggml_mul_mat(ctx, w->t[CAIRN_LT_ATTN_QKV], x);
        size_t el = ggml_element_size(qkv);
        int64_t nq = (int64_t)hp->head_dim_k * hp->n_head;
        int64_t nk = (int64_t)hp->head_dim_k * hp->n_head_kv;
        int64_t nv = (int64_t)hp->head_dim_v * hp->n_head_kv;
        *q = ggml_cont(ctx, ggml_view_2d(ctx, qkv, nq, st->n, qkv->nb[1], 0));
        *k = ggml_cont(ctx, ggml_view_2d(ctx, qkv, nk, st->n, qkv->nb[1], (size_t)nq * el));
        *v = ggml_cont(ctx, ggml_view_2d(ctx, qkv, nv, st->n, qkv->nb[1], (size_t)(nq + nk) * el));
        return;
    }
    *q = add_bias(ctx, ggml_mul_mat(ctx, w->t[CAIRN_LT_ATTN_Q], x), w->t[CAIRN_LT_ATTN_Q_BIAS]);
    *k = add_bias(ctx, ggml_mul_mat(ctx, w->t[CAIRN_LT_ATTN_K], x), w->t[CAIRN_LT_ATTN_K_BIAS]);
    *v = add_bias(ctx, ggml_mul_mat(ctx, w->t[CAIRN_LT_ATTN_V], x), w->t[CAIRN_LT_ATTN_V_BIAS]);
}

struct ggml_tensor *block_rope(const layer_step *st, struct ggml_tensor *x, bool swa) {
    const cairn_hparams *hp = &st->s->hp;
    int mode = cairn_rope_is_neox(hp) ? GGML_ROPE_TYPE_NEOX : GGML_ROPE_TYPE_NORMAL;
    /* Windowed layers rotate with their own base and are never scaled (gemma3's global
     * layers carry the long-context scaling; gpt-oss scales both alike). */
    float base = swa ? hp->rope_freq_base_swa : hp->rope_freq_base;
    float scale = swa && hp->arch == CAIRN_ARCH_GEMMA3 ? 1.0f : hp->rope_freq_scale;
    return ggml_rope_ext(st->ctx, x, st->in->positions, st->s->rope_freqs, hp->rope_dims, mode,
                         hp->rope_orig_ctx, base, scale, hp->yarn_ext_factor, hp->yarn_attn_factor,
                         hp->yarn_beta_fast, hp->yarn_beta_slow);
}

/* Writes every token's row of k or v [row, n] to its cell, whichever sequence it is of:
 * position p of sequence q lives in cell q * cells + p % cells, the identity within a full
 * cache and a ring within a window's. */
static void store(const layer_step *st, const layer_weights *w, struct ggml_tensor *cache,
                  struct ggml_tensor *x) {
    bool swa = cairn_layer_is_swa(&st->s->hp, st->il);
    struct ggml_tensor *rows = swa ? st->in->kv_rows_swa : st->in->kv_rows;
    if (!ggml_is_contiguous(x)) {
        x = ggml_cont(st->ctx, x);
    }
    x = ggml_reshape_2d(st->ctx, x, cache->ne[0], st->n);
    ggml_build_forward_expand(st->gf, ggml_set_rows(st->ctx, cache, x, rows));
}

/* [head_dim, n_kv, n_head_kv]: the first head_dim values of every cell the sequence holds
 * in this layer's cache (at most the ring's cells on a window layer). */
static struct ggml_tensor *cached(const layer_step *st, const step_seq *sq, const layer_weights *w,
                                  struct ggml_tensor *cache, int head_dim) {
    int n_kv = block_cache_span(sq->pos, sq->n, w->cells);
    size_t row = cache->nb[1];
    size_t seq_base = (size_t)sq->seq * (size_t)w->cells;
    return ggml_view_3d(st->ctx, cache, head_dim, n_kv, st->s->hp.n_head_kv, row,
                        ggml_row_size(cache->type, head_dim), seq_base * row);
}

/* softmax(q k * scale + mask) v for one sequence, q [head_dim, heads, n]: [dv, heads, n]. */
static struct ggml_tensor *attend(const layer_step *st, const step_seq *sq, struct ggml_tensor *q,
                                  struct ggml_tensor *k, struct ggml_tensor *v, float scale,
                                  struct ggml_tensor *sinks) {
    bool swa = cairn_layer_is_swa(&st->s->hp, st->il);
    struct ggml_tensor *att =
        ggml_flash_attn_ext(st->ctx, ggml_permute(st->ctx, q, 0, 2, 1, 3), k, v,
                            swa ? sq->mask_swa : sq->mask, scale, 0.0f, 0.0f);
    ggml_prec_set_acc(att, GGML_PREC_F32);
    if (sinks) {
        ggml_flash_attn_ext_add_sinks(att, sinks);
    }
    return att;
}

/* Joins parts[0..n) along the token dimension, pairwise, so each value is copied about
 * log2(n) times rather than n times. Reuses parts as scratch. */
static struct ggml_tensor *join_tokens(struct ggml_context *ctx, struct ggml_tensor **parts,
                                       int n) {
    while (n > 1) {
        int half = 0;
        for (int i = 0; i < n; i += 2) {
            parts[half++] = i + 1 < n ? ggml_concat(ctx, parts[i], parts[i + 1], 2) : parts[i];
        }
        n = half;
    }
    return parts[0];
}

struct ggml_tensor *block_cache_attention(const layer_step *st, const layer_weights *w,
                                          struct ggml_tensor *q, struct ggml_tensor *k,
                                          struct ggml_tensor *v, int v_dim, float scale,
                                          struct ggml_tensor *sinks) {
    struct ggml_context *ctx = st->ctx;
    int k_dim = (int)k->ne[0];
    store(st, w, w->k_cache, k);
    if (v) {
        store(st, w, w->v_cache, v);
    }
    struct ggml_tensor *values = v ? w->v_cache : w->k_cache;
    const step_inputs *in = st->in;
    if (in->n_seqs == 1) {
        const step_seq *sq = &in->seqs[0];
        return attend(st, sq, q, cached(st, sq, w, w->k_cache, k_dim),
                      cached(st, sq, w, values, v_dim), scale, sinks);
    }
    struct ggml_tensor **parts = in->join_scratch;
    for (int i = 0; i < in->n_seqs; i++) {
        const step_seq *sq = &in->seqs[i];
        struct ggml_tensor *q_seq = ggml_view_3d(ctx, q, q->ne[0], q->ne[1], sq->n, q->nb[1],
                                                 q->nb[2], (size_t)sq->first * q->nb[2]);
        parts[i] = attend(st, sq, q_seq, cached(st, sq, w, w->k_cache, k_dim),
                          cached(st, sq, w, values, v_dim), scale, sinks);
    }
    return join_tokens(ctx, parts, in->n_seqs);
}

struct ggml_tensor *block_attention(const layer_step *st, const layer_weights *w,
                                    struct ggml_tensor *x, const attention_options *opt) {
    const cairn_hparams *hp = &st->s->hp;
    struct ggml_context *ctx = st->ctx;
    bool swa = cairn_layer_is_swa(hp, st->il);
    struct ggml_tensor *q, *k, *v;
    project_qkv(st, w, x, &q, &k, &v);
    q = ggml_reshape_3d(ctx, q, hp->head_dim_k, hp->n_head, st->n);
    k = ggml_reshape_3d(ctx, k, hp->head_dim_k, hp->n_head_kv, st->n);
    if (w->t[CAIRN_LT_ATTN_Q_NORM]) {
        q = block_rms_norm(st, q, w->t[CAIRN_LT_ATTN_Q_NORM]);
        k = block_rms_norm(st, k, w->t[CAIRN_LT_ATTN_K_NORM]);
    }
    q = block_rope(st, q, swa);
    k = block_rope(st, k, swa);
    v = ggml_reshape_3d(ctx, v, hp->head_dim_v, hp->n_head_kv, st->n);

    float scale = hp->attn_scale;
    if (opt && opt->scale_q_first) {
        q = ggml_scale(ctx, q, scale);
        scale = 1.0f;
    }
    struct ggml_tensor *att =
        block_cache_attention(st, w, q, k, v, hp->head_dim_v, scale, w->t[CAIRN_LT_ATTN_SINKS]);
    att = ggml_reshape_2d(ctx, att, (int64_t)hp->head_dim_v * hp->n_head, st->n);
    return add_bias(ctx, ggml_mul_mat(ctx, w->t[CAIRN_LT_ATTN_OUT], att),
                    w->t[CAIRN_LT_ATTN_OUT_BIAS]);
}

/* gpt-oss's clamped SwiGLU: its published constants. */
#define OAI_SWIGLU_ALPHA 1.702f
#define OAI_SWIGLU_LIMIT 7.0f

static struct ggml_tensor *activate(struct ggml_context *ctx, struct ggml_tensor *gate,
                                    struct ggml_tensor *up, ffn_activation act) {
    switch (act) {
    case FFN_GEGLU: return ggml_geglu_split(ctx, gate, up);
    case FFN_SWIGLU_OAI: return ggml_swiglu_oai(ctx, gate, up, OAI_SWIGLU_ALPHA, OAI_SWIGLU_LIMIT);
    case FFN_SWIGLU: break;
    }
    return ggml_swiglu_split(ctx, gate, up);
}

static struct ggml_tensor *gated_ffn(const layer_step *st, struct ggml_tensor *gate_w,
                                     struct ggml_tensor *up_w, struct ggml_tensor *down_w,
                                     struct ggml_tensor *x, ffn_activation act) {
    struct ggml_context *ctx = st->ctx;
    struct ggml_tensor *up = ggml_mul_mat(ctx, up_w, x);
    struct ggml_tensor *hidden;
    if (gate_w) {
        hidden = activate(ctx, ggml_mul_mat(ctx, gate_w, x), up, act);
    } else {
        hidden = ggml_swiglu(ctx, up); /* [2 * n_ff, n]: gate rows, then up rows */
    }
    return ggml_mul_mat(ctx, down_w, hidden);
}

struct ggml_tensor *block_ffn(const layer_step *st, const layer_weights *w, struct ggml_tensor *x,
                              ffn_activation act) {
    return gated_ffn(st, w->t[CAIRN_LT_FFN_GATE], w->t[CAIRN_LT_FFN_UP], w->t[CAIRN_LT_FFN_DOWN], x,
                     act);
}

/* [1, n_expert_used, n]: the weight of each chosen expert for each token. */
static struct ggml_tensor *expert_weights(const layer_step *st, struct ggml_tensor *probs,
                                          struct ggml_tensor *chosen) {
    const cairn_hparams *hp = &st->s->hp;
    struct ggml_context *ctx = st->ctx;
    int64_t used = hp->n_expert_used, n = st->n;
    struct ggml_tensor *weights =
        ggml_get_rows(ctx, ggml_reshape_3d(ctx, probs, 1, hp->n_expert, n), chosen);
    if (hp->gating == CAIRN_GATING_SOFTMAX_WEIGHT) {
        weights = ggml_soft_max(ctx, ggml_reshape_2d(ctx, weights, used, n));
        weights = ggml_reshape_3d(ctx, weights, 1, used, n);
    }
    if (hp->expert_weights_norm) {
        weights = ggml_reshape_2d(ctx, weights, used, n);
        /* the smallest normal F16, so a sum that underflows never divides by zero */
        struct ggml_tensor *sum =
            ggml_clamp(ctx, ggml_sum_rows(ctx, weights), 6.103515625e-5f, INFINITY);
        weights = ggml_reshape_3d(ctx, ggml_div(ctx, weights, sum), 1, used, n);
    }
    if (hp->expert_weights_scale != 1.0f) {
        weights = ggml_scale(ctx, weights, hp->expert_weights_scale);
    }
    return weights;
}

/* Keeps the scores of the n_group_used groups whose two best experts score highest and
 * masks the others (DeepSeek V3's group-limited routing). [n_expert, n] in and out. */
static struct ggml_tensor *limit_to_groups(const layer_step *st, struct ggml_tensor *scores) {
    const cairn_hparams *hp = &st->s->hp;
    struct ggml_context *ctx = st->ctx;
    int64_t per_group = hp->n_expert / hp->n_expert_groups, n = st->n;
    struct ggml_tensor *groups = ggml_reshape_3d(ctx, scores, per_group, hp->n_expert_groups, n);
    struct ggml_tensor *best2 = ggml_argsort_top_k(ctx, groups, 2); /* [2, groups, n] */
    struct ggml_tensor *top = ggml_get_rows(
        ctx, ggml_reshape_4d(ctx, groups, 1, groups->ne[0], groups->ne[1], groups->ne[2]), best2);
    top = ggml_sum_rows(ctx, ggml_reshape_3d(ctx, top, top->ne[1], top->ne[2], top->ne[3]));
    top = ggml_reshape_2d(ctx, top, top->ne[1], top->ne[2]); /* [groups, n] */
    struct ggml_tensor *kept = ggml_argsort_top_k(ctx, top, hp->n_group_used);
    struct ggml_tensor *rows = ggml_get_rows(ctx, groups, kept);
    struct ggml_tensor *masked = ggml_set_rows(ctx, ggml_fill(ctx, groups, -INFINITY), rows, kept);
    return ggml_reshape_2d(ctx, masked, hp->n_expert, n);
}

/* [n_expert_used, n]: the experts each token goes to. A selection bias, where the layer has
 * one, changes which experts are chosen but not their weights. */
static struct ggml_tensor *choose_experts(const layer_step *st, const layer_weights *w,
                                          struct ggml_tensor *probs) {
    const cairn_hparams *hp = &st->s->hp;
    struct ggml_tensor *scores = add_bias(st->ctx, probs, w->t[CAIRN_LT_FFN_EXP_PROBS_B]);
    if (hp->n_expert_groups > 1) {
        scores = limit_to_groups(st, scores);
    }
    return ggml_argsort_top_k(st->ctx, scores, hp->n_expert_used);
}

static struct ggml_tensor *add_expert_bias(struct ggml_context *ctx, struct ggml_tensor *x,
                                           struct ggml_tensor *bias, struct ggml_tensor *chosen) {
    return bias ? ggml_add_id(ctx, x, bias, chosen) : x;
}

struct ggml_tensor *block_moe(const layer_step *st, const layer_weights *w, struct ggml_tensor *x,
                              ffn_activation act) {
    const cairn_hparams *hp = &st->s->hp;
    struct ggml_context *ctx = st->ctx;
    struct ggml_tensor *logits = add_bias(ctx, ggml_mul_mat(ctx, w->t[CAIRN_LT_FFN_GATE_INP], x),
                                          w->t[CAIRN_LT_FFN_GATE_INP_BIAS]); /* [n_expert, n] */
    struct ggml_tensor *probs = hp->gating == CAIRN_GATING_SOFTMAX   ? ggml_soft_max(ctx, logits)
                                : hp->gating == CAIRN_GATING_SIGMOID ? ggml_sigmoid(ctx, logits)
                                                                     : logits;
    struct ggml_tensor *chosen = choose_experts(st, w, probs); /* [used, n] */
    struct ggml_tensor *weights = expert_weights(st, probs, chosen);
    ggml_build_forward_expand(st->gf, weights);

    struct ggml_tensor *x3 = ggml_reshape_3d(ctx, x, hp->n_embd, 1, st->n);
    struct ggml_tensor *up =
        add_expert_bias(ctx, ggml_mul_mat_id(ctx, w->t[CAIRN_LT_FFN_UP_EXPS], x3, chosen),
                        w->t[CAIRN_LT_FFN_UP_EXPS_BIAS], chosen); /* [n_ff_exp, used, n] */
    struct ggml_tensor *gate =
        add_expert_bias(ctx, ggml_mul_mat_id(ctx, w->t[CAIRN_LT_FFN_GATE_EXPS], x3, chosen),
                        w->t[CAIRN_LT_FFN_GATE_EXPS_BIAS], chosen);
    struct ggml_tensor *experts = add_expert_bias(
        ctx,
        ggml_mul_mat_id(ctx, w->t[CAIRN_LT_FFN_DOWN_EXPS], activate(ctx, gate, up, act), chosen),
        w->t[CAIRN_LT_FFN_DOWN_EXPS_BIAS], chosen); /* [n_embd, used, n] */
    experts = ggml_mul(ctx, experts, weights);
    ggml_build_forward_expand(st->gf, experts);

    /* Sum the chosen experts' outputs in order, viewing each one first so the adds are
     * ordered after every view exists. */
    struct ggml_tensor *sum = NULL;
    for (int i = 0; i < hp->n_expert_used; i++) {
        struct ggml_tensor *one = ggml_view_2d(ctx, experts, hp->n_embd, st->n, experts->nb[2],
                                               (size_t)i * experts->nb[1]);
        ggml_build_forward_expand(st->gf, one);
        sum = sum ? ggml_add(ctx, sum, one) : one;
    }
    sum = hp->n_expert_used == 1 ? ggml_cont(ctx, sum) : sum;
    if (w->t[CAIRN_LT_FFN_UP_SHEXP]) {
        sum = ggml_add(ctx, sum,
                       gated_ffn(st, w->t[CAIRN_LT_FFN_GATE_SHEXP], w->t[CAIRN_LT_FFN_UP_SHEXP],
                                 w->t[CAIRN_LT_FFN_DOWN_SHEXP], x, FFN_SWIGLU));
    }
    return sum;
}
