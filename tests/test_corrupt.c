/* Corrupted GGUF files must give one clear error each: never a crash, an abort, a leak or a
 * giant allocation. Variants are made from the real stories260K model by patching header
 * fields found with a small header parser of our own, by truncating, by flipping bytes, and
 * by rewriting the file through gguf's writer (missing tensors, wrong metadata). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ggml.h"
#include "gguf.h"
#include "model/model.h"

#define SOURCE_MODEL CAIRN_SHARED_DIR "/models/stories260K.gguf"
/* Small edits are made in place in a copy of the source (rewriting a megabyte per case would
 * make the test slow on a busy disk); truncated and rewritten files go to VARIANT_PATH. */
#define PATCHED_PATH CAIRN_BINARY_DIR "/test_corrupt.patched.gguf"
#define VARIANT_PATH CAIRN_BINARY_DIR "/test_corrupt.variant.gguf"

/* ---- where the header fields of the source file are ---- */

typedef struct kv_loc {
    uint64_t at;      /* the key's length field */
    uint64_t type_at; /* the value type field */
    uint32_t type;
    uint64_t value_at; /* arrays: element type, then count */
    char key[96];
} kv_loc;

typedef struct tensor_loc {
    uint64_t at; /* the name's length field */
    uint64_t n_dims_at;
    uint32_t n_dims;
    uint64_t ne_at;
    uint64_t type_at;
    uint64_t offset_at;
    uint64_t offset; /* relative to the data section */
    int64_t ne[4];
    char name[64];
} tensor_loc;

typedef struct source {
    uint8_t *data;
    size_t size;
    uint64_t n_kv, n_tensors;
    kv_loc kv[64];
    tensor_loc tensors[64];
    uint64_t header_end; /* end of the tensor directory */
    uint64_t data_start;
} source;

static uint64_t get_uint(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static void put_uint(uint8_t *p, int bytes, uint64_t v) {
    for (int i = 0; i < bytes; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint64_t skip_string(const source *s, uint64_t at, char *copy, size_t copy_len) {
    uint64_t len = get_uint(s->data + at, 8);
    if (copy != NULL) {
        size_t n = len < copy_len - 1 ? (size_t)len : copy_len - 1;
        memcpy(copy, s->data + at + 8, n);
        copy[n] = '\0';
    }
    return at + 8 + len;
}

static uint64_t fixed_size(uint32_t type) {
    static const uint64_t sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return type < CAIRN_ARRAY_LEN(sizes) ? sizes[type] : 0;
}

static uint64_t skip_value(const source *s, uint32_t type, uint64_t at) {
    if (type == GGUF_TYPE_STRING) {
        return skip_string(s, at, NULL, 0);
    }
    if (type == GGUF_TYPE_ARRAY) {
        uint32_t elem = (uint32_t)get_uint(s->data + at, 4);
        uint64_t n = get_uint(s->data + at + 4, 8);
        at += 12;
        for (uint64_t i = 0; i < n; i++) {
            at = skip_value(s, elem, at);
        }
        return at;
    }
    return at + fixed_size(type);
}

static void parse_layout(source *s) {
    s->n_tensors = get_uint(s->data + 8, 8);
    s->n_kv = get_uint(s->data + 16, 8);
    assert_true(s->n_kv <= CAIRN_ARRAY_LEN(s->kv));
    assert_true(s->n_tensors <= CAIRN_ARRAY_LEN(s->tensors));
    uint64_t at = 24;
    for (uint64_t i = 0; i < s->n_kv; i++) {
        kv_loc *kv = &s->kv[i];
        kv->at = at;
        kv->type_at = skip_string(s, at, kv->key, sizeof kv->key);
        kv->type = (uint32_t)get_uint(s->data + kv->type_at, 4);
        kv->value_at = kv->type_at + 4;
        at = skip_value(s, kv->type, kv->value_at);
    }
    for (uint64_t i = 0; i < s->n_tensors; i++) {
        tensor_loc *t = &s->tensors[i];
        t->at = at;
        t->n_dims_at = skip_string(s, at, t->name, sizeof t->name);
        t->n_dims = (uint32_t)get_uint(s->data + t->n_dims_at, 4);
        t->ne_at = t->n_dims_at + 4;
        for (uint32_t d = 0; d < 4; d++) {
            t->ne[d] = d < t->n_dims ? (int64_t)get_uint(s->data + t->ne_at + 8 * d, 8) : 1;
        }
        t->type_at = t->ne_at + 8 * (uint64_t)t->n_dims;
        t->offset_at = t->type_at + 4;
        t->offset = get_uint(s->data + t->offset_at, 8);
        at = t->offset_at + 8;
    }
    s->header_end = at;
    s->data_start =
        (at + GGUF_DEFAULT_ALIGNMENT - 1) / GGUF_DEFAULT_ALIGNMENT * GGUF_DEFAULT_ALIGNMENT;
}

static const kv_loc *find_kv(const source *s, const char *key) {
    for (uint64_t i = 0; i < s->n_kv; i++) {
        if (strcmp(s->kv[i].key, key) == 0) {
            return &s->kv[i];
        }
    }
    fail_msg("the source model has no key %s", key);
    return NULL;
}

static const tensor_loc *find_tensor(const source *s, const char *name) {
    for (uint64_t i = 0; i < s->n_tensors; i++) {
        if (strcmp(s->tensors[i].name, name) == 0) {
            return &s->tensors[i];
        }
    }
    fail_msg("the source model has no tensor %s", name);
    return NULL;
}

static int setup(void **state) {
    source *s = calloc(1, sizeof *s);
    cairn_err err;
    s->data = (uint8_t *)cairn_read_file(SOURCE_MODEL, &s->size, &err);
    if (s->data == NULL) {
        fprintf(stderr, "%s\n", err.msg);
        free(s);
        return -1;
    }
    parse_layout(s);
    FILE *f = fopen(PATCHED_PATH, "wb");
    if (f == NULL || fwrite(s->data, 1, s->size, f) != s->size || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", PATCHED_PATH);
        free(s->data);
        free(s);
        return -1;
    }
    *state = s;
    return 0;
}

static int teardown(void **state) {
    source *s = *state;
    free(s->data);
    free(s);
    remove(VARIANT_PATH);
    remove(PATCHED_PATH);
    return 0;
}

/* ---- opening variants ---- */

static void write_variant(const uint8_t *data, size_t len) {
    FILE *f = fopen(VARIANT_PATH, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* What a successfully opened file promises: everything in range, nothing absurd. */
static void check_consistent(const cairn_model_file *m) {
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const cairn_tensor_info *t = &m->tensors[i];
        assert_true(t->name[0] != '\0');
        assert_in_range(t->n_dims, 1, 4);
        assert_in_range(t->type, 0, GGML_TYPE_COUNT - 1);
        for (int d = 0; d < 4; d++) {
            assert_true(t->ne[d] > 0);
        }
        assert_true(t->offset <= m->map.size && t->size <= m->map.size - t->offset);
    }
    if (m->has_hparams) {
        const cairn_hparams *hp = &m->hp;
        assert_in_range(hp->n_layer, 1, 4096);
        assert_in_range(hp->n_head, 1, 4096);
        assert_int_equal(hp->n_head % hp->n_head_kv, 0);
        assert_in_range(hp->rope_dims, 2, hp->head_dim_k);
        assert_non_null(cairn_model_tensor(m, "token_embd.weight"));
        for (int il = 0; il < hp->n_layer; il++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.ffn_down.weight", il);
            assert_non_null(cairn_model_tensor(m, name));
        }
        assert_true(cairn_model_shard_bytes(m, 0, hp->n_layer) <= m->map.size);
    }
}

/* Opens the variant on disk; on failure the message must be one non-empty line naming the
 * file. Returns the open's result. */
static int open_path(const char *path, cairn_err *err) {
    cairn_model_file *m = NULL;
    err->msg[0] = '\0';
    int rc = cairn_model_open(path, &m, err);
    if (rc == 0) {
        assert_non_null(m);
        check_consistent(m);
        cairn_model_close(m);
        return 0;
    }
    assert_int_equal(rc, -1);
    assert_null(m);
    if (getenv("CAIRN_CORRUPT_VERBOSE") != NULL) {
        fprintf(stderr, "%s\n", err->msg);
    }
    assert_true(strlen(err->msg) > strlen(path) + 2);
    assert_true(cairn_str_starts_with(err->msg, path));
    assert_true(cairn_str_starts_with(err->msg + strlen(path), ": "));
    assert_null(strchr(err->msg, '\n'));
    return -1;
}

static int open_written(cairn_err *err) {
    return open_path(VARIANT_PATH, err);
}

/* One field of the source replaced. */
typedef struct patch {
    uint64_t at;
    int bytes;
    uint64_t value;
} patch;

static void write_at(uint64_t at, const uint8_t *bytes, size_t n) {
    FILE *f = fopen(PATCHED_PATH, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, (long)at, SEEK_SET), 0);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Opens the source with the patches applied, then restores the file. */
static int open_patched(const source *s, const patch *p, size_t n, cairn_err *err) {
    for (size_t i = 0; i < n; i++) {
        uint8_t bytes[8];
        put_uint(bytes, p[i].bytes, p[i].value);
        write_at(p[i].at, bytes, (size_t)p[i].bytes);
    }
    int rc = open_path(PATCHED_PATH, err);
    for (size_t i = n; i-- > 0;) {
        write_at(p[i].at, s->data + p[i].at, (size_t)p[i].bytes);
    }
    return rc;
}

static void check_failure(int rc, const cairn_err *err, const char *want, const char *what) {
    if (rc == 0) {
        fail_msg("%s: opened successfully, expected an error", what);
    }
    if (want != NULL && strstr(err->msg, want) == NULL) {
        fail_msg("%s: error \"%s\" does not mention \"%s\"", what, err->msg, want);
    }
}

/* The written variant must fail with a message containing want (if not NULL). */
static void expect_failure_written(const char *want, const char *what) {
    cairn_err err;
    if (open_written(&err) == 0) {
        fail_msg("%s: opened successfully, expected an error", what);
    }
    if (want != NULL && strstr(err.msg, want) == NULL) {
        fail_msg("%s: error \"%s\" does not mention \"%s\"", what, err.msg, want);
    }
}

static void expect_failure(const uint8_t *data, size_t len, const char *want, const char *what) {
    write_variant(data, len);
    expect_failure_written(want, what);
}

/* The source with one integer field replaced must fail mentioning want (if not NULL). */
static void expect_patched_failure(const source *s, uint64_t at, int bytes, uint64_t value,
                                   const char *want, const char *what) {
    patch p = {at, bytes, value};
    cairn_err err;
    int rc = open_patched(s, &p, 1, &err);
    char label[160];
    snprintf(label, sizeof label, "%s = %llu", what, (unsigned long long)value);
    check_failure(rc, &err, want, label);
}

/* ---- the source itself ---- */

static void test_source_opens(void **state) {
    const source *s = *state;
    cairn_err err;
    assert_int_equal(open_patched(s, NULL, 0, &err), 0);
    /* the layout parser agrees with the loader */
    cairn_model_file *m = NULL;
    assert_int_equal(cairn_model_open(SOURCE_MODEL, &m, &err), 0);
    assert_int_equal((uint64_t)m->n_tensors, s->n_tensors);
    for (uint64_t i = 0; i < s->n_tensors; i++) {
        const cairn_tensor_info *t = cairn_model_tensor(m, s->tensors[i].name);
        assert_non_null(t);
        assert_int_equal(t->offset, s->data_start + s->tensors[i].offset);
    }
    cairn_model_close(m);
}

/* ---- truncation ---- */

static void expect_truncation_fails(const source *s, size_t len) {
    char what[64];
    snprintf(what, sizeof what, "truncated to %zu bytes", len);
    expect_failure(s->data, len, NULL, what);
}

static void test_truncated_header(void **state) {
    const source *s = *state;
    /* Every offset of the fixed header, of the scalar metadata, of the first tensor infos
     * and of the last one, and of every key's start; elsewhere every 13th offset. */
    uint64_t scalars_at = find_kv(s, "tokenizer.ggml.model")->at;
    uint64_t last_info_at = s->tensors[s->n_tensors - 1].at;
    for (uint64_t len = 1; len < s->data_start; len++) {
        bool dense = len < 64 || (len >= scalars_at - 16 && len < s->tensors[2].at) ||
                     len >= last_info_at - 16;
        bool boundary = false;
        for (uint64_t i = 0; i < s->n_kv && !boundary; i++) {
            /* the key's length, the value's type and an array's element type and count */
            boundary = (len >= s->kv[i].at && len < s->kv[i].at + 10) ||
                       (len >= s->kv[i].type_at && len < s->kv[i].value_at + 14);
        }
        if (dense || boundary || len % 13 == 0) {
            expect_truncation_fails(s, (size_t)len);
        }
    }
}

/* Through the tensor data of the Q4_0 copy (a third of the size, so less to write), whose
 * quantized tensors' sizes come from their block layout. */
static void test_truncated_data(void **state) {
    (void)state;
    source *q = calloc(1, sizeof *q);
    assert_non_null(q);
    cairn_err err;
    q->data = (uint8_t *)cairn_read_file(CAIRN_SHARED_DIR "/models/stories260K-q4_0.gguf", &q->size,
                                         &err);
    assert_non_null(q->data);
    parse_layout(q);
    uint64_t data_len = q->size - q->data_start;
    for (uint64_t i = 0; i < 300; i++) {
        uint64_t len = q->data_start + data_len * i / 300 + (i * 7919) % 64;
        if (len >= q->size) {
            len = q->size - 1;
        }
        char what[64];
        snprintf(what, sizeof what, "truncated to %llu bytes", (unsigned long long)len);
        expect_failure(q->data, (size_t)len, "beyond the file size", what);
    }
    expect_failure(q->data, q->size - 1, "beyond the file size", "one byte short");
    write_variant(q->data, q->size);
    assert_int_equal(open_written(&err), 0);
    free(q->data);
    free(q);
}

/* ---- the fixed header ---- */

static void test_bad_magic(void **state) {
    const source *s = *state;
    expect_patched_failure(s, 0, 4, 0x47554746 /* "FGUG" */, "magic", "magic");
    expect_patched_failure(s, 0, 4, 0, "magic", "magic");
    expect_patched_failure(s, 3, 1, 'G' + 1, "magic", "magic");
}

static void test_bad_version(void **state) {
    const source *s = *state;
    static const uint64_t bad[] = {0, 1, 4, 0xFFFFFFFF, 0x03000000, 0x00030000};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(bad); i++) {
        expect_patched_failure(s, 4, 4, bad[i], "version", "version");
    }
    expect_patched_failure(s, 4, 4, 0x03000000, "big-endian", "byte-swapped version");
    /* version 2 has the same layout and stays readable */
    patch v2 = {4, 4, 2};
    cairn_err err;
    assert_int_equal(open_patched(s, &v2, 1, &err), 0);
}

static void test_absurd_counts(void **state) {
    const source *s = *state;
    const uint64_t huge[] = {1ull << 62, (1ull << 63) - 1, UINT64_MAX, 1ull << 32, (1u << 20) + 1};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(huge); i++) {
        expect_patched_failure(s, 8, 8, huge[i], NULL, "tensor count");
        expect_patched_failure(s, 16, 8, huge[i], NULL, "metadata count");
    }
    expect_patched_failure(s, 8, 8, s->n_tensors + 1, NULL, "tensor count");
    expect_patched_failure(s, 16, 8, s->n_kv + 1, NULL, "metadata count");
    expect_patched_failure(s, 16, 8, s->n_kv - 1, NULL, "metadata count");
    expect_patched_failure(s, 16, 8, 0, NULL, "metadata count");
    expect_patched_failure(s, 8, 8, 0, "no tensors", "tensor count");
    /* One tensor fewer drops the directory's last entry, a required norm. */
    expect_patched_failure(s, 8, 8, s->n_tensors - 1, "missing tensor", "tensor count");
}

/* ---- metadata ---- */

static void test_absurd_lengths(void **state) {
    const source *s = *state;
    const uint64_t lengths[] = {0,       1ull << 62,   UINT64_MAX, 1ull << 31,
                                s->size, s->size - 30, 65536};
    const kv_loc *first = &s->kv[0];
    const kv_loc *arch = find_kv(s, "general.architecture");
    const kv_loc *tokens = find_kv(s, "tokenizer.ggml.tokens");
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(lengths); i++) {
        expect_patched_failure(s, first->at, 8, lengths[i], NULL, "first key length");
        expect_patched_failure(s, arch->at, 8, lengths[i], NULL, "architecture key length");
        if (lengths[i] != 0) {
            expect_patched_failure(s, arch->value_at, 8, lengths[i], NULL,
                                   "architecture value length");
        }
        /* a token string inside the array */
        expect_patched_failure(s, tokens->value_at + 12, 8, lengths[i] + 1, NULL,
                               "first token length");
    }
    const uint64_t counts[] = {1ull << 62,     UINT64_MAX,  1ull << 30, (1ull << 30) + 1,
                               (1u << 26) + 1, s->size / 8, 513,        100000};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(counts); i++) {
        expect_patched_failure(s, tokens->value_at + 4, 8, counts[i], NULL, "token count");
        const kv_loc *scores = find_kv(s, "tokenizer.ggml.scores");
        expect_patched_failure(s, scores->value_at + 4, 8, counts[i], NULL, "score count");
    }
    /* a shorter vocabulary than the embedding has rows: arrays stay parseable because the
     * string count only shrinks if the next key's bytes still parse, so any error will do */
    expect_patched_failure(s, tokens->value_at + 4, 8, 511, NULL, "token count");
}

static void test_bad_kv_types(void **state) {
    const source *s = *state;
    const kv_loc *tokens = find_kv(s, "tokenizer.ggml.tokens");
    const kv_loc *arch = find_kv(s, "general.architecture");
    const uint64_t bad[] = {GGUF_TYPE_COUNT, 100, 0xFFFFFFFF, 0x80000000};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(bad); i++) {
        expect_patched_failure(s, arch->type_at, 4, bad[i], "type", "value type");
        expect_patched_failure(s, tokens->value_at, 4, bad[i], "type", "element type");
    }
    expect_patched_failure(s, tokens->value_at, 4, GGUF_TYPE_ARRAY, "type", "array of arrays");
    /* Every other type for every key: the value is misread, which must end in an error or
     * in a consistent model, never a crash. */
    for (uint64_t k = 0; k < s->n_kv; k++) {
        for (uint32_t t = 0; t < GGUF_TYPE_COUNT; t++) {
            if (t != s->kv[k].type) {
                patch p = {s->kv[k].type_at, 4, t};
                cairn_err err;
                open_patched(s, &p, 1, &err);
            }
        }
    }
}

/* ---- the tensor directory ---- */

static void test_bad_offsets(void **state) {
    const source *s = *state;
    const tensor_loc *first = &s->tensors[0];
    const tensor_loc *second = &s->tensors[1];
    const tensor_loc *last = &s->tensors[s->n_tensors - 1];
    const tensor_loc *middle = &s->tensors[s->n_tensors / 2];
    const tensor_loc *targets[] = {first, second, middle, last};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(targets); i++) {
        const tensor_loc *t = targets[i];
        uint64_t values[] = {t->offset + 1,
                             t->offset + 4,
                             t->offset + GGUF_DEFAULT_ALIGNMENT,
                             1ull << 40,
                             UINT64_MAX,
                             UINT64_MAX - 31,
                             s->size,
                             t->offset >= 32 ? t->offset - 32 : t->offset + 64};
        for (size_t v = 0; v < CAIRN_ARRAY_LEN(values); v++) {
            expect_patched_failure(s, t->offset_at, 8, values[v], t->name, t->name);
        }
    }
    /* overlapping: the second tensor on top of the first */
    expect_patched_failure(s, second->offset_at, 8, first->offset, NULL, "overlap");
    /* the last tensor moved past the end of the file */
    expect_patched_failure(s, last->offset_at, 8, s->size - s->data_start, NULL, "past end");
}

static void test_bad_tensor_types(void **state) {
    const source *s = *state;
    /* The last tensor: changing its size does not disturb any later offset, so only the
     * type itself is wrong. It is a 64-element norm. */
    const tensor_loc *last = &s->tensors[s->n_tensors - 1];
    assert_int_equal(last->ne[0], 64);
    const uint64_t bad[] = {200,
                            4,
                            5,
                            31,
                            32,
                            33,
                            36,
                            37,
                            38,
                            GGML_TYPE_COUNT,
                            0xFFFFFFFF,
                            0x80000000,
                            GGML_TYPE_Q8_1,
                            GGML_TYPE_Q8_K,
                            GGML_TYPE_I8,
                            GGML_TYPE_I16,
                            GGML_TYPE_I32,
                            GGML_TYPE_I64,
                            GGML_TYPE_F64};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(bad); i++) {
        expect_patched_failure(s, last->type_at, 4, bad[i], NULL, "tensor type");
    }
    expect_patched_failure(s, last->type_at, 4, GGML_TYPE_Q8_1, "cannot compute", "Q8_1");
    expect_patched_failure(s, last->type_at, 4, GGML_TYPE_I32, "cannot compute", "I32");
    expect_patched_failure(s, last->type_at, 4, GGML_TYPE_F16, "expected f32", "f16 norm");
    /* A weight of another type changes its size and so every later offset. */
    expect_patched_failure(s, s->tensors[0].type_at, 4, GGML_TYPE_Q4_0, NULL, "q4_0 embd");
}

static void test_bad_shapes(void **state) {
    const source *s = *state;
    const tensor_loc *embd = find_tensor(s, "token_embd.weight");
    const tensor_loc *last = &s->tensors[s->n_tensors - 1];
    assert_int_equal(embd->n_dims, 2);
    const uint64_t dims[] = {0, 3, 5, 0xFFFFFFFF, 1u << 31};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(dims); i++) {
        expect_patched_failure(s, embd->n_dims_at, 4, dims[i], NULL, "n_dims");
        expect_patched_failure(s, last->n_dims_at, 4, dims[i], NULL, "n_dims");
    }
    const uint64_t ne[] = {
        0, (uint64_t)-1, (uint64_t)INT64_MIN, 1ull << 40, (1ull << 63) - 1, 63, 65, 32};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(ne); i++) {
        expect_patched_failure(s, embd->ne_at, 8, ne[i], NULL, "token_embd ne[0]");
        expect_patched_failure(s, embd->ne_at + 8, 8, ne[i], NULL, "token_embd ne[1]");
        expect_patched_failure(s, last->ne_at, 8, ne[i], NULL, "last ne[0]");
    }
    expect_patched_failure(s, last->ne_at, 8, 0, "size 0", "empty tensor");
    /* Swapped dimensions keep the size, so only the shape check can notice. */
    patch swap[] = {{embd->ne_at, 8, (uint64_t)embd->ne[1]},
                    {embd->ne_at + 8, 8, (uint64_t)embd->ne[0]}};
    cairn_err err;
    check_failure(open_patched(s, swap, 2, &err), &err,
                  "'token_embd.weight' has shape [512, 64], expected [64, 512]", "swapped dims");
}

/* ---- random damage ---- */

static uint64_t next_random(uint64_t *state) {
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return *state >> 33;
}

static void test_random_flips(void **state) {
    const source *s = *state;
    uint64_t rng = 12345;
    int failures = 0;
    for (int i = 0; i < 400; i++) {
        patch flips[3];
        size_t n_flips = 1 + next_random(&rng) % 3;
        for (size_t f = 0; f < n_flips; f++) {
            /* half of the flips hit the scalar metadata and tensor directory */
            uint64_t lo = i % 2 ? s->kv[3].at : 0;
            uint64_t pos = lo + next_random(&rng) % (s->header_end - lo);
            /* flips may land on the same byte: flip relative to the current value */
            uint8_t current = s->data[pos];
            for (size_t g = 0; g < f; g++) {
                current = flips[g].at == pos ? (uint8_t)flips[g].value : current;
            }
            flips[f] = (patch){pos, 1, current ^ (uint8_t)(1 + next_random(&rng) % 255)};
        }
        cairn_err err;
        failures += open_patched(s, flips, n_flips, &err) != 0;
    }
    /* the damage is real: most variants must be rejected */
    assert_true(failures > 100);
}

/* ---- rewritten through gguf's writer ---- */

typedef struct rewrite {
    struct gguf_context *g;   /* the new file's metadata and directory */
    struct ggml_context *src; /* the source's tensors with their data */
    struct gguf_context *src_g;
    struct ggml_context *extra; /* tensors added by a variant */
} rewrite;

/* Starts a copy of the source model: all metadata (and general.alignment when alignment is
 * not 0), every tensor except drop. */
static void rewrite_begin_aligned(rewrite *r, const char *drop, uint32_t alignment) {
    struct gguf_init_params params = {.no_alloc = false, .ctx = &r->src};
    r->src_g = gguf_init_from_file(SOURCE_MODEL, params);
    assert_non_null(r->src_g);
    r->g = gguf_init_empty();
    gguf_set_kv(r->g, r->src_g);
    if (alignment != 0) {
        /* The writer keeps the alignment it was created with, so it has to read a file that
         * declares the new one. */
        gguf_set_val_u32(r->g, "general.alignment", alignment);
        assert_true(gguf_write_to_file(r->g, VARIANT_PATH, true));
        gguf_free(r->g);
        struct gguf_init_params meta_only = {.no_alloc = true, .ctx = NULL};
        r->g = gguf_init_from_file(VARIANT_PATH, meta_only);
        assert_non_null(r->g);
        assert_int_equal(gguf_get_alignment(r->g), alignment);
    }
    for (int64_t i = 0; i < gguf_get_n_tensors(r->src_g); i++) {
        const char *name = gguf_get_tensor_name(r->src_g, i);
        if (drop == NULL || strcmp(name, drop) != 0) {
            gguf_add_tensor(r->g, ggml_get_tensor(r->src, name));
        }
    }
    struct ggml_init_params ip = {.mem_size = 4u << 20, .mem_buffer = NULL, .no_alloc = false};
    r->extra = ggml_init(ip);
    assert_non_null(r->extra);
}

static void rewrite_begin(rewrite *r, const char *drop) {
    rewrite_begin_aligned(r, drop, 0);
}

/* Adds a zero-filled tensor. */
static void rewrite_add(rewrite *r, const char *name, enum ggml_type type, int64_t ne0) {
    struct ggml_tensor *t = ggml_new_tensor_1d(r->extra, type, ne0);
    memset(t->data, 0, ggml_nbytes(t));
    ggml_set_name(t, name);
    gguf_add_tensor(r->g, t);
}

static void rewrite_end(rewrite *r) {
    assert_true(gguf_write_to_file(r->g, VARIANT_PATH, false));
    gguf_free(r->g);
    gguf_free(r->src_g);
    ggml_free(r->src);
    ggml_free(r->extra);
}

static void expect_rewrite_failure(rewrite *r, const char *want, const char *what) {
    rewrite_end(r);
    expect_failure_written(want, what);
}

static void test_missing_tensors(void **state) {
    (void)state;
    static const char *const names[] = {
        "token_embd.weight",        "output_norm.weight",    "blk.0.attn_norm.weight",
        "blk.0.attn_q.weight",      "blk.1.attn_k.weight",   "blk.2.attn_v.weight",
        "blk.3.attn_output.weight", "blk.4.ffn_norm.weight", "blk.2.ffn_gate.weight",
        "blk.2.ffn_up.weight",      "blk.4.ffn_down.weight"};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(names); i++) {
        rewrite r;
        rewrite_begin(&r, names[i]);
        char want[96];
        snprintf(want, sizeof want, "missing tensor '%s'", names[i]);
        expect_rewrite_failure(&r, want, names[i]);
    }
}

static void test_tied_embeddings(void **state) {
    (void)state;
    rewrite r;
    rewrite_begin(&r, "output.weight");
    rewrite_end(&r);
    cairn_model_file *m = NULL;
    cairn_err err;
    if (cairn_model_open(VARIANT_PATH, &m, &err) != 0) {
        fail_msg("%s", err.msg);
    }
    assert_true(m->hp.tied_embeddings);
    assert_null(cairn_model_tensor(m, "output.weight"));
    cairn_model_close(m);
}

static void test_extra_tensor_shapes(void **state) {
    (void)state;
    rewrite r;
    /* a norm stored as f16: ggml's elementwise multiply wants f32 */
    rewrite_begin(&r, "output_norm.weight");
    rewrite_add(&r, "output_norm.weight", GGML_TYPE_F16, 64);
    expect_rewrite_failure(&r, "'output_norm.weight' has type f16, expected f32", "f16 norm");
    rewrite_begin(&r, "blk.1.ffn_norm.weight");
    rewrite_add(&r, "blk.1.ffn_norm.weight", GGML_TYPE_F32, 65);
    expect_rewrite_failure(&r, "'blk.1.ffn_norm.weight' has shape [65], expected [64]",
                           "norm size");
    /* frequency factors of the wrong length (rope dims 8: 4 factors) */
    rewrite_begin(&r, NULL);
    rewrite_add(&r, "rope_freqs.weight", GGML_TYPE_F32, 8);
    expect_rewrite_failure(&r, "rope_freqs.weight", "rope_freqs size");
    rewrite_begin(&r, NULL);
    rewrite_add(&r, "rope_freqs.weight", GGML_TYPE_F32, 4);
    rewrite_end(&r);
    cairn_model_file *m = NULL;
    cairn_err err;
    assert_int_equal(cairn_model_open(VARIANT_PATH, &m, &err), 0);
    assert_true(m->hp.has_rope_freqs);
    cairn_model_close(m);
}

typedef enum value_kind { V_U32, V_I32, V_U64, V_F32, V_STR, V_REMOVE } value_kind;

typedef struct meta_case {
    const char *key;
    value_kind kind;
    double num;
    const char *str;
    const char *want; /* expected in the message */
} meta_case;

static void set_value(struct gguf_context *g, const meta_case *c) {
    switch (c->kind) {
    case V_U32: gguf_set_val_u32(g, c->key, (uint32_t)c->num); break;
    case V_I32: gguf_set_val_i32(g, c->key, (int32_t)c->num); break;
    case V_U64: gguf_set_val_u64(g, c->key, (uint64_t)c->num); break;
    case V_F32: gguf_set_val_f32(g, c->key, (float)c->num); break;
    case V_STR: gguf_set_val_str(g, c->key, c->str); break;
    case V_REMOVE: gguf_remove_key(g, c->key); break;
    }
}

static void test_bad_metadata(void **state) {
    (void)state;
    static const meta_case cases[] = {
        {"llama.block_count", V_STR, 0, "five", "llama.block_count has type str"},
        {"llama.block_count", V_U32, 1e9, NULL, "llama.block_count"},
        {"llama.block_count", V_U32, 0, NULL, "llama.block_count"},
        {"llama.block_count", V_U32, 6, NULL, "missing tensor 'blk.5."},
        {"llama.block_count", V_U64, 1.8e19, NULL, "llama.block_count is 18000000000000000000"},
        {"llama.block_count", V_U64, 1e12, NULL, "llama.block_count is 1000000000000"},
        {"llama.block_count", V_REMOVE, 0, NULL, "missing metadata key llama.block_count"},
        {"llama.attention.head_count", V_U32, 0, NULL, "head_count"},
        {"llama.attention.head_count", V_U32, 12, NULL, "not a multiple of the head count 12"},
        {"llama.attention.head_count", V_U32, 128, NULL, "not a multiple of the head count"},
        {"llama.attention.head_count", V_U32, 4e9, NULL, "head_count"},
        {"llama.attention.head_count", V_I32, -8, NULL, "head_count"},
        {"llama.attention.head_count_kv", V_U32, 3, NULL, "key/value heads"},
        {"llama.attention.head_count_kv", V_U32, 0, NULL, "head_count_kv"},
        {"llama.attention.head_count_kv", V_U32, 16, NULL, "key/value heads"},
        {"llama.attention.head_count_kv", V_U32, 8, NULL, "'blk.0.attn_k.weight' has shape"},
        {"llama.embedding_length", V_U32, 65, NULL, "not a multiple of the head count"},
        {"llama.embedding_length", V_U32, 72, NULL, "shape"},
        {"llama.embedding_length", V_U32, 0, NULL, "embedding_length"},
        {"llama.embedding_length", V_U32, 4e9, NULL, "embedding_length"},
        {"llama.feed_forward_length", V_U32, 2147483648.0, NULL, "feed_forward_length"},
        {"llama.feed_forward_length", V_U32, 171, NULL, "'blk.0.ffn_gate.weight' has shape"},
        {"llama.context_length", V_U32, 0, NULL, "context_length"},
        {"llama.context_length", V_F32, 2048, NULL, "context_length"},
        {"llama.context_length", V_REMOVE, 0, NULL, "context_length"},
        {"llama.rope.dimension_count", V_U32, 7, NULL, "rope"},
        {"llama.rope.dimension_count", V_U32, 100, NULL, "rope.dimension_count"},
        {"llama.rope.freq_base", V_F32, 0, NULL, "freq_base"},
        {"llama.rope.freq_base", V_F32, -1e4, NULL, "freq_base"},
        {"llama.rope.freq_base", V_STR, 0, "10000", "freq_base"},
        {"llama.rope.scaling.type", V_STR, 0, "sideways", "rope scaling type 'sideways'"},
        {"llama.rope.scaling.type", V_U32, 1, NULL, "rope.scaling.type"},
        {"llama.rope.scaling.factor", V_F32, -2, NULL, "rope.scaling.factor"},
        {"llama.attention.layer_norm_rms_epsilon", V_F32, -1, NULL, "epsilon"},
        {"llama.attention.layer_norm_rms_epsilon", V_F32, INFINITY, NULL, "epsilon"},
        {"llama.attention.key_length", V_U32, 16, NULL, "shape"},
        {"llama.attention.value_length", V_U32, 0, NULL, "value_length"},
        {"general.architecture", V_STR, 0, "gpt2", "unsupported architecture 'gpt2'"},
        {"general.architecture", V_U32, 1, NULL, "general.architecture"},
        {"general.architecture", V_REMOVE, 0, NULL, "general.architecture"},
    };
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(cases); i++) {
        rewrite r;
        rewrite_begin(&r, NULL);
        set_value(r.g, &cases[i]);
        char what[128];
        snprintf(what, sizeof what, "case %zu (%s)", i, cases[i].key);
        expect_rewrite_failure(&r, cases[i].want, what);
    }
}

/* gguf's writer refuses a bad general.alignment, so it is written under a key of the same
 * length and renamed in the file afterwards. */
static void rename_key_in_variant(const char *from, const char *to) {
    size_t len = 0;
    cairn_err err;
    char *data = cairn_read_file(VARIANT_PATH, &len, &err);
    assert_non_null(data);
    size_t n = strlen(from);
    assert_int_equal(n, strlen(to));
    bool found = false;
    for (size_t i = 0; i + n <= len && !found; i++) {
        if (memcmp(data + i, from, n) == 0) {
            memcpy(data + i, to, n);
            found = true;
        }
    }
    assert_true(found);
    write_variant((const uint8_t *)data, len);
    free(data);
}

static void test_bad_alignment(void **state) {
    (void)state;
    rewrite r;
    rewrite_begin(&r, NULL);
    gguf_set_val_str(r.g, "general.alignmenX", "32");
    rewrite_end(&r);
    rename_key_in_variant("general.alignmenX", "general.alignment");
    expect_failure_written("general.alignment", "alignment as a string");
    const uint32_t bad[] = {0, 3, 48, 0x80000001u};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(bad); i++) {
        rewrite_begin(&r, NULL);
        gguf_set_val_u32(r.g, "general.alignmenX", bad[i]);
        rewrite_end(&r);
        rename_key_in_variant("general.alignmenX", "general.alignment");
        expect_failure_written("power of 2", "alignment");
    }
    /* a valid, larger alignment moves every tensor and still opens */
    rewrite_begin_aligned(&r, NULL, 256);
    rewrite_end(&r);
    cairn_model_file *m = NULL;
    cairn_err err;
    if (cairn_model_open(VARIANT_PATH, &m, &err) != 0) {
        fail_msg("%s", err.msg);
    }
    for (int64_t i = 0; i < m->n_tensors; i++) {
        assert_int_equal(m->tensors[i].offset % 256, 0);
    }
    cairn_model_close(m);
}

static void test_vocab_mismatch(void **state) {
    (void)state;
    rewrite r;
    rewrite_begin(&r, NULL);
    const char *tokens[3] = {"a", "b", "c"};
    gguf_set_arr_str(r.g, "tokenizer.ggml.tokens", tokens, 3);
    expect_rewrite_failure(&r, "'token_embd.weight' has shape [64, 512], expected [64, 3]",
                           "short vocabulary");
    rewrite_begin(&r, NULL);
    gguf_set_val_u32(r.g, "tokenizer.ggml.tokens", 512);
    expect_rewrite_failure(&r, "tokenizer.ggml.tokens", "tokens not an array");
}

/* The source as another architecture: the llama.* keys renamed, tensors optionally added. */
static void rewrite_as(rewrite *r, const char *arch) {
    rewrite_begin(r, NULL);
    gguf_set_val_str(r->g, "general.architecture", arch);
    for (int64_t i = 0; i < gguf_get_n_kv(r->src_g); i++) {
        const char *key = gguf_get_key(r->src_g, i);
        if (!cairn_str_starts_with(key, "llama.")) {
            continue;
        }
        char renamed[128];
        snprintf(renamed, sizeof renamed, "%s.%s", arch, key + strlen("llama."));
        enum gguf_type t = gguf_get_kv_type(r->src_g, i);
        if (t == GGUF_TYPE_UINT32) {
            gguf_set_val_u32(r->g, renamed, gguf_get_val_u32(r->src_g, i));
        } else if (t == GGUF_TYPE_FLOAT32 && strstr(key, "epsilon") == NULL) {
            gguf_set_val_f32(r->g, renamed, gguf_get_val_f32(r->src_g, i));
        }
        gguf_remove_key(r->g, key);
    }
}

static void add_per_layer(rewrite *r, const char *suffix, int64_t ne0) {
    for (int il = 0; il < 5; il++) {
        char name[64];
        snprintf(name, sizeof name, "blk.%d.%s", il, suffix);
        rewrite_add(r, name, GGML_TYPE_F32, ne0);
    }
}

static cairn_model_file *open_variant_ok(void) {
    cairn_model_file *m = NULL;
    cairn_err err;
    if (cairn_model_open(VARIANT_PATH, &m, &err) != 0) {
        fail_msg("%s", err.msg);
    }
    return m;
}

static void test_qwen_variants(void **state) {
    (void)state;
    rewrite r;
    rewrite_as(&r, "qwen2");
    expect_rewrite_failure(&r, "missing tensor 'blk.0.attn_q.bias'", "qwen2 without biases");

    rewrite_as(&r, "qwen2");
    add_per_layer(&r, "attn_q.bias", 64);
    add_per_layer(&r, "attn_k.bias", 32);
    add_per_layer(&r, "attn_v.bias", 32);
    rewrite_end(&r);
    cairn_model_file *m = open_variant_ok();
    assert_int_equal(m->hp.arch, CAIRN_ARCH_QWEN2);
    assert_string_equal(m->hp.arch_name, "qwen2");
    assert_float_equal(m->hp.norm_eps, 1e-6f, 1e-12); /* the qwen default: no key given */
    assert_int_equal(m->hp.n_layer, 5);
    cairn_model_close(m);

    rewrite_as(&r, "qwen2");
    add_per_layer(&r, "attn_q.bias", 64);
    add_per_layer(&r, "attn_k.bias", 64);
    add_per_layer(&r, "attn_v.bias", 32);
    expect_rewrite_failure(&r, "'blk.0.attn_k.bias' has shape [64], expected [32]",
                           "qwen2 wrong bias");

    rewrite_as(&r, "qwen3");
    expect_rewrite_failure(&r, "missing tensor 'blk.0.attn_q_norm.weight'", "qwen3 no norms");

    rewrite_as(&r, "qwen3");
    add_per_layer(&r, "attn_q_norm.weight", 8);
    add_per_layer(&r, "attn_k_norm.weight", 8);
    rewrite_end(&r);
    m = open_variant_ok();
    assert_int_equal(m->hp.arch, CAIRN_ARCH_QWEN3);
    cairn_model_close(m);
}

/* Expert tensors for every layer of the source (embedding 64, feed-forward 172):
 * [ne0, ne1, n_expert] each, zero-filled. */
static void add_experts(rewrite *r, int n_expert, int n_expert_file) {
    static const struct {
        const char *suffix;
        int64_t ne0, ne1;
    } parts[] = {{"ffn_gate_exps.weight", 64, 172},
                 {"ffn_up_exps.weight", 64, 172},
                 {"ffn_down_exps.weight", 172, 64}};
    for (int il = 0; il < 5; il++) {
        char name[64];
        snprintf(name, sizeof name, "blk.%d.ffn_gate_inp.weight", il);
        struct ggml_tensor *t = ggml_new_tensor_2d(r->extra, GGML_TYPE_F32, 64, n_expert);
        memset(t->data, 0, ggml_nbytes(t));
        ggml_set_name(t, name);
        gguf_add_tensor(r->g, t);
        for (size_t p = 0; p < CAIRN_ARRAY_LEN(parts); p++) {
            snprintf(name, sizeof name, "blk.%d.%s", il, parts[p].suffix);
            t = ggml_new_tensor_3d(r->extra, GGML_TYPE_F32, parts[p].ne0, parts[p].ne1,
                                   n_expert_file);
            memset(t->data, 0, ggml_nbytes(t));
            ggml_set_name(t, name);
            gguf_add_tensor(r->g, t);
        }
    }
}

static void set_expert_counts(rewrite *r, const char *arch, uint32_t n_expert, uint32_t n_used) {
    char key[96];
    snprintf(key, sizeof key, "%s.expert_count", arch);
    gguf_set_val_u32(r->g, key, n_expert);
    snprintf(key, sizeof key, "%s.expert_used_count", arch);
    gguf_set_val_u32(r->g, key, n_used);
}

/* Mixtral-style experts on a llama file, and the ways expert metadata and shapes can
 * disagree: each is refused naming the key or tensor at fault. */
static void test_expert_variants(void **state) {
    (void)state;
    rewrite r;
    rewrite_begin(&r, NULL);
    set_expert_counts(&r, "llama", 4, 2);
    add_experts(&r, 4, 4);
    rewrite_end(&r);
    cairn_model_file *m = open_variant_ok();
    assert_int_equal(m->hp.n_expert, 4);
    assert_int_equal(m->hp.n_expert_used, 2);
    assert_int_equal(m->hp.n_ff_exp, 172); /* Mixtral's experts are feed_forward_length wide */
    assert_int_equal(m->hp.gating, CAIRN_GATING_SOFTMAX);
    cairn_model_close(m);

    rewrite_begin(&r, NULL);
    set_expert_counts(&r, "llama", 4, 2);
    expect_rewrite_failure(&r, "missing tensor 'blk.0.ffn_gate_inp.weight'", "no router");

    rewrite_begin(&r, NULL);
    set_expert_counts(&r, "llama", 4, 2);
    add_experts(&r, 4, 3);
    expect_rewrite_failure(&r,
                           "'blk.0.ffn_gate_exps.weight' has shape [64, 172, 3], expected "
                           "[64, 172, 4]",
                           "3 experts stored, 4 declared");

    rewrite_begin(&r, NULL);
    set_expert_counts(&r, "llama", 4, 5);
    add_experts(&r, 4, 4);
    expect_rewrite_failure(&r, "llama.expert_used_count is 5, expected 1..4", "5 of 4 used");

    rewrite_begin(&r, NULL);
    set_expert_counts(&r, "llama", 4, 2);
    gguf_set_val_u32(r.g, "llama.expert_group_count", 3);
    add_experts(&r, 4, 4);
    expect_rewrite_failure(&r, "4 experts cannot form 3 equal groups", "uneven groups");

    rewrite_as(&r, "qwen3moe");
    expect_rewrite_failure(&r, "missing metadata key qwen3moe.expert_count",
                           "qwen3moe, no experts");

    rewrite_as(&r, "gemma3");
    set_expert_counts(&r, "gemma3", 4, 2);
    expect_rewrite_failure(&r, "gemma3 models with experts are not supported", "gemma3 experts");

    rewrite_as(&r, "deepseek2");
    set_expert_counts(&r, "deepseek2", 4, 2);
    expect_rewrite_failure(&r, "converted without latent attention tensors", "deepseek2, no MLA");

    rewrite_as(&r, "glm4moe");
    set_expert_counts(&r, "glm4moe", 4, 2);
    add_experts(&r, 4, 4);
    expect_rewrite_failure(&r, "missing tensor 'blk.0.post_attention_norm.weight'",
                           "glm4moe without its norm");

    rewrite_begin(&r, NULL);
    gguf_set_val_str(r.g, "general.architecture", "mamba");
    expect_rewrite_failure(&r, "unsupported architecture 'mamba' (cairn runs llama, qwen2",
                           "an architecture cairn does not run");
}

static void test_rope_scaling(void **state) {
    (void)state;
    rewrite r;
    rewrite_begin(&r, NULL);
    gguf_set_val_str(r.g, "llama.rope.scaling.type", "linear");
    gguf_set_val_f32(r.g, "llama.rope.scaling.factor", 4.0f);
    rewrite_end(&r);
    cairn_model_file *m = open_variant_ok();
    assert_int_equal(m->hp.rope_scaling, CAIRN_ROPE_SCALING_LINEAR);
    assert_float_equal(m->hp.rope_freq_scale, 0.25f, 1e-7);
    cairn_model_close(m);

    rewrite_begin(&r, NULL);
    gguf_set_val_str(r.g, "llama.rope.scaling.type", "yarn");
    gguf_set_val_f32(r.g, "llama.rope.scaling.factor", 2.0f);
    gguf_set_val_u32(r.g, "llama.rope.scaling.original_context_length", 1024);
    gguf_set_val_f32(r.g, "llama.rope.freq_base", 500000.0f);
    rewrite_end(&r);
    m = open_variant_ok();
    assert_int_equal(m->hp.rope_scaling, CAIRN_ROPE_SCALING_YARN);
    assert_float_equal(m->hp.rope_freq_scale, 0.5f, 1e-7);
    assert_int_equal(m->hp.rope_orig_ctx, 1024);
    assert_float_equal(m->hp.rope_freq_base, 500000.0f, 1e-3);
    assert_float_equal(m->hp.yarn_beta_fast, 32.0f, 0);
    assert_float_equal(m->hp.yarn_beta_slow, 1.0f, 0);
    cairn_model_close(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_source_opens),        cmocka_unit_test(test_truncated_header),
        cmocka_unit_test(test_truncated_data),      cmocka_unit_test(test_bad_magic),
        cmocka_unit_test(test_bad_version),         cmocka_unit_test(test_absurd_counts),
        cmocka_unit_test(test_absurd_lengths),      cmocka_unit_test(test_bad_kv_types),
        cmocka_unit_test(test_bad_offsets),         cmocka_unit_test(test_bad_tensor_types),
        cmocka_unit_test(test_bad_shapes),          cmocka_unit_test(test_random_flips),
        cmocka_unit_test(test_missing_tensors),     cmocka_unit_test(test_tied_embeddings),
        cmocka_unit_test(test_extra_tensor_shapes), cmocka_unit_test(test_bad_metadata),
        cmocka_unit_test(test_bad_alignment),       cmocka_unit_test(test_vocab_mismatch),
        cmocka_unit_test(test_qwen_variants),       cmocka_unit_test(test_rope_scaling),
        cmocka_unit_test(test_expert_variants),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
