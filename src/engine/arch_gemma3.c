/* engine: the gemma3 layer. Every sublayer's output is normalized again before the residual
 * add ("sandwich" norms), the network is GELU-gated, queries are scaled before attention,
 * and five of every six layers attend over a sliding window with their own rope base (the
 * shared attention block picks the window and base by layer). The embeddings are scaled by
 * sqrt(n_embd) at the first layer (the loader's part). */
#include "engine/engine_internal.h"

struct ggml_tensor *gemma3_layer(const layer_step *st, const layer_weights *w,
                                 struct ggml_tensor *x) {
    static const attention_options scaled_q = {.scale_q_first = true};
    struct ggml_tensor *h = block_rms_norm(st, x, w->t[CAIRN_LT_ATTN_NORM]);
    h = block_attention(st, w, h, &scaled_q);
    x = ggml_add(st->ctx, x, block_rms_norm(st, h, w->t[CAIRN_LT_ATTN_POST_NORM]));
    h = block_rms_norm(st, x, w->t[CAIRN_LT_FFN_NORM]);
    h = block_ffn(st, w, h, FFN_GEGLU);
    return ggml_add(st->ctx, x, block_rms_norm(st, h, w->t[CAIRN_LT_FFN_POST_NORM]));
}
