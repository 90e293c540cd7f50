/* engine: the glm4moe layer (GLM-4.5 to 4.7). Attention with q/k/v biases (and per-head q/k
 * norms in some sizes) rotating only the first half of each head; then, after the norm its
 * files call post_attention_norm, a dense network in the leading layers and elsewhere a
 * mixture of experts chosen by a sigmoid router with a selection bias, plus a shared expert. */
#include "engine/engine_internal.h"

struct ggml_tensor *glm4moe_layer(const layer_step *st, const layer_weights *w,
                                  struct ggml_tensor *x) {
    struct ggml_tensor *h = block_rms_norm(st, x, w->t[CAIRN_LT_ATTN_NORM]);
    x = ggml_add(st->ctx, x, block_attention(st, w, h, NULL));
    h = block_rms_norm(st, x, w->t[CAIRN_LT_ATTN_POST_NORM]);
    h = w->t[CAIRN_LT_FFN_GATE_INP] ? block_moe(st, w, h, FFN_SWIGLU)
                                    : block_ffn(st, w, h, FFN_SWIGLU);
    return ggml_add(st->ctx, x, h);
}
