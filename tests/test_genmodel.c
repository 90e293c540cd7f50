/* The random-weight model generator: tensor names, shapes and types, metadata, tokenizer copy
 * and padding, determinism, and that the result is a GGUF file ggml reads back whole. The
 * expected tensor lists are written out here independently of the generator's own tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define CAIRN_GENMODEL_NO_MAIN
#include "../tools/cairn-genmodel.c"

#define VOCAB_SPM CAIRN_SHARED_DIR "/vocab/ggml-vocab-llama-spm.gguf"
#define VOCAB_GPT2 CAIRN_SHARED_DIR "/vocab/ggml-vocab-gpt-2.gguf"
#define OUT_A CAIRN_BINARY_DIR "/test_genmodel_a.gguf"
#define OUT_B CAIRN_BINARY_DIR "/test_genmodel_b.gguf"

typedef struct loaded {
    struct gguf_context *g;
    struct ggml_context *data; /* every tensor's data, read by ggml itself */
} loaded;

static void generate(const char *shape, const char *type, const char *vocab, int n_vocab,
                     uint64_t seed, const char *out) {
    gm_options opt = {.shape = shape,
                      .type = type,
                      .out_path = out,
                      .vocab_path = vocab,
                      .n_vocab = n_vocab,
                      .seed = seed};
    gm_stats stats;
    cairn_err err = {{0}};
    int rc = gm_generate(&opt, &stats, &err);
    if (rc != 0) {
        fail_msg("generating %s: %s", shape, err.msg);
    }
}

static loaded load(const char *path) {
    loaded l = {0};
    struct gguf_init_params params = {.no_alloc = false, .ctx = &l.data};
    l.g = gguf_init_from_file(path, params);
    assert_non_null(l.g);
    assert_non_null(l.data);
    assert_int_equal(gguf_get_version(l.g), 3);
    assert_int_equal(gguf_get_alignment(l.g), 32);
    return l;
}

static void unload(loaded *l) {
    gguf_free(l->g);
    ggml_free(l->data);
}

static int64_t key_of(const loaded *l, const char *key) {
    int64_t id = gguf_find_key(l->g, key);
    if (id < 0) {
        fail_msg("missing key %s", key);
    }
    return id;
}

static uint32_t u32_key(const loaded *l, const char *arch, const char *suffix) {
    char key[128];
    snprintf(key, sizeof key, "%s%s%s", arch ? arch : "", arch ? "." : "", suffix);
    int64_t id = key_of(l, key);
    assert_int_equal(gguf_get_kv_type(l->g, id), GGUF_TYPE_UINT32);
    return gguf_get_val_u32(l->g, id);
}

static float f32_key(const loaded *l, const char *arch, const char *suffix) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t id = key_of(l, key);
    assert_int_equal(gguf_get_kv_type(l->g, id), GGUF_TYPE_FLOAT32);
    return gguf_get_val_f32(l->g, id);
}

/* ---- expected tensors ---- */

typedef struct expect {
    const char *arch;
    int n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab;
    bool tied, bias, qk_norm, rope_freqs;
    enum ggml_type wtype;
} expect;

static int n_checked;

static void check_tensor(const loaded *l, const char *name, enum ggml_type type, int64_t ne0,
                         int64_t ne1) {
    int64_t id = gguf_find_tensor(l->g, name);
    if (id < 0) {
        fail_msg("missing tensor %s", name);
    }
    const int64_t *ne = gguf_get_tensor_ne(l->g, id);
    if (gguf_get_tensor_type(l->g, id) != type || ne[0] != ne0 || ne[1] != ne1 || ne[2] != 1) {
        fail_msg("tensor %s: %s [%lld, %lld], expected %s [%lld, %lld]", name,
                 ggml_type_name(gguf_get_tensor_type(l->g, id)), (long long)ne[0], (long long)ne[1],
                 ggml_type_name(type), (long long)ne0, (long long)ne1);
    }
    n_checked++;
}

static void check_layer(const loaded *l, const expect *e, int il) {
    const int64_t q = (int64_t)e->n_head * e->head_dim, kv = (int64_t)e->n_head_kv * e->head_dim;
    char n[96];
#define LAYER(suffix) (snprintf(n, sizeof n, "blk.%d.%s", il, suffix), n)
    check_tensor(l, LAYER("attn_norm.weight"), GGML_TYPE_F32, e->n_embd, 1);
    check_tensor(l, LAYER("attn_q.weight"), e->wtype, e->n_embd, q);
    check_tensor(l, LAYER("attn_k.weight"), e->wtype, e->n_embd, kv);
    check_tensor(l, LAYER("attn_v.weight"), e->wtype, e->n_embd, kv);
    check_tensor(l, LAYER("attn_output.weight"), e->wtype, q, e->n_embd);
    check_tensor(l, LAYER("ffn_norm.weight"), GGML_TYPE_F32, e->n_embd, 1);
    check_tensor(l, LAYER("ffn_gate.weight"), e->wtype, e->n_embd, e->n_ff);
    check_tensor(l, LAYER("ffn_up.weight"), e->wtype, e->n_embd, e->n_ff);
    check_tensor(l, LAYER("ffn_down.weight"), e->wtype, e->n_ff, e->n_embd);
    if (e->bias) {
        check_tensor(l, LAYER("attn_q.bias"), GGML_TYPE_F32, q, 1);
        check_tensor(l, LAYER("attn_k.bias"), GGML_TYPE_F32, kv, 1);
        check_tensor(l, LAYER("attn_v.bias"), GGML_TYPE_F32, kv, 1);
    }
    if (e->qk_norm) {
        check_tensor(l, LAYER("attn_q_norm.weight"), GGML_TYPE_F32, e->head_dim, 1);
        check_tensor(l, LAYER("attn_k_norm.weight"), GGML_TYPE_F32, e->head_dim, 1);
    }
#undef LAYER
}

/* Every expected tensor exists with its shape and type, and there is no other. */
static void check_tensors(const loaded *l, const expect *e) {
    n_checked = 0;
    check_tensor(l, "token_embd.weight", e->wtype, e->n_embd, e->n_vocab);
    check_tensor(l, "output_norm.weight", GGML_TYPE_F32, e->n_embd, 1);
    if (!e->tied) {
        check_tensor(l, "output.weight", e->wtype, e->n_embd, e->n_vocab);
    } else {
        assert_true(gguf_find_tensor(l->g, "output.weight") < 0);
    }
    if (e->rope_freqs) {
        check_tensor(l, "rope_freqs.weight", GGML_TYPE_F32, e->head_dim / 2, 1);
    } else {
        assert_true(gguf_find_tensor(l->g, "rope_freqs.weight") < 0);
    }
    for (int il = 0; il < e->n_layer; il++) {
        check_layer(l, e, il);
    }
    assert_int_equal(gguf_get_n_tensors(l->g), n_checked);
}

static void check_hparams(const loaded *l, const expect *e, uint32_t file_type) {
    int64_t id = key_of(l, "general.architecture");
    assert_string_equal(gguf_get_val_str(l->g, id), e->arch);
    key_of(l, "general.name");
    assert_int_equal(u32_key(l, NULL, "general.alignment"), 32);
    assert_int_equal(u32_key(l, NULL, "general.file_type"), file_type);
    assert_int_equal(u32_key(l, e->arch, "block_count"), e->n_layer);
    assert_int_equal(u32_key(l, e->arch, "embedding_length"), e->n_embd);
    assert_int_equal(u32_key(l, e->arch, "feed_forward_length"), e->n_ff);
    assert_int_equal(u32_key(l, e->arch, "attention.head_count"), e->n_head);
    assert_int_equal(u32_key(l, e->arch, "attention.head_count_kv"), e->n_head_kv);
    assert_int_equal(u32_key(l, e->arch, "rope.dimension_count"), e->head_dim);
    assert_true(u32_key(l, e->arch, "context_length") >= 512);
    assert_true(f32_key(l, e->arch, "rope.freq_base") >= 10000.0f);
    float eps = f32_key(l, e->arch, "attention.layer_norm_rms_epsilon");
    assert_true(eps > 0.0f && eps <= 1e-5f);
    if (e->head_dim != e->n_embd / e->n_head) {
        assert_int_equal(u32_key(l, e->arch, "attention.key_length"), e->head_dim);
        assert_int_equal(u32_key(l, e->arch, "attention.value_length"), e->head_dim);
    }
}

/* Every tokenizer key of the vocab file is in the model, unchanged up to its length. */
static void check_tokenizer_copied(const loaded *l, const char *vocab_path) {
    struct gguf_init_params params = {.no_alloc = true, .ctx = NULL};
    struct gguf_context *v = gguf_init_from_file(vocab_path, params);
    assert_non_null(v);
    for (int64_t i = 0; i < gguf_get_n_kv(v); i++) {
        const char *key = gguf_get_key(v, i);
        if (!cairn_str_starts_with(key, "tokenizer.")) {
            continue;
        }
        int64_t id = key_of(l, key);
        assert_int_equal(gguf_get_kv_type(l->g, id), gguf_get_kv_type(v, i));
        if (gguf_get_kv_type(v, i) == GGUF_TYPE_ARRAY) {
            assert_int_equal(gguf_get_arr_type(l->g, id), gguf_get_arr_type(v, i));
            assert_true(gguf_get_arr_n(l->g, id) >= gguf_get_arr_n(v, i));
        }
    }
    int64_t vt = gguf_find_key(v, "tokenizer.ggml.tokens");
    int64_t mt = key_of(l, "tokenizer.ggml.tokens");
    for (size_t i = 0; i < gguf_get_arr_n(v, vt); i += 997) {
        assert_string_equal(gguf_get_arr_str(l->g, mt, i), gguf_get_arr_str(v, vt, i));
    }
    gguf_free(v);
}

static const float *f32_data(const loaded *l, const char *name, int64_t *n) {
    struct ggml_tensor *t = ggml_get_tensor(l->data, name);
    assert_non_null(t);
    assert_int_equal(t->type, GGML_TYPE_F32);
    *n = ggml_nelements(t);
    return t->data;
}

/* Weights look like N(0, std) after a round trip through the file's type; norms about 1. */
static void check_values_std(const loaded *l, const char *matrix, double want_std) {
    struct ggml_tensor *t = ggml_get_tensor(l->data, matrix);
    assert_non_null(t);
    const int64_t n = ggml_nelements(t);
    float *vals = malloc((size_t)n * sizeof *vals);
    assert_non_null(vals);
    if (t->type == GGML_TYPE_F32) {
        memcpy(vals, t->data, (size_t)n * sizeof *vals);
    } else {
        ggml_get_type_traits(t->type)->to_float(t->data, vals, n);
    }
    double sum = 0.0, sq = 0.0;
    for (int64_t i = 0; i < n; i++) {
        sum += vals[i];
        sq += (double)vals[i] * vals[i];
    }
    free(vals);
    double mean = sum / (double)n, std = sqrt(sq / (double)n - mean * mean);
    if (fabs(mean) > 0.1 * want_std || fabs(std - want_std) > 0.15 * want_std) {
        fail_msg("%s (%s): mean %.4g, std %.4g; expected about 0 and %.4g", matrix,
                 ggml_type_name(t->type), mean, std, want_std);
    }
    int64_t nn = 0;
    const float *norm = f32_data(l, "blk.0.attn_norm.weight", &nn);
    for (int64_t i = 0; i < nn; i++) {
        assert_true(norm[i] > 0.9f && norm[i] < 1.1f);
    }
}

static void check_values(const loaded *l, const char *matrix) {
    check_values_std(l, matrix, 0.02);
}

static void check_shape(const char *shape, const char *vocab, const expect *e) {
    generate(shape, "Q8_0", vocab, 0, 7, OUT_A);
    loaded l = load(OUT_A);
    check_tensors(&l, e);
    check_hparams(&l, e, 7);
    check_tokenizer_copied(&l, vocab);
    check_values(&l, "blk.1.ffn_down.weight");
    unload(&l);
    remove(OUT_A);
}

static void test_tiny_llama(void **state) {
    (void)state;
    expect e = {"llama", 4, 64, 4, 2, 16, 128, 32000, false, false, false, false, GGML_TYPE_Q8_0};
    check_shape("tiny-llama", VOCAB_SPM, &e);
}

static void test_tiny_qwen2(void **state) {
    (void)state;
    expect e = {"qwen2", 4, 64, 4, 2, 16, 128, 50257, true, true, false, false, GGML_TYPE_Q8_0};
    check_shape("tiny-qwen2", VOCAB_GPT2, &e);
}

static void test_tiny_qwen3(void **state) {
    (void)state;
    expect e = {"qwen3", 4, 64, 4, 2, 32, 128, 50257, true, false, true, false, GGML_TYPE_Q8_0};
    check_shape("tiny-qwen3", VOCAB_GPT2, &e);
}

/* Llama 3 scaling: high frequencies untouched (1), low ones divided by the factor (32). */
static void test_tiny_llama3_rope_freqs(void **state) {
    (void)state;
    expect e = {"llama", 4, 64, 4, 2, 16, 128, 50257, true, false, false, true, GGML_TYPE_Q8_0};
    check_shape("tiny-llama3", VOCAB_GPT2, &e);
    generate("tiny-llama3", "F16", VOCAB_GPT2, 0, 1, OUT_A);
    loaded l = load(OUT_A);
    int64_t n = 0;
    const float *f = f32_data(&l, "rope_freqs.weight", &n);
    assert_int_equal(n, 8);
    assert_true(f[0] == 1.0f && f[n - 1] == 32.0f);
    for (int64_t i = 1; i < n; i++) {
        assert_true(f[i] >= f[i - 1]);
    }
    unload(&l);
    remove(OUT_A);
}

/* The full real shapes, planned but not written: parameter counts match the published ones
 * (TinyLlama 1.1B: 1,100,048,384; Llama 3.2 1B: 1,235,814,400; Qwen2.5 0.5B: 494,032,768;
 * Qwen3 0.6B: 596,049,920), rope_freqs aside, and the vocabulary is padded to full size. */
static void test_real_shapes_planned(void **state) {
    (void)state;
    static const struct {
        const char *shape;
        const char *vocab;
        int64_t params;
        int n_vocab;
        int n_tensors;
    } cases[] = {
        {"tinyllama-1.1b", VOCAB_SPM, 1100048384, 32000, 3 + 22 * 9},
        {"llama-3.2-1b", VOCAB_GPT2, 1235814400 + 32, 128256, 3 + 16 * 9},
        {"qwen2.5-0.5b", VOCAB_GPT2, 494032768, 151936, 2 + 24 * 12},
        {"qwen3-0.6b", VOCAB_GPT2, 596049920, 151936, 2 + 28 * 11},
    };
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(cases); i++) {
        gm_options opt = {.shape = cases[i].shape,
                          .type = "Q4_0",
                          .out_path = OUT_A,
                          .vocab_path = cases[i].vocab,
                          .seed = 1};
        gm_plan p;
        cairn_err err = {{0}};
        if (gm_plan_init(&p, &opt, &err) != 0 || gm_add_tensor_infos(&p, &err) != 0) {
            fail_msg("%s: %s", cases[i].shape, err.msg);
        }
        int64_t params = 0;
        for (int64_t t = 0; t < gguf_get_n_tensors(p.out); t++) {
            const int64_t *ne = gguf_get_tensor_ne(p.out, t);
            params += ne[0] * ne[1] * ne[2] * ne[3];
        }
        assert_int_equal(params, cases[i].params);
        assert_int_equal(gguf_get_n_tensors(p.out), cases[i].n_tensors);
        int64_t tok = gguf_find_key(p.out, "tokenizer.ggml.tokens");
        assert_int_equal(gguf_get_arr_n(p.out, tok), cases[i].n_vocab);
        gm_plan_free(&p);
    }
}

/* A real shape at one layer keeps the real per-layer tensors (qwen3: head_dim 128). The
 * vocabulary is cut to the file's so the test stays fast; full heads are planned above. */
static void test_real_shape_one_layer(void **state) {
    (void)state;
    gm_options opt = {.shape = "qwen3-0.6b",
                      .type = "Q4_0",
                      .out_path = OUT_A,
                      .n_layers = 1,
                      .vocab_path = VOCAB_GPT2,
                      .n_vocab = 50257,
                      .seed = 3};
    gm_stats stats;
    cairn_err err = {{0}};
    assert_int_equal(gm_generate(&opt, &stats, &err), 0);
    assert_int_equal(stats.n_pad_tokens, 0);
    loaded l = load(OUT_A);
    expect e = {"qwen3", 1,    1024,  16,   8,     128,           3072,
                50257,   true, false, true, false, GGML_TYPE_Q4_0};
    check_tensors(&l, &e);
    check_hparams(&l, &e, 2);
    assert_int_equal(u32_key(&l, NULL, "general.quantization_version"), 2);
    check_values(&l, "blk.0.ffn_up.weight");
    unload(&l);
    remove(OUT_A);
}

static void test_padding(void **state) {
    (void)state;
    generate("tiny-llama", "F32", VOCAB_SPM, 32005, 1, OUT_A);
    loaded l = load(OUT_A);
    expect e = {"llama", 4, 64, 4, 2, 16, 128, 32005, false, false, false, false, GGML_TYPE_F32};
    check_tensors(&l, &e);
    check_hparams(&l, &e, 0);
    check_tokenizer_copied(&l, VOCAB_SPM);
    int64_t tok = key_of(&l, "tokenizer.ggml.tokens");
    int64_t sc = key_of(&l, "tokenizer.ggml.scores");
    int64_t ty = key_of(&l, "tokenizer.ggml.token_type");
    assert_int_equal(gguf_get_arr_n(l.g, tok), 32005);
    assert_int_equal(gguf_get_arr_n(l.g, sc), 32005);
    assert_int_equal(gguf_get_arr_n(l.g, ty), 32005);
    assert_string_equal(gguf_get_arr_str(l.g, tok, 32000), "<|cairn_pad_32000|>");
    assert_string_equal(gguf_get_arr_str(l.g, tok, 32004), "<|cairn_pad_32004|>");
    assert_int_equal(((const int32_t *)gguf_get_arr_data(l.g, ty))[32004], 3);
    assert_true(((const float *)gguf_get_arr_data(l.g, sc))[32004] < -100.0f);
    assert_int_equal(u32_key(&l, "llama", "vocab_size"), 32005);
    unload(&l);

    /* gpt-2 has merges and no scores: merges copied whole, no scores invented */
    generate("tiny-qwen2", "F16", VOCAB_GPT2, 50300, 1, OUT_A);
    l = load(OUT_A);
    assert_int_equal(gguf_get_arr_n(l.g, key_of(&l, "tokenizer.ggml.merges")), 50000);
    assert_true(gguf_find_key(l.g, "tokenizer.ggml.scores") < 0);
    assert_int_equal(gguf_get_arr_n(l.g, key_of(&l, "tokenizer.ggml.token_type")), 50300);
    assert_string_equal(gguf_get_arr_str(l.g, key_of(&l, "tokenizer.ggml.tokens"), 50299),
                        "<|cairn_pad_50299|>");
    unload(&l);
    remove(OUT_A);
}

static void test_synthesized_vocab(void **state) {
    (void)state;
    generate("tiny-qwen3", "Q4_0", NULL, 0, 1, OUT_A);
    loaded l = load(OUT_A);
    int64_t tok = key_of(&l, "tokenizer.ggml.tokens");
    assert_int_equal(gguf_get_arr_n(l.g, tok), 512);
    assert_string_equal(gguf_get_arr_str(l.g, tok, 1), "<s>");
    assert_string_equal(gguf_get_arr_str(l.g, tok, 3 + 0x41), "<0x41>");
    assert_string_equal(gguf_get_arr_str(l.g, tok, 511), "<|cairn_pad_511|>");
    assert_int_equal(u32_key(&l, NULL, "tokenizer.ggml.bos_token_id"), 1);
    unload(&l);
    remove(OUT_A);
}

/* Every type in the tiny-llama-256 shape, whose rows all fit 256-element K-quant blocks:
 * each matrix has the type, the file says which llama.cpp file type it is, and the values
 * survive quantization. In tiny-llama (rows of 64 and 128) K-quants take their fallbacks. */
static void test_every_type(void **state) {
    (void)state;
    static const struct {
        const char *name;
        enum ggml_type type;
        uint32_t ftype;
        enum ggml_type narrow; /* what rows of 64 get */
    } types[] = {
        {"F32", GGML_TYPE_F32, 0, GGML_TYPE_F32},
        {"F16", GGML_TYPE_F16, 1, GGML_TYPE_F16},
        {"BF16", GGML_TYPE_BF16, 32, GGML_TYPE_BF16},
        {"Q8_0", GGML_TYPE_Q8_0, 7, GGML_TYPE_Q8_0},
        {"Q4_0", GGML_TYPE_Q4_0, 2, GGML_TYPE_Q4_0},
        {"Q4_1", GGML_TYPE_Q4_1, 3, GGML_TYPE_Q4_1},
        {"Q5_0", GGML_TYPE_Q5_0, 8, GGML_TYPE_Q5_0},
        {"Q5_1", GGML_TYPE_Q5_1, 9, GGML_TYPE_Q5_1},
        {"Q2_K", GGML_TYPE_Q2_K, 10, GGML_TYPE_IQ4_NL},
        {"Q3_K", GGML_TYPE_Q3_K, 11, GGML_TYPE_IQ4_NL},
        {"Q4_K", GGML_TYPE_Q4_K, 14, GGML_TYPE_Q5_0},
        {"Q5_K", GGML_TYPE_Q5_K, 16, GGML_TYPE_Q5_1},
        {"Q6_K", GGML_TYPE_Q6_K, 18, GGML_TYPE_Q8_0},
    };
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(types); i++) {
        generate("tiny-llama-256", types[i].name, NULL, 0, 5, OUT_A);
        loaded l = load(OUT_A);
        expect e = {"llama", 2, 256, 4, 2, 64, 512, 512, false, false, false, false, types[i].type};
        check_tensors(&l, &e);
        check_hparams(&l, &e, types[i].ftype);
        assert_int_equal(gguf_find_key(l.g, "general.quantization_version") >= 0,
                         ggml_is_quantized(types[i].type));
        check_values(&l, "blk.1.attn_q.weight");
        check_values(&l, "blk.0.ffn_down.weight");
        unload(&l);

        generate("tiny-llama", types[i].name, NULL, 0, 5, OUT_A);
        l = load(OUT_A);
        expect narrow = {"llama",        4, 64, 4, 2, 16, 128, 512, false, false, false, false,
                         types[i].narrow};
        check_tensors(&l, &narrow);
        check_hparams(&l, &narrow, types[i].ftype);
        check_values(&l, "blk.3.attn_q.weight");
        unload(&l);
    }
    remove(OUT_A);
}

/* --std scales the weight matrices and nothing else. */
static void test_weight_std(void **state) {
    (void)state;
    gm_options opt = {.shape = "tiny-llama-256",
                      .type = "Q4_K",
                      .out_path = OUT_A,
                      .seed = 2,
                      .weight_std = 0.08f};
    gm_stats stats;
    cairn_err err = {{0}};
    assert_int_equal(gm_generate(&opt, &stats, &err), 0);
    loaded l = load(OUT_A);
    check_values_std(&l, "token_embd.weight", 0.08);
    check_values_std(&l, "blk.0.ffn_gate.weight", 0.08);
    unload(&l);
    opt.weight_std = -1.0f;
    assert_int_equal(gm_generate(&opt, &stats, &err), -1);
    assert_non_null(strstr(err.msg, "standard deviation"));
    remove(OUT_A);
}

static bool same_bytes(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *da = cairn_read_file(a, &na, NULL), *db = cairn_read_file(b, &nb, NULL);
    assert_non_null(da);
    assert_non_null(db);
    bool same = na == nb && memcmp(da, db, na) == 0;
    free(da);
    free(db);
    return same;
}

static void test_deterministic(void **state) {
    (void)state;
    generate("tiny-qwen2", "Q4_0", VOCAB_GPT2, 0, 42, OUT_A);
    generate("tiny-qwen2", "Q4_0", VOCAB_GPT2, 0, 42, OUT_B);
    assert_true(same_bytes(OUT_A, OUT_B));
    generate("tiny-qwen2", "Q4_0", VOCAB_GPT2, 0, 43, OUT_B);
    assert_false(same_bytes(OUT_A, OUT_B));
    remove(OUT_A);
    remove(OUT_B);
}

static int run_main(int argc, const char **argv) {
    return gm_main(argc, (char **)argv);
}

static void test_command_line(void **state) {
    (void)state;
    remove(OUT_A);
    const char *help[] = {"cairn-genmodel", "--help"};
    assert_int_equal(run_main(2, help), 0);
    const char *ok[] = {
        "cairn-genmodel", "--shape",  "tiny-llama", "--type", "Q8_0", "-o",    OUT_A, "--vocab",
        VOCAB_SPM,        "--layers", "2",          "--seed", "9",    "--std", "0.05"};
    assert_int_equal(run_main((int)CAIRN_ARRAY_LEN(ok), ok), 0);
    loaded l = load(OUT_A);
    assert_int_equal(u32_key(&l, "llama", "block_count"), 2);
    check_values_std(&l, "blk.1.ffn_up.weight", 0.05);
    unload(&l);
    remove(OUT_A);

    const char *bad[][9] = {
        {"x", "--shape", "nope", "--type", "Q8_0", "-o", OUT_A, NULL, NULL},
        {"x", "--shape", "tiny-llama", "--type", "Q8_1", "-o", OUT_A, NULL, NULL},
        {"x", "--shape", "tiny-llama", "--type", "IQ2_XXS", "-o", OUT_A, NULL, NULL},
        {"x", "--shape", "tiny-llama", "--type", "Q8_0", "-o", OUT_A, "--std", "0"},
        {"x", "--shape", "tiny-llama", "--type", "Q8_0", "-o", OUT_A, "--std", "nan"},
        {"x", "--shape", "tiny-llama", "--type", "Q8_0", "-o", OUT_A, "--std", "0.1x"},
        {"x", "--shape", "tiny-llama", "--type", "Q8_0", "-o", OUT_A, "--vocab", "/nonexistent"},
        {"x", "--shape", "tiny-llama", "--type", "Q8_0", "-o", OUT_A, "--vocab", VOCAB_GPT2 ".inp"},
        {"x", "--shape", "tiny-llama", "--type", "Q8_0", "-o", OUT_A, "--layers", "0"},
        {"x", "--shape", "tiny-llama", "--type", "Q8_0", "-o", OUT_A, "--vocab-size", "-3"},
        {"x", "--shape", "tiny-llama", "--type", "Q8_0", NULL, NULL, NULL, NULL},
        {"x", "--shape", "tiny-llama", "--type", "Q8_0", "-o", OUT_A, "--bogus", "1"},
        {"x", "--shape", "tiny-llama", "--type", "Q8_0", "-o", OUT_A, "--seed", NULL},
    };
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(bad); i++) {
        int argc = 0;
        while (argc < 9 && bad[i][argc] != NULL) {
            argc++;
        }
        assert_int_equal(run_main(argc, bad[i]), 1);
        FILE *f = fopen(OUT_A, "rb");
        if (f != NULL) {
            fclose(f);
            fail_msg("case %zu left an output file", i);
        }
    }
    /* a vocabulary larger than the requested size cannot be honoured */
    const char *small[] = {"x",   "--shape", "tiny-llama", "--type",       "F16", "-o",
                           OUT_A, "--vocab", VOCAB_SPM,    "--vocab-size", "100"};
    assert_int_equal(run_main((int)CAIRN_ARRAY_LEN(small), small), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_llama),
        cmocka_unit_test(test_tiny_qwen2),
        cmocka_unit_test(test_tiny_qwen3),
        cmocka_unit_test(test_tiny_llama3_rope_freqs),
        cmocka_unit_test(test_real_shapes_planned),
        cmocka_unit_test(test_real_shape_one_layer),
        cmocka_unit_test(test_padding),
        cmocka_unit_test(test_synthesized_vocab),
        cmocka_unit_test(test_every_type),
        cmocka_unit_test(test_weight_std),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_command_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
