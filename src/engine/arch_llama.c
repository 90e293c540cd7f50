/* engine: the llama family's layer: Llama 2/3.x, Mistral and Mixtral, Qwen2, Qwen3 and
 * Qwen3-MoE. Pre-norm attention, then a pre-norm SwiGLU network, dense or of experts; the
 * members differ only in tensors the shared blocks pick up where a file has them (q/k/v
 * biases, per-head q/k norms, a router). */
#include "engine/engine_internal.h"

struct ggml_tensor *llama_layer(const layer_step *st, const layer_weights *w,
                                struct ggml_tensor *x) {
    struct ggml_tensor *h = block_rms_norm(st, x, w->t[CAIRN_LT_ATTN_NORM]);
    x = ggml_add(st->ctx, x, block_attention(st, w, h, NULL));
    h = block_rms_norm(st, x, w->t[CAIRN_LT_FFN_NORM]);
    h = w->t[CAIRN_LT_FFN_GATE_INP] ? block_moe(st, w, h, FFN_SWIGLU)
                                    : block_ffn(st, w, h, FFN_SWIGLU);
    return ggml_add(st->ctx, x, h);
}
