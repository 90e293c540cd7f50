/* Tests of a file's SHA-256 (src/util/sha256.c) and a model's memory footprint
 * (src/model/footprint.c), the two things a node computes for each of its model files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model/model.h"
#include "platform/platform.h"
#include "util/util.h"

#define STORIES CAIRN_SHARED_DIR "/models/stories260K.gguf"

static void write_repeated(const char *path, char c, size_t n) {
    FILE *f = cairn_fopen(path, "wb");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(fputc(c, f), c);
    }
    assert_int_equal(fclose(f), 0);
}

static void expect_sha(const char *path, const char *expected) {
    char hex[65];
    cairn_err err = {{0}};
    int rc = cairn_file_sha256(path, hex, &err);
    if (rc != 0) {
        fail_msg("%s", err.msg);
    }
    assert_string_equal(hex, expected);
}

/* FIPS 180-2 vectors: "abc", the empty message, and a million 'a' (several read chunks). */
static void test_sha256_vectors(void **unused) {
    (void)unused;
    const char *path = CAIRN_BINARY_DIR "/test_footprint_sha.bin";
    write_repeated(path, 'x', 0);
    expect_sha(path, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    FILE *f = cairn_fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite("abc", 1, 3, f), 3);
    assert_int_equal(fclose(f), 0);
    expect_sha(path, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    write_repeated(path, 'a', 1000000);
    expect_sha(path, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    remove(path);
}

static bool stop_after_two(void *user) {
    int *calls = user;
    return ++*calls <= 2;
}

/* Asked before every chunk: stopping fails the hash and leaves hex alone. */
static void test_sha256_stops(void **unused) {
    (void)unused;
    const char *path = CAIRN_BINARY_DIR "/test_footprint_stop.bin";
    write_repeated(path, 'a', 1000000);
    char hex[65] = "untouched";
    int calls = 0;
    cairn_err err = {{0}};
    assert_int_equal(cairn_file_sha256_until(path, hex, stop_after_two, &calls, &err), -1);
    assert_int_equal(calls, 3);
    assert_non_null(strstr(err.msg, "stopped"));
    assert_string_equal(hex, "untouched");
    remove(path);
}

static void test_sha256_missing_file(void **unused) {
    (void)unused;
    char hex[65] = "untouched";
    cairn_err err = {{0}};
    assert_int_equal(cairn_file_sha256(CAIRN_BINARY_DIR "/no/such/file.gguf", hex, &err), -1);
    assert_non_null(strstr(err.msg, "cannot open"));
    assert_string_equal(hex, "untouched");
}

static cairn_model_file *open_stories(void) {
    cairn_model_file *m = NULL;
    cairn_err err = {{0}};
    if (cairn_model_open(STORIES, &m, &err) != 0) {
        fail_msg("%s", err.msg);
    }
    return m;
}

static void footprint_ok(const char *path, int n_ctx, int n_seq, cairn_footprint *fp) {
    cairn_err err = {{0}};
    if (cairn_model_footprint(path, n_ctx, n_seq, fp, &err) != 0) {
        fail_msg("%s", err.msg);
    }
}

/* Every tensor of the file lands in exactly one part of the footprint, and the parts add up
 * to what the engine itself loads for a shard holding the whole model. */
static void test_footprint_accounts_for_every_tensor(void **unused) {
    (void)unused;
    cairn_model_file *m = open_stories();
    uint64_t file_tensors = 0;
    for (int64_t i = 0; i < m->n_tensors; i++) {
        file_tensors += m->tensors[i].size;
    }
    cairn_footprint fp;
    footprint_ok(STORIES, 0, 0, &fp);
    assert_int_equal(fp.n_layers, 5);
    assert_false(m->hp.tied_embeddings);
    uint64_t embd = cairn_model_tensor(m, "token_embd.weight")->size;
    uint64_t head = cairn_model_tensor(m, "output_norm.weight")->size +
                    cairn_model_tensor(m, "output.weight")->size;
    assert_int_equal(fp.embd_bytes, embd);
    assert_int_equal(fp.head_bytes, head);
    assert_int_equal(fp.layer_weight_bytes + fp.embd_bytes + fp.head_bytes + fp.shared_bytes,
                     file_tensors);
    assert_int_equal(fp.layer_weight_bytes + fp.embd_bytes + fp.head_bytes + fp.shared_bytes,
                     cairn_model_shard_bytes(m, 0, (int)fp.n_layers));
    /* layer_bytes: the average layer, rounded up, plus its cache and the shared tensors. */
    uint64_t average = (fp.layer_weight_bytes + fp.n_layers - 1) / fp.n_layers;
    assert_int_equal(fp.layer_bytes, average + fp.layer_kv_bytes + fp.shared_bytes);
    assert_true(fp.layer_bytes * fp.n_layers >= fp.layer_weight_bytes);
    cairn_model_close(m);
}

/* The cache: K and V in F16, [head_dim * n_head_kv] per position, n_ctx x n_seq positions,
 * with n_ctx 0 meaning the training context (2048 here, under the 4096 cap). */
static void test_footprint_kv_cache(void **unused) {
    (void)unused;
    cairn_footprint fp;
    footprint_ok(STORIES, 0, 0, &fp);
    assert_int_equal(fp.n_ctx, 2048);
    assert_int_equal(fp.n_seq, 1);
    const uint64_t row = (8 + 8) * 4; /* head size 8 for K and V, 4 KV heads */
    assert_int_equal(fp.layer_kv_bytes, row * 2048 * 2);
    cairn_footprint four;
    footprint_ok(STORIES, 512, 4, &four);
    assert_int_equal(four.n_ctx, 512);
    assert_int_equal(four.layer_kv_bytes, row * 512 * 4 * 2);
    assert_int_equal(four.layer_bytes - four.layer_kv_bytes, fp.layer_bytes - fp.layer_kv_bytes);
    assert_int_equal(four.embd_bytes, fp.embd_bytes);
    /* An explicit context over the training one is what the engine would allocate. */
    footprint_ok(STORIES, 8192, 1, &four);
    assert_int_equal(four.layer_kv_bytes, row * 8192 * 2);
}

static void test_footprint_refuses_non_models(void **unused) {
    (void)unused;
    const char *path = CAIRN_BINARY_DIR "/test_footprint_junk.gguf";
    write_repeated(path, 'x', 100);
    cairn_footprint fp;
    cairn_err err = {{0}};
    assert_int_equal(cairn_model_footprint(path, 0, 0, &fp, &err), -1);
    assert_true(err.msg[0] != '\0');
    assert_int_equal(cairn_model_footprint(STORIES, 1 << 21, 1, &fp, &err), -1);
    assert_non_null(strstr(err.msg, "context"));
    remove(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_sha256_stops),
        cmocka_unit_test(test_sha256_missing_file),
        cmocka_unit_test(test_footprint_accounts_for_every_tensor),
        cmocka_unit_test(test_footprint_kv_cache),
        cmocka_unit_test(test_footprint_refuses_non_models),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
