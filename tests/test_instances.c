/* Tests of the master's care of instances (src/cluster/instances.c): failed instances are
 * deleted and placed again with a growing backoff, nodes that keep failing are left out
 * until their failures fade or a runner of theirs serves, and instances a leaving node
 * takes down are placed on the nodes left. */
#define _POSIX_C_SOURCE 200809L /* pthread types in uv.h under strict C11 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/node_internal.h"
#include "cluster/placement.h"
#include "cluster/state.h"

#define SHA_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* The master's side of a test: a state and what was emitted into it. */
typedef struct master {
    cairn_cluster_state *s;
    instance_care care;
    cairn_rng rng;
    uint32_t placed, deleted;
    cairn_event last;
} master;

/* As the node's master_emit: numbered, and a placement gets its secret. */
static int emit(void *user, cairn_event *e, cairn_err *err) {
    master *m = user;
    if (e->type == CAIRN_EVENT_INSTANCE_PLACED &&
        cairn_instance_secret_new(e->as.instance_placed.secret, sizeof e->as.instance_placed.secret,
                                  err) != 0) {
        return -1;
    }
    e->index = m->s->last_index + 1;
    e->term = e->type == CAIRN_EVENT_MASTER_ELECTED ? m->s->term + 1 : m->s->term;
    if (cairn_state_apply(m->s, e, err) != 0) {
        return -1;
    }
    m->placed += e->type == CAIRN_EVENT_INSTANCE_PLACED;
    m->deleted += e->type == CAIRN_EVENT_INSTANCE_DELETED;
    m->last = *e;
    return 0;
}

static void must_emit(master *m, cairn_event *e) {
    cairn_err err = {{0}};
    if (emit(m, e, &err) != 0) {
        fail_msg("%s", err.msg);
    }
}

static void add_node(master *m, const char *id, uint64_t avail) {
    cairn_event *e = calloc(1, sizeof *e);
    assert_non_null(e);
    if (m->s->term == 0) {
        e->type = CAIRN_EVENT_MASTER_ELECTED;
        snprintf(e->as.master_elected.master_id, CAIRN_STATE_ID_SIZE, "%s", id);
        must_emit(m, e);
        memset(e, 0, sizeof *e);
    }
    e->type = CAIRN_EVENT_NODE_JOINED;
    snprintf(e->as.node_joined.node_id, CAIRN_STATE_ID_SIZE, "%s", id);
    must_emit(m, e);
    memset(e, 0, sizeof *e);
    e->type = CAIRN_EVENT_NODE_PROFILE_UPDATED;
    snprintf(e->as.node_profile_updated.node_id, CAIRN_STATE_ID_SIZE, "%s", id);
    cairn_node_profile *p = &e->as.node_profile_updated.profile;
    p->memory_total = p->memory_available = avail;
    p->n_model_files = 1;
    cairn_model_file *f = &p->model_files[0];
    snprintf(f->name, sizeof f->name, "m.gguf");
    snprintf(f->sha256, sizeof f->sha256, SHA_A);
    f->size = 1000;
    f->n_layers = 8;
    f->layer_bytes = 100;
    must_emit(m, e);
    free(e);
}

static master *new_master(void) {
    master *m = calloc(1, sizeof *m);
    assert_non_null(m);
    cairn_err err = {{0}};
    m->s = cairn_state_new("test", &err);
    assert_non_null(m->s);
    care_init(&m->care);
    cairn_rng_seed(&m->rng, 42);
    return m;
}

static void free_master(master *m) {
    free(m->s);
    free(m);
}

static void tick(master *m, double now) {
    care_tick(&m->care, m->s, now, &m->rng, NULL, emit, m);
}

/* Places m.gguf on exactly n nodes and returns the new instance. */
static const cairn_instance *place(master *m, uint32_t n) {
    cairn_placement_request r;
    memset(&r, 0, sizeof r);
    snprintf(r.model, sizeof r.model, "m.gguf");
    r.n_nodes = n;
    cairn_event e;
    char reason[256];
    if (cairn_placement_plan(m->s, &r, "i-first", &e, reason, sizeof reason) != 0) {
        fail_msg("%s", reason);
    }
    must_emit(m, &e);
    return cairn_state_find_instance(m->s, "i-first");
}

static void set_runner(master *m, const char *instance, uint32_t shard, cairn_runner_state st) {
    cairn_event e;
    memset(&e, 0, sizeof e);
    e.type = CAIRN_EVENT_RUNNER_STATE_CHANGED;
    snprintf(e.as.runner_state_changed.instance_id, CAIRN_STATE_ID_SIZE, "%s", instance);
    e.as.runner_state_changed.shard = shard;
    e.as.runner_state_changed.runner.state = st;
    if (st == CAIRN_RUNNER_FAILED) {
        snprintf(e.as.runner_state_changed.runner.reason, CAIRN_STATE_REASON_SIZE, "boom");
    } else if (st != CAIRN_RUNNER_IDLE) {
        e.as.runner_state_changed.runner.port = 4000;
    }
    if (st == CAIRN_RUNNER_LOADING) {
        e.as.runner_state_changed.runner.done = e.as.runner_state_changed.runner.total = 1;
    }
    must_emit(m, &e);
}

/* Takes shard 0's runner from IDLE through its lifecycle to READY. */
static void bring_up(master *m, const char *instance) {
    static const cairn_runner_state steps[] = {
        CAIRN_RUNNER_CONNECTING, CAIRN_RUNNER_CONNECTED,  CAIRN_RUNNER_LOADING,
        CAIRN_RUNNER_LOADED,     CAIRN_RUNNER_WARMING_UP, CAIRN_RUNNER_READY,
    };
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(steps); i++) {
        set_runner(m, instance, 0, steps[i]);
    }
}

static void fail_runner(master *m, const char *instance, uint32_t shard) {
    set_runner(m, instance, shard, CAIRN_RUNNER_FAILED);
}

static const cairn_instance *only_instance(master *m) {
    assert_int_equal(m->s->n_instances, 1);
    return &m->s->instances[0];
}

/* A failed instance goes at once and comes back after a second on the same nodes. */
static void test_failed_instance_placed_again(void **unused) {
    (void)unused;
    master *m = new_master();
    add_node(m, "a", 500);
    add_node(m, "b", 500);
    add_node(m, "c", 500);
    place(m, 2);
    fail_runner(m, "i-first", 1);
    tick(m, 100.0);
    assert_int_equal(m->deleted, 1);
    assert_int_equal(m->s->n_instances, 0);
    tick(m, 100.5);
    assert_int_equal(m->placed, 1); /* only the first, by hand */
    tick(m, 101.0);
    assert_int_equal(m->placed, 2);
    const cairn_instance *in = only_instance(m);
    assert_int_equal(strncmp(in->id, "i-", 2), 0);
    assert_int_equal(strlen(in->id), 10);
    assert_int_equal(in->n_shards, 2);
    assert_string_equal(in->shards[0].node_id, "a");
    assert_string_equal(in->shards[1].node_id, "b");
    assert_int_equal(care_node_failures(&m->care, "b"), 1);
    assert_int_equal(care_node_failures(&m->care, "a"), 0);
    tick(m, 200.0); /* nothing more to do */
    assert_int_equal(m->placed, 2);
    assert_int_equal(m->deleted, 1);
    free_master(m);
}

/* Attempts that fail back off 1, 2, 4, ... seconds, at most 30. */
static void test_backoff(void **unused) {
    (void)unused;
    master *m = new_master();
    add_node(m, "a", 1000);
    place(m, 1);
    fail_runner(m, "i-first", 0);
    tick(m, 0.0);
    assert_int_equal(m->deleted, 1);
    /* The model no longer fits anywhere: a's memory drops. */
    cairn_event *e = calloc(1, sizeof *e);
    assert_non_null(e);
    e->type = CAIRN_EVENT_NODE_PROFILE_UPDATED;
    snprintf(e->as.node_profile_updated.node_id, CAIRN_STATE_ID_SIZE, "a");
    e->as.node_profile_updated.profile = cairn_state_find_node(m->s, "a")->profile;
    e->as.node_profile_updated.profile.memory_available = 10;
    must_emit(m, e);
    /* Attempts at 1, then 1 + 1, 2 + 2, 4 + 4, ...: count them second by second. */
    static const double attempts[] = {1, 2, 4, 8, 16, 32, 62, 92};
    uint32_t seen = 0;
    uint64_t index = m->s->last_index;
    for (double t = 0.0; t <= 92.0; t += 0.5) {
        double next = m->care.intents[0].next_attempt;
        tick(m, t);
        if (m->care.intents[0].next_attempt != next) {
            assert_true(seen < CAIRN_ARRAY_LEN(attempts));
            assert_true(t == attempts[seen]);
            seen++;
        }
    }
    assert_int_equal(seen, CAIRN_ARRAY_LEN(attempts));
    assert_int_equal(m->s->last_index, index); /* nothing emitted meanwhile */
    /* Memory comes back: the next attempt places it. */
    e->as.node_profile_updated.profile.memory_available = 1000;
    must_emit(m, e);
    tick(m, 200.0);
    assert_int_equal(m->placed, 2);
    assert_int_equal(m->care.n_intents, 0);
    free(e);
    free_master(m);
}

/* After three failures on a node, placements leave it out. */
static void test_failing_node_left_out(void **unused) {
    (void)unused;
    master *m = new_master();
    add_node(m, "a", 900);
    add_node(m, "b", 800);
    place(m, 1); /* on a, the node with the most memory */
    assert_string_equal(only_instance(m)->shards[0].node_id, "a");
    double now = 0;
    for (int round = 0; round < 3; round++) {
        const cairn_instance *in = only_instance(m);
        assert_string_equal(in->shards[0].node_id, round < 3 ? "a" : "b");
        char id[CAIRN_STATE_ID_SIZE];
        snprintf(id, sizeof id, "%s", in->id);
        fail_runner(m, id, 0);
        tick(m, now);
        now += 10.0; /* past the backoff, well within the failures' half-life */
        tick(m, now);
    }
    assert_int_equal(care_node_failures(&m->care, "a"), 3);
    assert_string_equal(only_instance(m)->shards[0].node_id, "b");
    free_master(m);
}

/* Fails the only instance once its runner is up, and lets the care delete it. */
static void fail_only_instance(master *m, double now) {
    char id[CAIRN_STATE_ID_SIZE];
    snprintf(id, sizeof id, "%s", only_instance(m)->id);
    fail_runner(m, id, 0);
    tick(m, now);
    assert_int_equal(m->s->n_instances, 0);
}

/* On a single node, three failures leave it out: the care says why it cannot place the
 * model; the failures halve after a quiet half-life, and the node is tried again. */
static void test_failures_fade(void **unused) {
    (void)unused;
    master *m = new_master();
    add_node(m, "a", 900);
    place(m, 1);
    double now = 0;
    for (int round = 0; round < 3; round++) {
        fail_only_instance(m, now);
        now += 10.0; /* past the backoff */
        tick(m, now);
    }
    assert_int_equal(care_node_failures(&m->care, "a"), 3);
    assert_int_equal(m->s->n_instances, 0);
    const char *why = care_placement_blocked(&m->care, "m.gguf");
    assert_non_null(why);
    assert_non_null(strstr(why, "left out after repeated runner failures: a"));
    assert_ptr_equal(care_placement_blocked(&m->care, SHA_A), why);
    assert_null(care_placement_blocked(&m->care, "other.gguf"));
    /* the last failure was at 20: at 50 the count halves, and a later try places it */
    for (; now < 50.0 - 0.25; now += 0.5) {
        tick(m, now);
    }
    assert_int_equal(m->s->n_instances, 0);
    for (; now <= 50.0 + CARE_FAILURE_HALF_LIFE_S && m->s->n_instances == 0; now += 0.5) {
        tick(m, now);
    }
    assert_int_equal(care_node_failures(&m->care, "a"), 1);
    assert_string_equal(only_instance(m)->shards[0].node_id, "a");
    assert_null(care_placement_blocked(&m->care, "m.gguf"));
    /* quiet for long enough, the node is forgotten */
    tick(m, now + 2 * CARE_FAILURE_HALF_LIFE_S);
    assert_int_equal(care_node_failures(&m->care, "a"), 0);
    assert_int_equal(m->care.n_node_failures, 0);
    free_master(m);
}

/* A runner that serves a request to the end forgives its node; one that fails while
 * serving does not. */
static void test_service_forgives(void **unused) {
    (void)unused;
    master *m = new_master();
    add_node(m, "a", 900);
    place(m, 1);
    fail_only_instance(m, 0.0);
    tick(m, 5.0);
    fail_only_instance(m, 5.0);
    tick(m, 10.0);
    assert_int_equal(care_node_failures(&m->care, "a"), 2);
    char id[CAIRN_STATE_ID_SIZE];
    snprintf(id, sizeof id, "%s", only_instance(m)->id);
    bring_up(m, id);
    tick(m, 11.0);
    assert_int_equal(care_node_failures(&m->care, "a"), 2); /* ready is not serving */
    set_runner(m, id, 0, CAIRN_RUNNER_RUNNING);
    tick(m, 12.0);
    fail_only_instance(m, 13.0); /* it fails while serving */
    assert_int_equal(care_node_failures(&m->care, "a"), 3);
    /* the half-life brings it back; this time its runner serves to the end */
    double now = 14.0;
    for (; now < 100.0 && m->s->n_instances == 0; now += 0.5) {
        tick(m, now);
    }
    snprintf(id, sizeof id, "%s", only_instance(m)->id);
    bring_up(m, id);
    set_runner(m, id, 0, CAIRN_RUNNER_RUNNING);
    tick(m, now);
    assert_int_equal(care_node_failures(&m->care, "a"), 1);
    set_runner(m, id, 0, CAIRN_RUNNER_READY);
    tick(m, now + 0.5);
    assert_int_equal(care_node_failures(&m->care, "a"), 0);
    free_master(m);
}

/* A leaving node takes its instances down; they come back on the fewest nodes left. */
static void test_node_left(void **unused) {
    (void)unused;
    master *m = new_master();
    add_node(m, "a", 500);
    add_node(m, "b", 500);
    add_node(m, "c", 900);
    place(m, 2); /* on c and one of a, b */
    const cairn_instance *in = only_instance(m);
    char gone[CAIRN_STATE_ID_SIZE];
    snprintf(gone, sizeof gone, "%s", in->shards[0].node_id);
    care_node_leaving(&m->care, m->s, gone, 10.0, NULL);
    cairn_event e;
    memset(&e, 0, sizeof e);
    e.type = CAIRN_EVENT_NODE_LEFT;
    snprintf(e.as.node_left.node_id, CAIRN_STATE_ID_SIZE, "%s", gone);
    must_emit(m, &e);
    assert_int_equal(m->s->n_instances, 0);
    tick(m, 10.0);
    in = only_instance(m);
    assert_int_equal(in->n_shards, 1);
    assert_string_equal(in->shards[0].node_id, "c");
    free_master(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failed_instance_placed_again),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_failing_node_left_out),
        cmocka_unit_test(test_failures_fade),
        cmocka_unit_test(test_service_forgives),
        cmocka_unit_test(test_node_left),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
