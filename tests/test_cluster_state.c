/* Tests of the event-sourced cluster state: fold determinism, snapshots plus tails,
 * rejection of every kind of invalid event (leaving the state untouched), the JSON codec,
 * the state hash, a seeded random fold, and the bounded event log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <cjson/cJSON.h>

#include <sodium.h>

#include "cluster/state.h"

#define SHA_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define SECRET_A "5ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2"
#define SHA_B "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

/* ---- helpers ---- */

static void set_str(char *dst, size_t size, const char *src) {
    size_t len = strlen(src);
    assert_true(len < size);
    memcpy(dst, src, len + 1);
}
#define SET(field, value) set_str((field), sizeof(field), (value))

static cairn_cluster_state *new_state(void) {
    cairn_err err = {{0}};
    cairn_cluster_state *s = cairn_state_new("test-cluster", &err);
    if (!s) {
        print_error("state_new: %s\n", err.msg);
    }
    assert_non_null(s);
    return s;
}

static cairn_event *new_event(void) {
    cairn_event *e = calloc(1, sizeof *e);
    assert_non_null(e);
    return e;
}

static void apply_ok(cairn_cluster_state *s, const cairn_event *e) {
    cairn_err err = {{0}};
    int rc = cairn_state_apply(s, e, &err);
    if (rc != 0) {
        print_error("apply: %s\n", err.msg);
    }
    assert_int_equal(rc, 0);
}

static char *snapshot(const cairn_cluster_state *s) {
    cairn_err err = {{0}};
    char *json = cairn_state_snapshot_json(s, &err);
    if (!json) {
        print_error("snapshot: %s\n", err.msg);
    }
    assert_non_null(json);
    return json;
}

static void hash_of(const cairn_cluster_state *s, uint8_t out[CAIRN_STATE_HASH_SIZE]) {
    cairn_err err = {{0}};
    int rc = cairn_state_hash(s, out, &err);
    if (rc != 0) {
        print_error("hash: %s\n", err.msg);
    }
    assert_int_equal(rc, 0);
}

static void assert_same_state(const cairn_cluster_state *a, const cairn_cluster_state *b) {
    uint8_t ha[CAIRN_STATE_HASH_SIZE], hb[CAIRN_STATE_HASH_SIZE];
    hash_of(a, ha);
    hash_of(b, hb);
    assert_memory_equal(ha, hb, sizeof ha);
    char *ja = snapshot(a);
    char *jb = snapshot(b);
    assert_string_equal(ja, jb);
    free(ja);
    free(jb);
}

static char *event_json(const cairn_event *e) {
    cairn_err err = {{0}};
    char *json = cairn_event_to_json(e, &err);
    if (!json) {
        print_error("event_to_json: %s\n", err.msg);
    }
    assert_non_null(json);
    return json;
}

static void decode_ok(const char *json, cairn_event *out) {
    cairn_err err = {{0}};
    int rc = cairn_event_from_json(json, strlen(json), out, &err);
    if (rc != 0) {
        print_error("event_from_json: %s\n  in %s\n", err.msg, json);
    }
    assert_int_equal(rc, 0);
}

/* ---- event builders ---- */

static void ev_head(cairn_event *e, cairn_event_type type, uint64_t index, uint64_t term) {
    memset(e, 0, sizeof *e);
    e->type = type;
    e->index = index;
    e->term = term;
}

static void ev_join(cairn_event *e, uint64_t index, uint64_t term, const char *id) {
    ev_head(e, CAIRN_EVENT_NODE_JOINED, index, term);
    SET(e->as.node_joined.node_id, id);
    SET(e->as.node_joined.name, "host of ");
    strcat(e->as.node_joined.name, id);
    e->as.node_joined.n_addresses = 2;
    SET(e->as.node_joined.addresses[0].host, "192.168.1.10");
    e->as.node_joined.addresses[0].port = 52415;
    SET(e->as.node_joined.addresses[1].host, "fe80::1%eth0");
    e->as.node_joined.addresses[1].port = 52416;
}

static void ev_left(cairn_event *e, uint64_t index, uint64_t term, const char *id) {
    ev_head(e, CAIRN_EVENT_NODE_LEFT, index, term);
    SET(e->as.node_left.node_id, id);
}

static void ev_conn(cairn_event *e, uint64_t index, uint64_t term, const char *id, bool up) {
    ev_head(e, CAIRN_EVENT_NODE_CONNECTION_CHANGED, index, term);
    SET(e->as.node_connection_changed.node_id, id);
    e->as.node_connection_changed.connected = up;
}

static void ev_profile(cairn_event *e, uint64_t index, uint64_t term, const char *id) {
    ev_head(e, CAIRN_EVENT_NODE_PROFILE_UPDATED, index, term);
    SET(e->as.node_profile_updated.node_id, id);
    cairn_node_profile *p = &e->as.node_profile_updated.profile;
    p->memory_total = UINT64_C(68719476736);
    p->memory_available = UINT64_C(34359738368);
    SET(p->cpu_model, "AMD Ryzen 9 7950X 16-Core Processor");
    p->cpu_cores = 32;
    SET(p->os, "linux");
    p->disk_free = UINT64_C(999999999999999);
    p->n_devices = 2;
    SET(p->devices[0].name, "CPU");
    SET(p->devices[0].description, "AMD Ryzen 9 7950X");
    p->devices[0].type = CAIRN_DEVICE_CPU;
    p->devices[0].memory_total = p->memory_total;
    p->devices[0].memory_free = p->memory_available;
    SET(p->devices[1].name, "Vulkan0");
    SET(p->devices[1].description, "Radeon \xc3\xa9 RX 7900"); /* non-ASCII UTF-8 */
    p->devices[1].type = CAIRN_DEVICE_GPU;
    p->devices[1].memory_total = UINT64_C(25769803776);
    p->devices[1].memory_free = UINT64_C(20000000000);
    /* Deliberately unsorted: the state keeps them sorted by name. */
    p->n_model_files = 3;
    SET(p->model_files[0].name, "qwen3-8b.gguf");
    p->model_files[0].size = 5000000000;
    SET(p->model_files[0].sha256, SHA_A);
    p->model_files[0].n_layers = 36;
    p->model_files[0].layer_bytes = 130000000;
    p->model_files[0].embd_bytes = 300000000;
    p->model_files[0].head_bytes = 300000100;
    SET(p->model_files[1].name, "llama-3.2-1b.gguf");
    p->model_files[1].size = 1300000000;
    SET(p->model_files[1].sha256, "");
    SET(p->model_files[2].name, "mistral-7b.gguf");
    p->model_files[2].size = 4100000000;
    SET(p->model_files[2].sha256, SHA_B);
    p->model_files[2].n_layers = 32;
    p->model_files[2].layer_bytes = 120000000;
    p->model_files[2].embd_bytes = 70000000;
    p->model_files[2].head_bytes = 70000000;
}

static void ev_elect(cairn_event *e, uint64_t index, uint64_t term, const char *id) {
    ev_head(e, CAIRN_EVENT_MASTER_ELECTED, index, term);
    SET(e->as.master_elected.master_id, id);
}

/* Places an instance of n_layers layers split evenly over the given nodes. */
static void ev_place(cairn_event *e, uint64_t index, uint64_t term, const char *id,
                     uint32_t n_layers, uint32_t n_nodes, const char *const *nodes) {
    ev_head(e, CAIRN_EVENT_INSTANCE_PLACED, index, term);
    SET(e->as.instance_placed.instance_id, id);
    SET(e->as.instance_placed.model, "Llama-3.2-1B-Instruct-Q8_0");
    SET(e->as.instance_placed.model_sha256, SHA_A);
    SET(e->as.instance_placed.secret, SECRET_A);
    e->as.instance_placed.n_layers = n_layers;
    e->as.instance_placed.n_shards = n_nodes;
    for (uint32_t k = 0; k < n_nodes; k++) {
        SET(e->as.instance_placed.shards[k].node_id, nodes[k]);
        e->as.instance_placed.shards[k].layer_start = n_layers * k / n_nodes;
        e->as.instance_placed.shards[k].layer_end = n_layers * (k + 1) / n_nodes;
    }
}

static void ev_delete(cairn_event *e, uint64_t index, uint64_t term, const char *id) {
    ev_head(e, CAIRN_EVENT_INSTANCE_DELETED, index, term);
    SET(e->as.instance_deleted.instance_id, id);
}

static void ev_runner(cairn_event *e, uint64_t index, uint64_t term, const char *instance,
                      uint32_t shard, cairn_runner_state st, uint64_t done, uint64_t total,
                      const char *reason) {
    ev_head(e, CAIRN_EVENT_RUNNER_STATE_CHANGED, index, term);
    SET(e->as.runner_state_changed.instance_id, instance);
    e->as.runner_state_changed.shard = shard;
    e->as.runner_state_changed.runner.state = st;
    e->as.runner_state_changed.runner.done = done;
    e->as.runner_state_changed.runner.total = total;
    SET(e->as.runner_state_changed.runner.reason, reason);
    /* Runners from CONNECTING through RUNNING hold a port; the others report none. */
    bool has_port = st >= CAIRN_RUNNER_CONNECTING && st <= CAIRN_RUNNER_RUNNING;
    e->as.runner_state_changed.runner.port = has_port ? (uint16_t)(40000 + shard) : 0;
}

/* A scripted history touching every event type, the cascade of NODE_LEFT and a new term. */
#define SCENARIO_LEN 22
static cairn_event *scenario(void) {
    cairn_event *ev = calloc(SCENARIO_LEN, sizeof *ev);
    assert_non_null(ev);
    const char *const ab[] = {"alpha", "beta"};
    const char *const g[] = {"gamma"};
    uint64_t i = 1;
    ev_elect(&ev[i - 1], i, 1, "alpha"), i++;
    ev_join(&ev[i - 1], i, 1, "beta"), i++;
    ev_join(&ev[i - 1], i, 1, "alpha"), i++;
    ev_profile(&ev[i - 1], i, 1, "alpha"), i++;
    ev_profile(&ev[i - 1], i, 1, "beta"), i++;
    ev_place(&ev[i - 1], i, 1, "inst-1", 32, 2, ab), i++;
    ev_runner(&ev[i - 1], i, 1, "inst-1", 0, CAIRN_RUNNER_CONNECTING, 0, 0, ""), i++;
    ev_runner(&ev[i - 1], i, 1, "inst-1", 0, CAIRN_RUNNER_CONNECTED, 0, 0, ""), i++;
    ev_runner(&ev[i - 1], i, 1, "inst-1", 0, CAIRN_RUNNER_LOADING, 0, 16, ""), i++;
    ev_runner(&ev[i - 1], i, 1, "inst-1", 0, CAIRN_RUNNER_LOADING, 8, 16, ""), i++;
    ev_runner(&ev[i - 1], i, 1, "inst-1", 0, CAIRN_RUNNER_LOADING, 16, 16, ""), i++;
    ev_runner(&ev[i - 1], i, 1, "inst-1", 0, CAIRN_RUNNER_LOADED, 0, 0, ""), i++;
    ev_runner(&ev[i - 1], i, 1, "inst-1", 1, CAIRN_RUNNER_FAILED, 0, 0, "out of memory"), i++;
    ev_conn(&ev[i - 1], i, 1, "beta", false), i++;
    ev_join(&ev[i - 1], i, 1, "gamma"), i++;
    ev_elect(&ev[i - 1], i, 2, "beta"), i++;
    ev_delete(&ev[i - 1], i, 2, "inst-1"), i++;
    ev_place(&ev[i - 1], i, 2, "inst-2", 28, 1, g), i++;
    ev_left(&ev[i - 1], i, 2, "gamma"), i++; /* removes inst-2 with it */
    ev_place(&ev[i - 1], i, 2, "inst-3", 28, 2, ab), i++;
    ev_runner(&ev[i - 1], i, 2, "inst-3", 1, CAIRN_RUNNER_SHUTTING_DOWN, 0, 0, ""), i++;
    ev_conn(&ev[i - 1], i, 2, "beta", true), i++;
    assert_int_equal(i - 1, SCENARIO_LEN);
    return ev;
}

static cairn_cluster_state *fold_scenario(const cairn_event *ev, size_t n) {
    cairn_cluster_state *s = new_state();
    for (size_t i = 0; i < n; i++) {
        apply_ok(s, &ev[i]);
    }
    return s;
}

/* ---- fold ---- */

static void test_scenario_result(void **unused) {
    cairn_event *ev = scenario();
    cairn_cluster_state *s = fold_scenario(ev, SCENARIO_LEN);
    assert_int_equal(s->last_index, SCENARIO_LEN);
    assert_int_equal(s->term, 2);
    assert_string_equal(s->master_id, "beta");
    assert_int_equal(s->n_nodes, 2);
    assert_null(cairn_state_find_node(s, "gamma"));
    const cairn_node *alpha = cairn_state_find_node(s, "alpha");
    assert_non_null(alpha);
    assert_int_equal(alpha->seniority, 3);
    assert_true(alpha->connected);
    assert_int_equal(alpha->profile.n_model_files, 3);
    assert_string_equal(alpha->profile.model_files[0].name, "llama-3.2-1b.gguf");
    assert_string_equal(alpha->profile.model_files[2].name, "qwen3-8b.gguf");
    assert_true(cairn_state_find_node(s, "beta")->connected);
    assert_int_equal(s->n_instances, 1);
    assert_null(cairn_state_find_instance(s, "inst-1"));
    assert_null(cairn_state_find_instance(s, "inst-2"));
    const cairn_instance *in = cairn_state_find_instance(s, "inst-3");
    assert_non_null(in);
    assert_int_equal(in->n_shards, 2);
    assert_int_equal(in->shards[0].layer_end, 14);
    assert_int_equal(in->shards[0].runner.state, CAIRN_RUNNER_IDLE);
    assert_int_equal(in->shards[1].runner.state, CAIRN_RUNNER_SHUTTING_DOWN);
    free(s);
    free(ev);
}

/* Members get the instances' secrets (snapshots, events); what the API shows leaves them out
 * and is otherwise the same. */
static void test_public_json_hides_secrets(void **unused) {
    cairn_event *ev = scenario();
    cairn_cluster_state *s = fold_scenario(ev, SCENARIO_LEN);
    cairn_err err = {{0}};
    char *members = cairn_state_snapshot_json(s, &err);
    char *shown = cairn_state_public_json(s, &err);
    assert_non_null(members);
    assert_non_null(shown);
    assert_non_null(strstr(members, "\"secret\":\"" SECRET_A "\""));
    assert_null(strstr(shown, SECRET_A));
    assert_null(strstr(shown, "\"secret\""));
    cJSON *public_tree = cJSON_Parse(shown), *member_tree = cJSON_Parse(members);
    cJSON *in = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(member_tree, "instances"), 0);
    cJSON_DeleteItemFromObjectCaseSensitive(in, "secret");
    assert_true(cJSON_Compare(public_tree, member_tree, true));
    const cairn_event *placed = &ev[5];
    assert_int_equal(placed->type, CAIRN_EVENT_INSTANCE_PLACED);
    char *event = cairn_event_to_json(placed, &err);
    assert_non_null(strstr(event, SECRET_A));
    cJSON *shown_event = cairn_event_public_cjson(placed, &err);
    char *shown_text = cJSON_PrintUnformatted(shown_event);
    assert_null(strstr(shown_text, "secret"));
    assert_non_null(strstr(shown_text, "\"instance\":\"inst-1\""));
    free(shown_text);
    free(event);
    cJSON_Delete(shown_event);
    cJSON_Delete(public_tree);
    cJSON_Delete(member_tree);
    free(shown);
    free(members);
    free(s);
    free(ev);
}

static void test_fold_determinism(void **unused) {
    cairn_event *ev = scenario();
    cairn_cluster_state *a = fold_scenario(ev, SCENARIO_LEN);
    cairn_cluster_state *b = fold_scenario(ev, SCENARIO_LEN);
    assert_same_state(a, b);
    /* A third node that received the events as JSON reaches the same state. */
    cairn_cluster_state *c = new_state();
    cairn_event *e = new_event();
    for (size_t i = 0; i < SCENARIO_LEN; i++) {
        char *json = event_json(&ev[i]);
        decode_ok(json, e);
        apply_ok(c, e);
        free(json);
    }
    assert_same_state(a, c);
    free(e);
    free(a);
    free(b);
    free(c);
    free(ev);
}

static void test_snapshot_plus_tail_equals_fold(void **unused) {
    cairn_event *ev = scenario();
    cairn_cluster_state *full = fold_scenario(ev, SCENARIO_LEN);
    for (size_t cut = 0; cut <= SCENARIO_LEN; cut++) {
        /* The master's view at `cut`: a snapshot and a log compacted up to it. */
        cairn_cluster_state *master = fold_scenario(ev, cut);
        char *snap = snapshot(master);
        cairn_event_log log;
        cairn_event_log_init(&log, 0);
        cairn_err err = {{0}};
        for (size_t i = 0; i < SCENARIO_LEN; i++) {
            assert_int_equal(cairn_event_log_append(&log, &ev[i], &err), 0);
        }
        cairn_event_log_compact(&log, master, 0);
        assert_int_equal(log.count, SCENARIO_LEN - cut);

        cairn_cluster_state *joiner = new_state();
        assert_int_equal(cairn_state_from_snapshot(snap, strlen(snap), joiner, &err), 0);
        const cairn_log_entry *tail = NULL;
        size_t n = 0;
        assert_int_equal(cairn_event_log_tail_after(&log, joiner->last_index, &tail, &n),
                         CAIRN_TAIL_OK);
        assert_int_equal(n, SCENARIO_LEN - cut);
        cairn_event *e = new_event();
        for (size_t i = 0; i < n; i++) {
            decode_ok(tail[i].json, e);
            apply_ok(joiner, e);
        }
        assert_same_state(full, joiner);
        free(e);
        free(joiner);
        cairn_event_log_free(&log);
        free(snap);
        free(master);
    }
    free(full);
    free(ev);
}

/* ---- rejection ---- */

/* Applies e to a copy of the scenario's state and checks it is rejected without a trace. */
static void expect_rejected(const cairn_cluster_state *base, const cairn_event *e,
                            const char *case_name) {
    cairn_cluster_state *s = malloc(sizeof *s);
    assert_non_null(s);
    memcpy(s, base, sizeof *s);
    char *before = snapshot(s);
    cairn_err err = {{0}};
    int rc = cairn_state_apply(s, e, &err);
    if (rc == 0) {
        print_error("case \"%s\" was accepted\n", case_name);
    }
    assert_int_equal(rc, -1);
    assert_true(err.msg[0] != '\0');
    assert_memory_equal(s, base, sizeof *s);
    char *after = snapshot(s);
    assert_string_equal(before, after);
    free(before);
    free(after);
    free(s);
}

static void test_invalid_events_rejected(void **unused) {
    cairn_event *ev = scenario();
    cairn_cluster_state *base = fold_scenario(ev, SCENARIO_LEN);
    const uint64_t n = SCENARIO_LEN + 1, t = 2;
    const char *const ab[] = {"alpha", "beta"};
    const char *const ax[] = {"alpha", "nobody"};
    cairn_event *e = new_event();

    ev_conn(e, n + 1, t, "alpha", false);
    expect_rejected(base, e, "gap in indices");
    ev_conn(e, n - 1, t, "alpha", false);
    expect_rejected(base, e, "duplicate index");
    ev_conn(e, 1, t, "alpha", false);
    expect_rejected(base, e, "old index");
    ev_conn(e, n, t - 1, "alpha", false);
    expect_rejected(base, e, "old term");
    ev_conn(e, n, t + 1, "alpha", false);
    expect_rejected(base, e, "future term without an election");
    ev_elect(e, n, t, "alpha");
    expect_rejected(base, e, "election without a higher term");
    ev_conn(e, n, t, "nobody", false);
    expect_rejected(base, e, "connection of an unknown node");
    ev_left(e, n, t, "nobody");
    expect_rejected(base, e, "unknown node leaves");
    ev_profile(e, n, t, "nobody");
    expect_rejected(base, e, "profile of an unknown node");
    ev_join(e, n, t, "alpha");
    expect_rejected(base, e, "node joins twice");
    ev_place(e, n, t, "inst-9", 32, 2, ax);
    expect_rejected(base, e, "shard on an unknown node");
    ev_place(e, n, t, "inst-3", 32, 2, ab);
    expect_rejected(base, e, "instance id reused");
    ev_delete(e, n, t, "inst-1");
    expect_rejected(base, e, "deleting a deleted instance");
    ev_runner(e, n, t, "inst-1", 0, CAIRN_RUNNER_CONNECTING, 0, 0, "");
    expect_rejected(base, e, "runner of a deleted instance");
    ev_runner(e, n, t, "inst-3", 2, CAIRN_RUNNER_CONNECTING, 0, 0, "");
    expect_rejected(base, e, "shard out of range");
    ev_runner(e, n, t, "inst-3", 0, CAIRN_RUNNER_LOADED, 0, 0, "");
    expect_rejected(base, e, "idle to loaded");
    ev_runner(e, n, t, "inst-3", 0, CAIRN_RUNNER_RUNNING, 0, 0, "");
    expect_rejected(base, e, "idle to running");
    ev_runner(e, n, t, "inst-3", 1, CAIRN_RUNNER_READY, 0, 0, "");
    expect_rejected(base, e, "shutting down to ready");
    ev_runner(e, n, t, "inst-3", 1, CAIRN_RUNNER_SHUTTING_DOWN, 0, 0, "");
    expect_rejected(base, e, "shutting down twice");
    ev_runner(e, n, t, "inst-3", 0, CAIRN_RUNNER_FAILED, 0, 0, "");
    expect_rejected(base, e, "failed without a reason");
    ev_runner(e, n, t, "inst-3", 0, CAIRN_RUNNER_CONNECTING, 0, 0, "why");
    expect_rejected(base, e, "reason on a non-failed runner");
    ev_runner(e, n, t, "inst-3", 0, CAIRN_RUNNER_CONNECTING, 1, 2, "");
    expect_rejected(base, e, "progress outside loading");

    /* Malformed on their own. */
    ev_join(e, n, t, "delta");
    memset(e->as.node_joined.node_id, 'x', sizeof e->as.node_joined.node_id);
    expect_rejected(base, e, "unterminated id");
    ev_join(e, n, t, "delta");
    memset(e->as.node_joined.name, 'x', sizeof e->as.node_joined.name);
    expect_rejected(base, e, "unterminated name");
    ev_join(e, n, t, "del ta");
    expect_rejected(base, e, "space in an id");
    ev_join(e, n, t, "");
    expect_rejected(base, e, "empty id");
    ev_join(e, n, t, "delta");
    SET(e->as.node_joined.name, "bad \xff utf-8");
    expect_rejected(base, e, "invalid UTF-8");
    ev_join(e, n, t, "delta");
    SET(e->as.node_joined.name, "over\xc0\xaflong");
    expect_rejected(base, e, "overlong UTF-8");
    ev_join(e, n, t, "delta");
    SET(e->as.node_joined.name, "line\nbreak");
    expect_rejected(base, e, "control character");
    ev_join(e, n, t, "delta");
    e->as.node_joined.addresses[1].port = 0;
    expect_rejected(base, e, "port 0");
    ev_join(e, n, t, "delta");
    SET(e->as.node_joined.addresses[0].host, "10.0.0.1/24");
    expect_rejected(base, e, "bad host");
    ev_join(e, n, t, "delta");
    e->as.node_joined.n_addresses = CAIRN_STATE_MAX_ADDRESSES + 1;
    expect_rejected(base, e, "too many addresses");
    ev_profile(e, n, t, "alpha");
    SET(e->as.node_profile_updated.profile.model_files[2].name, "qwen3-8b.gguf");
    expect_rejected(base, e, "duplicate model file");
    ev_profile(e, n, t, "alpha");
    SET(e->as.node_profile_updated.profile.model_files[0].sha256, "ABCDEF");
    expect_rejected(base, e, "bad file sha256");
    ev_profile(e, n, t, "alpha");
    e->as.node_profile_updated.profile.memory_total = CAIRN_STATE_MAX_NUMBER + 1;
    expect_rejected(base, e, "number over the limit");
    ev_profile(e, n, t, "alpha");
    e->as.node_profile_updated.profile.devices[0].type = (cairn_device_type)9;
    expect_rejected(base, e, "unknown device type");
    ev_profile(e, n, t, "alpha");
    e->as.node_profile_updated.profile.n_model_files = CAIRN_STATE_MAX_MODEL_FILES + 1;
    expect_rejected(base, e, "too many model files");
    ev_place(e, n, t, "inst-9", 32, 2, ab);
    e->as.instance_placed.shards[1].layer_start = 17;
    expect_rejected(base, e, "layer gap");
    ev_place(e, n, t, "inst-9", 32, 2, ab);
    e->as.instance_placed.shards[1].layer_end = 31;
    expect_rejected(base, e, "layers not covered");
    ev_place(e, n, t, "inst-9", 32, 2, ab);
    e->as.instance_placed.shards[0].layer_end = 0;
    e->as.instance_placed.shards[1].layer_start = 0;
    expect_rejected(base, e, "empty shard");
    ev_place(e, n, t, "inst-9", 32, 2, ab);
    e->as.instance_placed.n_shards = 0;
    expect_rejected(base, e, "no shards");
    ev_place(e, n, t, "inst-9", 32, 2, ab);
    SET(e->as.instance_placed.model_sha256, "");
    expect_rejected(base, e, "instance without sha256");
    ev_place(e, n, t, "inst-9", 32, 2, ab);
    SET(e->as.instance_placed.secret, "");
    expect_rejected(base, e, "instance without a secret");
    ev_place(e, n, t, "inst-9", 32, 2, ab);
    SET(e->as.instance_placed.secret,
        "5EC2E75EC2E75EC2E75EC2E75EC2E75EC2E75EC2E75EC2E75EC2E75EC2E75EC2");
    expect_rejected(base, e, "a secret not in lowercase hex");
    ev_runner(e, n, t, "inst-3", 0, CAIRN_RUNNER_CONNECTING, 0, 0, "");
    e->as.runner_state_changed.runner.state = (cairn_runner_state)CAIRN_RUNNER_STATE_COUNT;
    expect_rejected(base, e, "unknown runner state");
    ev_conn(e, n, t, "alpha", false);
    e->type = (cairn_event_type)0;
    expect_rejected(base, e, "unknown event type");
    ev_conn(e, n, t, "alpha", false);
    e->index = 0;
    expect_rejected(base, e, "index 0");

    /* The cases differ from accepted events only in the defect. */
    ev_conn(e, n, t, "alpha", false);
    apply_ok(base, e);
    free(e);
    free(base);
    free(ev);
}

static void test_runner_lifecycle(void **unused) {
    cairn_event *ev = scenario();
    cairn_cluster_state *s = fold_scenario(ev, SCENARIO_LEN);
    cairn_event *e = new_event();
    uint64_t i = s->last_index + 1;
    const uint64_t t = s->term;
    static const cairn_runner_state path[] = {
        CAIRN_RUNNER_CONNECTING, CAIRN_RUNNER_CONNECTED,     CAIRN_RUNNER_LOADING,
        CAIRN_RUNNER_LOADING,    CAIRN_RUNNER_LOADED,        CAIRN_RUNNER_WARMING_UP,
        CAIRN_RUNNER_READY,      CAIRN_RUNNER_RUNNING,       CAIRN_RUNNER_READY,
        CAIRN_RUNNER_RUNNING,    CAIRN_RUNNER_SHUTTING_DOWN, CAIRN_RUNNER_SHUT_DOWN,
    };
    for (size_t k = 0; k < CAIRN_ARRAY_LEN(path); k++) {
        bool loading = path[k] == CAIRN_RUNNER_LOADING;
        ev_runner(e, i++, t, "inst-3", 0, path[k], loading ? 7 * (k - 1) : 0, loading ? 14 : 0, "");
        apply_ok(s, e);
    }
    const cairn_instance *in = cairn_state_find_instance(s, "inst-3");
    assert_int_equal(in->shards[0].runner.state, CAIRN_RUNNER_SHUT_DOWN);
    /* Final states stay final. */
    ev_runner(e, i, t, "inst-3", 0, CAIRN_RUNNER_FAILED, 0, 0, "late");
    expect_rejected(s, e, "failing after shut down");
    ev_runner(e, i, t, "inst-3", 0, CAIRN_RUNNER_IDLE, 0, 0, "");
    expect_rejected(s, e, "reviving a shut down runner");

    /* Loading progress never goes back and keeps its total. */
    cairn_runner from = {.state = CAIRN_RUNNER_LOADING, .done = 5, .total = 10, .port = 9};
    cairn_runner to = from;
    assert_true(cairn_runner_can_change(&from, &to));
    to.done = 4;
    assert_false(cairn_runner_can_change(&from, &to));
    to.done = 6;
    to.total = 11;
    assert_false(cairn_runner_can_change(&from, &to));
    to = (cairn_runner){.state = CAIRN_RUNNER_FAILED};
    assert_true(cairn_runner_can_change(&from, &to));
    from.state = CAIRN_RUNNER_FAILED;
    assert_false(cairn_runner_can_change(&from, &to));
    free(e);
    free(s);
    free(ev);
}

/* Each port rule on its own, through cairn_runner_can_change and through apply. */
static void test_runner_ports(void **unused) {
    const cairn_runner idle = {.state = CAIRN_RUNNER_IDLE};
    cairn_runner to = {.state = CAIRN_RUNNER_CONNECTING, .port = 0};
    assert_false(cairn_runner_can_change(&idle, &to)); /* the step to CONNECTING sets it */
    to.port = 5000;
    assert_true(cairn_runner_can_change(&idle, &to));
    /* From CONNECTING through RUNNING it never changes and never goes. */
    static const cairn_runner_state path[] = {
        CAIRN_RUNNER_CONNECTING, CAIRN_RUNNER_CONNECTED, CAIRN_RUNNER_LOADING, CAIRN_RUNNER_LOADED,
        CAIRN_RUNNER_WARMING_UP, CAIRN_RUNNER_READY,     CAIRN_RUNNER_RUNNING, CAIRN_RUNNER_READY,
    };
    for (size_t k = 1; k < CAIRN_ARRAY_LEN(path); k++) {
        bool loading = path[k] == CAIRN_RUNNER_LOADING;
        cairn_runner from = {.state = path[k - 1], .port = 5000};
        if (path[k - 1] == CAIRN_RUNNER_LOADING) {
            from.done = from.total = 4;
        }
        cairn_runner next = {.state = path[k], .port = 5000, .total = loading ? 4 : 0};
        assert_true(cairn_runner_can_change(&from, &next));
        next.port = 5001;
        assert_false(cairn_runner_can_change(&from, &next));
        next.port = 0;
        assert_false(cairn_runner_can_change(&from, &next));
    }
    /* Ending keeps the port or reports 0, never another one. */
    static const cairn_runner_state ends[] = {CAIRN_RUNNER_SHUTTING_DOWN, CAIRN_RUNNER_FAILED};
    for (size_t k = 0; k < CAIRN_ARRAY_LEN(ends); k++) {
        cairn_runner from = {.state = CAIRN_RUNNER_RUNNING, .port = 5000};
        cairn_runner end = {.state = ends[k], .port = 5000};
        snprintf(end.reason, sizeof end.reason, "%s", ends[k] == CAIRN_RUNNER_FAILED ? "x" : "");
        assert_true(cairn_runner_can_change(&from, &end));
        end.port = 0;
        assert_true(cairn_runner_can_change(&from, &end));
        end.port = 5001;
        assert_false(cairn_runner_can_change(&from, &end));
        end.port = 7; /* an idle runner that fails has no port to keep */
        assert_false(cairn_runner_can_change(&idle, &end));
    }
    cairn_runner down = {.state = CAIRN_RUNNER_SHUTTING_DOWN, .port = 0};
    cairn_runner gone = {.state = CAIRN_RUNNER_SHUT_DOWN, .port = 5000};
    assert_false(cairn_runner_can_change(&down, &gone)); /* 0 stays 0 */
    down.port = 5000;
    assert_true(cairn_runner_can_change(&down, &gone));

    /* The same rules hold in events and states. */
    cairn_event *ev = scenario();
    cairn_cluster_state *s = fold_scenario(ev, SCENARIO_LEN);
    cairn_event *e = new_event();
    const uint64_t i = s->last_index + 1, t = s->term;
    ev_runner(e, i, t, "inst-3", 0, CAIRN_RUNNER_CONNECTING, 0, 0, "");
    e->as.runner_state_changed.runner.port = 0;
    expect_rejected(s, e, "connecting without a port");
    ev_runner(e, i, t, "inst-3", 0, CAIRN_RUNNER_FAILED, 0, 0, "x");
    e->as.runner_state_changed.runner.port = 9;
    expect_rejected(s, e, "an idle runner fails with a port");
    ev_runner(e, i, t, "inst-3", 0, CAIRN_RUNNER_CONNECTING, 0, 0, "");
    apply_ok(s, e);
    ev_runner(e, i + 1, t, "inst-3", 0, CAIRN_RUNNER_CONNECTED, 0, 0, "");
    e->as.runner_state_changed.runner.port = 40001;
    expect_rejected(s, e, "the port changes");
    cairn_err err = {{0}};
    cairn_instance *in = &s->instances[0];
    assert_string_equal(in->id, "inst-3");
    assert_int_equal(in->shards[0].runner.port, 40000);
    in->shards[0].runner.port = 0;
    assert_int_equal(cairn_state_check(s, &err), -1); /* connecting without a port */
    in->shards[0].runner = (cairn_runner){.state = CAIRN_RUNNER_IDLE, .port = 1};
    assert_int_equal(cairn_state_check(s, &err), -1); /* idle with a port */
    in->shards[0].runner = (cairn_runner){.state = CAIRN_RUNNER_SHUT_DOWN, .port = 1};
    assert_int_equal(cairn_state_check(s, &err), 0);
    free(e);
    free(s);
    free(ev);
}

static void test_limits(void **unused) {
    cairn_cluster_state *s = new_state();
    cairn_event *e = new_event();
    char id[32];
    for (int i = 0; i < CAIRN_STATE_MAX_NODES; i++) {
        snprintf(id, sizeof id, "node-%02d", (CAIRN_STATE_MAX_NODES - i) * 7 % 100);
        ev_join(e, s->last_index + 1, 0, id);
        apply_ok(s, e);
    }
    ev_join(e, s->last_index + 1, 0, "one-too-many");
    expect_rejected(s, e, "too many nodes");
    for (uint32_t i = 1; i < s->n_nodes; i++) {
        assert_true(strcmp(s->nodes[i - 1].id, s->nodes[i].id) < 0);
    }
    const char *const one[] = {"node-07"};
    for (int i = 0; i < CAIRN_STATE_MAX_INSTANCES; i++) {
        snprintf(id, sizeof id, "inst-%d", i);
        ev_place(e, s->last_index + 1, 0, id, 4, 1, one);
        apply_ok(s, e);
    }
    ev_place(e, s->last_index + 1, 0, "inst-x", 4, 1, one);
    expect_rejected(s, e, "too many instances");
    /* A full state still encodes and decodes. */
    char *json = snapshot(s);
    cairn_cluster_state *copy = new_state();
    cairn_err err = {{0}};
    assert_int_equal(cairn_state_from_snapshot(json, strlen(json), copy, &err), 0);
    assert_same_state(s, copy);
    /* The node hosting every instance leaves and takes them along. */
    ev_left(e, s->last_index + 1, 0, "node-07");
    apply_ok(s, e);
    assert_int_equal(s->n_instances, 0);
    assert_int_equal(s->n_nodes, CAIRN_STATE_MAX_NODES - 1);
    free(json);
    free(copy);
    free(e);
    free(s);
}

/* ---- JSON ---- */

static void round_trip(const cairn_event *e, const char *expect_type) {
    char *json = event_json(e);
    assert_non_null(strstr(json, expect_type));
    cairn_event *back = new_event();
    decode_ok(json, back);
    assert_int_equal(back->type, e->type);
    assert_int_equal(back->index, e->index);
    assert_int_equal(back->term, e->term);
    char *again = event_json(back);
    assert_string_equal(json, again);
    free(again);
    free(json);
    free(back);
}

static void test_json_round_trip_every_type(void **unused) {
    cairn_event *ev = scenario();
    bool seen[CAIRN_EVENT_RUNNER_STATE_CHANGED + 1] = {0};
    for (size_t i = 0; i < SCENARIO_LEN; i++) {
        round_trip(&ev[i], cairn_event_type_name(ev[i].type));
        seen[ev[i].type] = true;
    }
    for (int t = CAIRN_EVENT_NODE_JOINED; t <= CAIRN_EVENT_RUNNER_STATE_CHANGED; t++) {
        assert_true(seen[t]);
    }
    /* Field values survive, including the largest number and non-ASCII text. */
    cairn_event *e = new_event();
    char *json = event_json(&ev[3]);
    decode_ok(json, e);
    const cairn_node_profile *p = &e->as.node_profile_updated.profile;
    assert_int_equal(p->disk_free, CAIRN_STATE_MAX_NUMBER);
    assert_string_equal(p->devices[1].description, "Radeon \xc3\xa9 RX 7900");
    assert_int_equal(p->devices[1].type, CAIRN_DEVICE_GPU);
    assert_string_equal(p->model_files[0].name, "qwen3-8b.gguf");
    assert_string_equal(p->model_files[0].sha256, SHA_A);
    free(json);
    ev_runner(e, 9, 3, "inst-1", 1, CAIRN_RUNNER_LOADING, 3, 12, "");
    json = event_json(e);
    assert_string_equal(json,
                        "{\"index\":9,\"term\":3,\"type\":\"runner_state_changed\","
                        "\"instance\":\"inst-1\",\"shard\":1,\"runner\":{\"state\":"
                        "\"loading\",\"done\":3,\"total\":12,\"reason\":\"\",\"port\":40001}}");
    free(json);
    free(e);
    free(ev);
}

static void expect_bad_json(const char *json, const char *case_name) {
    cairn_event *e = new_event();
    memset(e, 0xA5, sizeof *e);
    cairn_event *before = new_event();
    memcpy(before, e, sizeof *e);
    cairn_err err = {{0}};
    int rc = cairn_event_from_json(json, strlen(json), e, &err);
    if (rc == 0) {
        print_error("case \"%s\" was accepted: %s\n", case_name, json);
    }
    assert_int_equal(rc, -1);
    assert_true(err.msg[0] != '\0');
    assert_memory_equal(e, before, sizeof *e);
    free(before);
    free(e);
}

#define LONG_ID "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" /* 64 */

/* A copy of s with the first occurrence of `from` replaced by `to` (which must occur). */
static char *replace_once(const char *s, const char *from, const char *to) {
    const char *at = strstr(s, from);
    if (!at) {
        print_error("\"%s\" not found in %s\n", from, s);
    }
    assert_non_null(at);
    cairn_buf b = {0};
    assert_int_equal(cairn_buf_append(&b, s, (size_t)(at - s)), 0);
    assert_int_equal(cairn_buf_puts(&b, to), 0);
    assert_int_equal(cairn_buf_puts(&b, at + strlen(from)), 0);
    return cairn_buf_take(&b);
}

static void expect_bad_event_edit(const char *valid, const char *from, const char *to) {
    char *bad = replace_once(valid, from, to);
    expect_bad_json(bad, to);
    free(bad);
}

/* A peer's EVENT or PROPOSE payload reaches the event decoder as it came: one nested 999
 * deep is refused by its shape, before cJSON recurses into it. */
static void test_deep_event_refused(void **unused) {
    (void)unused;
    size_t depth = 999;
    char *json = malloc(2 * depth + 16);
    assert_non_null(json);
    strcpy(json, "{\"x\":");
    size_t n = strlen(json);
    memset(json + n, '[', depth - 1);
    memset(json + n + depth - 1, ']', depth - 1);
    strcpy(json + n + 2 * (depth - 1), "}");
    cairn_event *e = new_event();
    cairn_err err = {{0}};
    assert_int_equal(cairn_event_from_json(json, strlen(json), e, &err), -1);
    assert_string_equal(err.msg, "event nests deeper than 64 levels");
    cairn_cluster_state *st = calloc(1, sizeof *st);
    assert_non_null(st);
    assert_int_equal(cairn_state_from_snapshot(json, strlen(json), st, &err), -1);
    assert_string_equal(err.msg, "snapshot nests deeper than 64 levels");
    free(st);
    free(e);
    free(json);
}

static void test_bad_json_rejected(void **unused) {
    cairn_event *ev = scenario();
    cairn_event *e = new_event();
    /* Each case is one edit of an event that decodes, so it fails for its own defect. */
    char *left = event_json(&ev[18]);   /* node_left */
    char *joined = event_json(&ev[1]);  /* node_joined */
    char *conn = event_json(&ev[13]);   /* node_connection_changed */
    char *profile = event_json(&ev[3]); /* node_profile_updated */
    char *placed = event_json(&ev[5]);  /* instance_placed */
    char *runner = event_json(&ev[9]);  /* runner_state_changed, loading 8/16 */
    const char *valid[] = {left, joined, conn, profile, placed, runner};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(valid); i++) {
        decode_ok(valid[i], e);
    }
    char *spaced = replace_once(left, "}", "}  \r\n");
    decode_ok(spaced, e);
    free(spaced);

    expect_bad_json("", "empty input");
    expect_bad_json("{", "truncated");
    expect_bad_json("[1]", "not an object");
    expect_bad_json("null", "null");
    expect_bad_event_edit(left, "}", "}x");
    expect_bad_event_edit(left, "}", "}{}");
    expect_bad_event_edit(left, "\"type\":\"node_left\",", "");
    expect_bad_event_edit(left, "\"node_left\"", "\"node_exploded\"");
    expect_bad_event_edit(left, "\"node_left\"", "3");
    expect_bad_event_edit(left, "\"type\"", "\"Type\"");
    expect_bad_event_edit(left, "}", ",\"extra\":1}");
    expect_bad_event_edit(left, "}", ",\"node\":\"beta\"}");
    expect_bad_event_edit(left, ",\"node\":\"gamma\"", "");
    expect_bad_event_edit(left, "\"index\":19", "\"index\":\"19\"");
    expect_bad_event_edit(left, "\"index\":19", "\"index\":-19");
    expect_bad_event_edit(left, "\"index\":19", "\"index\":19.5");
    expect_bad_event_edit(left, "\"index\":19", "\"index\":0");
    expect_bad_event_edit(left, "\"index\":19", "\"index\":1e15");
    expect_bad_event_edit(left, "\"index\":19", "\"index\":null");
    expect_bad_event_edit(left, "\"term\":2", "\"term\":1e300");
    expect_bad_event_edit(left, "\"gamma\"", "7");
    expect_bad_event_edit(left, "\"gamma\"", "\"" LONG_ID "\"");
    expect_bad_event_edit(left, "\"gamma\"", "\"gam ma\"");
    expect_bad_event_edit(left, "\"gamma\"", "\"\"");
    expect_bad_event_edit(conn, "false", "0");
    expect_bad_event_edit(joined, "\"name\":\"host of beta\"", "\"name\":\"a\\u0001b\"");
    expect_bad_event_edit(joined, "\"name\":\"host of beta\"", "\"name\":\"\xff\"");
    expect_bad_event_edit(joined, "\"name\":\"host of beta\"", "\"name\":[]");
    expect_bad_event_edit(joined, "52415", "0");
    expect_bad_event_edit(joined, "52415", "65536");
    expect_bad_event_edit(joined, "52415", "\"80\"");
    expect_bad_event_edit(joined, "\"port\":52415", "\"port\":52415,\"scope\":1");
    expect_bad_event_edit(joined, "\"192.168.1.10\"", "\"10.0.0.1/8\"");
    expect_bad_event_edit(joined, "\"addresses\":[", "\"addresses\":{");
    expect_bad_event_edit(profile, "\"cpu_cores\":32", "\"cpu_cores\":-1");
    expect_bad_event_edit(profile, "\"cpu_cores\":32", "\"cpu_cores\":65537");
    expect_bad_event_edit(profile, "\"os\":\"linux\",", "");
    expect_bad_event_edit(profile, "\"gpu\"", "\"tpu\"");
    expect_bad_event_edit(profile, "\"sha256\":\"\"", "\"sha256\":\"xyz\"");
    expect_bad_event_edit(profile, "\"sha256\":\"\"", "\"sha256\":\"" SHA_A "0\"");
    expect_bad_event_edit(profile, "\"mistral-7b.gguf\"", "\"qwen3-8b.gguf\"");
    expect_bad_event_edit(profile, "\"memory_free\":20000000000", "\"memory_free\":20000000000.25");
    expect_bad_event_edit(profile, "\"profile\":{", "\"profile\":{\"gpus\":1,");
    expect_bad_event_edit(placed, "\"layer_start\":16", "\"layer_start\":17");
    expect_bad_event_edit(placed, "\"n_layers\":32", "\"n_layers\":0");
    expect_bad_event_edit(placed, "\"n_layers\":32", "\"n_layers\":33");
    expect_bad_event_edit(placed, "\"shards\":[", "\"shards\":[],\"x\":[");
    expect_bad_event_edit(placed, "\"layer_end\":16}", "\"layer_end\":16,\"runner\":null}");
    expect_bad_event_edit(placed, SHA_A, "");
    expect_bad_event_edit(runner, "\"loading\"", "\"sleeping\"");
    expect_bad_event_edit(runner, "\"done\":8", "\"done\":17");
    expect_bad_event_edit(runner, "\"reason\":\"\"", "\"reason\":\"why\"");
    expect_bad_event_edit(runner, "\"done\":8,", "");
    expect_bad_event_edit(runner, "\"shard\":0", "\"shard\":16");
    expect_bad_event_edit(runner, ",\"port\":40000", "");
    expect_bad_event_edit(runner, "\"port\":40000", "\"port\":0");
    expect_bad_event_edit(runner, "\"port\":40000", "\"port\":65536");
    expect_bad_event_edit(runner, "\"port\":40000", "\"port\":\"40000\"");
    expect_bad_event_edit(profile, "\"n_layers\":36", "\"n_layers\":65537");
    expect_bad_event_edit(profile, "\"n_layers\":36", "\"n_layers\":-36");
    expect_bad_event_edit(profile, "\"layer_bytes\":130000000", "\"layer_bytes\":1e15");
    expect_bad_event_edit(profile, "\"embd_bytes\":300000000,", "");
    expect_bad_event_edit(profile, "\"head_bytes\":300000100", "\"head_bytes\":1.5");
    /* A file that is no model has no footprint; a model's whole footprint stays in range. */
    expect_bad_event_edit(profile, "\"n_layers\":0,\"layer_bytes\":0",
                          "\"n_layers\":0,\"layer_bytes\":1");
    expect_bad_event_edit(profile, "\"n_layers\":36,\"layer_bytes\":130000000",
                          "\"n_layers\":36,\"layer_bytes\":999999999999999");

    /* Oversize arrays and strings built to one past each limit. */
    cairn_buf b = {0};
    assert_int_equal(cairn_buf_puts(&b, "\"addresses\":["), 0);
    for (int i = 0; i <= CAIRN_STATE_MAX_ADDRESSES; i++) {
        assert_int_equal(cairn_buf_printf(&b, "%s{\"host\":\"h%d\",\"port\":1}", i ? "," : "", i),
                         0);
    }
    char *addrs = cairn_buf_take(&b);
    expect_bad_event_edit(joined, "\"addresses\":[", addrs);
    free(addrs);
    char name[CAIRN_STATE_NAME_SIZE + 16];
    memset(name, 'n', sizeof name);
    memcpy(name, "\"name\":\"", 8);
    memcpy(name + 8 + CAIRN_STATE_NAME_SIZE, "\"", 2);
    expect_bad_event_edit(joined, "\"name\":\"host of beta\"", name);
    name[8 + CAIRN_STATE_NAME_SIZE - 1] = '"';
    name[8 + CAIRN_STATE_NAME_SIZE] = '\0';
    char *longest = replace_once(joined, "\"name\":\"host of beta\"", name);
    decode_ok(longest, e); /* 127 bytes: the limit itself is fine */
    free(longest);

    for (size_t i = 0; i < CAIRN_ARRAY_LEN(valid); i++) {
        free((char *)valid[i]);
    }
    free(e);
    free(ev);
}

static void test_bad_snapshots_rejected(void **unused) {
    cairn_event *ev = scenario();
    cairn_cluster_state *s = fold_scenario(ev, SCENARIO_LEN);
    char *good = snapshot(s);
    cairn_cluster_state *out = new_state();
    cairn_err err = {{0}};
    assert_int_equal(cairn_state_from_snapshot(good, strlen(good), out, &err), 0);
    assert_same_state(s, out);
    static const char *const edits[][2] = {
        {"\"seniority\":3", "\"seniority\":99"},
        {"\"seniority\":3", "\"seniority\":0"},
        {"\"seniority\":3", "\"seniority\":2"}, /* beta's */
        {"\"master\":\"beta\"", "\"master\":\"\""},
        {"\"term\":2", "\"term\":0"},
        {"\"cluster\":\"test-cluster\"", "\"cluster\":\"\""},
        {"\"id\":\"beta\"", "\"id\":\"alpha\""},
        {"\"node\":\"alpha\"", "\"node\":\"zeta\""},
        {"\"state\":\"idle\",\"done\":0,\"total\":0",
         "\"state\":\"loading\",\"done\":0,\"total\":0"},
        {"\"state\":\"idle\"", "\"state\":\"failed\""},
        {"\"layer_end\":14", "\"layer_end\":15"},
        {"\"term\":2", "\"term\":2,\"x\":1"},
        {"\"connected\":true", "\"connected\":1"},
        {"\"instances\":[", "\"instances\":{"},
        {"\"llama-3.2-1b.gguf\"", "\"mistral-7b.gguf\""},
        {"\"runner\":{", "\"runner\":{\"node\":\"alpha\","},
        {"\"reason\":\"\",\"port\":0", "\"reason\":\"\",\"port\":7"}, /* idle */
        {"\"reason\":\"\",\"port\":0", "\"reason\":\"\""},
        {"\"head_bytes\":0", "\"head_bytes\":0,\"tail_bytes\":0"},
    };
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(edits); i++) {
        char *bad = replace_once(good, edits[i][0], edits[i][1]);
        cairn_cluster_state *before = malloc(sizeof *before);
        assert_non_null(before);
        memcpy(before, out, sizeof *out);
        int rc = cairn_state_from_snapshot(bad, strlen(bad), out, &err);
        if (rc == 0) {
            print_error("snapshot edit %zu (%s) was accepted\n", i, edits[i][1]);
        }
        assert_int_equal(rc, -1);
        assert_memory_equal(out, before, sizeof *out);
        free(before);
        free(bad);
    }
    free(out);
    free(good);
    free(s);
    free(ev);
}

/* ---- hash ---- */

static void test_hash_order_and_changes(void **unused) {
    cairn_event *ev = scenario();
    cairn_cluster_state *a = fold_scenario(ev, SCENARIO_LEN);
    cairn_event *e = new_event();
    const char *const ab[] = {"beta", "alpha"};
    ev_place(e, a->last_index + 1, a->term, "inst-0", 10, 2, ab);
    apply_ok(a, e);

    /* The same content in the opposite order in memory. */
    cairn_cluster_state *b = malloc(sizeof *b);
    assert_non_null(b);
    memcpy(b, a, sizeof *b);
    for (uint32_t i = 0; i < a->n_nodes; i++) {
        b->nodes[i] = a->nodes[a->n_nodes - 1 - i];
        cairn_node_profile *p = &b->nodes[i].profile;
        for (uint32_t f = 0; f < p->n_model_files; f++) {
            p->model_files[f] =
                a->nodes[a->n_nodes - 1 - i].profile.model_files[p->n_model_files - 1 - f];
        }
    }
    for (uint32_t i = 0; i < a->n_instances; i++) {
        b->instances[i] = a->instances[a->n_instances - 1 - i];
    }
    assert_string_not_equal(a->nodes[0].id, b->nodes[0].id);
    assert_same_state(a, b);

    /* The hash is BLAKE2b-256 of the canonical snapshot. */
    uint8_t ha[CAIRN_STATE_HASH_SIZE], expect[CAIRN_STATE_HASH_SIZE];
    hash_of(a, ha);
    char *json = snapshot(a);
    assert_int_equal(sodium_init() >= 0, 1);
    crypto_generichash(expect, sizeof expect, (const unsigned char *)json, strlen(json), NULL, 0);
    assert_memory_equal(ha, expect, sizeof ha);
    /* Canonical means sorted by id and file name, whatever the memory order. */
    const char *alpha = strstr(json, "\"id\":\"alpha\""), *beta = strstr(json, "\"id\":\"beta\"");
    assert_true(alpha && beta && alpha < beta);
    const char *llama = strstr(json, "llama-3.2"), *qwen = strstr(json, "qwen3-8b");
    assert_true(llama && qwen && llama < qwen);
    assert_true(strstr(json, "\"id\":\"inst-0\"") < strstr(json, "\"id\":\"inst-3\""));
    free(json);

    /* Any change changes it. */
    uint8_t hb[CAIRN_STATE_HASH_SIZE];
    b->nodes[1].profile.memory_available += 1;
    hash_of(b, hb);
    assert_memory_not_equal(ha, hb, sizeof ha);
    memcpy(b, a, sizeof *b);
    ev_conn(e, b->last_index + 1, b->term, "alpha", false);
    apply_ok(b, e);
    hash_of(b, hb);
    assert_memory_not_equal(ha, hb, sizeof ha);
    memcpy(b, a, sizeof *b);
    b->cluster_name[0] = 'T';
    hash_of(b, hb);
    assert_memory_not_equal(ha, hb, sizeof ha);
    memcpy(b, a, sizeof *b);
    b->instances[0].shards[1].runner.state = CAIRN_RUNNER_CONNECTING;
    b->instances[0].shards[1].runner.port = 9;
    hash_of(b, hb);
    assert_memory_not_equal(ha, hb, sizeof ha);
    free(e);
    free(b);
    free(a);
    free(ev);
}

/* ---- a seeded random history ---- */

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r) { /* splitmix64 */
    uint64_t z = (r->s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static uint32_t below(rng *r, uint32_t n) {
    return (uint32_t)(rng_next(r) % n);
}

static const char *random_node(rng *r, const cairn_cluster_state *s) {
    return s->nodes[below(r, s->n_nodes)].id;
}

static void gen_join(rng *r, const cairn_cluster_state *s, cairn_event *e) {
    char id[16];
    do {
        snprintf(id, sizeof id, "n-%04x", (unsigned)below(r, 0x10000));
    } while (cairn_state_find_node(s, id));
    ev_join(e, s->last_index + 1, s->term, id);
    e->as.node_joined.n_addresses = below(r, 3);
}

static void gen_profile(rng *r, const cairn_cluster_state *s, cairn_event *e) {
    ev_profile(e, s->last_index + 1, s->term, random_node(r, s));
    cairn_node_profile *p = &e->as.node_profile_updated.profile;
    p->memory_available = below(r, 1u << 30) * UINT64_C(64);
    p->n_devices = below(r, 3);
    p->n_model_files = below(r, 7);
    static const char *const shas[] = {SHA_A, SHA_B, ""};
    for (uint32_t f = 0; f < p->n_model_files; f++) {
        cairn_model_file *mf = &p->model_files[f];
        snprintf(mf->name, sizeof mf->name, "f%u-%u.gguf", (unsigned)f, (unsigned)below(r, 1000));
        mf->size = rng_next(r) % CAIRN_STATE_MAX_NUMBER;
        SET(mf->sha256, shas[below(r, 3)]);
    }
    for (uint32_t f = p->n_model_files; f > 1; f--) { /* shuffle */
        uint32_t j = below(r, f);
        cairn_model_file tmp = p->model_files[f - 1];
        p->model_files[f - 1] = p->model_files[j];
        p->model_files[j] = tmp;
    }
}

static void gen_place(rng *r, const cairn_cluster_state *s, cairn_event *e) {
    char id[24];
    do {
        snprintf(id, sizeof id, "i-%05u", (unsigned)below(r, 100000));
    } while (cairn_state_find_instance(s, id));
    uint32_t n = 1 + below(r, s->n_nodes < 4 ? s->n_nodes : 4);
    const char *nodes[4];
    for (uint32_t k = 0; k < n; k++) {
        nodes[k] = random_node(r, s);
    }
    ev_place(e, s->last_index + 1, s->term, id, n + below(r, 80), n, nodes);
}

static bool gen_runner(rng *r, const cairn_cluster_state *s, cairn_event *e) {
    const cairn_instance *in = &s->instances[below(r, s->n_instances)];
    uint32_t k = below(r, in->n_shards);
    const cairn_runner *from = &in->shards[k].runner;
    cairn_runner cand[CAIRN_RUNNER_STATE_COUNT];
    uint32_t n = 0;
    for (int st = 0; st < CAIRN_RUNNER_STATE_COUNT; st++) {
        cairn_runner to = {.state = (cairn_runner_state)st};
        if (to.state == CAIRN_RUNNER_LOADING && from->state == CAIRN_RUNNER_LOADING) {
            to.total = from->total;
            to.done = from->done + below(r, (uint32_t)(from->total - from->done) + 1);
        } else if (to.state == CAIRN_RUNNER_LOADING) {
            to.total = in->shards[k].layer_end - in->shards[k].layer_start;
        } else if (to.state == CAIRN_RUNNER_FAILED) {
            snprintf(to.reason, sizeof to.reason, "error %u", (unsigned)below(r, 1000));
        }
        if (to.state == CAIRN_RUNNER_CONNECTING) {
            to.port = (uint16_t)(1 + below(r, 65535));
        } else if (to.state > CAIRN_RUNNER_CONNECTING) {
            bool ending = to.state >= CAIRN_RUNNER_SHUTTING_DOWN;
            to.port = ending && below(r, 2) == 0 ? 0 : from->port;
        }
        /* Failing and shutting down end a runner: make them rarer than progress. */
        bool final = to.state == CAIRN_RUNNER_FAILED || to.state == CAIRN_RUNNER_SHUTTING_DOWN;
        if (cairn_runner_can_change(from, &to) && (!final || below(r, 4) == 0)) {
            cand[n++] = to;
        }
    }
    if (n == 0) {
        return false;
    }
    ev_head(e, CAIRN_EVENT_RUNNER_STATE_CHANGED, s->last_index + 1, s->term);
    SET(e->as.runner_state_changed.instance_id, in->id);
    e->as.runner_state_changed.shard = k;
    e->as.runner_state_changed.runner = cand[below(r, n)];
    return true;
}

/* One event that is valid in s, of a random type that s allows. */
static void gen_event(rng *r, const cairn_cluster_state *s, cairn_event *e) {
    for (;;) {
        uint32_t roll = below(r, 100);
        bool nodes = s->n_nodes > 0, instances = s->n_instances > 0;
        if (roll < 8 && s->n_nodes < CAIRN_STATE_MAX_NODES) {
            gen_join(r, s, e);
        } else if (roll < 11 && nodes) {
            ev_left(e, s->last_index + 1, s->term, random_node(r, s));
        } else if (roll < 20 && nodes) {
            ev_conn(e, s->last_index + 1, s->term, random_node(r, s), below(r, 2));
        } else if (roll < 28 && nodes) {
            gen_profile(r, s, e);
        } else if (roll < 31) {
            ev_elect(e, s->last_index + 1, s->term + 1 + below(r, 3),
                     nodes ? random_node(r, s) : "boot");
        } else if (roll < 40 && nodes && s->n_instances < CAIRN_STATE_MAX_INSTANCES) {
            gen_place(r, s, e);
        } else if (roll < 44 && instances) {
            ev_delete(e, s->last_index + 1, s->term, s->instances[below(r, s->n_instances)].id);
        } else if (roll >= 44 && instances && gen_runner(r, s, e)) {
            return;
        } else {
            continue;
        }
        return;
    }
}

#define RANDOM_EVENTS 1000

static void random_history(uint64_t seed) {
    rng r = {seed};
    cairn_cluster_state *master = new_state();
    cairn_event *e = new_event();
    cairn_event *back = new_event();
    char **log = calloc(RANDOM_EVENTS, sizeof *log);
    assert_non_null(log);
    size_t cut = below(&r, RANDOM_EVENTS + 1);
    char *snap_at_cut = NULL;
    size_t seen[CAIRN_EVENT_RUNNER_STATE_CHANGED + 1] = {0};
    for (size_t i = 0; i < RANDOM_EVENTS; i++) {
        if (i == cut) {
            snap_at_cut = snapshot(master);
        }
        gen_event(&r, master, e);
        seen[e->type]++;
        apply_ok(master, e);
        log[i] = event_json(e);
        decode_ok(log[i], back);
        char *again = event_json(back);
        assert_string_equal(log[i], again);
        free(again);
    }
    if (!snap_at_cut) {
        snap_at_cut = snapshot(master);
    }
    for (int t = CAIRN_EVENT_NODE_JOINED; t <= CAIRN_EVENT_RUNNER_STATE_CHANGED; t++) {
        assert_true(seen[t] > 0);
    }

    /* A node that got every event... */
    cairn_cluster_state *follower = new_state();
    for (size_t i = 0; i < RANDOM_EVENTS; i++) {
        decode_ok(log[i], back);
        apply_ok(follower, back);
    }
    assert_same_state(master, follower);
    /* ...and one that got the snapshot at the cut and the tail after it. */
    cairn_cluster_state *joiner = new_state();
    cairn_err err = {{0}};
    assert_int_equal(cairn_state_from_snapshot(snap_at_cut, strlen(snap_at_cut), joiner, &err), 0);
    assert_int_equal(joiner->last_index, cut);
    for (size_t i = cut; i < RANDOM_EVENTS; i++) {
        decode_ok(log[i], back);
        apply_ok(joiner, back);
    }
    assert_same_state(master, joiner);

    for (size_t i = 0; i < RANDOM_EVENTS; i++) {
        free(log[i]);
    }
    free(log);
    free(snap_at_cut);
    free(joiner);
    free(follower);
    free(back);
    free(e);
    free(master);
}

static void test_random_fold(void **unused) {
    random_history(1);
    random_history(20240607);
    random_history(UINT64_C(0xC0FFEE));
}

/* ---- the log ---- */

static void test_log_compaction_bounds_memory(void **unused) {
    cairn_cluster_state *s = new_state();
    cairn_event *e = new_event();
    cairn_event_log log;
    cairn_event_log_init(&log, 0);
    cairn_err err = {{0}};
    const size_t keep = 100, every = 50;
    size_t max_cap = 0;
    for (int i = 0; i < 5000; i++) {
        if (i == 0) {
            ev_join(e, 1, 0, "alpha");
        } else {
            ev_conn(e, s->last_index + 1, 0, "alpha", i % 2);
        }
        apply_ok(s, e);
        assert_int_equal(cairn_event_log_append(&log, e, &err), 0);
        if (s->last_index % every == 0) {
            cairn_event_log_compact(&log, s, keep);
        }
        max_cap = log.cap > max_cap ? log.cap : max_cap;
        assert_true(log.count <= keep + every);
    }
    assert_true(max_cap <= 256);
    assert_int_equal(log.first_index + log.count, s->last_index + 1);
    size_t bytes = 0;
    for (size_t i = 0; i < log.count; i++) {
        assert_int_equal(log.entries[i].index, log.first_index + i);
        bytes += strlen(log.entries[i].json);
    }
    assert_int_equal(bytes, log.json_bytes);

    /* Tails. */
    const cairn_log_entry *tail = NULL;
    size_t n = 99;
    assert_int_equal(cairn_event_log_tail_after(&log, 0, &tail, &n), CAIRN_TAIL_NEED_SNAPSHOT);
    assert_int_equal(cairn_event_log_tail_after(&log, log.first_index - 2, &tail, &n),
                     CAIRN_TAIL_NEED_SNAPSHOT);
    assert_int_equal(cairn_event_log_tail_after(&log, log.first_index - 1, &tail, &n),
                     CAIRN_TAIL_OK);
    assert_int_equal(n, log.count);
    assert_int_equal(cairn_event_log_tail_after(&log, s->last_index, &tail, &n), CAIRN_TAIL_OK);
    assert_int_equal(n, 0);
    assert_int_equal(cairn_event_log_tail_after(&log, s->last_index + 1, &tail, &n),
                     CAIRN_TAIL_AHEAD);
    assert_int_equal(cairn_event_log_tail_after(&log, s->last_index - 10, &tail, &n),
                     CAIRN_TAIL_OK);
    assert_int_equal(n, 10);
    assert_int_equal(tail[0].index, s->last_index - 9);
    decode_ok(tail[9].json, e);
    assert_int_equal(e->index, s->last_index);

    /* Out-of-order appends are refused; compacting with an older state changes nothing. */
    ev_conn(e, s->last_index + 2, 0, "alpha", true);
    assert_int_equal(cairn_event_log_append(&log, e, &err), -1);
    cairn_cluster_state *old = new_state();
    size_t count = log.count;
    cairn_event_log_compact(&log, old, 0);
    assert_int_equal(log.count, count);
    cairn_event_log_compact(&log, s, 0);
    assert_int_equal(log.count, 0);
    assert_int_equal(log.json_bytes, 0);
    assert_int_equal(log.first_index, s->last_index + 1);
    ev_conn(e, s->last_index + 1, 0, "alpha", true);
    assert_int_equal(cairn_event_log_append(&log, e, &err), 0);
    cairn_event_log_free(&log);

    /* A log that starts after a snapshot. */
    cairn_event_log_init(&log, 100);
    ev_conn(e, 1, 0, "alpha", true);
    assert_int_equal(cairn_event_log_append(&log, e, &err), -1);
    e->index = 101;
    assert_int_equal(cairn_event_log_append(&log, e, &err), 0);
    assert_int_equal(cairn_event_log_tail_after(&log, 99, &tail, &n), CAIRN_TAIL_NEED_SNAPSHOT);
    assert_int_equal(cairn_event_log_tail_after(&log, 100, &tail, &n), CAIRN_TAIL_OK);
    assert_int_equal(n, 1);
    cairn_event_log_free(&log);
    free(old);
    free(e);
    free(s);
}

static void test_init_and_names(void **unused) {
    cairn_cluster_state *s = new_state();
    cairn_err err = {{0}};
    assert_int_equal(cairn_state_init(s, "", &err), -1);
    char long_name[CAIRN_STATE_NAME_SIZE + 1];
    memset(long_name, 'c', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_int_equal(cairn_state_init(s, long_name, &err), -1);
    assert_string_equal(s->cluster_name, "test-cluster");
    for (int t = CAIRN_EVENT_NODE_JOINED; t <= CAIRN_EVENT_RUNNER_STATE_CHANGED; t++) {
        cairn_event_type back;
        assert_int_equal(cairn_event_type_from_name(cairn_event_type_name(t), &back), 0);
        assert_int_equal(back, t);
    }
    for (int st = 0; st < CAIRN_RUNNER_STATE_COUNT; st++) {
        cairn_runner_state back;
        assert_int_equal(cairn_runner_state_from_name(cairn_runner_state_name(st), &back), 0);
        assert_int_equal(back, st);
    }
    assert_null(cairn_event_type_name((cairn_event_type)0));
    assert_null(cairn_runner_state_name((cairn_runner_state)CAIRN_RUNNER_STATE_COUNT));
    cairn_event_type t;
    assert_int_equal(cairn_event_type_from_name("bogus", &t), -1);
    char *json = snapshot(s);
    assert_string_equal(json, "{\"cluster\":\"test-cluster\",\"last_index\":0,\"term\":0,"
                              "\"master\":\"\",\"nodes\":[],\"instances\":[]}");
    free(json);
    free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scenario_result),
        cmocka_unit_test(test_public_json_hides_secrets),
        cmocka_unit_test(test_fold_determinism),
        cmocka_unit_test(test_snapshot_plus_tail_equals_fold),
        cmocka_unit_test(test_invalid_events_rejected),
        cmocka_unit_test(test_runner_lifecycle),
        cmocka_unit_test(test_runner_ports),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_json_round_trip_every_type),
        cmocka_unit_test(test_bad_json_rejected),
        cmocka_unit_test(test_bad_snapshots_rejected),
        cmocka_unit_test(test_deep_event_refused),
        cmocka_unit_test(test_hash_order_and_changes),
        cmocka_unit_test(test_random_fold),
        cmocka_unit_test(test_log_compaction_bounds_memory),
        cmocka_unit_test(test_init_and_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
