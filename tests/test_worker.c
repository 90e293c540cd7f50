/* worker: runners spawned from the cluster state, their lifecycle proposed in order, the
 * "next" message, deadlines, crashes, shutdown and close, all with real processes of the
 * runner stub (tests/helpers/runner_stub.c) on a real libuv loop. The harness plays the
 * master: it applies the worker's proposals to its own state, then syncs the worker. */
#define _POSIX_C_SOURCE 200809L /* pthread types in uv.h under strict C11 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "cluster/state.h"
#include "platform/platform.h"
#include "worker/worker.h"

#define SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define MAX_GOT 512

typedef struct proposal {
    char instance[CAIRN_STATE_ID_SIZE];
    uint32_t shard;
    cairn_runner runner;
} proposal;

typedef struct harness {
    uv_loop_t loop;
    uv_timer_t driver;
    cairn_cluster_state *state;
    cairn_worker *w;
    proposal got[MAX_GOT]; /* every proposal, in order */
    size_t n_got;
    proposal pending[MAX_GOT]; /* to apply at the next drive */
    size_t n_pending;
    int drop; /* proposals to lose (a master change, say) */
    char stub_log[256];
} harness;

static void apply(harness *h, cairn_event *e) {
    e->index = h->state->last_index + 1;
    e->term = e->type == CAIRN_EVENT_MASTER_ELECTED ? h->state->term + 1 : h->state->term;
    cairn_err err = {{0}};
    int rc = cairn_state_apply(h->state, e, &err);
    if (rc != 0 && e->type != CAIRN_EVENT_RUNNER_STATE_CHANGED) {
        fail_msg("apply: %s", err.msg); /* a refused runner step is what a master does too */
    }
}

static void on_report(void *user, cairn_event *e) {
    harness *h = user;
    assert_int_equal(e->type, CAIRN_EVENT_RUNNER_STATE_CHANGED);
    proposal p;
    snprintf(p.instance, sizeof p.instance, "%s", e->as.runner_state_changed.instance_id);
    p.shard = e->as.runner_state_changed.shard;
    p.runner = e->as.runner_state_changed.runner;
    assert_true(h->n_got < MAX_GOT);
    h->got[h->n_got++] = p;
    if (h->drop > 0) {
        h->drop--;
        return;
    }
    assert_true(h->n_pending < MAX_GOT);
    h->pending[h->n_pending++] = p;
}

static void drive(uv_timer_t *t) {
    harness *h = t->data;
    for (size_t i = 0; i < h->n_pending; i++) {
        cairn_event *e = calloc(1, sizeof *e);
        assert_non_null(e);
        e->type = CAIRN_EVENT_RUNNER_STATE_CHANGED;
        snprintf(e->as.runner_state_changed.instance_id,
                 sizeof e->as.runner_state_changed.instance_id, "%s", h->pending[i].instance);
        e->as.runner_state_changed.shard = h->pending[i].shard;
        e->as.runner_state_changed.runner = h->pending[i].runner;
        apply(h, e);
        free(e);
    }
    h->n_pending = 0;
    if (h->w) {
        cairn_worker_sync(h->w, h->state);
        cairn_worker_tick(h->w, cairn_now_seconds());
    }
}

static void add_node(harness *h, const char *id, const char *host) {
    cairn_event *e = calloc(1, sizeof *e);
    assert_non_null(e);
    e->type = CAIRN_EVENT_NODE_JOINED;
    snprintf(e->as.node_joined.node_id, sizeof e->as.node_joined.node_id, "%s", id);
    e->as.node_joined.n_addresses = 1;
    snprintf(e->as.node_joined.addresses[0].host, sizeof e->as.node_joined.addresses[0].host, "%s",
             host);
    e->as.node_joined.addresses[0].port = 4000;
    apply(h, e);
    free(e);
}

/* An instance of 4 layers split evenly over the named nodes. */
static void place(harness *h, const char *id, const char *const *nodes, uint32_t n_shards) {
    cairn_event *e = calloc(1, sizeof *e);
    assert_non_null(e);
    e->type = CAIRN_EVENT_INSTANCE_PLACED;
    snprintf(e->as.instance_placed.instance_id, sizeof e->as.instance_placed.instance_id, "%s", id);
    snprintf(e->as.instance_placed.model, sizeof e->as.instance_placed.model, "m.gguf");
    snprintf(e->as.instance_placed.model_sha256, sizeof e->as.instance_placed.model_sha256, SHA);
    snprintf(e->as.instance_placed.secret, sizeof e->as.instance_placed.secret, SHA);
    e->as.instance_placed.n_layers = 4;
    e->as.instance_placed.n_shards = n_shards;
    for (uint32_t k = 0; k < n_shards; k++) {
        cairn_shard_spec *s = &e->as.instance_placed.shards[k];
        snprintf(s->node_id, sizeof s->node_id, "%s", nodes[k]);
        s->layer_start = 4 * k / n_shards;
        s->layer_end = 4 * (k + 1) / n_shards;
    }
    apply(h, e);
    free(e);
}

static void delete_instance(harness *h, const char *id) {
    cairn_event e;
    memset(&e, 0, sizeof e);
    e.type = CAIRN_EVENT_INSTANCE_DELETED;
    snprintf(e.as.instance_deleted.instance_id, sizeof e.as.instance_deleted.instance_id, "%s", id);
    apply(h, &e);
}

static void set_runner(harness *h, const char *id, uint32_t k, cairn_runner_state st,
                       uint16_t port) {
    cairn_event e;
    memset(&e, 0, sizeof e);
    e.type = CAIRN_EVENT_RUNNER_STATE_CHANGED;
    snprintf(e.as.runner_state_changed.instance_id, sizeof e.as.runner_state_changed.instance_id,
             "%s", id);
    e.as.runner_state_changed.shard = k;
    e.as.runner_state_changed.runner.state = st;
    e.as.runner_state_changed.runner.port = port;
    apply(h, &e);
}

static harness *harness_new(const char *mode, double load_timeout_s, double progress_timeout_s) {
    harness *h = calloc(1, sizeof *h);
    assert_non_null(h);
    assert_int_equal(uv_loop_init(&h->loop), 0);
    cairn_err err = {{0}};
    h->state = cairn_state_new("test", &err);
    assert_non_null(h->state);
    cairn_event e;
    memset(&e, 0, sizeof e);
    e.type = CAIRN_EVENT_MASTER_ELECTED;
    snprintf(e.as.master_elected.master_id, sizeof e.as.master_elected.master_id, "n1");
    apply(h, &e);
    add_node(h, "n1", "127.0.0.1");
    add_node(h, "n2", "127.0.0.2");
    assert_int_equal(uv_os_setenv("CAIRN_STUB_MODE", mode), 0);
    snprintf(h->stub_log, sizeof h->stub_log, "%s/test_worker_stub_%d.log", CAIRN_BINARY_DIR,
             (int)uv_os_getpid());
    remove(h->stub_log);
    assert_int_equal(uv_os_setenv("CAIRN_STUB_LOG", h->stub_log), 0);
    cairn_worker_config cfg = {.node_id = "n1",
                               .runner_exe = CAIRN_RUNNER_STUB,
                               .models_dir = CAIRN_BINARY_DIR,
                               .listen_host = "127.0.0.1",
                               .load_timeout_s = load_timeout_s,
                               .progress_timeout_s = progress_timeout_s,
                               .report = on_report,
                               .user = h};
    assert_int_equal(cairn_worker_new(&h->loop, &cfg, &h->w, &err), 0);
    assert_int_equal(uv_timer_init(&h->loop, &h->driver), 0);
    h->driver.data = h;
    assert_int_equal(uv_timer_start(&h->driver, drive, 20, 20), 0);
    return h;
}

/* Closes the worker (if the test did not) and checks that nothing is left: no handle on
 * the loop, no runner process. */
static void harness_free(harness *h, const int *pids, size_t n_pids) {
    if (h->w) {
        cairn_worker_close(h->w);
        h->w = NULL;
    }
    uv_close((uv_handle_t *)&h->driver, NULL);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&h->loop), 0);
    for (size_t i = 0; i < n_pids; i++) {
        assert_false(cairn_process_alive(pids[i]));
    }
    remove(h->stub_log);
    free(h->state);
    free(h);
}

typedef bool (*predicate)(harness *h);

static bool wait_until(harness *h, predicate p, double timeout_s) {
    double end = cairn_now_seconds() + timeout_s;
    while (!p(h)) {
        if (cairn_now_seconds() > end) {
            return false;
        }
        uv_run(&h->loop, UV_RUN_ONCE);
    }
    return true;
}

static const cairn_runner *runner_of(harness *h, const char *id, uint32_t k) {
    const cairn_instance *in = cairn_state_find_instance(h->state, id);
    return in && k < in->n_shards ? &in->shards[k].runner : NULL;
}

static bool i1_ready(harness *h) {
    const cairn_runner *r = runner_of(h, "i1", 0);
    return r && r->state == CAIRN_RUNNER_READY;
}

static bool i1_connecting(harness *h) {
    const cairn_runner *r = runner_of(h, "i1", 0);
    return r && r->state == CAIRN_RUNNER_CONNECTING;
}

static bool i1_final(harness *h) {
    const cairn_runner *r = runner_of(h, "i1", 0);
    return r && (r->state == CAIRN_RUNNER_FAILED || r->state == CAIRN_RUNNER_SHUT_DOWN);
}

static bool no_runner(harness *h) {
    return cairn_worker_live_count(h->w) == 0;
}

static int only_pid(harness *h) {
    int pid = 0;
    assert_int_equal(cairn_worker_pids(h->w, &pid, 1), 1);
    assert_true(cairn_process_alive(pid));
    return pid;
}

/* The stub's log holds a "next" message with this host and port. */
static void assert_next_received(harness *h, const char *host, int port) {
    char want[128];
    snprintf(want, sizeof want, "{\"op\":\"next\",\"host\":\"%s\",\"port\":%d}", host, port);
    char *text = cairn_read_file(h->stub_log, NULL, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, want));
    free(text);
}

static void test_lifecycle_in_order(void **state) {
    (void)state;
    harness *h = harness_new("normal", 0, 0);
    const char *nodes[] = {"n1"};
    place(h, "i1", nodes, 1);
    assert_true(wait_until(h, i1_ready, 10));
    int pid = only_pid(h);
    /* Every step in lifecycle order, each carrying the port. */
    const cairn_runner_state want[] = {CAIRN_RUNNER_CONNECTING, CAIRN_RUNNER_CONNECTED,
                                       CAIRN_RUNNER_LOADING,    CAIRN_RUNNER_LOADED,
                                       CAIRN_RUNNER_WARMING_UP, CAIRN_RUNNER_READY};
    size_t at = 0;
    uint64_t last_done = 0;
    for (size_t i = 0; i < h->n_got; i++) {
        const cairn_runner *r = &h->got[i].runner;
        assert_string_equal(h->got[i].instance, "i1");
        assert_int_equal(r->port, 30000);
        while (at < CAIRN_ARRAY_LEN(want) && want[at] != r->state) {
            at++;
        }
        assert_true(at < CAIRN_ARRAY_LEN(want));
        if (r->state == CAIRN_RUNNER_LOADING) {
            assert_int_equal(r->total, 4);
            assert_true(r->done >= last_done);
            last_done = r->done;
        }
    }
    assert_int_equal(last_done, 4); /* the last progress always goes out */
    assert_int_equal(runner_of(h, "i1", 0)->port, 30000);
    /* A single shard's next runner is itself. */
    assert_next_received(h, "127.0.0.1", 30000);

    /* The instance goes: the runner is told to shut down and its process is reaped. */
    delete_instance(h, "i1");
    assert_true(wait_until(h, no_runner, 10));
    assert_false(cairn_process_alive(pid));
    harness_free(h, &pid, 1);
}

static void test_next_waits_for_the_neighbour(void **state) {
    (void)state;
    harness *h = harness_new("normal", 0, 0);
    const char *nodes[] = {"n1", "n2"};
    place(h, "i1", nodes, 2);
    assert_true(wait_until(h, i1_connecting, 10));
    double until = cairn_now_seconds() + 0.5;
    while (cairn_now_seconds() < until) {
        uv_run(&h->loop, UV_RUN_ONCE);
    }
    assert_int_equal(runner_of(h, "i1", 0)->state, CAIRN_RUNNER_CONNECTING);
    int pid = only_pid(h);
    set_runner(h, "i1", 1, CAIRN_RUNNER_CONNECTING, 31111); /* n2's runner listens */
    assert_true(wait_until(h, i1_ready, 10));
    assert_next_received(h, "127.0.0.2", 31111);
    harness_free(h, &pid, 1);
    /* harness_free closed the worker: the runner got its shutdown and is gone. */
}

static void test_hung_load_is_killed(void **state) {
    (void)state;
    harness *h = harness_new("hang_load", 1.0, 0);
    const char *nodes[] = {"n1"};
    place(h, "i1", nodes, 1);
    assert_true(wait_until(h, i1_connecting, 10));
    int pid = only_pid(h);
    double started = cairn_now_seconds();
    assert_true(wait_until(h, i1_final, 10));
    double took = cairn_now_seconds() - started;
    assert_true(took >= 0.9 && took < 5.0);
    const cairn_runner *r = runner_of(h, "i1", 0);
    assert_int_equal(r->state, CAIRN_RUNNER_FAILED);
    assert_string_equal(r->reason, "load did not finish in 1 s");
    assert_true(wait_until(h, no_runner, 5));
    assert_false(cairn_process_alive(pid)); /* killed and reaped */
    harness_free(h, &pid, 1);
}

static void test_crash_reports_the_status(void **state) {
    (void)state;
    harness *h = harness_new("crash", 0, 0);
    const char *nodes[] = {"n1"};
    place(h, "i1", nodes, 1);
    assert_true(wait_until(h, i1_final, 10));
    const cairn_runner *r = runner_of(h, "i1", 0);
    assert_int_equal(r->state, CAIRN_RUNNER_FAILED);
    assert_string_equal(r->reason, "runner exited with status 3");
    assert_true(wait_until(h, no_runner, 5));
    harness_free(h, NULL, 0);
}

static void test_stalled_run_is_killed(void **state) {
    (void)state;
    harness *h = harness_new("stall_running", 0, 1.0);
    const char *nodes[] = {"n1"};
    place(h, "i1", nodes, 1);
    assert_true(wait_until(h, i1_final, 10));
    assert_string_equal(runner_of(h, "i1", 0)->reason, "no progress for 1 s while running");
    assert_true(wait_until(h, no_runner, 5));
    harness_free(h, NULL, 0);
}

static void test_close_leaves_no_process(void **state) {
    (void)state;
    /* A hung runner ignores shutdown and its stdin: the close must kill it. */
    harness *h = harness_new("hang_load", 0, 0);
    const char *nodes[] = {"n1"};
    place(h, "i1", nodes, 1);
    assert_true(wait_until(h, i1_connecting, 10));
    int pid = only_pid(h);
    double until = cairn_now_seconds() + 0.3;
    while (cairn_now_seconds() < until) {
        uv_run(&h->loop, UV_RUN_ONCE);
    }
    double started = cairn_now_seconds();
    harness_free(h, &pid, 1);
    assert_true(cairn_now_seconds() - started < 5.0);
}

static bool connecting_proposed_twice(harness *h) {
    int count = 0;
    for (size_t i = 0; i < h->n_got; i++) {
        count += h->got[i].runner.state == CAIRN_RUNNER_CONNECTING;
    }
    return count >= 2;
}

static void test_dropped_proposal_is_made_again(void **state) {
    (void)state;
    harness *h = harness_new("normal", 0, 0);
    h->drop = 1; /* the step to connecting is lost on its way */
    const char *nodes[] = {"n1"};
    place(h, "i1", nodes, 1);
    assert_true(wait_until(h, connecting_proposed_twice, 5));
    assert_true(wait_until(h, i1_ready, 10));
    int pid = only_pid(h);
    harness_free(h, &pid, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifecycle_in_order),
        cmocka_unit_test(test_next_waits_for_the_neighbour),
        cmocka_unit_test(test_hung_load_is_killed),
        cmocka_unit_test(test_crash_reports_the_status),
        cmocka_unit_test(test_stalled_run_is_killed),
        cmocka_unit_test(test_close_leaves_no_process),
        cmocka_unit_test(test_dropped_proposal_is_made_again),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
