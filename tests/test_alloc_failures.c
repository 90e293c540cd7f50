/* Allocation failures in the cluster's codecs (state and snapshots, events and the event
 * log, wire frames, and the JSON field helpers they share): every operation runs on a
 * representative input with the 1st, 2nd, ... allocation failing, until a run sees no
 * failure. Each failed run must return an error with a message, leave its output untouched
 * and leak nothing (AddressSanitizer's leak check covers the last part).
 *
 * The project's own malloc, calloc and realloc calls are wrapped at link time
 * (-Wl,--wrap, this test only), cJSON's through cJSON_InitHooks. The failure countdown is
 * file-level state: allocator hooks take no context, and nothing else here is shared. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "cluster/state.h"
#include "cluster/wire.h"

#ifdef CAIRN_WRAPPED_MALLOC

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);

/* 0: nothing fails; otherwise the allocation number (counted from arming) that fails. */
static size_t fail_at;
static size_t allocations;
static bool failed;

static bool should_fail(void) {
    if (!fail_at)
        return false;
    if (++allocations == fail_at) {
        failed = true;
        return true;
    }
    return false;
}

void *__wrap_malloc(size_t size) {
    return should_fail() ? NULL : __real_malloc(size);
}
void *__wrap_calloc(size_t n, size_t size) {
    return should_fail() ? NULL : __real_calloc(n, size);
}
void *__wrap_realloc(void *p, size_t size) {
    return should_fail() ? NULL : __real_realloc(p, size);
}

static void *cjson_malloc(size_t size) {
    return __wrap_malloc(size);
}
static void cjson_free(void *p) {
    free(p);
}

/* One operation under test: returns 0 on success, -1 with err set on failure; it must undo
 * its own partial work (the test frees what a success returned). */
typedef int (*operation)(void *arg, cairn_err *err);

/* Runs op with each allocation failing in turn; returns how many runs failed cleanly. */
static size_t fail_each_allocation(const char *name, operation op, void *arg) {
    for (size_t n = 1;; n++) {
        fail_at = n;
        allocations = 0;
        failed = false;
        cairn_err err = {{0}};
        int rc = op(arg, &err);
        fail_at = 0;
        if (!failed) {
            if (rc != 0)
                fail_msg("%s failed with no allocation failing: %s", name, err.msg);
            return n - 1;
        }
        if (rc == 0)
            fail_msg("%s succeeded though allocation %zu failed", name, n);
        if (err.msg[0] == '\0')
            fail_msg("%s: allocation %zu failed with no message", name, n);
    }
}

/* ---- a representative state: a master, two nodes, one placed instance ---- */

static void apply_ok(cairn_cluster_state *s, const cairn_event *e) {
    cairn_err err = {{0}};
    if (cairn_state_apply(s, e, &err) != 0)
        fail_msg("apply: %s", err.msg);
}

static void join_event(cairn_event *e, uint64_t index, const char *id) {
    memset(e, 0, sizeof *e);
    e->type = CAIRN_EVENT_NODE_JOINED;
    e->index = index;
    e->term = 1;
    snprintf(e->as.node_joined.node_id, sizeof e->as.node_joined.node_id, "%s", id);
    snprintf(e->as.node_joined.name, sizeof e->as.node_joined.name, "host %s", id);
    e->as.node_joined.n_addresses = 1;
    snprintf(e->as.node_joined.addresses[0].host, sizeof e->as.node_joined.addresses[0].host,
             "127.0.0.1");
    e->as.node_joined.addresses[0].port = 52416;
}

/* An instance of 8 layers in two shards, on nodes a and b. */
static void placed_event(cairn_event *e, uint64_t index) {
    memset(e, 0, sizeof *e);
    e->type = CAIRN_EVENT_INSTANCE_PLACED;
    e->index = index;
    e->term = 1;
    snprintf(e->as.instance_placed.instance_id, sizeof e->as.instance_placed.instance_id, "i1");
    snprintf(e->as.instance_placed.model, sizeof e->as.instance_placed.model, "m.gguf");
    memset(e->as.instance_placed.model_sha256, 'a', CAIRN_STATE_SHA256_SIZE - 1);
    memset(e->as.instance_placed.secret, 'b', CAIRN_STATE_SECRET_SIZE - 1);
    e->as.instance_placed.n_layers = 8;
    e->as.instance_placed.n_shards = 2;
    const char *nodes[2] = {"a", "b"};
    for (int k = 0; k < 2; k++) {
        cairn_shard_spec *sh = &e->as.instance_placed.shards[k];
        snprintf(sh->node_id, sizeof sh->node_id, "%s", nodes[k]);
        sh->layer_start = (uint32_t)k * 4;
        sh->layer_end = (uint32_t)k * 4 + 4;
    }
}

static cairn_cluster_state *sample_state(void) {
    cairn_err err = {{0}};
    cairn_cluster_state *s = cairn_state_new("alloc", &err);
    assert_non_null(s);
    cairn_event e;
    memset(&e, 0, sizeof e);
    e.type = CAIRN_EVENT_MASTER_ELECTED;
    e.index = 1;
    e.term = 1;
    snprintf(e.as.master_elected.master_id, sizeof e.as.master_elected.master_id, "a");
    apply_ok(s, &e);
    join_event(&e, 2, "a");
    apply_ok(s, &e);
    join_event(&e, 3, "b");
    apply_ok(s, &e);
    placed_event(&e, 4);
    apply_ok(s, &e);
    return s;
}

/* ---- state, snapshots and the hash ---- */

static int op_state_new(void *arg, cairn_err *err) {
    (void)arg;
    cairn_cluster_state *s = cairn_state_new("alloc", err);
    free(s);
    return s ? 0 : -1;
}

static int op_snapshot_json(void *arg, cairn_err *err) {
    char *json = cairn_state_snapshot_json(arg, err);
    free(json);
    return json ? 0 : -1;
}

static int op_public_json(void *arg, cairn_err *err) {
    char *json = cairn_state_public_json(arg, err);
    free(json);
    return json ? 0 : -1;
}

static int op_state_hash(void *arg, cairn_err *err) {
    uint8_t hash[CAIRN_STATE_HASH_SIZE];
    return cairn_state_hash(arg, hash, err);
}

typedef struct snapshot_case {
    const char *json;
    cairn_cluster_state *out;
} snapshot_case;

static int op_from_snapshot(void *arg, cairn_err *err) {
    snapshot_case *c = arg;
    return cairn_state_from_snapshot(c->json, strlen(c->json), c->out, err);
}

static void test_state_codecs(void **state) {
    (void)state;
    cairn_cluster_state *s = sample_state();
    assert_true(fail_each_allocation("cairn_state_new", op_state_new, NULL) > 0);
    assert_true(fail_each_allocation("snapshot_json", op_snapshot_json, s) > 0);
    assert_true(fail_each_allocation("public_json", op_public_json, s) > 0);
    assert_true(fail_each_allocation("state_hash", op_state_hash, s) > 0);

    cairn_err err = {{0}};
    char *json = cairn_state_snapshot_json(s, &err);
    assert_non_null(json);
    cairn_cluster_state *out = cairn_state_new("untouched", &err);
    assert_non_null(out);
    cairn_cluster_state *before = malloc(sizeof *before);
    assert_non_null(before);
    memcpy(before, out, sizeof *out);
    snapshot_case c = {json, out};
    /* Decoding writes *out only on success, so every failed run leaves it as it was. */
    for (size_t n = 1;; n++) {
        fail_at = n;
        allocations = 0;
        failed = false;
        int rc = op_from_snapshot(&c, &err);
        fail_at = 0;
        if (!failed) {
            assert_int_equal(rc, 0);
            break;
        }
        assert_int_equal(rc, -1);
        assert_memory_equal(out, before, sizeof *out);
    }
    free(before);
    free(out);
    free(json);
    free(s);
}

/* ---- events and the log ---- */

static int op_event_to_json(void *arg, cairn_err *err) {
    char *json = cairn_event_to_json(arg, err);
    free(json);
    return json ? 0 : -1;
}

static int op_event_public(void *arg, cairn_err *err) {
    cJSON *obj = cairn_event_public_cjson(arg, err);
    cJSON_Delete(obj);
    return obj ? 0 : -1;
}

static int op_event_from_json(void *arg, cairn_err *err) {
    cairn_event e;
    return cairn_event_from_json(arg, strlen(arg), &e, err);
}

typedef struct log_case {
    cairn_event_log *log;
    const cairn_event *e;
} log_case;

static int op_log_append(void *arg, cairn_err *err) {
    log_case *c = arg;
    size_t count = c->log->count, bytes = c->log->json_bytes;
    int rc = cairn_event_log_append(c->log, c->e, err);
    if (rc != 0 && (c->log->count != count || c->log->json_bytes != bytes))
        fail_msg("a failed append changed the log");
    if (rc == 0) {
        /* Take the event back off, so every run appends the same index. */
        c->log->count--;
        c->log->json_bytes -= c->log->entries[c->log->count].json_len;
        free(c->log->entries[c->log->count].json);
    }
    return rc;
}

static void test_event_codecs(void **state) {
    (void)state;
    cairn_event e;
    join_event(&e, 4, "c");
    assert_true(fail_each_allocation("event_to_json", op_event_to_json, &e) > 0);
    assert_true(fail_each_allocation("event_public_cjson", op_event_public, &e) > 0);
    cairn_err err = {{0}};
    char *json = cairn_event_to_json(&e, &err);
    assert_non_null(json);
    assert_true(fail_each_allocation("event_from_json", op_event_from_json, json) > 0);
    free(json);
    cairn_event placed;
    placed_event(&placed, 5);
    assert_true(fail_each_allocation("placed event_to_json", op_event_to_json, &placed) > 0);

    cairn_event_log log;
    cairn_event_log_init(&log, 3);
    log_case c = {&log, &e};
    assert_true(fail_each_allocation("event_log_append", op_log_append, &c) > 0);
    assert_int_equal(log.count, 0);
    cairn_event_log_free(&log);
}

/* ---- wire frames ---- */

static int op_hello_round_trip(void *arg, cairn_err *err) {
    (void)arg;
    cairn_wire_hello hello = {.protocol = 1, .cluster_port = 52416, .api_port = 52415};
    snprintf(hello.node_id, sizeof hello.node_id, "node-a");
    snprintf(hello.cluster, sizeof hello.cluster, "alloc");
    cairn_buf enc = {0};
    if (cairn_wire_encode_hello(CAIRN_WIRE_HELLO, &hello, &enc, err) != 0)
        return -1;
    int rc = -1;
    cairn_wire_decoder *d = cairn_wire_decoder_new(0, err);
    cairn_wire_frame f;
    cairn_wire_hello again;
    if (d && cairn_wire_decoder_feed(d, enc.data, enc.len, err) == 0 &&
        cairn_wire_decoder_next(d, &f, err) == 1 && cairn_wire_parse_hello(&f, &again, err) == 0) {
        cJSON *obj = NULL;
        rc = cairn_wire_parse_json(&f, &obj, err);
        cJSON_Delete(obj);
    }
    cairn_wire_decoder_free(d);
    cairn_buf_free(&enc);
    return rc;
}

static int op_encode_json(void *arg, cairn_err *err) {
    cairn_buf enc = {0};
    int rc = cairn_wire_encode_json(CAIRN_WIRE_HELLO, arg, &enc, err);
    cairn_buf_free(&enc);
    return rc;
}

static void test_wire_codecs(void **state) {
    (void)state;
    assert_true(fail_each_allocation("hello round trip", op_hello_round_trip, NULL) > 0);
    cJSON *obj = cJSON_Parse("{\"id\":\"a\",\"list\":[1,2,3],\"nested\":{\"x\":\"y\"}}");
    assert_non_null(obj);
    assert_true(fail_each_allocation("encode_json", op_encode_json, obj) > 0);
    cJSON_Delete(obj);
}

static int setup(void **state) {
    (void)state;
    cJSON_Hooks hooks = {cjson_malloc, cjson_free};
    cJSON_InitHooks(&hooks);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_codecs),
        cmocka_unit_test(test_event_codecs),
        cmocka_unit_test(test_wire_codecs),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}

#else

/* Link-time wrapping needs GNU ld (not the MinGW or macOS builds). */
static void test_skipped(void **state) {
    (void)state;
    skip();
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_skipped)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
