/* engine: the gpt-oss layer. Attention has biases, a learned sink per head (a logit every
 * query may put weight on instead of a position) and a sliding window on every other
 * layer; the network is a mixture of experts with biased experts, a clamped SwiGLU, and the
 * softmax taken over the chosen experts' router logits only. The norm before the network is
 * called post_attention_norm in its files. */
#include "engine/engine_internal.h"

struct ggml_tensor *gpt_oss_layer(const layer_step *st, const layer_weights *w,
                                  struct ggml_tensor *x) {
    struct ggml_tensor *h = block_rms_norm(st, x, w->t[CAIRN_LT_ATTN_NORM]);
    x = ggml_add(st->ctx, x, block_attention(st, w, h, NULL));
    h = block_rms_norm(st, x, w->t[CAIRN_LT_ATTN_POST_NORM]);
    return ggml_add(st->ctx, x, block_moe(st, w, h, FFN_SWIGLU_OAI));
}
