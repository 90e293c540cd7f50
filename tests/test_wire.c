/* The cluster wire codec: round trips of every message type, streams cut at every byte,
 * a suite of malformed frames and payloads, and a deterministic mini fuzz run through the
 * same entry function as the libFuzzer target (tests/fuzz), seeded from its corpus.
 *
 * `test_wire --write-corpus DIR` writes the seed corpus (tests/fuzz/corpus/wire) and exits;
 * test_corpus_matches_seeds keeps the committed files equal to what this file generates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/wire.h"
#include "fuzz/wire_fuzz_entry.h"

#define CORPUS_DIR CAIRN_SOURCE_DIR "/tests/fuzz/corpus/wire"
#define MINI_FUZZ_RUNS 20000

/* ---- building frames ---- */

static void must(int rc, const cairn_err *err) {
    if (rc != 0) {
        fail_msg("unexpected failure: %s", err->msg);
    }
}

static void append_json(cairn_wire_type type, const char *text, cairn_buf *out) {
    cairn_err err = {{0}};
    cJSON *obj = cJSON_Parse(text);
    assert_non_null(obj);
    must(cairn_wire_encode_json(type, obj, out, &err), &err);
    cJSON_Delete(obj);
}

static const cairn_wire_hello SAMPLE_HELLO = {.node_id = "node-1.lan",
                                              .cluster = "home_cluster",
                                              .protocol = 1,
                                              .cluster_port = 52415,
                                              .api_port = 8080,
                                              .incarnation = 0xfedcba9876543210ull};

static const cairn_wire_data_header SAMPLE_ACT = {.request_id = 0x0102030405060708ull,
                                                  .sequence = 3,
                                                  .pos = 10,
                                                  .n_tokens = 2,
                                                  .width = 4,
                                                  .flags = CAIRN_WIRE_DATA_ALL_LOGITS};
static const float SAMPLE_FLOATS[8] = {-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 1e-30f};

static const cairn_wire_data_header SAMPLE_TOK = {
    .request_id = 42, .sequence = 0, .pos = 0, .n_tokens = 3, .width = 1, .flags = 0};
static const int32_t SAMPLE_TOKENS[3] = {1, 32000, 151643};

/* One frame of the given type with a typical payload. */
static void append_sample(cairn_wire_type type, cairn_buf *out) {
    cairn_err err = {{0}};
    uint8_t auth[32];
    for (int i = 0; i < 32; i++) {
        auth[i] = (uint8_t)(type == CAIRN_WIRE_AUTH_CHALLENGE ? i : 0xA5 ^ i);
    }
    switch (type) {
    case CAIRN_WIRE_HELLO:
    case CAIRN_WIRE_HELLO_ACK:
        must(cairn_wire_encode_hello(type, &SAMPLE_HELLO, out, &err), &err);
        break;
    case CAIRN_WIRE_HEARTBEAT: append_json(type, "{\"term\":2,\"commit\":7}", out); break;
    case CAIRN_WIRE_AUTH_CHALLENGE:
    case CAIRN_WIRE_AUTH_RESPONSE:
        must(cairn_wire_encode(type, auth, sizeof(auth), out, &err), &err);
        break;
    case CAIRN_WIRE_EVENT:
        append_json(type,
                    "{\"index\":1,\"kind\":\"node_joined\",\"node\":{\"id\":\"n1\","
                    "\"ram\":17179869184,\"name\":\"caf\\u00e9 [x], {y}\"}}",
                    out);
        break;
    case CAIRN_WIRE_EVENT_ACK: append_json(type, "{\"index\":1}", out); break;
    case CAIRN_WIRE_EVENT_REQUEST: append_json(type, "{\"from\":1}", out); break;
    case CAIRN_WIRE_SNAPSHOT:
        append_json(type,
                    "{\"index\":5,\"nodes\":[{\"id\":\"a\"},{\"id\":\"b\",\"layers\":[0,12]}],"
                    "\"models\":{\"m\":{\"shards\":[[0,6],[6,12]]}},\"master\":null,"
                    "\"ok\":true}",
                    out);
        break;
    case CAIRN_WIRE_DATA_ACTIVATIONS:
        must(cairn_wire_encode_activations(&SAMPLE_ACT, SAMPLE_FLOATS, out, &err), &err);
        break;
    case CAIRN_WIRE_DATA_TOKENS:
        must(cairn_wire_encode_tokens(&SAMPLE_TOK, SAMPLE_TOKENS, out, &err), &err);
        break;
    case CAIRN_WIRE_GOODBYE: append_json(type, "{\"reason\":\"shutdown\"}", out); break;
    case CAIRN_WIRE_ERROR: append_json(type, "{\"message\":\"version mismatch\"}", out); break;
    case CAIRN_WIRE_PROPOSE:
        append_json(type, "{\"type\":\"node_left\",\"node\":\"b\"}", out);
        break;
    case CAIRN_WIRE_CONTROL: append_json(type, "{\"op\":\"listening\",\"port\":41234}", out); break;
    }
}

static void append_every_type(cairn_buf *out) {
    for (int t = CAIRN_WIRE_TYPE_FIRST; t <= CAIRN_WIRE_TYPE_LAST; t++) {
        append_sample((cairn_wire_type)t, out);
    }
}

#include "wire_header.h"

static void append_raw(cairn_wire_type type, const char *payload, cairn_buf *out) {
    append_header(out, CAIRN_WIRE_MAGIC, CAIRN_WIRE_VERSION, (uint8_t)type, 0,
                  (uint32_t)strlen(payload));
    assert_int_equal(cairn_buf_puts(out, payload), 0);
}

/* ---- decoding helpers ---- */

typedef struct decoded {
    cairn_wire_type type;
    uint32_t len;
    uint8_t *payload; /* a copy: views die at the next feed */
} decoded;

typedef struct decoded_list {
    decoded items[2048];
    int n;
} decoded_list;

static void take_frames(cairn_wire_decoder *d, decoded_list *list) {
    cairn_err err = {{0}};
    cairn_wire_frame f;
    int r;
    while ((r = cairn_wire_decoder_next(d, &f, &err)) == 1) {
        assert_true(list->n < (int)CAIRN_ARRAY_LEN(list->items));
        decoded *x = &list->items[list->n++];
        x->type = f.type;
        x->len = f.len;
        x->payload = malloc(f.len + 1);
        assert_non_null(x->payload);
        memcpy(x->payload, f.payload, f.len);
    }
    if (r != 0) {
        fail_msg("decoder error: %s", err.msg);
    }
}

static void list_free(decoded_list *list) {
    for (int i = 0; i < list->n; i++) {
        free(list->items[i].payload);
    }
    list->n = 0;
}

static void assert_same_frames(const decoded_list *a, const decoded_list *b) {
    assert_int_equal(a->n, b->n);
    for (int i = 0; i < a->n; i++) {
        assert_int_equal(a->items[i].type, b->items[i].type);
        assert_int_equal(a->items[i].len, b->items[i].len);
        assert_memory_equal(a->items[i].payload, b->items[i].payload, a->items[i].len);
    }
}

static cairn_wire_decoder *new_decoder(uint32_t limit) {
    cairn_err err = {{0}};
    cairn_wire_decoder *d = cairn_wire_decoder_new(limit, &err);
    if (!d) {
        fail_msg("decoder_new: %s", err.msg);
    }
    return d;
}

/* Decodes a buffer holding exactly one frame. The decoder is returned since f points in. */
static cairn_wire_decoder *decode_one(const cairn_buf *b, cairn_wire_frame *f) {
    cairn_err err = {{0}};
    cairn_wire_decoder *d = new_decoder(0);
    must(cairn_wire_decoder_feed(d, b->data, b->len, &err), &err);
    assert_int_equal(cairn_wire_decoder_next(d, f, &err), 1);
    assert_int_equal(cairn_wire_decoder_next(d, f + 1, &err), 0);
    assert_int_equal(cairn_wire_decoder_buffered(d), 0);
    return d;
}

/* Feeds the bytes in one go and expects a protocol error whose message contains want. */
static void expect_stream_error(uint32_t limit, const cairn_buf *b, const char *want) {
    cairn_err err = {{0}};
    cairn_wire_decoder *d = new_decoder(limit);
    assert_int_equal(cairn_wire_decoder_feed(d, b->data, b->len, &err), -1);
    if (!strstr(err.msg, want)) {
        fail_msg("error \"%s\" does not mention \"%s\"", err.msg, want);
    }
    cairn_wire_frame f;
    cairn_err again = {{0}};
    int r;
    while ((r = cairn_wire_decoder_next(d, &f, &again)) == 1) {
        /* frames completed before the bad bytes */
    }
    assert_int_equal(r, -1);
    assert_string_equal(again.msg, err.msg);
    assert_true(cairn_wire_decoder_failed(d));
    cairn_wire_decoder_free(d);
}

/* Feeds the bytes and expects the decoder to wait for more without an error. */
static void expect_waiting(uint32_t limit, const cairn_buf *b) {
    cairn_err err = {{0}};
    cairn_wire_decoder *d = new_decoder(limit);
    must(cairn_wire_decoder_feed(d, b->data, b->len, &err), &err);
    cairn_wire_frame f;
    assert_int_equal(cairn_wire_decoder_next(d, &f, &err), 0);
    assert_int_equal(cairn_wire_decoder_buffered(d), b->len);
    assert_false(cairn_wire_decoder_failed(d));
    cairn_wire_decoder_free(d);
}

/* ---- seeds of the fuzz corpus ---- */

#define N_SEEDS 12

static void put_config(cairn_buf *out, uint8_t limit_selector, uint8_t chunk_seed) {
    assert_int_equal(cairn_buf_putc(out, (char)limit_selector), 0);
    assert_int_equal(cairn_buf_putc(out, (char)chunk_seed), 0);
}

static void make_seed(int i, cairn_buf *out) {
    static const uint8_t config[N_SEEDS][2] = {{0, 0}, {0, 1}, {0, 3}, {0, 11}, {0, 5}, {2, 0},
                                               {2, 2}, {3, 7}, {0, 1}, {1, 0},  {0, 0}, {0, 4}};
    put_config(out, config[i][0], config[i][1]);
    switch (i) {
    case 0:
        append_sample(CAIRN_WIRE_HELLO, out);
        append_sample(CAIRN_WIRE_HELLO_ACK, out);
        break;
    case 1:
        append_raw(CAIRN_WIRE_HEARTBEAT, "", out);
        append_sample(CAIRN_WIRE_HEARTBEAT, out);
        break;
    case 2:
        append_sample(CAIRN_WIRE_AUTH_CHALLENGE, out);
        append_sample(CAIRN_WIRE_AUTH_RESPONSE, out);
        break;
    case 3:
        append_sample(CAIRN_WIRE_EVENT, out);
        append_sample(CAIRN_WIRE_EVENT_ACK, out);
        append_sample(CAIRN_WIRE_EVENT_REQUEST, out);
        break;
    case 4: append_sample(CAIRN_WIRE_SNAPSHOT, out); break;
    case 5: append_sample(CAIRN_WIRE_DATA_ACTIVATIONS, out); break;
    case 6: append_sample(CAIRN_WIRE_DATA_TOKENS, out); break;
    case 7:
        append_sample(CAIRN_WIRE_GOODBYE, out);
        append_sample(CAIRN_WIRE_ERROR, out);
        append_sample(CAIRN_WIRE_PROPOSE, out);
        append_sample(CAIRN_WIRE_CONTROL, out);
        break;
    case 8: append_every_type(out); break;
    case 9: /* over a 64-byte link limit */ append_sample(CAIRN_WIRE_SNAPSHOT, out); break;
    case 10: assert_int_equal(cairn_buf_puts(out, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0); break;
    case 11:
        append_sample(CAIRN_WIRE_HEARTBEAT, out);
        append_header(out, CAIRN_WIRE_MAGIC, 2, CAIRN_WIRE_HEARTBEAT, 0, 0);
        break;
    }
}

static void seed_path(int i, char *path, size_t size, const char *dir) {
    snprintf(path, size, "%s/seed-%02d.bin", dir, i);
}

static int write_corpus(const char *dir) {
    for (int i = 0; i < N_SEEDS; i++) {
        cairn_buf seed = {0};
        make_seed(i, &seed);
        char path[1024];
        seed_path(i, path, sizeof(path), dir);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(seed.data, 1, seed.len, f) != seed.len || fclose(f) != 0) {
            fprintf(stderr, "cannot write %s\n", path);
            cairn_buf_free(&seed);
            return 1;
        }
        cairn_buf_free(&seed);
    }
    return 0;
}

/* ---- tests: types and round trips ---- */

static void test_type_table(void **state) {
    (void)state;
    assert_false(cairn_wire_type_known(0));
    assert_false(cairn_wire_type_known(CAIRN_WIRE_TYPE_LAST + 1));
    assert_string_equal(cairn_wire_type_name(255), "unknown");
    assert_string_equal(cairn_wire_type_name(CAIRN_WIRE_DATA_TOKENS), "DATA_TOKENS");
    for (int t = CAIRN_WIRE_TYPE_FIRST; t <= CAIRN_WIRE_TYPE_LAST; t++) {
        assert_true(cairn_wire_type_known((unsigned)t));
        assert_string_not_equal(cairn_wire_type_name((unsigned)t), "unknown");
        uint32_t max = cairn_wire_type_max_payload((cairn_wire_type)t);
        assert_true(max > 0 && max <= CAIRN_WIRE_MAX_PAYLOAD);
    }
    assert_true(cairn_wire_type_needs_payload(CAIRN_WIRE_HELLO));
    assert_false(cairn_wire_type_needs_payload(CAIRN_WIRE_HEARTBEAT));
    assert_int_equal(cairn_wire_type_payload(CAIRN_WIRE_AUTH_RESPONSE), CAIRN_WIRE_PAYLOAD_BINARY);
    assert_int_equal(cairn_wire_type_payload(CAIRN_WIRE_DATA_ACTIVATIONS), CAIRN_WIRE_PAYLOAD_DATA);
}

static void test_header_layout(void **state) {
    (void)state;
    cairn_err err = {{0}};
    cairn_buf b = {0};
    must(cairn_wire_encode(CAIRN_WIRE_AUTH_CHALLENGE, "abc", 3, &b, &err), &err);
    static const uint8_t want[] = {'C', 'R', 'N', 'W', 1, 4, 0, 0, 3, 0, 0, 0, 'a', 'b', 'c'};
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));
    cairn_buf_free(&b);
}

static void check_payload(const cairn_wire_frame *f) {
    cairn_err err = {{0}};
    switch (cairn_wire_type_payload(f->type)) {
    case CAIRN_WIRE_PAYLOAD_JSON: {
        cJSON *obj = NULL;
        must(cairn_wire_parse_json(f, &obj, &err), &err);
        assert_true(cJSON_IsObject(obj));
        if (f->type == CAIRN_WIRE_HELLO || f->type == CAIRN_WIRE_HELLO_ACK) {
            cairn_wire_hello h;
            must(cairn_wire_parse_hello(f, &h, &err), &err);
            assert_memory_equal(&h, &SAMPLE_HELLO, sizeof(h));
        }
        cJSON_Delete(obj);
        break;
    }
    case CAIRN_WIRE_PAYLOAD_DATA: {
        cairn_wire_data data;
        must(cairn_wire_parse_data(f, &data, &err), &err);
        if (f->type == CAIRN_WIRE_DATA_ACTIVATIONS) {
            float got[8];
            assert_memory_equal(&data.h, &SAMPLE_ACT, sizeof(data.h));
            assert_int_equal(data.n_values, 8);
            cairn_wire_data_floats(&data, got);
            assert_memory_equal(got, SAMPLE_FLOATS, sizeof(got));
        } else {
            int32_t got[3];
            assert_memory_equal(&data.h, &SAMPLE_TOK, sizeof(data.h));
            assert_int_equal(data.n_values, 3);
            cairn_wire_data_tokens(&data, got);
            assert_memory_equal(got, SAMPLE_TOKENS, sizeof(got));
        }
        break;
    }
    case CAIRN_WIRE_PAYLOAD_BINARY:
        assert_int_equal(f->len, 32);
        assert_int_equal(f->payload[1], f->type == CAIRN_WIRE_AUTH_CHALLENGE ? 1 : (0xA5 ^ 1));
        break;
    }
}

static void test_roundtrip_every_type(void **state) {
    (void)state;
    for (int t = CAIRN_WIRE_TYPE_FIRST; t <= CAIRN_WIRE_TYPE_LAST; t++) {
        cairn_buf b = {0};
        append_sample((cairn_wire_type)t, &b);
        cairn_wire_frame f[2];
        cairn_wire_decoder *d = decode_one(&b, f);
        assert_int_equal(f[0].type, t);
        assert_int_equal(f[0].flags, 0);
        assert_int_equal(f[0].len, b.len - CAIRN_WIRE_HEADER_SIZE);
        assert_memory_equal(f[0].payload, b.data + CAIRN_WIRE_HEADER_SIZE, f[0].len);
        check_payload(&f[0]);
        cairn_wire_decoder_free(d);
        cairn_buf_free(&b);
    }
}

static void test_empty_optional_payload(void **state) {
    (void)state;
    cairn_err err = {{0}};
    cairn_buf b = {0};
    must(cairn_wire_encode(CAIRN_WIRE_GOODBYE, NULL, 0, &b, &err), &err);
    cairn_wire_frame f[2];
    cairn_wire_decoder *d = decode_one(&b, f);
    assert_int_equal(f[0].len, 0);
    assert_non_null(f[0].payload);
    cJSON *obj = NULL;
    must(cairn_wire_parse_json(&f[0], &obj, &err), &err);
    assert_true(cJSON_IsObject(obj));
    assert_null(obj->child);
    cJSON_Delete(obj);
    cairn_wire_decoder_free(d);
    cairn_buf_free(&b);
}

/* ---- tests: streaming ---- */

static void decode_whole(const cairn_buf *b, decoded_list *out) {
    cairn_err err = {{0}};
    cairn_wire_decoder *d = new_decoder(0);
    must(cairn_wire_decoder_feed(d, b->data, b->len, &err), &err);
    take_frames(d, out);
    assert_int_equal(cairn_wire_decoder_buffered(d), 0);
    cairn_wire_decoder_free(d);
}

static void test_split_at_every_byte(void **state) {
    (void)state;
    cairn_err err = {{0}};
    cairn_buf b = {0};
    append_every_type(&b);
    static decoded_list want, got;
    decode_whole(&b, &want);
    assert_int_equal(want.n, CAIRN_WIRE_TYPE_LAST);
    for (size_t cut = 0; cut <= b.len; cut++) {
        cairn_wire_decoder *d = new_decoder(0);
        must(cairn_wire_decoder_feed(d, b.data, cut, &err), &err);
        take_frames(d, &got);
        must(cairn_wire_decoder_feed(d, b.data + cut, b.len - cut, &err), &err);
        take_frames(d, &got);
        assert_same_frames(&want, &got);
        assert_int_equal(cairn_wire_decoder_buffered(d), 0);
        list_free(&got);
        cairn_wire_decoder_free(d);
    }
    /* Byte by byte: a frame appears exactly when its last byte arrives. */
    cairn_wire_decoder *d = new_decoder(0);
    size_t frame_end = 0;
    int next_frame = 0;
    for (size_t i = 0; i < b.len; i++) {
        must(cairn_wire_decoder_feed(d, b.data + i, 1, &err), &err);
        if (i + 1 == frame_end + CAIRN_WIRE_HEADER_SIZE + want.items[next_frame].len) {
            frame_end = i + 1;
            next_frame++;
        }
        take_frames(d, &got);
        assert_int_equal(got.n, next_frame);
        assert_int_equal(cairn_wire_decoder_buffered(d), i + 1 - frame_end);
    }
    assert_same_frames(&want, &got);
    list_free(&got);
    list_free(&want);
    cairn_wire_decoder_free(d);
    cairn_buf_free(&b);
}

static void test_many_frames_per_feed(void **state) {
    (void)state;
    cairn_err err = {{0}};
    cairn_buf b = {0};
    for (int i = 0; i < 1000; i++) {
        char text[64];
        snprintf(text, sizeof(text), "{\"term\":%d}", i);
        append_json(CAIRN_WIRE_HEARTBEAT, text, &b);
        if (i % 100 == 0) {
            append_sample(CAIRN_WIRE_DATA_ACTIVATIONS, &b);
        }
    }
    cairn_wire_decoder *d = new_decoder(0);
    must(cairn_wire_decoder_feed(d, b.data, b.len, &err), &err);
    cairn_wire_frame f;
    int heartbeats = 0, data = 0;
    while (cairn_wire_decoder_next(d, &f, &err) == 1) {
        if (f.type == CAIRN_WIRE_HEARTBEAT) {
            char want[64];
            int n = snprintf(want, sizeof(want), "{\"term\":%d}", heartbeats++);
            assert_int_equal(f.len, n);
            assert_memory_equal(f.payload, want, (size_t)n);
        } else {
            check_payload(&f);
            data++;
        }
    }
    assert_int_equal(heartbeats, 1000);
    assert_int_equal(data, 10);
    assert_int_equal(cairn_wire_decoder_buffered(d), 0);
    cairn_wire_decoder_free(d);
    cairn_buf_free(&b);
}

/* A large frame arriving in socket-sized reads, then small frames: the buffer compacts and
 * gives its memory back, and views stay right across it. */
static void test_large_frame_in_chunks(void **state) {
    (void)state;
    cairn_err err = {{0}};
    cairn_wire_data_header h = {
        .request_id = 7, .sequence = 1, .pos = 0, .n_tokens = 128, .width = 4096, .flags = 0};
    size_t n = (size_t)h.n_tokens * h.width;
    float *values = malloc(n * sizeof(float));
    assert_non_null(values);
    for (size_t i = 0; i < n; i++) {
        values[i] = (float)i * 0.25f;
    }
    cairn_buf b = {0};
    must(cairn_wire_encode_activations(&h, values, &b, &err), &err);
    for (int i = 0; i < 5; i++) {
        append_sample(CAIRN_WIRE_HEARTBEAT, &b);
    }
    cairn_wire_decoder *d = new_decoder(0);
    float *got = malloc(n * sizeof(float));
    assert_non_null(got);
    int frames = 0;
    for (size_t at = 0; at < b.len; at += 65536) {
        size_t len = b.len - at < 65536 ? b.len - at : 65536;
        must(cairn_wire_decoder_feed(d, b.data + at, len, &err), &err);
        cairn_wire_frame f;
        while (cairn_wire_decoder_next(d, &f, &err) == 1) {
            if (frames++ == 0) {
                cairn_wire_data data;
                must(cairn_wire_parse_data(&f, &data, &err), &err);
                assert_int_equal(data.n_values, n);
                cairn_wire_data_floats(&data, got);
                assert_memory_equal(got, values, n * sizeof(float));
            } else {
                check_payload(&f);
            }
        }
    }
    assert_int_equal(frames, 6);
    free(got);
    free(values);
    cairn_wire_decoder_free(d);
    cairn_buf_free(&b);
}

/* ---- tests: malformed frames ---- */

static void test_bad_magic(void **state) {
    (void)state;
    cairn_buf b = {0};
    assert_int_equal(cairn_buf_puts(&b, "GET / HTTP/1.1\r\n"), 0);
    expect_stream_error(0, &b, "bad magic at stream byte 0: got 47 45 54 20");
    /* The first wrong byte is enough: no waiting for a whole header. */
    b.len = 1;
    expect_stream_error(0, &b, "bad magic");
    cairn_buf_free(&b);
    /* After a good frame, the offset names where the bad one starts. */
    append_sample(CAIRN_WIRE_HEARTBEAT, &b);
    size_t good = b.len;
    append_header(&b, "CRNX", 1, CAIRN_WIRE_HEARTBEAT, 0, 0);
    char want[64];
    snprintf(want, sizeof(want), "bad magic at stream byte %zu", good);
    expect_stream_error(0, &b, want);
    cairn_buf_free(&b);
}

static void test_wrong_version(void **state) {
    (void)state;
    static const uint8_t versions[] = {0, 2, 255};
    for (size_t i = 0; i < sizeof(versions); i++) {
        cairn_buf b = {0};
        append_header(&b, CAIRN_WIRE_MAGIC, versions[i], CAIRN_WIRE_HEARTBEAT, 0, 0);
        char want[64];
        snprintf(want, sizeof(want), "protocol version %u, this node speaks 1", versions[i]);
        expect_stream_error(0, &b, want);
        b.len = 5; /* refused as soon as the version byte is in */
        expect_stream_error(0, &b, want);
        cairn_buf_free(&b);
    }
}

static void test_unknown_type(void **state) {
    (void)state;
    static const uint8_t types[] = {0, CAIRN_WIRE_TYPE_LAST + 1, 255};
    for (size_t i = 0; i < sizeof(types); i++) {
        cairn_buf b = {0};
        append_header(&b, CAIRN_WIRE_MAGIC, CAIRN_WIRE_VERSION, types[i], 0, 0);
        char want[64];
        snprintf(want, sizeof(want), "unknown message type %u", types[i]);
        expect_stream_error(0, &b, want);
        cairn_buf_free(&b);
    }
}

static void test_reserved_flags(void **state) {
    (void)state;
    static const uint16_t flags[] = {0x0001, 0x0100, 0x8000, 0xFFFF};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(flags); i++) {
        cairn_buf b = {0};
        append_header(&b, CAIRN_WIRE_MAGIC, CAIRN_WIRE_VERSION, CAIRN_WIRE_HEARTBEAT, flags[i], 0);
        char want[64];
        snprintf(want, sizeof(want), "HEARTBEAT frame at stream byte 0 sets reserved flags 0x%04X",
                 flags[i]);
        expect_stream_error(0, &b, want);
        cairn_buf_free(&b);
    }
}

static void expect_len(uint32_t link_limit, cairn_wire_type type, uint32_t len, bool ok,
                       const char *want) {
    cairn_buf b = {0};
    append_header(&b, CAIRN_WIRE_MAGIC, CAIRN_WIRE_VERSION, (uint8_t)type, 0, len);
    if (ok) {
        expect_waiting(link_limit, &b); /* header accepted, payload awaited */
    } else {
        expect_stream_error(link_limit, &b, want);
    }
    cairn_buf_free(&b);
}

static void test_oversized_length(void **state) {
    (void)state;
    const cairn_wire_type act = CAIRN_WIRE_DATA_ACTIVATIONS;
    /* A link's own limit. */
    expect_len(4096, act, 4096, true, NULL);
    expect_len(4096, act, 4097, false,
               "DATA_ACTIVATIONS payload of 4097 bytes is over this link's limit of 4096 bytes "
               "(frame at stream byte 0)");
    expect_len(4096, act, 0xFFFFFFFFu, false, "4294967295 bytes is over this link's limit");
    /* The protocol's hard limit. */
    expect_len(0, act, CAIRN_WIRE_MAX_PAYLOAD, true, NULL);
    expect_len(0, act, CAIRN_WIRE_MAX_PAYLOAD + 1, false, "over its type's limit of 67108864");
    expect_len(0, act, 0xFFFFFFFFu, false, "over its type's limit");
    /* A type's limit below the link's. */
    expect_len(0, CAIRN_WIRE_HEARTBEAT, CAIRN_WIRE_MAX_SMALL, true, NULL);
    expect_len(0, CAIRN_WIRE_HEARTBEAT, CAIRN_WIRE_MAX_SMALL + 1, false,
               "HEARTBEAT payload of 65537 bytes is over its type's limit of 65536");
    expect_len(0, CAIRN_WIRE_AUTH_CHALLENGE, CAIRN_WIRE_MAX_AUTH + 1, false,
               "over its type's limit of 1024");
    expect_len(0, CAIRN_WIRE_SNAPSHOT, CAIRN_WIRE_MAX_SNAPSHOT + 1, false, "SNAPSHOT payload");
    expect_len(100, CAIRN_WIRE_EVENT, 101, false, "over this link's limit of 100");

    cairn_err err = {{0}};
    assert_null(cairn_wire_decoder_new(CAIRN_WIRE_MAX_PAYLOAD + 1, &err));
    assert_non_null(strstr(err.msg, "over the protocol's"));
}

/* A link's first frame is its handshake: a large one is refused at its header, before its
 * payload is buffered, while the frames after it keep the link's limit. */
static void test_first_frame_limit(void **state) {
    (void)state;
    cairn_err err = {{0}};
    cairn_buf big_data = {0}, big_hello = {0};
    append_header(&big_data, CAIRN_WIRE_MAGIC, CAIRN_WIRE_VERSION, CAIRN_WIRE_DATA_ACTIVATIONS, 0,
                  CAIRN_WIRE_MAX_PAYLOAD);
    append_header(&big_hello, CAIRN_WIRE_MAGIC, CAIRN_WIRE_VERSION, CAIRN_WIRE_HELLO, 0,
                  CAIRN_WIRE_MAX_HANDSHAKE + 1);
    const cairn_buf *refused[] = {&big_data, &big_hello};
    for (size_t i = 0; i < 2; i++) {
        cairn_wire_decoder *d = new_decoder(0);
        cairn_wire_decoder_limit_first(d, CAIRN_WIRE_MAX_HANDSHAKE);
        assert_int_equal(cairn_wire_decoder_feed(d, refused[i]->data, refused[i]->len, &err), -1);
        assert_non_null(strstr(err.msg, "over this link's limit of 4096 bytes"));
        cairn_wire_decoder_free(d);
    }

    /* HELLO and a large frame after it in one feed. */
    cairn_buf b = {0};
    append_sample(CAIRN_WIRE_HELLO, &b);
    size_t n = 64 * 1024;
    float *values = calloc(n, sizeof(float));
    assert_non_null(values);
    cairn_wire_data_header h = {.request_id = 1, .n_tokens = 16, .width = (uint32_t)(n / 16)};
    must(cairn_wire_encode_activations(&h, values, &b, &err), &err);
    cairn_wire_decoder *d = new_decoder(0);
    cairn_wire_decoder_limit_first(d, CAIRN_WIRE_MAX_HANDSHAKE);
    must(cairn_wire_decoder_feed(d, b.data, b.len, &err), &err);
    cairn_wire_frame f;
    assert_int_equal(cairn_wire_decoder_next(d, &f, &err), 1);
    assert_int_equal(f.type, CAIRN_WIRE_HELLO);
    assert_int_equal(cairn_wire_decoder_next(d, &f, &err), 1);
    assert_int_equal(f.type, CAIRN_WIRE_DATA_ACTIVATIONS);
    cairn_wire_decoder_free(d);
    free(values);
    cairn_buf_free(&b);
    cairn_buf_free(&big_data);
    cairn_buf_free(&big_hello);
}

/* The largest legitimate handshake frames fit the first frame's limit: a HELLO with the
 * longest id and a cluster name that escapes to twice its length, and an ERROR whose
 * message is a whole cairn_err of characters JSON escapes to six bytes. */
static void test_handshake_frames_fit(void **state) {
    (void)state;
    cairn_err err = {{0}};
    cairn_wire_hello hello = SAMPLE_HELLO;
    memset(hello.node_id, 'n', CAIRN_WIRE_NODE_ID_MAX);
    hello.node_id[CAIRN_WIRE_NODE_ID_MAX] = '\0';
    memset(hello.cluster, '"', CAIRN_WIRE_CLUSTER_MAX);
    hello.cluster[CAIRN_WIRE_CLUSTER_MAX] = '\0';
    hello.cluster_port = hello.api_port = 65535;
    hello.protocol = 255;
    cairn_buf b = {0};
    must(cairn_wire_encode_hello(CAIRN_WIRE_HELLO, &hello, &b, &err), &err);
    assert_true(b.len - CAIRN_WIRE_HEADER_SIZE <= CAIRN_WIRE_MAX_HANDSHAKE);

    char message[sizeof(err.msg)];
    memset(message, '\x01', sizeof(message) - 1);
    message[sizeof(message) - 1] = '\0';
    cJSON *o = cJSON_CreateObject();
    assert_non_null(cJSON_AddStringToObject(o, "message", message));
    b.len = 0;
    must(cairn_wire_encode_json(CAIRN_WIRE_ERROR, o, &b, &err), &err);
    assert_true(b.len - CAIRN_WIRE_HEADER_SIZE <= CAIRN_WIRE_MAX_HANDSHAKE);
    cJSON_Delete(o);
    cairn_buf_free(&b);
}

static void test_empty_payload_where_required(void **state) {
    (void)state;
    for (int t = CAIRN_WIRE_TYPE_FIRST; t <= CAIRN_WIRE_TYPE_LAST; t++) {
        cairn_wire_type type = (cairn_wire_type)t;
        char want[64];
        snprintf(want, sizeof(want), "%s frame has an empty payload", cairn_wire_type_name(type));
        cairn_buf b = {0};
        append_header(&b, CAIRN_WIRE_MAGIC, CAIRN_WIRE_VERSION, (uint8_t)type, 0, 0);
        if (cairn_wire_type_needs_payload(type)) {
            expect_stream_error(0, &b, want);
        } else {
            cairn_wire_frame f[2];
            cairn_wire_decoder *d = decode_one(&b, f);
            cairn_wire_decoder_free(d);
        }
        cairn_buf_free(&b);
    }
}

static void test_truncated_waits(void **state) {
    (void)state;
    cairn_buf b = {0};
    append_sample(CAIRN_WIRE_EVENT, &b);
    for (size_t len = 1; len < b.len; len++) {
        cairn_buf part = {0};
        assert_int_equal(cairn_buf_append(&part, b.data, len), 0);
        expect_waiting(0, &part);
        cairn_buf_free(&part);
    }
    cairn_buf_free(&b);
}

static void test_stays_failed(void **state) {
    (void)state;
    cairn_err err = {{0}};
    cairn_buf good = {0}, bad = {0};
    append_sample(CAIRN_WIRE_HEARTBEAT, &good);
    append_header(&bad, CAIRN_WIRE_MAGIC, 9, CAIRN_WIRE_HEARTBEAT, 0, 0);
    cairn_wire_decoder *d = new_decoder(0);
    assert_int_equal(cairn_wire_decoder_feed(d, bad.data, bad.len, &err), -1);
    char first[sizeof(err.msg)];
    memcpy(first, err.msg, sizeof(first));
    for (int i = 0; i < 3; i++) {
        cairn_wire_frame f;
        memset(&err, 0, sizeof(err));
        assert_int_equal(cairn_wire_decoder_feed(d, good.data, good.len, &err), -1);
        assert_string_equal(err.msg, first);
        assert_int_equal(cairn_wire_decoder_next(d, &f, &err), -1);
        assert_string_equal(err.msg, first);
    }
    /* A NULL err is allowed. */
    assert_int_equal(cairn_wire_decoder_feed(d, good.data, good.len, NULL), -1);
    cairn_wire_decoder_free(d);
    cairn_buf_free(&good);
    cairn_buf_free(&bad);
}

static void test_frames_before_error(void **state) {
    (void)state;
    cairn_err err = {{0}};
    cairn_buf b = {0};
    append_sample(CAIRN_WIRE_HELLO, &b);
    append_sample(CAIRN_WIRE_HEARTBEAT, &b);
    assert_int_equal(cairn_buf_puts(&b, "garbage"), 0);
    cairn_wire_decoder *d = new_decoder(0);
    assert_int_equal(cairn_wire_decoder_feed(d, b.data, b.len, &err), -1);
    cairn_wire_frame f;
    assert_int_equal(cairn_wire_decoder_next(d, &f, &err), 1);
    assert_int_equal(f.type, CAIRN_WIRE_HELLO);
    assert_int_equal(cairn_wire_decoder_next(d, &f, &err), 1);
    assert_int_equal(f.type, CAIRN_WIRE_HEARTBEAT);
    assert_int_equal(cairn_wire_decoder_next(d, &f, &err), -1);
    assert_non_null(strstr(err.msg, "bad magic"));
    cairn_wire_decoder_free(d);
    cairn_buf_free(&b);
}

/* ---- tests: JSON payloads ---- */

static void expect_json_error(cairn_wire_type type, const char *payload, const char *want) {
    cairn_buf b = {0};
    cairn_err err = {{0}};
    append_raw(type, payload, &b);
    cairn_wire_frame f[2];
    cairn_wire_decoder *d = decode_one(&b, f);
    cJSON *obj = (cJSON *)&err; /* must be reset to NULL */
    assert_int_equal(cairn_wire_parse_json(&f[0], &obj, &err), -1);
    assert_null(obj);
    if (!strstr(err.msg, want)) {
        fail_msg("error \"%s\" does not mention \"%s\"", err.msg, want);
    }
    cairn_wire_decoder_free(d);
    cairn_buf_free(&b);
}

static char *nested(int depth) {
    cairn_buf b = {0};
    for (int i = 0; i < depth; i++) {
        assert_int_equal(cairn_buf_puts(&b, i ? "[" : "{\"a\":"), 0);
    }
    assert_int_equal(cairn_buf_putc(&b, '1'), 0);
    for (int i = depth - 1; i >= 0; i--) {
        assert_int_equal(cairn_buf_putc(&b, i ? ']' : '}'), 0);
    }
    return cairn_buf_take(&b);
}

static void test_json_malformed(void **state) {
    (void)state;
    const cairn_wire_type ev = CAIRN_WIRE_EVENT;
    expect_json_error(ev, "not json", "EVENT payload is not valid JSON (error at byte 0)");
    expect_json_error(ev, "{\"a\":1", "not valid JSON");
    expect_json_error(ev, "{\"a\":1}x", "not valid JSON (error at byte 7)");
    expect_json_error(ev, "{\"a\":1}{}", "not valid JSON");
    expect_json_error(ev, "[1,2]", "EVENT payload is JSON but not an object");
    expect_json_error(ev, "\"text\"", "not an object");
    expect_json_error(ev, "17", "not an object");
    expect_json_error(ev, "null", "not an object");
    expect_json_error(CAIRN_WIRE_HEARTBEAT, " ", "not valid JSON");

    /* A NUL byte inside the payload, which a C string parser would stop at. */
    cairn_buf b = {0};
    append_header(&b, CAIRN_WIRE_MAGIC, 1, ev, 0, 9);
    assert_int_equal(cairn_buf_append(&b, "{\"a\":1}\0x", 9), 0);
    cairn_wire_frame f[2];
    cairn_wire_decoder *d = decode_one(&b, f);
    cJSON *obj = NULL;
    cairn_err err = {{0}};
    assert_int_equal(cairn_wire_parse_json(&f[0], &obj, &err), -1);
    assert_non_null(strstr(err.msg, "EVENT: JSON payload has a NUL byte at 7"));
    cairn_wire_decoder_free(d);
    cairn_buf_free(&b);
    append_header(&b, CAIRN_WIRE_MAGIC, 1, ev, 0, 10); /* escaped: {"a":"\<NUL>"} */
    assert_int_equal(cairn_buf_append(&b, "{\"a\":\"\\\0\"}", 10), 0);
    d = decode_one(&b, f);
    assert_int_equal(cairn_wire_parse_json(&f[0], &obj, &err), -1);
    assert_non_null(strstr(err.msg, "NUL byte at 7"));
    cairn_wire_decoder_free(d);
    cairn_buf_free(&b);

    char *deep = nested(CAIRN_WIRE_JSON_MAX_DEPTH + 1);
    expect_json_error(ev, deep, "EVENT: JSON payload nests deeper than 32 levels");
    free(deep);

    /* Brackets inside strings do not count as nesting. */
    cairn_buf ok = {0};
    append_raw(ev, "{\"s\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"{{\"}", &ok);
    deep = nested(CAIRN_WIRE_JSON_MAX_DEPTH);
    append_raw(ev, deep, &ok);
    free(deep);
    d = new_decoder(0);
    must(cairn_wire_decoder_feed(d, ok.data, ok.len, &err), &err);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(cairn_wire_decoder_next(d, &f[0], &err), 1);
        must(cairn_wire_parse_json(&f[0], &obj, &err), &err);
        cJSON_Delete(obj);
    }
    cairn_wire_decoder_free(d);
    cairn_buf_free(&ok);

    /* Not a JSON frame at all. */
    append_sample(CAIRN_WIRE_DATA_TOKENS, &b);
    d = decode_one(&b, f);
    assert_int_equal(cairn_wire_parse_json(&f[0], &obj, &err), -1);
    assert_non_null(strstr(err.msg, "DATA_TOKENS frames do not carry JSON"));
    cairn_wire_decoder_free(d);
    cairn_buf_free(&b);
}

static void test_json_too_many_values(void **state) {
    (void)state;
    cairn_buf text = {0};
    assert_int_equal(cairn_buf_puts(&text, "{\"a\":[0"), 0);
    for (uint32_t i = 0; i < CAIRN_WIRE_JSON_MAX_VALUES; i++) {
        assert_int_equal(cairn_buf_puts(&text, ",0"), 0);
    }
    assert_int_equal(cairn_buf_puts(&text, "]}"), 0);
    expect_json_error(CAIRN_WIRE_SNAPSHOT, text.data, "more than 1048576 values");
    cairn_buf_free(&text);
}

static void test_json_encoder_refuses(void **state) {
    (void)state;
    cairn_err err = {{0}};
    cairn_buf b = {0};
    cJSON *arr = cJSON_CreateArray();
    assert_int_equal(cairn_wire_encode_json(CAIRN_WIRE_EVENT, arr, &b, &err), -1);
    assert_non_null(strstr(err.msg, "must be a JSON object"));
    cJSON_Delete(arr);

    cJSON *obj = cJSON_CreateObject();
    assert_int_equal(cairn_wire_encode_json(CAIRN_WIRE_DATA_TOKENS, obj, &b, &err), -1);
    assert_non_null(strstr(err.msg, "DATA_TOKENS frames do not carry JSON"));
    /* A string over the heartbeat limit. */
    char *big = calloc(CAIRN_WIRE_MAX_SMALL + 1, 1);
    assert_non_null(big);
    memset(big, 'x', CAIRN_WIRE_MAX_SMALL);
    cJSON_AddStringToObject(obj, "s", big);
    free(big);
    assert_int_equal(cairn_wire_encode_json(CAIRN_WIRE_HEARTBEAT, obj, &b, &err), -1);
    assert_non_null(strstr(err.msg, "over its type's limit"));
    must(cairn_wire_encode_json(CAIRN_WIRE_EVENT, obj, &b, &err), &err);
    cJSON_Delete(obj);

    char *deep = nested(CAIRN_WIRE_JSON_MAX_DEPTH + 1);
    obj = cJSON_Parse(deep);
    free(deep);
    assert_non_null(obj);
    size_t before = b.len;
    assert_int_equal(cairn_wire_encode_json(CAIRN_WIRE_EVENT, obj, &b, &err), -1);
    assert_non_null(strstr(err.msg, "nests deeper"));
    assert_int_equal(b.len, before); /* nothing half-written */
    cJSON_Delete(obj);
    cairn_buf_free(&b);
}

static void test_encoder_refuses(void **state) {
    (void)state;
    cairn_err err = {{0}};
    cairn_buf b = {0};
    assert_int_equal(cairn_wire_encode((cairn_wire_type)0, "x", 1, &b, &err), -1);
    assert_non_null(strstr(err.msg, "unknown message type 0"));
    assert_int_equal(cairn_wire_encode(CAIRN_WIRE_HELLO, NULL, 0, &b, &err), -1);
    assert_non_null(strstr(err.msg, "HELLO frame has an empty payload"));
    assert_int_equal(
        cairn_wire_encode(CAIRN_WIRE_AUTH_RESPONSE, NULL, CAIRN_WIRE_MAX_AUTH + 1, &b, &err), -1);
    assert_int_equal(b.len, 0);
    cairn_buf_free(&b);
}

/* ---- tests: HELLO ---- */

static void expect_hello_error(const char *payload, const char *want) {
    cairn_buf b = {0};
    cairn_err err = {{0}};
    append_raw(CAIRN_WIRE_HELLO, payload, &b);
    cairn_wire_frame f[2];
    cairn_wire_decoder *d = decode_one(&b, f);
    cairn_wire_hello h;
    assert_int_equal(cairn_wire_parse_hello(&f[0], &h, &err), -1);
    if (!strstr(err.msg, want)) {
        fail_msg("error \"%s\" does not mention \"%s\"", err.msg, want);
    }
    assert_int_equal(h.node_id[0], '\0');
    cairn_wire_decoder_free(d);
    cairn_buf_free(&b);
}

static void test_hello_malformed(void **state) {
    (void)state;
    expect_hello_error("{}", "HELLO: node_id must be a string");
    expect_hello_error("{\"node_id\":\"a\"}", "cluster must be a string");
    expect_hello_error("{\"node_id\":\"a b\",\"cluster\":\"c\",\"protocol\":1,"
                       "\"cluster_port\":1,\"api_port\":0}",
                       "node_id must be 1..63 characters of");
    expect_hello_error("{\"node_id\":\"\",\"cluster\":\"c\"}", "node_id must be 1..63 bytes");
    expect_hello_error("{\"node_id\":\"a\",\"cluster\":\"tab\\there\",\"protocol\":1,"
                       "\"cluster_port\":1,\"api_port\":0}",
                       "cluster must be 1..127 bytes without control characters");
    expect_hello_error("{\"node_id\":\"a\",\"cluster\":\"c\",\"protocol\":\"1\"}",
                       "protocol must be a number");
    expect_hello_error("{\"node_id\":\"a\",\"cluster\":\"c\",\"protocol\":1.5}",
                       "protocol must be an integer 0..255");
    expect_hello_error("{\"node_id\":\"a\",\"cluster\":\"c\",\"protocol\":0,"
                       "\"cluster_port\":1,\"api_port\":0}",
                       "protocol 0 is not 1..255");
    expect_hello_error("{\"node_id\":\"a\",\"cluster\":\"c\",\"protocol\":1,"
                       "\"cluster_port\":65536,\"api_port\":0}",
                       "cluster_port must be an integer 0..65535");
    expect_hello_error("{\"node_id\":\"a\",\"cluster\":\"c\",\"protocol\":1,"
                       "\"cluster_port\":0,\"api_port\":0}",
                       "cluster_port must be 1..65535");
    expect_hello_error("{\"node_id\":\"a\",\"cluster\":\"c\",\"protocol\":1,"
                       "\"cluster_port\":1,\"api_port\":-1}",
                       "api_port must be an integer");
    expect_hello_error("[]", "not an object");
    expect_hello_error("{\"node_id\":\"a\",\"cluster\":\"c\",\"protocol\":1,"
                       "\"cluster_port\":1,\"api_port\":0,\"incarnation\":\"12x4567890abcdef\"}",
                       "incarnation must be 16 hex digits");
    expect_hello_error("{\"node_id\":\"a\",\"cluster\":\"c\",\"protocol\":1,"
                       "\"cluster_port\":1,\"api_port\":0,\"incarnation\":7}",
                       "incarnation must be 16 hex digits");

    /* Unknown keys are accepted, and the encoder refuses what the parser would. */
    cairn_buf b = {0};
    cairn_err err = {{0}};
    append_raw(CAIRN_WIRE_HELLO_ACK,
               "{\"node_id\":\"a\",\"cluster\":\"c\",\"protocol\":3,\"cluster_port\":9,"
               "\"api_port\":0,\"future\":[1]}",
               &b);
    cairn_wire_frame f[2];
    cairn_wire_decoder *d = decode_one(&b, f);
    cairn_wire_hello h;
    must(cairn_wire_parse_hello(&f[0], &h, &err), &err);
    assert_string_equal(h.node_id, "a");
    assert_int_equal(h.protocol, 3);
    cairn_wire_decoder_free(d);
    cairn_buf_free(&b);

    /* Longest names, a colon in the id, anything printable in the cluster name. */
    h = SAMPLE_HELLO;
    memset(h.node_id, 'n', CAIRN_WIRE_NODE_ID_MAX);
    h.node_id[0] = ':';
    h.node_id[CAIRN_WIRE_NODE_ID_MAX] = '\0';
    memset(h.cluster, ' ', CAIRN_WIRE_CLUSTER_MAX);
    memcpy(h.cluster, "Caf\xC3\xA9 \"home\"", 12);
    h.cluster[CAIRN_WIRE_CLUSTER_MAX] = '\0';
    must(cairn_wire_encode_hello(CAIRN_WIRE_HELLO, &h, &b, &err), &err);
    d = decode_one(&b, f);
    cairn_wire_hello back;
    must(cairn_wire_parse_hello(&f[0], &back, &err), &err);
    assert_memory_equal(&back, &h, sizeof(h));
    cairn_wire_decoder_free(d);
    cairn_buf_free(&b);

    h = SAMPLE_HELLO;
    h.cluster[0] = '\0';
    assert_int_equal(cairn_wire_encode_hello(CAIRN_WIRE_HELLO, &h, &b, &err), -1);
    assert_int_equal(cairn_wire_encode_hello(CAIRN_WIRE_EVENT, &SAMPLE_HELLO, &b, &err), -1);
    assert_int_equal(b.len, 0);
}

/* ---- tests: data frames ---- */

typedef struct raw_data {
    uint64_t request_id;
    uint32_t fields[6]; /* sequence, pos, n_tokens, width, flags, reserved */
} raw_data;

static void append_raw_data(cairn_wire_type type, const raw_data *r, size_t n_value_bytes,
                            cairn_buf *out) {
    uint8_t p[CAIRN_WIRE_DATA_HEADER_SIZE];
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(r->request_id >> (8 * i));
    }
    for (int f = 0; f < 6; f++) {
        for (int i = 0; i < 4; i++) {
            p[8 + 4 * f + i] = (uint8_t)(r->fields[f] >> (8 * i));
        }
    }
    append_header(out, CAIRN_WIRE_MAGIC, 1, (uint8_t)type, 0,
                  (uint32_t)(sizeof(p) + n_value_bytes));
    assert_int_equal(cairn_buf_append(out, p, sizeof(p)), 0);
    for (size_t i = 0; i < n_value_bytes; i++) {
        assert_int_equal(cairn_buf_putc(out, (char)(i % 7)), 0);
    }
}

static void expect_data(cairn_wire_type type, const raw_data *r, size_t n_value_bytes,
                        const char *want) {
    cairn_buf b = {0};
    cairn_err err = {{0}};
    append_raw_data(type, r, n_value_bytes, &b);
    cairn_wire_frame f[2];
    cairn_wire_decoder *d = decode_one(&b, f);
    cairn_wire_data data;
    int rc = cairn_wire_parse_data(&f[0], &data, &err);
    if (!want) {
        must(rc, &err);
    } else {
        assert_int_equal(rc, -1);
        if (!strstr(err.msg, want)) {
            fail_msg("error \"%s\" does not mention \"%s\"", err.msg, want);
        }
        assert_null(data.values);
    }
    cairn_wire_decoder_free(d);
    cairn_buf_free(&b);
}

static void test_data_malformed(void **state) {
    (void)state;
    const cairn_wire_type act = CAIRN_WIRE_DATA_ACTIVATIONS, tok = CAIRN_WIRE_DATA_TOKENS;
    raw_data r = {.request_id = 1, .fields = {0, 0, 2, 3, 0, 0}};
    expect_data(act, &r, 24, NULL);
    expect_data(act, &r, 20, "declares 2 x 3 values (24 bytes) but carries 20");
    expect_data(act, &r, 28, "but carries 28");
    expect_data(act, &r, 25, "but carries 25");
    r.fields[2] = 0;
    expect_data(act, &r, 0, "n_tokens 0 is not 1..2147483647");
    r.fields[2] = 0x80000000u;
    expect_data(act, &r, 24, "n_tokens 2147483648 is not");
    r.fields[2] = 0x7FFFFFFF;
    r.fields[3] = 0x7FFFFFFF; /* ~2^64 bytes: must be a size mismatch, not a wrap */
    expect_data(act, &r, 24, "declares 2147483647 x 2147483647 values");
    r.fields[2] = 0x40000000; /* 2^30 * 2^30 * 4 = 2^62 */
    r.fields[3] = 0x40000000;
    expect_data(act, &r, 16, "but carries 16");
    r.fields[2] = 2;
    r.fields[3] = 0;
    expect_data(act, &r, 24, "width 0 is not");
    r.fields[3] = 3;
    r.fields[4] = 2;
    expect_data(act, &r, 24, "sets reserved data flags 0x00000002");
    r.fields[4] = 0;
    r.fields[5] = 1;
    expect_data(act, &r, 24, "reserved header field is 0x00000001, must be 0");
    r.fields[5] = 0;
    expect_data(tok, &r, 24, "DATA_TOKENS width is 3, must be 1");
    r.fields[3] = 1;
    expect_data(tok, &r, 8, NULL);

    /* Shorter than the data header, and negative token ids. */
    cairn_buf b = {0};
    cairn_err err = {{0}};
    append_header(&b, CAIRN_WIRE_MAGIC, 1, act, 0, 31);
    for (int i = 0; i < 31; i++) {
        assert_int_equal(cairn_buf_putc(&b, 0), 0);
    }
    cairn_wire_frame f[2];
    cairn_wire_decoder *d = decode_one(&b, f);
    cairn_wire_data data;
    assert_int_equal(cairn_wire_parse_data(&f[0], &data, &err), -1);
    assert_non_null(strstr(err.msg, "payload of 31 bytes is shorter than its 32-byte header"));
    cairn_wire_decoder_free(d);
    cairn_buf_free(&b);

    r.fields[2] = 1;
    append_raw_data(tok, &r, 0, &b);
    static const uint8_t negative[4] = {0xFF, 0xFF, 0xFF, 0xFF};
    assert_int_equal(cairn_buf_append(&b, negative, 4), 0);
    b.data[8] = 36; /* payload length: header + one token */
    d = decode_one(&b, f);
    assert_int_equal(cairn_wire_parse_data(&f[0], &data, &err), -1);
    assert_non_null(strstr(err.msg, "DATA_TOKENS token 0 is negative"));
    assert_int_equal(
        cairn_wire_parse_data(
            &(cairn_wire_frame){.type = CAIRN_WIRE_EVENT, .payload = f[0].payload}, &data, &err),
        -1);
    assert_non_null(strstr(err.msg, "EVENT is not a data frame"));
    cairn_wire_decoder_free(d);
    cairn_buf_free(&b);
}

static void test_data_encoder_refuses(void **state) {
    (void)state;
    cairn_err err = {{0}};
    cairn_buf b = {0};
    cairn_wire_data_header h = {.n_tokens = 65536, .width = 65536}; /* 16 GiB: not read */
    assert_int_equal(cairn_wire_encode_activations(&h, NULL, &b, &err), -1);
    assert_non_null(strstr(err.msg, "over the 67108864-byte payload limit"));
    h.n_tokens = 0;
    assert_int_equal(cairn_wire_encode_activations(&h, NULL, &b, &err), -1);
    assert_non_null(strstr(err.msg, "n_tokens 0"));
    h = SAMPLE_TOK;
    h.width = 2;
    assert_int_equal(cairn_wire_encode_tokens(&h, SAMPLE_TOKENS, &b, &err), -1);
    assert_non_null(strstr(err.msg, "width is 2, must be 1"));
    h = SAMPLE_TOK;
    h.n_tokens = 1u << 30; /* refused before the three tokens are read past their end */
    assert_int_equal(cairn_wire_encode_tokens(&h, SAMPLE_TOKENS, &b, &err), -1);
    assert_non_null(strstr(err.msg, "over the 67108864-byte payload limit"));
    h = SAMPLE_TOK;
    const int32_t bad[3] = {1, -5, 2};
    assert_int_equal(cairn_wire_encode_tokens(&h, bad, &b, &err), -1);
    assert_non_null(strstr(err.msg, "token 1 is negative (-5)"));
    h = SAMPLE_ACT;
    h.flags = 0x80;
    assert_int_equal(cairn_wire_encode_activations(&h, SAMPLE_FLOATS, &b, &err), -1);
    assert_int_equal(b.len, 0);
    /* Exactly the hard limit fits. */
    h = (cairn_wire_data_header){
        .n_tokens = 1, .width = (CAIRN_WIRE_MAX_PAYLOAD - CAIRN_WIRE_DATA_HEADER_SIZE) / 4};
    float *values = calloc(h.width, sizeof(float));
    assert_non_null(values);
    must(cairn_wire_encode_activations(&h, values, &b, &err), &err);
    assert_int_equal(b.len, CAIRN_WIRE_HEADER_SIZE + CAIRN_WIRE_MAX_PAYLOAD);
    h.width++;
    assert_int_equal(cairn_wire_encode_activations(&h, values, &b, &err), -1);
    free(values);
    cairn_buf_free(&b);
}

/* ---- tests: the fuzz entry ---- */

static void test_corpus_matches_seeds(void **state) {
    (void)state;
    for (int i = 0; i < N_SEEDS; i++) {
        cairn_buf seed = {0};
        make_seed(i, &seed);
        char path[1024];
        seed_path(i, path, sizeof(path), CORPUS_DIR);
        cairn_err err = {{0}};
        size_t len = 0;
        char *file = cairn_read_file(path, &len, &err);
        if (!file) {
            fail_msg("%s (regenerate with: test_wire --write-corpus %s)", err.msg, CORPUS_DIR);
        }
        if (len != seed.len || memcmp(file, seed.data, len) != 0) {
            fail_msg("%s is stale (regenerate with: test_wire --write-corpus %s)", path,
                     CORPUS_DIR);
        }
        free(file);
        cairn_buf_free(&seed);
    }
}

static void run_entry(const uint8_t *data, size_t size) {
    cairn_err why = {{0}};
    if (wire_fuzz_one(data, size, &why) != 0) {
        fail_msg("wire invariant broken: %s", why.msg);
    }
}

static void test_seeds_through_entry(void **state) {
    (void)state;
    for (int i = 0; i < N_SEEDS; i++) {
        cairn_buf seed = {0};
        make_seed(i, &seed);
        run_entry((const uint8_t *)seed.data, seed.len);
        /* Also every feed pattern over the same stream. */
        for (int chunk = 0; chunk < 256; chunk += 5) {
            seed.data[1] = (char)chunk;
            run_entry((const uint8_t *)seed.data, seed.len);
        }
        cairn_buf_free(&seed);
    }
}

typedef struct prng {
    uint64_t s;
} prng;

static uint32_t rnd(prng *r) {
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return (uint32_t)(r->s >> 32);
}

static size_t rnd_below(prng *r, size_t n) {
    return n ? rnd(r) % n : 0;
}

#define MAX_MUTANT 16384

static void mutate(prng *r, uint8_t *buf, size_t *len, const cairn_buf *seeds) {
    static const uint32_t interesting[] = {0,
                                           1,
                                           11,
                                           12,
                                           31,
                                           32,
                                           64,
                                           4096,
                                           65536,
                                           65537,
                                           0x7FFFFFFF,
                                           0x80000000,
                                           0xFFFFFFFF,
                                           CAIRN_WIRE_MAX_PAYLOAD,
                                           CAIRN_WIRE_MAX_PAYLOAD + 1};
    static const char json_bytes[] = "{}[]\":,\\0123456789aeE-+. tfn";
    size_t n = *len;
    switch (rnd(r) % 9) {
    case 0: /* flip a bit */
        if (n) {
            buf[rnd_below(r, n)] ^= (uint8_t)(1u << (rnd(r) % 8));
        }
        break;
    case 1: /* a random byte */
        if (n) {
            buf[rnd_below(r, n)] = (uint8_t)rnd(r);
        }
        break;
    case 2: /* an interesting 32-bit value */
        if (n >= 4) {
            size_t at = rnd_below(r, n - 3);
            uint32_t v = interesting[rnd_below(r, CAIRN_ARRAY_LEN(interesting))];
            for (int i = 0; i < 4; i++) {
                buf[at + (size_t)i] = (uint8_t)(v >> (8 * i));
            }
        }
        break;
    case 3: /* insert JSON-ish bytes */
        if (n < MAX_MUTANT - 8) {
            size_t at = rnd_below(r, n + 1), k = 1 + rnd_below(r, 8);
            memmove(buf + at + k, buf + at, n - at);
            for (size_t i = 0; i < k; i++) {
                buf[at + i] = (uint8_t)json_bytes[rnd_below(r, sizeof(json_bytes) - 1)];
            }
            n += k;
        }
        break;
    case 4: /* delete a range */
        if (n) {
            size_t at = rnd_below(r, n), k = 1 + rnd_below(r, n - at);
            memmove(buf + at, buf + at + k, n - at - k);
            n -= k;
        }
        break;
    case 5: /* duplicate a range */
        if (n) {
            size_t at = rnd_below(r, n), k = 1 + rnd_below(r, n - at);
            if (n + k <= MAX_MUTANT) {
                size_t to = rnd_below(r, n + 1);
                uint8_t tmp[MAX_MUTANT];
                memcpy(tmp, buf + at, k);
                memmove(buf + to + k, buf + to, n - to);
                memcpy(buf + to, tmp, k);
                n += k;
            }
        }
        break;
    case 6: { /* splice in another seed's stream */
        const cairn_buf *s = &seeds[rnd_below(r, N_SEEDS)];
        size_t k = s->len - WIRE_FUZZ_CONFIG_BYTES;
        size_t at = rnd_below(r, n + 1);
        if (at + k <= MAX_MUTANT) {
            memcpy(buf + at, s->data + WIRE_FUZZ_CONFIG_BYTES, k);
            n = at + k > n ? at + k : n;
        }
        break;
    }
    case 7: /* truncate */ n = rnd_below(r, n + 1); break;
    default: /* another link limit or feed pattern */
        if (n >= 2) {
            buf[rnd_below(r, 2)] = (uint8_t)rnd(r);
        }
        break;
    }
    *len = n;
}

static void test_mini_fuzz(void **state) {
    (void)state;
    cairn_buf seeds[N_SEEDS];
    for (int i = 0; i < N_SEEDS; i++) {
        memset(&seeds[i], 0, sizeof(seeds[i]));
        make_seed(i, &seeds[i]);
        assert_true(seeds[i].len <= MAX_MUTANT);
    }
    static uint8_t buf[MAX_MUTANT];
    prng r = {0x9E3779B97F4A7C15ull};
    for (int run = 0; run < MINI_FUZZ_RUNS; run++) {
        const cairn_buf *s = &seeds[rnd_below(&r, N_SEEDS)];
        size_t len = s->len;
        memcpy(buf, s->data, len);
        int n_mutations = 1 + (int)rnd_below(&r, 6);
        for (int m = 0; m < n_mutations; m++) {
            mutate(&r, buf, &len, seeds);
        }
        cairn_err why = {{0}};
        if (wire_fuzz_one(buf, len, &why) != 0) {
            fail_msg("mini fuzz run %d (%zu bytes): %s", run, len, why.msg);
        }
    }
    for (int i = 0; i < N_SEEDS; i++) {
        cairn_buf_free(&seeds[i]);
    }
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0) {
        return write_corpus(argv[2]);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_table),
        cmocka_unit_test(test_header_layout),
        cmocka_unit_test(test_roundtrip_every_type),
        cmocka_unit_test(test_empty_optional_payload),
        cmocka_unit_test(test_split_at_every_byte),
        cmocka_unit_test(test_many_frames_per_feed),
        cmocka_unit_test(test_large_frame_in_chunks),
        cmocka_unit_test(test_bad_magic),
        cmocka_unit_test(test_wrong_version),
        cmocka_unit_test(test_unknown_type),
        cmocka_unit_test(test_reserved_flags),
        cmocka_unit_test(test_oversized_length),
        cmocka_unit_test(test_first_frame_limit),
        cmocka_unit_test(test_handshake_frames_fit),
        cmocka_unit_test(test_empty_payload_where_required),
        cmocka_unit_test(test_truncated_waits),
        cmocka_unit_test(test_stays_failed),
        cmocka_unit_test(test_frames_before_error),
        cmocka_unit_test(test_json_malformed),
        cmocka_unit_test(test_json_too_many_values),
        cmocka_unit_test(test_json_encoder_refuses),
        cmocka_unit_test(test_encoder_refuses),
        cmocka_unit_test(test_hello_malformed),
        cmocka_unit_test(test_data_malformed),
        cmocka_unit_test(test_data_encoder_refuses),
        cmocka_unit_test(test_corpus_matches_seeds),
        cmocka_unit_test(test_seeds_through_entry),
        cmocka_unit_test(test_mini_fuzz),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
