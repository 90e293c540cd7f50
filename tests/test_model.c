/* Opening the shared GGUF models: hyperparameters, tensor table, types, shard sizes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ggml.h"
#include "gguf.h"
#include "model/model.h"

#define MODELS CAIRN_SHARED_DIR "/models/"
#define VOCABS CAIRN_SHARED_DIR "/vocab/"

static cairn_model_file *open_ok(const char *path) {
    cairn_model_file *m = NULL;
    cairn_err err = {{0}};
    int rc = cairn_model_open(path, &m, &err);
    if (rc != 0) {
        fail_msg("%s", err.msg);
    }
    assert_non_null(m);
    return m;
}

static void check_stories_hparams(const cairn_hparams *hp) {
    assert_int_equal(hp->arch, CAIRN_ARCH_LLAMA);
    assert_string_equal(hp->arch_name, "llama");
    assert_int_equal(hp->n_vocab, 512);
    assert_int_equal(hp->n_ctx_train, 2048);
    assert_int_equal(hp->n_embd, 64);
    assert_int_equal(hp->n_layer, 5);
    assert_int_equal(hp->n_head, 8);
    assert_int_equal(hp->n_head_kv, 4);
    assert_int_equal(hp->n_ff, 172);
    assert_int_equal(hp->head_dim_k, 8);
    assert_int_equal(hp->head_dim_v, 8);
    assert_int_equal(hp->rope_dims, 8);
    assert_float_equal(hp->rope_freq_base, 10000.0f, 1e-3);
    assert_float_equal(hp->rope_freq_scale, 1.0f, 0.0);
    assert_int_equal(hp->rope_scaling, CAIRN_ROPE_SCALING_NONE);
    assert_float_equal(hp->norm_eps, 1e-5f, 1e-9);
    assert_false(hp->has_rope_freqs);
}

static uint64_t all_tensor_bytes(const cairn_model_file *m) {
    uint64_t total = 0;
    for (int64_t i = 0; i < m->n_tensors; i++) {
        total += m->tensors[i].size;
    }
    return total;
}

/* Shards partition the layers; only the token embedding is needed twice when the head is
 * tied to it and the model is split. */
static void check_shard_bytes(const cairn_model_file *m) {
    int n = m->hp.n_layer;
    uint64_t whole = cairn_model_shard_bytes(m, 0, n);
    assert_int_equal(whole, all_tensor_bytes(m));
    uint64_t embd = cairn_model_tensor(m, "token_embd.weight")->size;
    uint64_t tied_extra = m->hp.tied_embeddings ? embd : 0;
    for (int split = 1; split < n; split++) {
        uint64_t a = cairn_model_shard_bytes(m, 0, split);
        uint64_t b = cairn_model_shard_bytes(m, split, n);
        assert_int_equal(a + b, whole + tied_extra);
        assert_true(a >= embd);
    }
    uint64_t sum = 0;
    for (int il = 0; il < n; il++) {
        sum += cairn_model_shard_bytes(m, il, il + 1);
    }
    assert_int_equal(sum, whole + (n > 1 ? tied_extra : 0));
    assert_int_equal(cairn_model_shard_bytes(m, 1, 1), 0);
    assert_int_equal(cairn_model_shard_bytes(m, 0, n + 1), 0);
    assert_int_equal(cairn_model_shard_bytes(m, -1, n), 0);
}

static void test_stories_f32(void **state) {
    (void)state;
    cairn_model_file *m = open_ok(MODELS "stories260K.gguf");
    assert_true(m->has_hparams);
    check_stories_hparams(&m->hp);
    assert_non_null(m->gguf);
    assert_int_equal(m->map.size, 1185376);
    /* 5 layers x 9 tensors + token_embd + output_norm (+ output unless tied) */
    assert_int_equal(m->n_tensors, 5 * 9 + 2 + (m->hp.tied_embeddings ? 0 : 1));
    for (int64_t i = 0; i < m->n_tensors; i++) {
        assert_int_equal(m->tensors[i].type, GGML_TYPE_F32);
        assert_true(m->tensors[i].offset + m->tensors[i].size <= m->map.size);
    }
    const cairn_tensor_info *q = cairn_model_tensor(m, "blk.0.attn_q.weight");
    assert_non_null(q);
    assert_string_equal(q->name, "blk.0.attn_q.weight");
    assert_int_equal(q->n_dims, 2);
    assert_int_equal(q->ne[0], 64);
    assert_int_equal(q->ne[1], 64);
    assert_int_equal(q->size, 64 * 64 * 4);
    const cairn_tensor_info *k = cairn_model_tensor(m, "blk.4.attn_k.weight");
    assert_non_null(k);
    assert_int_equal(k->ne[1], 32);
    const cairn_tensor_info *norm = cairn_model_tensor(m, "output_norm.weight");
    assert_non_null(norm);
    assert_int_equal(norm->n_dims, 1);
    assert_int_equal(norm->ne[0], 64);
    assert_null(cairn_model_tensor(m, "blk.5.attn_q.weight"));
    assert_null(cairn_model_tensor(m, ""));
    check_shard_bytes(m);
    cairn_model_close(m);
}

static void test_stories_q8_0(void **state) {
    (void)state;
    cairn_model_file *m = open_ok(MODELS "stories260K-q8_0.gguf");
    check_stories_hparams(&m->hp);
    int n_q8 = 0;
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const cairn_tensor_info *t = &m->tensors[i];
        if (t->n_dims == 1) {
            assert_int_equal(t->type, GGML_TYPE_F32);
        }
        if (t->type == GGML_TYPE_Q8_0) {
            n_q8++;
            assert_int_equal(t->ne[0] % 32, 0);
            assert_int_equal(t->size, (uint64_t)(t->ne[0] / 32) * 34 * (uint64_t)t->ne[1]);
        }
    }
    assert_true(n_q8 > 0);
    assert_int_equal(cairn_model_tensor(m, "blk.0.attn_q.weight")->type, GGML_TYPE_Q8_0);
    check_shard_bytes(m);
    cairn_model_close(m);
}

static void test_stories_q4_0(void **state) {
    (void)state;
    cairn_model_file *m = open_ok(MODELS "stories260K-q4_0.gguf");
    check_stories_hparams(&m->hp);
    assert_int_equal(cairn_model_tensor(m, "blk.0.attn_q.weight")->type, GGML_TYPE_Q4_0);
    check_shard_bytes(m);
    cairn_model_close(m);
}

static void test_tiny_random_f16(void **state) {
    (void)state;
    cairn_model_file *m = open_ok(MODELS "llama-2-tiny-random.gguf");
    const cairn_hparams *hp = &m->hp;
    assert_int_equal(hp->arch, CAIRN_ARCH_LLAMA);
    assert_int_equal(hp->n_layer, 1);
    assert_int_equal(hp->n_embd, 8);
    assert_int_equal(hp->n_head, 2);
    assert_int_equal(hp->n_head_kv, 2);
    assert_int_equal(hp->n_ff, 32);
    assert_int_equal(hp->n_vocab, 32000);
    assert_int_equal(hp->head_dim_k, 4);
    bool any_f16 = false;
    for (int64_t i = 0; i < m->n_tensors; i++) {
        any_f16 |= m->tensors[i].type == GGML_TYPE_F16;
    }
    assert_true(any_f16);
    check_shard_bytes(m);
    cairn_model_close(m);
}

static void test_vocab_only(void **state) {
    (void)state;
    static const char *const files[] = {"ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf",
                                        "ggml-vocab-phi-3.gguf", "ggml-vocab-mpt.gguf",
                                        "ggml-vocab-gpt-neox.gguf"};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(files); i++) {
        char path[512];
        snprintf(path, sizeof path, "%s%s", VOCABS, files[i]);
        cairn_model_file *m = NULL;
        cairn_err err = {{0}};
        if (cairn_model_open_metadata(path, &m, &err) != 0) {
            fail_msg("%s", err.msg);
        }
        assert_false(m->has_hparams);
        assert_int_equal(m->n_tensors, 0);
        size_t n_tokens = 0;
        assert_int_equal(
            cairn_meta_array(m->gguf, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &n_tokens, &err),
            1);
        assert_true(n_tokens > 1000);
        assert_int_equal(cairn_model_shard_bytes(m, 0, 1), 0);
        cairn_model_close(m);

        /* A file without weights is not a model. */
        err.msg[0] = '\0';
        assert_int_equal(cairn_model_open(path, &m, &err), -1);
        assert_null(m);
        assert_non_null(strstr(err.msg, "no tensors"));
    }
}

static void test_open_metadata_of_model(void **state) {
    (void)state;
    cairn_model_file *m = NULL;
    cairn_err err = {{0}};
    assert_int_equal(cairn_model_open_metadata(MODELS "stories260K.gguf", &m, &err), 0);
    assert_false(m->has_hparams);
    assert_true(m->n_tensors > 0);
    assert_non_null(cairn_model_tensor(m, "token_embd.weight"));
    cairn_model_close(m);
}

static void test_meta_accessors(void **state) {
    (void)state;
    cairn_model_file *m = open_ok(MODELS "stories260K.gguf");
    cairn_err err = {{0}};
    int64_t i = 0;
    double f = 0;
    const char *str = NULL;
    bool b = false;
    size_t n = 0;
    assert_int_equal(cairn_meta_int(m->gguf, "llama.block_count", &i, &err), 1);
    assert_int_equal(i, 5);
    assert_int_equal(cairn_meta_float(m->gguf, "llama.block_count", &f, &err), 1);
    assert_float_equal(f, 5.0, 0);
    assert_int_equal(cairn_meta_float(m->gguf, "llama.attention.layer_norm_rms_epsilon", &f, &err),
                     1);
    assert_float_equal(f, 1e-5, 1e-9);
    assert_int_equal(cairn_meta_str(m->gguf, "general.architecture", &str, &err), 1);
    assert_string_equal(str, "llama");
    assert_int_equal(cairn_meta_int(m->gguf, "no.such.key", &i, &err), 0);
    assert_int_equal(cairn_meta_bool(m->gguf, "no.such.key", &b, &err), 0);
    assert_int_equal(cairn_meta_str(m->gguf, "llama.block_count", &str, &err), -1);
    assert_string_equal(err.msg, "metadata key llama.block_count has type u32, expected a string");
    assert_int_equal(cairn_meta_int(m->gguf, "general.architecture", &i, NULL), -1);
    assert_int_equal(cairn_meta_bool(m->gguf, "llama.block_count", &b, &err), -1);
    assert_int_equal(
        cairn_meta_array(m->gguf, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, &n, &err), 1);
    assert_int_equal(n, 512);
    assert_int_equal(cairn_meta_array(m->gguf, "tokenizer.ggml.scores", GGUF_TYPE_STRING, &n, &err),
                     -1);
    assert_int_equal(cairn_meta_array(m->gguf, "llama.block_count", GGUF_TYPE_UINT32, &n, &err),
                     -1);
    cairn_model_close(m);
}

static void test_missing_file(void **state) {
    (void)state;
    cairn_model_file *m = (cairn_model_file *)1;
    cairn_err err = {{0}};
    assert_int_equal(cairn_model_open(MODELS "no-such-model.gguf", &m, &err), -1);
    assert_null(m);
    assert_non_null(strstr(err.msg, "no-such-model.gguf"));
    assert_int_equal(cairn_model_open(MODELS "no-such-model.gguf", &m, NULL), -1);
    cairn_model_close(NULL);
}

static void test_arch_names(void **state) {
    (void)state;
    assert_string_equal(cairn_arch_name(CAIRN_ARCH_LLAMA), "llama");
    assert_string_equal(cairn_arch_name(CAIRN_ARCH_QWEN2), "qwen2");
    assert_string_equal(cairn_arch_name(CAIRN_ARCH_QWEN3), "qwen3");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories_f32),    cmocka_unit_test(test_stories_q8_0),
        cmocka_unit_test(test_stories_q4_0),   cmocka_unit_test(test_tiny_random_f16),
        cmocka_unit_test(test_vocab_only),     cmocka_unit_test(test_open_metadata_of_model),
        cmocka_unit_test(test_meta_accessors), cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_arch_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
