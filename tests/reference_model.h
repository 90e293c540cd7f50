/*
 * A reference forward pass for llama, qwen2 and qwen3 GGUF models, written as plainly as
 * possible: float arrays, one token at a time, explicit loops, sums in double. It shares no
 * code with the ggml engine's graph; it only borrows gguf.h to find tensors and ggml's
 * to_float to dequantize them. tests/test_reference.c compares the engine against it.
 *
 * The one deliberate imitation of the engine is that cached keys and values are rounded to
 * F16, because the engine's KV cache is F16: without it the comparison would need a tolerance
 * loose enough to hide real mistakes.
 *
 * A ref_variant can switch single conventions to a wrong choice, so a test can show that the
 * comparison notices each of them.
 */
#ifndef CAIRN_TEST_REFERENCE_MODEL_H
#define CAIRN_TEST_REFERENCE_MODEL_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"
#include "gguf.h"
#include "model/model.h"
#include "util/util.h"

typedef enum ref_rope {
    REF_ROPE_BY_ARCH,  /* llama: adjacent pairs; qwen2/qwen3: first half with second half */
    REF_ROPE_ADJACENT, /* forced: (x[2i], x[2i+1]) */
    REF_ROPE_HALVES,   /* forced: (x[i], x[i + rope_dims/2]) */
} ref_rope;

/* Deliberate deviations; all false/zero is the correct model. */
typedef struct ref_variant {
    ref_rope rope;
    bool ignore_freq_factors;   /* rotate with the plain frequencies even if rope_freqs exists */
    bool multiply_freq_factors; /* multiply the frequencies by rope_freqs instead of dividing */
    bool skip_qk_norm;          /* qwen3 without its per-head q/k norms */
    bool interleaved_gqa;       /* query head h reads kv head h % n_head_kv instead of h / group */
} ref_variant;

typedef struct ref_layer {
    float *attn_norm, *wq, *wk, *wv, *wo;
    float *bq, *bk, *bv;    /* NULL unless the file has them (qwen2) */
    float *q_norm, *k_norm; /* NULL unless the file has them (qwen3) */
    float *ffn_norm, *ffn_gate, *ffn_up, *ffn_down;
} ref_layer;

typedef struct ref_model {
    ref_variant variant;
    bool halves_rope; /* the pairing actually used */
    int n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, rope_dims, n_ctx;
    float eps, freq_base;
    float *tok_embd, *output_norm, *output; /* output may be tok_embd (tied) */
    float *rope_freqs;                      /* rope_dims/2 divisors, or NULL */
    ref_layer *layers;
    float *k_cache, *v_cache; /* [layer][position][n_head_kv * head_dim] */
    int n_past;
    /* scratch for one token */
    float *x, *xn, *q, *k, *v, *att, *gate, *up, *scores;
} ref_model;

/* ---- loading ---- */

typedef struct ref_loader {
    struct gguf_context *gguf;
    struct ggml_context *data; /* every tensor, read into memory by gguf */
    const char *arch;
    cairn_err *err;
} ref_loader;

/* Copies a tensor into a new float array, dequantizing as needed. want_ne1 0: a vector. */
static float *ref_read_tensor(const ref_loader *ld, const char *name, int64_t want_ne0,
                              int64_t want_ne1, bool required, int *failed) {
    struct ggml_tensor *t = ggml_get_tensor(ld->data, name);
    if (t == NULL) {
        if (required) {
            cairn_fail(ld->err, "reference: tensor %s is missing", name);
            *failed = 1;
        }
        return NULL;
    }
    int64_t ne1 = want_ne1 > 0 ? want_ne1 : 1;
    if (t->ne[0] != want_ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1) {
        cairn_fail(ld->err, "reference: tensor %s is [%lld, %lld], expected [%lld, %lld]", name,
                   (long long)t->ne[0], (long long)t->ne[1], (long long)want_ne0, (long long)ne1);
        *failed = 1;
        return NULL;
    }
    size_t n = (size_t)(want_ne0 * ne1);
    float *out = malloc(n * sizeof(float));
    if (out == NULL) {
        cairn_fail(ld->err, "reference: out of memory for %s", name);
        *failed = 1;
        return NULL;
    }
    if (t->type == GGML_TYPE_F32) {
        memcpy(out, t->data, n * sizeof(float));
    } else {
        const struct ggml_type_traits *tr = ggml_get_type_traits(t->type);
        if (tr->to_float == NULL) {
            free(out);
            cairn_fail(ld->err, "reference: cannot dequantize %s (%s)", name,
                       ggml_type_name(t->type));
            *failed = 1;
            return NULL;
        }
        tr->to_float(t->data, out, (int64_t)n);
    }
    return out;
}

static int ref_meta_int(const ref_loader *ld, const char *suffix, int64_t fallback, int *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", ld->arch, suffix);
    int64_t v = fallback;
    int rc = cairn_meta_int(ld->gguf, key, &v, ld->err);
    if (rc < 0) {
        return -1;
    }
    if (rc == 0 && fallback < 0) {
        return cairn_fail(ld->err, "reference: key %s is missing", key);
    }
    if (v <= 0 || v > (1 << 24)) {
        return cairn_fail(ld->err, "reference: key %s = %lld is out of range", key, (long long)v);
    }
    *out = (int)v;
    return 0;
}

static int ref_meta_float(const ref_loader *ld, const char *suffix, double fallback, float *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", ld->arch, suffix);
    double v = fallback;
    int rc = cairn_meta_float(ld->gguf, key, &v, ld->err);
    if (rc < 0) {
        return -1;
    }
    if (rc == 0 && fallback < 0) {
        return cairn_fail(ld->err, "reference: key %s is missing", key);
    }
    *out = (float)v;
    return 0;
}

static int ref_read_hparams(ref_model *m, const ref_loader *ld) {
    if (ref_meta_int(ld, "embedding_length", -1, &m->n_embd) != 0 ||
        ref_meta_int(ld, "block_count", -1, &m->n_layer) != 0 ||
        ref_meta_int(ld, "attention.head_count", -1, &m->n_head) != 0 ||
        ref_meta_int(ld, "attention.head_count_kv", m->n_head, &m->n_head_kv) != 0 ||
        ref_meta_int(ld, "feed_forward_length", -1, &m->n_ff) != 0 ||
        ref_meta_int(ld, "attention.key_length", m->n_embd / m->n_head, &m->head_dim) != 0 ||
        ref_meta_int(ld, "rope.dimension_count", m->head_dim, &m->rope_dims) != 0 ||
        ref_meta_float(ld, "rope.freq_base", 10000.0, &m->freq_base) != 0 ||
        ref_meta_float(ld, "attention.layer_norm_rms_epsilon", -1.0, &m->eps) != 0) {
        return -1;
    }
    int value_length = m->head_dim;
    if (ref_meta_int(ld, "attention.value_length", m->head_dim, &value_length) != 0) {
        return -1;
    }
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", ld->arch);
    const char *scaling = NULL;
    if (cairn_meta_str(ld->gguf, key, &scaling, ld->err) < 0) {
        return -1;
    }
    if (value_length != m->head_dim || m->n_head % m->n_head_kv != 0 ||
        m->rope_dims > m->head_dim || m->rope_dims % 2 != 0 ||
        (scaling != NULL && strcmp(scaling, "none") != 0)) {
        return cairn_fail(ld->err, "reference: unsupported hyperparameters");
    }
    return 0;
}

static int ref_read_layer(ref_model *m, const ref_loader *ld, int il, ref_layer *w) {
    const int64_t e = m->n_embd, hd = m->head_dim;
    const int64_t nq = (int64_t)m->n_head * hd, nkv = (int64_t)m->n_head_kv * hd;
    int failed = 0;
    char name[96];
#define REF_NAME(suffix) (snprintf(name, sizeof name, "blk.%d.%s", il, suffix), name)
    w->attn_norm = ref_read_tensor(ld, REF_NAME("attn_norm.weight"), e, 0, true, &failed);
    w->wq = ref_read_tensor(ld, REF_NAME("attn_q.weight"), e, nq, true, &failed);
    w->wk = ref_read_tensor(ld, REF_NAME("attn_k.weight"), e, nkv, true, &failed);
    w->wv = ref_read_tensor(ld, REF_NAME("attn_v.weight"), e, nkv, true, &failed);
    w->wo = ref_read_tensor(ld, REF_NAME("attn_output.weight"), nq, e, true, &failed);
    w->bq = ref_read_tensor(ld, REF_NAME("attn_q.bias"), nq, 0, false, &failed);
    w->bk = ref_read_tensor(ld, REF_NAME("attn_k.bias"), nkv, 0, false, &failed);
    w->bv = ref_read_tensor(ld, REF_NAME("attn_v.bias"), nkv, 0, false, &failed);
    w->q_norm = ref_read_tensor(ld, REF_NAME("attn_q_norm.weight"), hd, 0, false, &failed);
    w->k_norm = ref_read_tensor(ld, REF_NAME("attn_k_norm.weight"), hd, 0, false, &failed);
    w->ffn_norm = ref_read_tensor(ld, REF_NAME("ffn_norm.weight"), e, 0, true, &failed);
    w->ffn_gate = ref_read_tensor(ld, REF_NAME("ffn_gate.weight"), e, m->n_ff, true, &failed);
    w->ffn_up = ref_read_tensor(ld, REF_NAME("ffn_up.weight"), e, m->n_ff, true, &failed);
    w->ffn_down = ref_read_tensor(ld, REF_NAME("ffn_down.weight"), m->n_ff, e, true, &failed);
#undef REF_NAME
    if (!failed && ((w->bq == NULL) != (w->bk == NULL) || (w->bq == NULL) != (w->bv == NULL) ||
                    (w->q_norm == NULL) != (w->k_norm == NULL))) {
        return cairn_fail(ld->err, "reference: layer %d has only some biases or q/k norms", il);
    }
    return failed ? -1 : 0;
}

static int ref_read_weights(ref_model *m, const ref_loader *ld) {
    int failed = 0;
    struct ggml_tensor *embd = ggml_get_tensor(ld->data, "token_embd.weight");
    if (embd == NULL) {
        return cairn_fail(ld->err, "reference: token_embd.weight is missing");
    }
    m->n_vocab = (int)embd->ne[1];
    m->tok_embd = ref_read_tensor(ld, "token_embd.weight", m->n_embd, m->n_vocab, true, &failed);
    m->output_norm = ref_read_tensor(ld, "output_norm.weight", m->n_embd, 0, true, &failed);
    m->output = ref_read_tensor(ld, "output.weight", m->n_embd, m->n_vocab, false, &failed);
    m->rope_freqs = ref_read_tensor(ld, "rope_freqs.weight", m->rope_dims / 2, 0, false, &failed);
    if (failed) {
        return -1;
    }
    m->layers = calloc((size_t)m->n_layer, sizeof *m->layers);
    if (m->layers == NULL) {
        return cairn_fail(ld->err, "reference: out of memory");
    }
    for (int il = 0; il < m->n_layer; il++) {
        if (ref_read_layer(m, ld, il, &m->layers[il]) != 0) {
            return -1;
        }
    }
    return 0;
}

static int ref_alloc_state(ref_model *m, cairn_err *err) {
    size_t kv_row = (size_t)m->n_head_kv * (size_t)m->head_dim;
    size_t q_row = (size_t)m->n_head * (size_t)m->head_dim;
    size_t cache = (size_t)m->n_layer * (size_t)m->n_ctx * kv_row;
    m->k_cache = calloc(cache, sizeof(float));
    m->v_cache = calloc(cache, sizeof(float));
    m->x = calloc((size_t)m->n_embd, sizeof(float));
    m->xn = calloc((size_t)m->n_embd, sizeof(float));
    m->q = calloc(q_row, sizeof(float));
    m->k = calloc(kv_row, sizeof(float));
    m->v = calloc(kv_row, sizeof(float));
    m->att = calloc(q_row, sizeof(float));
    m->gate = calloc((size_t)m->n_ff, sizeof(float));
    m->up = calloc((size_t)m->n_ff, sizeof(float));
    m->scores = calloc((size_t)m->n_ctx, sizeof(float));
    if (!m->k_cache || !m->v_cache || !m->x || !m->xn || !m->q || !m->k || !m->v || !m->att ||
        !m->gate || !m->up || !m->scores) {
        return cairn_fail(err, "reference: out of memory");
    }
    return 0;
}

static void ref_model_free(ref_model *m) {
    if (m == NULL) {
        return;
    }
    for (int il = 0; m->layers != NULL && il < m->n_layer; il++) {
        ref_layer *w = &m->layers[il];
        float *all[] = {w->attn_norm, w->wq,       w->wk,     w->wv,      w->wo,
                        w->bq,        w->bk,       w->bv,     w->q_norm,  w->k_norm,
                        w->ffn_norm,  w->ffn_gate, w->ffn_up, w->ffn_down};
        for (size_t i = 0; i < CAIRN_ARRAY_LEN(all); i++) {
            free(all[i]);
        }
    }
    free(m->layers);
    if (m->output != m->tok_embd) {
        free(m->output);
    }
    free(m->tok_embd);
    free(m->output_norm);
    free(m->rope_freqs);
    float *state[] = {m->k_cache, m->v_cache, m->x,    m->xn, m->q,     m->k,
                      m->v,       m->att,     m->gate, m->up, m->scores};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(state); i++) {
        free(state[i]);
    }
    free(m);
}

/* Loads the model at path for at most n_ctx positions. */
static int ref_model_load(const char *path, const ref_variant *variant, int n_ctx, ref_model **out,
                          cairn_err *err) {
    *out = NULL;
    ref_model *m = calloc(1, sizeof *m);
    if (m == NULL) {
        return cairn_fail(err, "reference: out of memory");
    }
    m->variant = *variant;
    m->n_ctx = n_ctx;
    ref_loader ld = {.err = err};
    struct gguf_init_params params = {.no_alloc = false, .ctx = &ld.data};
    ld.gguf = gguf_init_from_file(path, params);
    int rc = ld.gguf != NULL ? 0 : cairn_fail(err, "reference: cannot read %s", path);
    if (rc == 0 && cairn_meta_str(ld.gguf, "general.architecture", &ld.arch, err) != 1) {
        rc = cairn_fail(err, "reference: %s has no architecture", path);
    }
    bool halves = false;
    if (rc == 0) {
        if (strcmp(ld.arch, "qwen2") == 0 || strcmp(ld.arch, "qwen3") == 0) {
            halves = true;
        } else if (strcmp(ld.arch, "llama") != 0) {
            rc = cairn_fail(err, "reference: architecture %.32s is not supported", ld.arch);
        }
    }
    m->halves_rope = variant->rope == REF_ROPE_BY_ARCH ? halves : variant->rope == REF_ROPE_HALVES;
    if (rc == 0) {
        rc = ref_read_hparams(m, &ld);
    }
    if (rc == 0) {
        rc = ref_read_weights(m, &ld);
    }
    if (rc == 0) {
        if (m->output == NULL) {
            m->output = m->tok_embd; /* tied embeddings */
        }
        rc = ref_alloc_state(m, err);
    }
    if (ld.gguf != NULL) {
        gguf_free(ld.gguf);
    }
    if (ld.data != NULL) {
        ggml_free(ld.data);
    }
    if (rc != 0) {
        ref_model_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

/* ---- the forward pass ---- */

/* out = w * in, where w has rows of n_in floats and n_out rows (ggml's [n_in, n_out]). */
static void ref_matvec(const float *w, const float *in, int n_in, int n_out, float *out) {
    for (int r = 0; r < n_out; r++) {
        const float *row = w + (size_t)r * (size_t)n_in;
        double sum = 0.0;
        for (int c = 0; c < n_in; c++) {
            sum += (double)row[c] * (double)in[c];
        }
        out[r] = (float)sum;
    }
}

/* out = in / sqrt(mean(in^2) + eps) * weight */
static void ref_rms_norm(const float *in, const float *weight, int n, float eps, float *out) {
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        sum += (double)in[i] * (double)in[i];
    }
    double scale = 1.0 / sqrt(sum / n + (double)eps);
    for (int i = 0; i < n; i++) {
        out[i] = (float)((double)in[i] * scale * (double)weight[i]);
    }
}

/* Rotates the first rope_dims values of one head. Pair i turns by
 * pos * freq_base^(-2i/rope_dims) / factor[i] radians (factor 1 without rope_freqs). */
static void ref_rotate(const ref_model *m, float *head, int pos) {
    int half = m->rope_dims / 2;
    for (int i = 0; i < half; i++) {
        double freq = pow((double)m->freq_base, -2.0 * i / m->rope_dims);
        if (m->rope_freqs != NULL && !m->variant.ignore_freq_factors) {
            freq = m->variant.multiply_freq_factors ? freq * (double)m->rope_freqs[i]
                                                    : freq / (double)m->rope_freqs[i];
        }
        double angle = pos * freq;
        double c = cos(angle), s = sin(angle);
        int a = m->halves_rope ? i : 2 * i;
        int b = m->halves_rope ? i + half : 2 * i + 1;
        double x0 = head[a], x1 = head[b];
        head[a] = (float)(x0 * c - x1 * s);
        head[b] = (float)(x0 * s + x1 * c);
    }
}

static void ref_add(float *x, const float *bias, int n) {
    for (int i = 0; i < n; i++) {
        x[i] += bias[i];
    }
}

static float ref_round_f16(float v) {
    return ggml_fp16_to_fp32(ggml_fp32_to_fp16(v));
}

/* Queries, keys and values of the current token, keys and values appended to the cache. */
static void ref_qkv(ref_model *m, const ref_layer *w, int il, int pos) {
    const int hd = m->head_dim, nq = m->n_head * hd, nkv = m->n_head_kv * hd;
    ref_matvec(w->wq, m->xn, m->n_embd, nq, m->q);
    ref_matvec(w->wk, m->xn, m->n_embd, nkv, m->k);
    ref_matvec(w->wv, m->xn, m->n_embd, nkv, m->v);
    if (w->bq != NULL) {
        ref_add(m->q, w->bq, nq);
        ref_add(m->k, w->bk, nkv);
        ref_add(m->v, w->bv, nkv);
    }
    for (int h = 0; h < m->n_head; h++) {
        float *head = m->q + (size_t)h * hd;
        if (w->q_norm != NULL && !m->variant.skip_qk_norm) {
            ref_rms_norm(head, w->q_norm, hd, m->eps, head);
        }
        ref_rotate(m, head, pos);
    }
    for (int h = 0; h < m->n_head_kv; h++) {
        float *head = m->k + (size_t)h * hd;
        if (w->k_norm != NULL && !m->variant.skip_qk_norm) {
            ref_rms_norm(head, w->k_norm, hd, m->eps, head);
        }
        ref_rotate(m, head, pos);
    }
    size_t cell = ((size_t)il * (size_t)m->n_ctx + (size_t)pos) * (size_t)nkv;
    for (int i = 0; i < nkv; i++) {
        m->k_cache[cell + (size_t)i] = ref_round_f16(m->k[i]);
        m->v_cache[cell + (size_t)i] = ref_round_f16(m->v[i]);
    }
}

/* Causal softmax attention of every query head over positions 0..pos. */
static void ref_attend(ref_model *m, int il, int pos) {
    const int hd = m->head_dim, nkv = m->n_head_kv * hd, group = m->n_head / m->n_head_kv;
    const float *k_base = m->k_cache + (size_t)il * (size_t)m->n_ctx * (size_t)nkv;
    const float *v_base = m->v_cache + (size_t)il * (size_t)m->n_ctx * (size_t)nkv;
    const double scale = 1.0 / sqrt((double)hd);
    for (int h = 0; h < m->n_head; h++) {
        int kvh = m->variant.interleaved_gqa ? h % m->n_head_kv : h / group;
        const float *q = m->q + (size_t)h * hd;
        double max = -INFINITY;
        for (int t = 0; t <= pos; t++) {
            const float *k = k_base + (size_t)t * (size_t)nkv + (size_t)kvh * hd;
            double dot = 0.0;
            for (int i = 0; i < hd; i++) {
                dot += (double)q[i] * (double)k[i];
            }
            m->scores[t] = (float)(dot * scale);
            max = m->scores[t] > max ? m->scores[t] : max;
        }
        double total = 0.0;
        for (int t = 0; t <= pos; t++) {
            total += exp(m->scores[t] - max);
        }
        float *out = m->att + (size_t)h * hd;
        for (int i = 0; i < hd; i++) {
            double acc = 0.0;
            for (int t = 0; t <= pos; t++) {
                const float *v = v_base + (size_t)t * (size_t)nkv + (size_t)kvh * hd;
                acc += exp(m->scores[t] - max) / total * (double)v[i];
            }
            out[i] = (float)acc;
        }
    }
}

/* SwiGLU: down(silu(gate(x)) * up(x)) added to the residual. */
static void ref_feed_forward(ref_model *m, const ref_layer *w) {
    ref_rms_norm(m->x, w->ffn_norm, m->n_embd, m->eps, m->xn);
    ref_matvec(w->ffn_gate, m->xn, m->n_embd, m->n_ff, m->gate);
    ref_matvec(w->ffn_up, m->xn, m->n_embd, m->n_ff, m->up);
    for (int i = 0; i < m->n_ff; i++) {
        double g = m->gate[i];
        m->gate[i] = (float)(g / (1.0 + exp(-g)) * (double)m->up[i]);
    }
    float *delta = m->xn; /* free again: ffn_norm's output was consumed */
    ref_matvec(w->ffn_down, m->gate, m->n_ff, m->n_embd, delta);
    ref_add(m->x, delta, m->n_embd);
}

/* Runs one token at the next position; logits receives n_vocab floats. */
static int ref_forward(ref_model *m, int32_t token, float *logits, cairn_err *err) {
    if (token < 0 || token >= m->n_vocab) {
        return cairn_fail(err, "reference: token %d is outside the vocabulary", (int)token);
    }
    if (m->n_past >= m->n_ctx) {
        return cairn_fail(err, "reference: the context of %d positions is full", m->n_ctx);
    }
    int pos = m->n_past;
    memcpy(m->x, m->tok_embd + (size_t)token * (size_t)m->n_embd,
           (size_t)m->n_embd * sizeof(float));
    for (int il = 0; il < m->n_layer; il++) {
        const ref_layer *w = &m->layers[il];
        ref_rms_norm(m->x, w->attn_norm, m->n_embd, m->eps, m->xn);
        ref_qkv(m, w, il, pos);
        ref_attend(m, il, pos);
        float *delta = m->xn; /* free again: the projections consumed it */
        ref_matvec(w->wo, m->att, m->n_head * m->head_dim, m->n_embd, delta);
        ref_add(m->x, delta, m->n_embd);
        ref_feed_forward(m, w);
    }
    ref_rms_norm(m->x, m->output_norm, m->n_embd, m->eps, m->xn);
    ref_matvec(m->output, m->xn, m->n_embd, m->n_vocab, logits);
    m->n_past++;
    return 0;
}

#endif
