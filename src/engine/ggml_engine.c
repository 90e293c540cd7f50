/*
 * engine: the ggml implementation of a shard (see engine.h).
 *
 * Only the shard's own tensors are read from the file mapping. By default they are copied
 * into anonymous memory on large pages (streaming weights through 4 KiB file pages costs a
 * TLB miss per page, which made decoding 2-3x slower in measurements); with use_mmap they
 * are used in place, with no copy.
 * Each sequence owns a contiguous block of n_ctx cells in every layer's K and V cache.
 * A forward step builds a graph of exactly this shard's layers; building the same ops per
 * layer whatever the split is what makes split and unsplit runs agree bit for bit.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "ggml-cpu.h"
#include "util/defaults.h"

#define GRAPH_NODES_PER_LAYER 80 /* besides one view and one add per chosen expert */
#define GRAPH_NODES_FIXED 128
#define GRAPH_NODES_PER_SEQ 8 /* a sequence's own attention in each layer, and its joining */
#define MIN_BYTES_PER_THREAD (16u << 20)

/* ---- loading ---- */

/* Whether ggml's CPU backend has a faster memory layout for this matrix (or stack of
 * experts' matrices) in a product: the layout llama.cpp uses too, so both compute alike. */
static bool can_repack(ggml_shard *s, const cairn_tensor_info *info) {
    if (!s->repack_type || info->n_dims < 2 || info->n_dims > 3) {
        return false;
    }
    struct ggml_init_params params = {ggml_tensor_overhead() * 4, NULL, true};
    struct ggml_context *ctx = ggml_init(params);
    if (!ctx) {
        return false;
    }
    struct ggml_tensor *w =
        ggml_new_tensor(ctx, (enum ggml_type)info->type, info->n_dims, info->ne);
    struct ggml_tensor *product;
    if (info->n_dims == 2) {
        product = ggml_mul_mat(ctx, w, ggml_new_tensor_2d(ctx, GGML_TYPE_F32, info->ne[0], 1));
    } else {
        struct ggml_tensor *x = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, info->ne[0], 1, 1);
        struct ggml_tensor *ids = ggml_new_tensor_2d(ctx, GGML_TYPE_I32, 1, 1);
        product = ggml_mul_mat_id(ctx, w, x, ids);
    }
    w->buffer = s->repack_probe;
    bool ok = ggml_backend_dev_supports_op(ggml_backend_get_device(s->backend), product);
    ggml_free(ctx);
    return ok;
}

static struct ggml_tensor *make_weight(ggml_shard *s, const char *name, bool required,
                                       cairn_err *err, int *failed) {
    const cairn_tensor_info *info = cairn_model_tensor(s->model, name);
    if (!info) {
        if (required) {
            cairn_fail(err, "tensor %s is missing", name);
            *failed = 1;
        }
        return NULL;
    }
    struct ggml_tensor *t =
        ggml_new_tensor(s->weights_ctx, (enum ggml_type)info->type, info->n_dims, info->ne);
    ggml_set_name(t, name);
    return t;
}

/* A matrix (or experts' stack) that only ever multiplies activations, which may be stored
 * repacked. */
static struct ggml_tensor *make_matrix(ggml_shard *s, const char *name, cairn_err *err,
                                       int *failed) {
    const cairn_tensor_info *info = cairn_model_tensor(s->model, name);
    if (!info || !can_repack(s, info)) {
        return make_weight(s, name, true, err, failed);
    }
    struct ggml_tensor *t =
        ggml_new_tensor(s->repack_ctx, (enum ggml_type)info->type, info->n_dims, info->ne);
    ggml_set_name(t, name);
    return t;
}

/* Declares layer il's tensors as the architecture lists them; 2-D matrices and experts'
 * stacks (only ever in ggml_mul_mat_id) may be stored repacked. */
static void declare_layer(ggml_shard *s, int il, layer_weights *w, cairn_err *err, int *failed) {
    cairn_tensor_spec specs[CAIRN_LT_COUNT];
    int n = cairn_layer_specs(&s->hp, il, specs);
    for (int i = 0; i < n && !*failed; i++) {
        char name[128];
        snprintf(name, sizeof(name), "blk.%d.%s", il, cairn_layer_tensor_name(specs[i].role));
        cairn_layer_tensor role = specs[i].role;
        bool experts = role == CAIRN_LT_FFN_GATE_EXPS || role == CAIRN_LT_FFN_UP_EXPS ||
                       role == CAIRN_LT_FFN_DOWN_EXPS;
        bool product_only = specs[i].matrix && (specs[i].ne[2] == 0 || experts);
        w->t[specs[i].role] = product_only ? make_matrix(s, name, err, failed)
                                           : make_weight(s, name, specs[i].required, err, failed);
    }
}

static int declare_weights(ggml_shard *s, cairn_err *err) {
    const cairn_shard_info *in = &s->base.info;
    int n_layers = in->last_layer - in->first_layer;
    size_t n_tensors = (size_t)n_layers * CAIRN_LT_COUNT + 8;
    struct ggml_init_params params = {ggml_tensor_overhead() * n_tensors, NULL, true};
    s->weights_ctx = ggml_init(params);
    s->repack_ctx = ggml_init(params);
    s->layers = calloc((size_t)n_layers, sizeof(*s->layers));
    if (!s->weights_ctx || !s->repack_ctx || !s->layers) {
        return cairn_fail(err, "out of memory");
    }
    int failed = 0;
    for (int i = 0; i < n_layers && !failed; i++) {
        declare_layer(s, in->first_layer + i, &s->layers[i], err, &failed);
    }
    if (!failed) {
        s->rope_freqs = make_weight(s, "rope_freqs.weight", false, err, &failed);
    }
    if (!failed && (in->is_first || (in->is_last && s->hp.tied_embeddings))) {
        s->tok_embd = make_weight(s, "token_embd.weight", true, err, &failed);
    }
    if (!failed && in->is_last) {
        s->output_norm = make_weight(s, "output_norm.weight", true, err, &failed);
        s->output =
            s->hp.tied_embeddings ? s->tok_embd : make_matrix(s, "output.weight", err, &failed);
    }
    return failed ? -1 : 0;
}

/* Reads one byte per page so the shard's weights are resident before the first step: load
 * time is then spent in the load (with progress), not in the first request. */
static uint64_t touch_pages(const uint8_t *data, uint64_t size) {
    uint64_t sum = 0;
    for (uint64_t off = 0; off < size; off += 4096) {
        sum += data[off];
    }
    return sum;
}

static int count_tensors(struct ggml_context *ctx) {
    int n = 0;
    for (struct ggml_tensor *t = ggml_get_first_tensor(ctx); t; t = ggml_get_next_tensor(ctx, t)) {
        n++;
    }
    return n;
}

static const cairn_tensor_info *checked_info(ggml_shard *s, const struct ggml_tensor *t,
                                             cairn_err *err) {
    const cairn_tensor_info *info = cairn_model_tensor(s->model, ggml_get_name(t));
    if (ggml_nbytes(t) != info->size) {
        cairn_fail(err, "tensor %s: %zu bytes expected, file has %llu", ggml_get_name(t),
                   ggml_nbytes(t), (unsigned long long)info->size);
        return NULL;
    }
    return info;
}

/* Copies one context's tensors out of the mapping into a fresh buffer of the given type
 * (repacking them on the way where the type says so), then lets go of the mapped pages. */
static int copy_context(ggml_shard *s, struct ggml_context *ctx, ggml_backend_buffer_type_t type,
                        ggml_backend_buffer_t *buf, const cairn_shard_config *cfg, int *done,
                        int total, cairn_err *err) {
    if (!ggml_get_first_tensor(ctx)) {
        return 0;
    }
    *buf = ggml_backend_alloc_ctx_tensors_from_buft(ctx, type);
    if (!*buf) {
        return cairn_fail(err, "cannot allocate memory for the shard's weights");
    }
    ggml_backend_buffer_set_usage(*buf, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
    cairn_advise_huge_pages(ggml_backend_buffer_get_base(*buf), ggml_backend_buffer_get_size(*buf));
    for (struct ggml_tensor *t = ggml_get_first_tensor(ctx); t; t = ggml_get_next_tensor(ctx, t)) {
        const cairn_tensor_info *info = checked_info(s, t, err);
        if (!info) {
            return -1;
        }
        cairn_mapped_prefetch(&s->model->map, info->offset, info->size);
        ggml_backend_tensor_set(t, s->model->map.data + info->offset, 0, info->size);
        cairn_mapped_release(&s->model->map, info->offset, info->size);
        if (cfg->progress) {
            cfg->progress(cfg->progress_user, ++*done, total);
        }
    }
    return 0;
}

/* Copies the shard's tensors into anonymous memory on large pages (see
 * cairn_advise_huge_pages for why that is faster than reading the mapping in place). */
static int copy_weights(ggml_shard *s, const cairn_shard_config *cfg, cairn_err *err) {
    int done = 0, total = count_tensors(s->weights_ctx) + count_tensors(s->repack_ctx);
    ggml_backend_buffer_type_t plain = ggml_backend_get_default_buffer_type(s->backend);
    if (copy_context(s, s->weights_ctx, plain, &s->weights_buf, cfg, &done, total, err) != 0) {
        return -1;
    }
    return copy_context(s, s->repack_ctx, s->repack_type, &s->repack_buf, cfg, &done, total, err);
}

/* Places every tensor at its address in the mapping, inside one CPU buffer that spans the
 * lowest to the highest byte this shard uses: no copy, pages shared with the page cache. */
static int map_weights(ggml_shard *s, const cairn_shard_config *cfg, cairn_err *err) {
    const uint8_t *file = s->model->map.data;
    uint64_t lo = UINT64_MAX, hi = 0;
    for (struct ggml_tensor *t = ggml_get_first_tensor(s->weights_ctx); t;
         t = ggml_get_next_tensor(s->weights_ctx, t)) {
        const cairn_tensor_info *info = cairn_model_tensor(s->model, ggml_get_name(t));
        lo = info->offset < lo ? info->offset : lo;
        hi = info->offset + info->size > hi ? info->offset + info->size : hi;
    }
    uint64_t page_lo = lo / 4096 * 4096;
    s->weights_buf = ggml_backend_cpu_buffer_from_ptr((void *)(file + page_lo), hi - page_lo);
    if (!s->weights_buf) {
        return cairn_fail(err, "cannot wrap the model mapping in a ggml buffer");
    }
    ggml_backend_buffer_set_usage(s->weights_buf, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
    int done = 0, total = count_tensors(s->weights_ctx);
    volatile uint64_t sink = 0;
    for (struct ggml_tensor *t = ggml_get_first_tensor(s->weights_ctx); t;
         t = ggml_get_next_tensor(s->weights_ctx, t)) {
        const cairn_tensor_info *info = checked_info(s, t, err);
        if (!info) {
            return -1;
        }
        if (ggml_backend_tensor_alloc(s->weights_buf, t, (void *)(file + info->offset)) !=
            GGML_STATUS_SUCCESS) {
            return cairn_fail(err, "cannot place tensor %s", ggml_get_name(t));
        }
        cairn_mapped_prefetch(&s->model->map, info->offset, info->size);
        sink += touch_pages(file + info->offset, info->size);
        if (cfg->progress) {
            cfg->progress(cfg->progress_user, ++done, total);
        }
    }
    (void)sink;
    return 0;
}

static int place_weights(ggml_shard *s, const cairn_shard_config *cfg, cairn_err *err) {
    return cfg->use_mmap ? map_weights(s, cfg, err) : copy_weights(s, cfg, err);
}

static int create_caches(ggml_shard *s, const cairn_shard_config *cfg, cairn_err *err) {
    const cairn_shard_info *in = &s->base.info;
    int n_layers = in->last_layer - in->first_layer;
    struct ggml_init_params params = {ggml_tensor_overhead() * (size_t)n_layers * 2, NULL, true};
    s->cache_ctx = ggml_init(params);
    if (!s->cache_ctx) {
        return cairn_fail(err, "out of memory");
    }
    enum ggml_type type = cfg->kv_f32 ? GGML_TYPE_F32 : GGML_TYPE_F16;
    for (int i = 0; i < n_layers; i++) {
        layer_weights *w = &s->layers[i];
        w->cells = in->n_ctx;
        if (cairn_layer_is_swa(&s->hp, in->first_layer + i)) {
            if (!cfg->swa_full) {
                w->cells = cairn_swa_cells(&s->hp, in->n_ctx, in->n_batch);
            }
            s->swa_cells = w->cells;
        }
        int64_t cells = (int64_t)in->n_seq * w->cells;
        w->k_cache = ggml_new_tensor_2d(s->cache_ctx, type,
                                        (int64_t)s->hp.head_dim_k * s->hp.n_head_kv, cells);
        if (s->hp.kv_lora_rank == 0) {
            w->v_cache = ggml_new_tensor_2d(s->cache_ctx, type,
                                            (int64_t)s->hp.head_dim_v * s->hp.n_head_kv, cells);
        }
    }
    s->cache_buf = ggml_backend_alloc_ctx_tensors(s->cache_ctx, s->backend);
    if (!s->cache_buf) {
        return cairn_fail(err, "cannot allocate the KV cache (%d sequences x %d positions)",
                          in->n_seq, in->n_ctx);
    }
    ggml_backend_buffer_clear(s->cache_buf, 0);
    return 0;
}

/* ---- the graph of one step ---- */

static const layer_builder layer_builders[CAIRN_ARCH_COUNT] = {
    [CAIRN_ARCH_LLAMA] = llama_layer,         [CAIRN_ARCH_QWEN2] = llama_layer,
    [CAIRN_ARCH_QWEN3] = llama_layer,         [CAIRN_ARCH_QWEN3MOE] = llama_layer,
    [CAIRN_ARCH_GEMMA3] = gemma3_layer,       [CAIRN_ARCH_PHI3] = phi3_layer,
    [CAIRN_ARCH_GPT_OSS] = gpt_oss_layer,     [CAIRN_ARCH_GLM4MOE] = glm4moe_layer,
    [CAIRN_ARCH_DEEPSEEK2] = deepseek2_layer,
};

static struct ggml_tensor *new_input(struct ggml_context *ctx, enum ggml_type type, int64_t ne0,
                                     int64_t ne1) {
    struct ggml_tensor *t = ggml_new_tensor_2d(ctx, type, ne0, ne1);
    ggml_set_input(t);
    return t;
}

/* The step's sequences: where each one's tokens sit in the step and the masks of its cells
 * (only those some layer of this shard reads: an input outside the graph has no memory). */
static int plan_seqs(ggml_shard *s, struct ggml_context *ctx, const cairn_batch *b, const int *pos,
                     int n_b, bool any_global, bool any_swa, step_inputs *in) {
    int n = 0;
    for (int i = 0; i < n_b; i++) {
        step_seq *sq = &s->step_seqs[i];
        *sq = (step_seq){.seq = b[i].seq, .pos = pos[i], .n = b[i].n_tokens, .first = n};
        if (any_global) {
            sq->mask = new_input(ctx, GGML_TYPE_F16, sq->pos + sq->n, sq->n);
        }
        if (any_swa) {
            sq->mask_swa = new_input(ctx, GGML_TYPE_F16,
                                     block_cache_span(sq->pos, sq->n, s->swa_cells), sq->n);
        }
        n += sq->n;
    }
    in->seqs = s->step_seqs;
    in->n_seqs = n_b;
    in->join_scratch = s->join_scratch;
    in->kv_rows = any_global ? new_input(ctx, GGML_TYPE_I64, n, 1) : NULL;
    in->kv_rows_swa = any_swa ? new_input(ctx, GGML_TYPE_I64, n, 1) : NULL;
    return n;
}

/* Rows of the step whose logits are returned: every row of a sequence that asks for all,
 * else its last. */
static int output_rows(const cairn_batch *b, int n_b) {
    int rows = 0;
    for (int i = 0; i < n_b; i++) {
        rows += b[i].all_logits ? b[i].n_tokens : 1;
    }
    return rows;
}

/* The final norm and the head, over the rows whose logits are wanted. */
static struct ggml_tensor *build_head(ggml_shard *s, struct ggml_context *ctx,
                                      struct ggml_tensor *x, const cairn_batch *b, int n_b, int n,
                                      step_inputs *in) {
    const cairn_hparams *hp = &s->hp;
    int rows = output_rows(b, n_b);
    if (n_b == 1 && rows == 1 && n > 1) {
        x = ggml_view_2d(ctx, x, hp->n_embd, 1, x->nb[1], (size_t)(n - 1) * x->nb[1]);
    } else if (rows < n) {
        in->out_rows = new_input(ctx, GGML_TYPE_I32, rows, 1);
        x = ggml_get_rows(ctx, x, in->out_rows);
    }
    x = ggml_mul(ctx, ggml_rms_norm(ctx, x, hp->norm_eps), s->output_norm);
    return ggml_mul_mat(ctx, s->output, x);
}

/* The graph of one step: the steps of n_b different sequences, sequence b[i].seq starting
 * at position pos[i]. */
static struct ggml_cgraph *build_graph(ggml_shard *s, const cairn_batch *b, const int *pos, int n_b,
                                       struct ggml_context **ctx_out, step_inputs *in) {
    const cairn_shard_info *info = &s->base.info;
    const cairn_hparams *hp = &s->hp;
    struct ggml_init_params params = {s->graph_mem_size, s->graph_mem, true};
    struct ggml_context *ctx = ggml_init(params);
    *ctx_out = ctx;
    struct ggml_cgraph *gf = ggml_new_graph_custom(ctx, s->graph_nodes, false);
    memset(in, 0, sizeof(*in));

    bool any_swa = false, any_global = false;
    for (int il = info->first_layer; il < info->last_layer; il++) {
        any_swa |= cairn_layer_is_swa(hp, il);
        any_global |= !cairn_layer_is_swa(hp, il);
    }
    int n = plan_seqs(s, ctx, b, pos, n_b, any_global, any_swa, in);
    struct ggml_tensor *x;
    if (info->is_first) {
        in->tokens = new_input(ctx, GGML_TYPE_I32, n, 1);
        x = ggml_get_rows(ctx, s->tok_embd, in->tokens);
    } else {
        in->hidden = new_input(ctx, GGML_TYPE_F32, hp->n_embd, n);
        x = in->hidden;
    }
    in->positions = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, n);
    ggml_set_input(in->positions);
    if (info->is_first && hp->arch == CAIRN_ARCH_GEMMA3) {
        x = ggml_scale(ctx, x, sqrtf((float)hp->n_embd));
    }

    layer_step st = {s, ctx, gf, in, n, 0};
    for (int i = 0; i < info->last_layer - info->first_layer; i++) {
        st.il = info->first_layer + i;
        x = layer_builders[hp->arch](&st, &s->layers[i], x);
    }
    if (info->is_last) {
        x = build_head(s, ctx, x, b, n_b, n, in);
    }
    in->output = x;
    ggml_set_output(x);
    ggml_build_forward_expand(gf, x);
    return gf;
}

/* Token i (at position pos + i) sees cell j when j <= pos + i. */
static void fill_causal_mask(struct ggml_tensor *mask, ggml_fp16_t *rows, int pos, int n) {
    int n_kv = pos + n;
    ggml_fp16_t zero = ggml_fp32_to_fp16(0.0f), masked = ggml_fp32_to_fp16(-INFINITY);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n_kv; j++) {
            rows[(size_t)i * (size_t)n_kv + (size_t)j] = j <= pos + i ? zero : masked;
        }
    }
    ggml_backend_tensor_set(mask, rows, 0, (size_t)n * (size_t)n_kv * sizeof(*rows));
}

/* On a window ring of C cells, cell c holds the latest position p <= pos + n - 1 with
 * p % C == c (the step's own positions included); token i sees it when p <= pos + i and
 * pos + i - p < n_swa. Cells whose position the window no longer needs may hold anything:
 * they are masked. */
static void fill_window_mask(const ggml_shard *s, struct ggml_tensor *mask, ggml_fp16_t *rows,
                             int pos, int n) {
    int n_kv = block_cache_span(pos, n, s->swa_cells), last = pos + n - 1, cells = s->swa_cells;
    ggml_fp16_t zero = ggml_fp32_to_fp16(0.0f), masked = ggml_fp32_to_fp16(-INFINITY);
    for (int j = 0; j < n_kv; j++) {
        int p = last - ((last - j) % cells + cells) % cells;
        for (int i = 0; i < n; i++) {
            bool seen = p >= 0 && p <= pos + i && pos + i - p < s->hp.n_swa;
            rows[(size_t)i * (size_t)n_kv + (size_t)j] = seen ? zero : masked;
        }
    }
    ggml_backend_tensor_set(mask, rows, 0, (size_t)n * (size_t)n_kv * sizeof(*rows));
}

/* Per token of the step: its position, its cache rows, and (last shard) which rows' logits
 * are returned. */
static void fill_token_inputs(const ggml_shard *s, const step_inputs *in, const cairn_batch *b,
                              int n_b) {
    int32_t *positions = s->step_positions, *out_rows = s->step_out_rows;
    int64_t *rows = s->step_kv_rows, *rows_swa = s->step_kv_rows_swa;
    int n_out = 0;
    for (int i = 0; i < n_b; i++) {
        const step_seq *sq = &in->seqs[i];
        for (int t = 0; t < sq->n; t++) {
            int p = sq->pos + t, at = sq->first + t;
            positions[at] = p;
            rows[at] = (int64_t)sq->seq * s->base.info.n_ctx + p;
            rows_swa[at] = s->swa_cells ? (int64_t)sq->seq * s->swa_cells + p % s->swa_cells : 0;
            if (b[i].all_logits || t == sq->n - 1) {
                out_rows[n_out++] = at;
            }
        }
    }
    size_t n = (size_t)ggml_nelements(in->positions);
    ggml_backend_tensor_set(in->positions, positions, 0, n * sizeof(*positions));
    if (in->kv_rows) {
        ggml_backend_tensor_set(in->kv_rows, rows, 0, n * sizeof(*rows));
    }
    if (in->kv_rows_swa) {
        ggml_backend_tensor_set(in->kv_rows_swa, rows_swa, 0, n * sizeof(*rows_swa));
    }
    if (in->out_rows) {
        ggml_backend_tensor_set(in->out_rows, out_rows, 0, (size_t)n_out * sizeof(*out_rows));
    }
}

static void fill_inputs(const ggml_shard *s, const step_inputs *in, const cairn_batch *b, int n_b,
                        ggml_fp16_t *mask_rows) {
    size_t embd = (size_t)s->hp.n_embd;
    for (int i = 0; i < n_b; i++) {
        const step_seq *sq = &in->seqs[i];
        size_t first = (size_t)sq->first, count = (size_t)sq->n;
        if (in->tokens) {
            ggml_backend_tensor_set(in->tokens, b[i].tokens, first * sizeof(int32_t),
                                    count * sizeof(int32_t));
        } else {
            ggml_backend_tensor_set(in->hidden, b[i].hidden, first * embd * sizeof(float),
                                    count * embd * sizeof(float));
        }
        if (sq->mask) {
            fill_causal_mask(sq->mask, mask_rows, sq->pos, sq->n);
        }
        if (sq->mask_swa) {
            fill_window_mask(s, sq->mask_swa, mask_rows, sq->pos, sq->n);
        }
    }
    fill_token_inputs(s, in, b, n_b);
}

/* Copies each sequence's part of the step's output to its own buffer. */
static void read_outputs(const ggml_shard *s, const step_inputs *in, const cairn_batch *b, int n_b,
                         float *const *outs) {
    const cairn_shard_info *info = &s->base.info;
    size_t width = info->is_last ? (size_t)info->n_vocab : (size_t)info->n_embd;
    size_t row = 0;
    for (int i = 0; i < n_b; i++) {
        size_t rows = info->is_last && !b[i].all_logits ? 1 : (size_t)b[i].n_tokens;
        ggml_backend_tensor_get(in->output, outs[i], row * width * sizeof(float),
                                rows * width * sizeof(float));
        row += rows;
    }
}

/* The most mask values a sequence's step needs: its masks are filled one at a time. */
static size_t largest_mask(const cairn_batch *b, const int *pos, int n_b) {
    size_t most = 1;
    for (int i = 0; i < n_b; i++) {
        size_t count = (size_t)b[i].n_tokens * (size_t)(pos[i] + b[i].n_tokens);
        most = count > most ? count : most;
    }
    return most;
}

/* One compute step: n_b sequences, at most n_batch tokens together. */
static int forward_step(ggml_shard *s, const cairn_batch *b, int n_b, float *const *outs,
                        cairn_err *err) {
    int *pos = s->step_pos;
    for (int i = 0; i < n_b; i++) {
        pos[i] = s->seq_len[b[i].seq];
    }
    struct ggml_context *ctx = NULL;
    step_inputs in;
    struct ggml_cgraph *gf = build_graph(s, b, pos, n_b, &ctx, &in);
    int rc = -1;
    ggml_fp16_t *mask = malloc(largest_mask(b, pos, n_b) * sizeof(*mask));
    if (!mask) {
        cairn_fail(err, "out of memory");
    } else if (!ggml_gallocr_alloc_graph(s->alloc, gf)) {
        cairn_fail(err, "cannot allocate compute memory for %d tokens",
                   in.seqs[n_b - 1].first + in.seqs[n_b - 1].n);
    } else {
        fill_inputs(s, &in, b, n_b, mask);
        if (ggml_backend_graph_compute(s->backend, gf) != GGML_STATUS_SUCCESS) {
            cairn_fail(err, "ggml compute failed");
        } else {
            read_outputs(s, &in, b, n_b, outs);
            for (int i = 0; i < n_b; i++) {
                int end = pos[i] + b[i].n_tokens;
                s->seq_len[b[i].seq] = end;
                s->seq_written[b[i].seq] =
                    s->seq_written[b[i].seq] > end ? s->seq_written[b[i].seq] : end;
            }
            rc = 0;
        }
    }
    free(mask);
    ggml_free(ctx);
    return rc;
}

static int ggml_shard_forward(cairn_shard *base, const cairn_batch *b, float *out, cairn_err *err) {
    ggml_shard *s = (ggml_shard *)base;
    const cairn_shard_info *info = &base->info;
    int done = 0;
    while (done < b->n_tokens) {
        int n = b->n_tokens - done;
        n = n > info->n_batch ? info->n_batch : n;
        cairn_batch chunk = *b;
        chunk.n_tokens = n;
        chunk.tokens = b->tokens ? b->tokens + done : NULL;
        chunk.hidden = b->hidden ? b->hidden + (size_t)done * (size_t)info->n_embd : NULL;
        /* Without all_logits each chunk writes its last logits to out and the final chunk's
         * are the ones that remain. */
        float *dst;
        if (info->is_last) {
            dst = b->all_logits ? out + (size_t)done * (size_t)info->n_vocab : out;
        } else {
            dst = out + (size_t)done * (size_t)info->n_embd;
        }
        if (forward_step(s, &chunk, 1, &dst, err) != 0) {
            return -1;
        }
        done += n;
    }
    return 0;
}

static int ggml_shard_forward_many(cairn_shard *base, const cairn_batch *b, int n,
                                   float *const *outs, cairn_err *err) {
    return forward_step((ggml_shard *)base, b, n, outs, err);
}

static int ggml_shard_seq_truncate(cairn_shard *base, int seq, int n_keep, cairn_err *err) {
    ggml_shard *s = (ggml_shard *)base;
    if (n_keep >= s->seq_len[seq]) {
        return 0;
    }
    /* A ring has overwritten positions more than its size behind the newest one written;
     * when the window of the next position reaches back there, nothing can be kept. */
    int oldest_needed = n_keep - s->hp.n_swa + 1 > 0 ? n_keep - s->hp.n_swa + 1 : 0;
    if (s->swa_cells > 0 && n_keep > 0 && oldest_needed < s->seq_written[seq] - s->swa_cells) {
        n_keep = 0;
    }
    s->seq_len[seq] = n_keep; /* cells past the length are never read */
    if (n_keep == 0) {
        s->seq_written[seq] = 0;
    }
    return 0;
}

static int ggml_shard_seq_len(const cairn_shard *base, int seq) {
    return ((const ggml_shard *)base)->seq_len[seq];
}

static void ggml_shard_destroy(cairn_shard *base) {
    ggml_shard *s = (ggml_shard *)base;
    if (s->alloc)
        ggml_gallocr_free(s->alloc);
    if (s->cache_buf)
        ggml_backend_buffer_free(s->cache_buf);
    if (s->cache_ctx)
        ggml_free(s->cache_ctx);
    if (s->weights_buf)
        ggml_backend_buffer_free(s->weights_buf);
    if (s->weights_ctx)
        ggml_free(s->weights_ctx);
    if (s->repack_buf)
        ggml_backend_buffer_free(s->repack_buf);
    if (s->repack_probe)
        ggml_backend_buffer_free(s->repack_probe);
    if (s->repack_ctx)
        ggml_free(s->repack_ctx);
    if (s->backend)
        ggml_backend_free(s->backend);
    cairn_model_close(s->model);
    free(s->layers);
    free(s->seq_len);
    free(s->seq_written);
    free(s->graph_mem);
    free(s->step_seqs);
    free(s->join_scratch);
    free(s->step_pos);
    free(s->step_positions);
    free(s->step_out_rows);
    free(s->step_kv_rows);
    free(s->step_kv_rows_swa);
    free(s);
}

static const cairn_shard_ops ggml_shard_ops = {
    .name = "ggml",
    .forward = ggml_shard_forward,
    .forward_many = ggml_shard_forward_many,
    .seq_truncate = ggml_shard_seq_truncate,
    .seq_len = ggml_shard_seq_len,
    .destroy = ggml_shard_destroy,
};

/* ---- setup ---- */

static int fill_info(ggml_shard *s, const cairn_shard_config *cfg, cairn_err *err) {
    const cairn_hparams *hp = &s->hp;
    cairn_shard_info *in = &s->base.info;
    int last = cfg->last_layer < 0 ? hp->n_layer : cfg->last_layer;
    if (cfg->first_layer < 0 || last > hp->n_layer || cfg->first_layer >= last) {
        return cairn_fail(err,
                          "layer range [%d, %d) is not a non-empty range of the model's %d layers",
                          cfg->first_layer, last, hp->n_layer);
    }
    int n_ctx = cfg->n_ctx > 0 ? cfg->n_ctx : hp->n_ctx_train;
    if (cfg->n_ctx <= 0 && n_ctx > CAIRN_DEFAULT_MAX_CTX) {
        n_ctx = CAIRN_DEFAULT_MAX_CTX;
    }
    if (n_ctx > 1 << 20) {
        return cairn_fail(err, "a context of %d positions is too large", n_ctx);
    }
    in->first_layer = cfg->first_layer;
    in->last_layer = last;
    in->n_layer = hp->n_layer;
    in->n_embd = hp->n_embd;
    in->n_vocab = hp->n_vocab;
    in->n_ctx = n_ctx;
    in->n_seq = cfg->n_seq > 0 ? cfg->n_seq : 1;
    in->n_batch = cfg->n_batch > 0 ? cfg->n_batch : CAIRN_DEFAULT_BATCH;
    in->is_first = cfg->first_layer == 0;
    in->is_last = last == hp->n_layer;
    bool any_window = false;
    for (int il = 0; il < hp->n_layer; il++) {
        any_window |= cairn_layer_is_swa(hp, il);
    }
    in->keeps_prefixes = cfg->swa_full || !any_window;
    in->weight_bytes = cairn_model_shard_bytes(s->model, in->first_layer, in->last_layer);
    return 0;
}

/* ggml's workers spin while they wait, so threads beyond what a step's work can use only
 * burn CPU that other processes (and other shards) need: small shards get fewer threads. */
static int default_threads(uint64_t weight_bytes) {
    uint64_t useful = weight_bytes / MIN_BYTES_PER_THREAD;
    int cpus = cairn_cpu_count();
    return useful < 1 ? 1 : useful < (uint64_t)cpus ? (int)useful : cpus;
}

/* Most sequences one step can hold: every slot, one token each at most. */
static int max_step_seqs(const cairn_shard_info *in) {
    return in->n_seq < in->n_batch ? in->n_seq : in->n_batch;
}

static int alloc_step_scratch(ggml_shard *s) {
    const cairn_shard_info *in = &s->base.info;
    size_t seqs = (size_t)max_step_seqs(in), tokens = (size_t)in->n_batch;
    s->step_seqs = calloc(seqs, sizeof(*s->step_seqs));
    s->join_scratch = calloc(seqs, sizeof(struct ggml_tensor *));
    s->step_pos = calloc(seqs, sizeof(*s->step_pos));
    s->step_positions = calloc(tokens, sizeof(*s->step_positions));
    s->step_out_rows = calloc(tokens, sizeof(*s->step_out_rows));
    s->step_kv_rows = calloc(tokens, sizeof(*s->step_kv_rows));
    s->step_kv_rows_swa = calloc(tokens, sizeof(*s->step_kv_rows_swa));
    return s->step_seqs && s->join_scratch && s->step_pos && s->step_positions &&
                   s->step_out_rows && s->step_kv_rows && s->step_kv_rows_swa
               ? 0
               : -1;
}

/* Reserves compute memory for a step of n_seqs sequences sharing n tokens, each at the end
 * of the context (where its masks are largest). */
static bool reserve_step(ggml_shard *s, int n_seqs, int n) {
    const cairn_shard_info *in = &s->base.info;
    int32_t dummy_token = 0;
    cairn_batch *worst = calloc((size_t)n_seqs, sizeof(*worst));
    int *pos = s->step_pos;
    if (!worst) {
        return false;
    }
    for (int i = 0; i < n_seqs; i++) {
        int share = n / n_seqs + (i < n % n_seqs ? 1 : 0);
        worst[i] = (cairn_batch){.seq = i, .n_tokens = share, .tokens = &dummy_token};
        pos[i] = in->n_ctx - share;
    }
    struct ggml_context *ctx = NULL;
    step_inputs inputs;
    struct ggml_cgraph *gf = build_graph(s, worst, pos, n_seqs, &ctx, &inputs);
    bool ok = ggml_gallocr_reserve(s->alloc, gf);
    ggml_free(ctx);
    free(worst);
    return ok;
}

static int reserve_compute(ggml_shard *s, cairn_err *err) {
    const cairn_shard_info *in = &s->base.info;
    int n_layers = in->last_layer - in->first_layer;
    size_t per_layer = GRAPH_NODES_PER_LAYER + 2 * (size_t)s->hp.n_expert_used +
                       GRAPH_NODES_PER_SEQ * (size_t)max_step_seqs(in);
    s->graph_nodes = GRAPH_NODES_FIXED + (size_t)n_layers * per_layer;
    s->graph_mem_size =
        ggml_tensor_overhead() * s->graph_nodes + ggml_graph_overhead_custom(s->graph_nodes, false);
    s->graph_mem = malloc(s->graph_mem_size);
    s->alloc = ggml_gallocr_new(ggml_backend_get_default_buffer_type(s->backend));
    if (!s->graph_mem || !s->alloc || alloc_step_scratch(s) != 0) {
        return cairn_fail(err, "out of memory");
    }
    /* Reserve the largest steps (a full batch at the end of the context, for one sequence
     * and for as many as a step can hold) now, so running out of memory shows up at load
     * time and steps never reallocate. */
    int n = in->n_batch < in->n_ctx ? in->n_batch : in->n_ctx;
    int seqs = max_step_seqs(in) < n ? max_step_seqs(in) : n;
    if (!reserve_step(s, 1, n) || (seqs > 1 && !reserve_step(s, seqs, n))) {
        return cairn_fail(err, "cannot reserve compute memory for a batch of %d tokens", n);
    }
    return 0;
}

/* ggml's CPU backend offers, as an extra buffer type, layouts of quantized matrices that
 * its kernels for this CPU multiply faster; weights copied into memory can use them. */
static void find_repack_type(ggml_shard *s) {
    ggml_backend_dev_t dev = ggml_backend_get_device(s->backend);
    ggml_backend_reg_t reg = dev ? ggml_backend_dev_backend_reg(dev) : NULL;
    ggml_backend_dev_get_extra_bufts_t extra_types =
        reg ? (ggml_backend_dev_get_extra_bufts_t)ggml_backend_reg_get_proc_address(
                  reg, "ggml_backend_dev_get_extra_bufts")
            : NULL;
    for (ggml_backend_buffer_type_t *t = extra_types ? extra_types(dev) : NULL; t && *t; t++) {
        if (strcmp(ggml_backend_buft_name(*t), "CPU_REPACK") == 0) {
            s->repack_probe = ggml_backend_buft_alloc_buffer(*t, 0);
            s->repack_type = s->repack_probe ? *t : NULL;
            return;
        }
    }
}

int cairn_shard_load_ggml(const cairn_shard_config *cfg, cairn_shard **out, cairn_err *err) {
    *out = NULL;
    ggml_shard *s = calloc(1, sizeof(*s));
    if (!s) {
        return cairn_fail(err, "out of memory");
    }
    s->base.ops = &ggml_shard_ops;
    if (cairn_model_open(cfg->model_path, &s->model, err) != 0) {
        free(s);
        return -1;
    }
    s->hp = s->model->hp;
    if (fill_info(s, cfg, err) != 0) {
        ggml_shard_destroy(&s->base);
        return -1;
    }
    s->seq_len = calloc((size_t)s->base.info.n_seq, sizeof(int));
    s->seq_written = calloc((size_t)s->base.info.n_seq, sizeof(int));
    s->backend = ggml_backend_cpu_init();
    if (!s->seq_len || !s->seq_written || !s->backend) {
        ggml_shard_destroy(&s->base);
        return cairn_fail(err, "cannot initialise the CPU backend");
    }
    /* A position's results must not depend on how many tokens shared its step or on the
     * thread count: a stream resumed elsewhere recomputes its generated tokens in one
     * prefill, and must continue exactly as the uninterrupted run would. ggml's tiled and
     * split-KV attention (taken only for 64+ queries, or one query over 512+ cells) and
     * its batch-only matmul panels round differently from its per-row kernels; the
     * reference choice keeps every position on the per-row ones. The price is measured in
     * bench/RESULTS.md ("Per-row kernels"): about a tenth of prefill speed at 512 tokens
     * and a twentieth of decode speed past 512 cached positions on TinyLlama. */
    ggml_backend_cpu_set_use_ref(s->backend, true);
    ggml_backend_cpu_set_n_threads(s->backend, cfg->n_threads > 0
                                                   ? cfg->n_threads
                                                   : default_threads(s->base.info.weight_bytes));
    if (!cfg->use_mmap) {
        find_repack_type(s);
    }
    if (declare_weights(s, err) != 0 || place_weights(s, cfg, err) != 0 ||
        create_caches(s, cfg, err) != 0 || reserve_compute(s, err) != 0) {
        cairn_fail_prefix(err, "%s", cfg->model_path);
        ggml_shard_destroy(&s->base);
        return -1;
    }
    *out = &s->base;
    return 0;
}
