/* engine: the phi3 layer: llama's shape with q, k and v in one matrix and the network's gate
 * and up rows in one matrix (the shared blocks split both), queries scaled before attention. */
#include "engine/engine_internal.h"

struct ggml_tensor *phi3_layer(const layer_step *st, const layer_weights *w,
                               struct ggml_tensor *x) {
    static const attention_options scaled_q = {.scale_q_first = true};
    struct ggml_tensor *h = block_rms_norm(st, x, w->t[CAIRN_LT_ATTN_NORM]);
    x = ggml_add(st->ctx, x, block_attention(st, w, h, &scaled_q));
    h = block_rms_norm(st, x, w->t[CAIRN_LT_FFN_NORM]);
    return ggml_add(st->ctx, x, block_ffn(st, w, h, FFN_SWIGLU));
}
