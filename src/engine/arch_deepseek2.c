/* engine: the deepseek2 layer (DeepSeek V2 and V3, Kimi K2 and their kin). Multi-head
 * latent attention in its absorbed form: every position caches one latent vector (the
 * compressed keys and values) plus one rotated key part shared by all heads; each head's
 * queries are mapped into the latent space (attn_k_b), attend there as one shared
 * key/value head would, and the result is mapped out per head (attn_v_b). The network is
 * dense in the leading layers, else routed experts plus shared ones.
 * Shapes: kv = kv_lora_rank, r = rope_dims, dk = mla_head_dim_k (r included), dv =
 * mla_head_dim_v, H = n_head, n = new tokens. */
#include "engine/engine_internal.h"

/* [dk, H, n] */
static struct ggml_tensor *queries(const layer_step *st, const layer_weights *w,
                                   struct ggml_tensor *x) {
    const cairn_hparams *hp = &st->s->hp;
    struct ggml_tensor *q;
    if (w->t[CAIRN_LT_ATTN_Q_A]) {
        q = block_rms_norm(st, ggml_mul_mat(st->ctx, w->t[CAIRN_LT_ATTN_Q_A], x),
                           w->t[CAIRN_LT_ATTN_Q_A_NORM]);
        q = ggml_mul_mat(st->ctx, w->t[CAIRN_LT_ATTN_Q_B], q);
    } else {
        q = ggml_mul_mat(st->ctx, w->t[CAIRN_LT_ATTN_Q], x);
    }
    return ggml_reshape_3d(st->ctx, q, hp->mla_head_dim_k, hp->n_head, st->n);
}

static struct ggml_tensor *latent_attention(const layer_step *st, const layer_weights *w,
                                            struct ggml_tensor *x) {
    const cairn_hparams *hp = &st->s->hp;
    struct ggml_context *ctx = st->ctx;
    const int64_t n = st->n, heads = hp->n_head, kv = hp->kv_lora_rank, r = hp->rope_dims;
    const int64_t nope = hp->mla_head_dim_k - r;

    struct ggml_tensor *q = queries(st, w, x);
    struct ggml_tensor *q_nope = ggml_view_3d(ctx, q, nope, heads, n, q->nb[1], q->nb[2], 0);
    struct ggml_tensor *q_pe =
        ggml_view_3d(ctx, q, r, heads, n, q->nb[1], q->nb[2], ggml_row_size(q->type, nope));
    q_pe = block_rope(st, q_pe, false);
    /* [dk - r, n, H] x attn_k_b [dk - r, kv, H] -> [kv, n, H] -> [kv, H, n] */
    struct ggml_tensor *q_latent =
        ggml_mul_mat(ctx, w->t[CAIRN_LT_ATTN_K_B], ggml_permute(ctx, q_nope, 0, 2, 1, 3));
    q_latent = ggml_permute(ctx, q_latent, 0, 2, 1, 3);
    struct ggml_tensor *q_all = ggml_concat(ctx, q_latent, q_pe, 0); /* [kv + r, H, n] */

    struct ggml_tensor *kv_pe =
        ggml_mul_mat(ctx, w->t[CAIRN_LT_ATTN_KV_A_MQA], x); /* [kv + r, n] */
    struct ggml_tensor *latent = ggml_view_2d(ctx, kv_pe, kv, n, kv_pe->nb[1], 0);
    struct ggml_tensor *k_pe = ggml_view_3d(ctx, kv_pe, r, 1, n, kv_pe->nb[1], kv_pe->nb[1],
                                            ggml_row_size(kv_pe->type, kv));
    k_pe = block_rope(st, k_pe, false);
    latent = block_rms_norm(st, latent, w->t[CAIRN_LT_ATTN_KV_A_NORM]);
    latent = ggml_reshape_3d(ctx, latent, kv, 1, n);
    struct ggml_tensor *att =
        block_cache_attention(st, w, q_all, ggml_concat(ctx, latent, k_pe, 0), NULL, (int)kv,
                              hp->attn_scale, NULL); /* [kv, H, n] */
    /* [kv, n, H] x attn_v_b [kv, dv, H] -> [dv, n, H] -> [dv, H, n] */
    att = ggml_mul_mat(ctx, w->t[CAIRN_LT_ATTN_V_B], ggml_permute(ctx, att, 0, 2, 1, 3));
    att = ggml_cont(ctx, ggml_permute(ctx, att, 0, 2, 1, 3));
    att = ggml_reshape_2d(ctx, att, hp->mla_head_dim_v * heads, n);
    return ggml_mul_mat(ctx, w->t[CAIRN_LT_ATTN_OUT], att);
}

struct ggml_tensor *deepseek2_layer(const layer_step *st, const layer_weights *w,
                                    struct ggml_tensor *x) {
    struct ggml_tensor *h = block_rms_norm(st, x, w->t[CAIRN_LT_ATTN_NORM]);
    x = ggml_add(st->ctx, x, latent_attention(st, w, h));
    h = block_rms_norm(st, x, w->t[CAIRN_LT_FFN_NORM]);
    h = w->t[CAIRN_LT_FFN_GATE_INP] ? block_moe(st, w, h, FFN_SWIGLU)
                                    : block_ffn(st, w, h, FFN_SWIGLU);
    return ggml_add(st->ctx, x, h);
}
