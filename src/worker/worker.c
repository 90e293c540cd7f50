/*
 * worker: the runners of this node against the cluster state: which to spawn and shut down,
 * each runner's lifecycle from its control messages to proposals (queued until the state
 * shows them), its deadlines, and the worker's close. One runner process is process.c's.
 *
 * A runner's record lives as long as its process handles are open or it still has
 * something to tell the state; a record without a process (a "tombstone") reports a runner
 * the state believes in but this node no longer has, e.g. after the node restarted.
 */
#define _POSIX_C_SOURCE 200809L /* pthread types in uv.h under strict C11 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cluster/json_fields.h"
#include "util/defaults.h"
#include "util/log.h"
#include "worker/worker_internal.h"

#define MIB ((uint64_t)1 << 20)

/* ---- runner states ---- */

static bool state_final(cairn_runner_state st) {
    return st == CAIRN_RUNNER_SHUT_DOWN || st == CAIRN_RUNNER_FAILED;
}

static bool runner_equal(const cairn_runner *a, const cairn_runner *b) {
    return a->state == b->state && a->done == b->done && a->total == b->total &&
           a->port == b->port && strcmp(a->reason, b->reason) == 0;
}

static bool process_alive(const worker_runner *r) {
    return r->pid != 0 && !r->exited;
}

/* ---- proposals ---- */

static void propose(worker_runner *r, const cairn_runner *st) {
    cairn_worker *w = r->w;
    if (w->closing || !w->report) {
        return;
    }
    cairn_event *e = calloc(1, sizeof *e);
    if (!e) {
        return;
    }
    e->type = CAIRN_EVENT_RUNNER_STATE_CHANGED;
    snprintf(e->as.runner_state_changed.instance_id, sizeof e->as.runner_state_changed.instance_id,
             "%s", r->instance_id);
    e->as.runner_state_changed.shard = r->shard;
    e->as.runner_state_changed.runner = *st;
    w->report(w->user, e);
    free(e);
}

static void queue_drop_head(worker_runner *r, uint32_t count) {
    if (count > r->n_queue) {
        count = r->n_queue;
    }
    memmove(r->queue, r->queue + count, (r->n_queue - count) * sizeof r->queue[0]);
    memmove(r->proposed_at, r->proposed_at + count, (r->n_queue - count) * sizeof(double));
    r->n_queue -= count;
}

/* Queues a step and proposes it at once. A step the queue holds already (READY after
 * RUNNING after READY, or more loading progress) replaces that entry and what follows it:
 * the state reaching it is as good, and it keeps the queue as short as the lifecycle. */
static void push(worker_runner *r, const cairn_runner *st) {
    if (st->state == CAIRN_RUNNER_FAILED) {
        r->n_queue = 0; /* legal from any step: nothing before it matters any more */
        r->has_held = false;
    }
    uint32_t at = r->n_queue;
    for (uint32_t i = 0; i < r->n_queue; i++) {
        if (r->queue[i].state == st->state && r->queue[i].total == st->total) {
            at = i;
            break;
        }
    }
    if (at == WORKER_QUEUE_MAX) {
        queue_drop_head(r, 1); /* cannot happen with the lifecycle's steps; stay bounded */
        at--;
    }
    r->queue[at] = *st;
    r->proposed_at[at] = cairn_now_seconds();
    r->n_queue = at + 1;
    if (st->state == CAIRN_RUNNER_LOADING) {
        r->last_loading_at = r->proposed_at[at];
    }
    propose(r, st);
}

/* Loading progress goes out a few times a second; any other step flushes it first. */
static void enqueue(worker_runner *r, const cairn_runner *st) {
    double now = cairn_now_seconds();
    if (st->state == CAIRN_RUNNER_LOADING && r->last_loading_at > 0 &&
        now - r->last_loading_at < WORKER_PROGRESS_REPORT_S) {
        r->held = *st;
        r->has_held = true;
        return;
    }
    if (r->has_held && st->state != CAIRN_RUNNER_FAILED) {
        r->has_held = false;
        push(r, &r->held);
    }
    r->has_held = false;
    push(r, st);
}

/* Drops the queued steps the state shows (up to the last one it equals). */
static void sync_queue(worker_runner *r, const cairn_runner *seen) {
    if (state_final(seen->state)) {
        r->n_queue = 0;
        r->has_held = false;
        return;
    }
    for (uint32_t i = r->n_queue; i-- > 0;) {
        if (runner_equal(&r->queue[i], seen)) {
            queue_drop_head(r, i + 1);
            return;
        }
    }
}

/* ---- the runner's lifecycle ---- */

static void set_deadline(worker_runner *r, double seconds, const char *what) {
    r->deadline = cairn_now_seconds() + seconds;
    snprintf(r->deadline_reason, sizeof r->deadline_reason, "%s did not finish in %.0f s", what,
             seconds);
}

static double load_timeout(const worker_runner *r) {
    const cairn_worker *w = r->w;
    return w->load_timeout_s > 0 ? w->load_timeout_s
                                 : 30.0 + (double)r->shard_bytes / (double)(64 * MIB);
}

/* Deadlines follow the step the runner reached. */
static void supervise(worker_runner *r, cairn_runner_state st) {
    cairn_worker *w = r->w;
    switch (st) {
    case CAIRN_RUNNER_CONNECTING: r->deadline = 0; break; /* the neighbours decide */
    case CAIRN_RUNNER_CONNECTED: set_deadline(r, load_timeout(r), "load"); break;
    case CAIRN_RUNNER_LOADED: set_deadline(r, w->warmup_timeout_s, "warm-up"); break;
    case CAIRN_RUNNER_READY: r->deadline = 0; break;
    case CAIRN_RUNNER_RUNNING:
        r->deadline = cairn_now_seconds() + w->progress_timeout_s;
        snprintf(r->deadline_reason, sizeof r->deadline_reason,
                 "no progress for %.0f s while running", w->progress_timeout_s);
        break;
    case CAIRN_RUNNER_SHUTTING_DOWN:
        r->deadline = 0;
        if (r->kill_at == 0) {
            r->kill_at = cairn_now_seconds() + WORKER_SHUTDOWN_GRACE_S;
        }
        break;
    default: break;
    }
}

static void step(worker_runner *r, const cairn_runner *next) {
    if (!cairn_runner_can_change(&r->cur, next)) {
        worker_fail_runner(r, "the runner broke the control protocol: it went from %s to %s",
                           cairn_runner_state_name(r->cur.state),
                           cairn_runner_state_name(next->state));
        return;
    }
    cairn_log(r->w->log, next->state == CAIRN_RUNNER_LOADING ? CAIRN_LOG_DEBUG : CAIRN_LOG_INFO,
              "runner %s/%u: %s", r->instance_id, r->shard, cairn_runner_state_name(next->state));
    r->cur = *next;
    supervise(r, next->state);
    enqueue(r, next);
}

static void fail_with(worker_runner *r, const char *reason) {
    r->deadline = 0;
    if (state_final(r->cur.state)) {
        return;
    }
    cairn_log(r->w->log, CAIRN_LOG_WARN, "runner %s/%u failed: %s", r->instance_id, r->shard,
              reason);
    cairn_runner st;
    memset(&st, 0, sizeof st);
    st.state = CAIRN_RUNNER_FAILED;
    st.port = r->cur.port;
    cairn_utf8_printable_copy(st.reason, sizeof st.reason, reason[0] ? reason : "failed");
    r->cur = st;
    push(r, &st);
}

void worker_fail_runner(worker_runner *r, const char *fmt, ...) {
    char reason[CAIRN_STATE_REASON_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (process_alive(r)) {
        runner_kill(r);
    }
    runner_close_stdin(r);
    fail_with(r, reason);
}

/* The runner's step for a control message; -1 with err when it is no valid step. */
static int parse_step(worker_runner *r, const cJSON *msg, const char *op, cairn_runner *next,
                      cairn_err *err) {
    static const struct {
        const char *op;
        cairn_runner_state state;
    } plain[] = {
        {"connected", CAIRN_RUNNER_CONNECTED},   {"loaded", CAIRN_RUNNER_LOADED},
        {"warming_up", CAIRN_RUNNER_WARMING_UP}, {"ready", CAIRN_RUNNER_READY},
        {"running", CAIRN_RUNNER_RUNNING},       {"shutting_down", CAIRN_RUNNER_SHUTTING_DOWN},
    };
    memset(next, 0, sizeof *next);
    next->port = r->cur.port;
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(plain); i++) {
        if (strcmp(op, plain[i].op) == 0) {
            next->state = plain[i].state;
            return CAIRN_JSON_EXPECT_FIELDS(msg, err, "op");
        }
    }
    if (strcmp(op, "listening") == 0) {
        uint32_t port = 0;
        next->state = CAIRN_RUNNER_CONNECTING;
        if (CAIRN_JSON_EXPECT_FIELDS(msg, err, "op", "port") != 0 ||
            cairn_json_get_u32(msg, "port", 65535, &port, err) != 0 || port == 0) {
            return cairn_fail(err, "listening: a port in 1..65535 is required");
        }
        next->port = (uint16_t)port;
        return 0;
    }
    if (strcmp(op, "loading") == 0) {
        next->state = CAIRN_RUNNER_LOADING;
        if (CAIRN_JSON_EXPECT_FIELDS(msg, err, "op", "done", "total") != 0 ||
            cairn_json_get_number(msg, "done", &next->done, err) != 0 ||
            cairn_json_get_number(msg, "total", &next->total, err) != 0 || next->total == 0 ||
            next->done > next->total) {
            return cairn_fail(err, "loading: done and total must satisfy 0 <= done <= total, "
                                   "1 <= total");
        }
        return 0;
    }
    return cairn_fail(err, "unknown op \"%s\"", op);
}

static void on_failed_message(worker_runner *r, const cJSON *msg) {
    char reason[CAIRN_STATE_REASON_SIZE] = "";
    const cJSON *text = cairn_json_field(msg, "reason");
    if (cJSON_IsString(text)) {
        snprintf(reason, sizeof reason, "%s", text->valuestring);
    }
    runner_close_stdin(r); /* it exits with status 1 by itself */
    fail_with(r, reason[0] ? reason : "the runner failed without a reason");
}

void worker_on_control(worker_runner *r, const cJSON *msg) {
    const cJSON *op = cairn_json_field(msg, "op");
    if (state_final(r->cur.state) || r->w->closing) {
        return;
    }
    if (!cJSON_IsString(op)) {
        worker_fail_runner(r, "the runner broke the control protocol: a message without op");
        return;
    }
    if (strcmp(op->valuestring, "progress") == 0) {
        if (r->cur.state == CAIRN_RUNNER_RUNNING) {
            supervise(r, CAIRN_RUNNER_RUNNING); /* the progress deadline starts over */
        }
        return;
    }
    if (strcmp(op->valuestring, "failed") == 0) {
        on_failed_message(r, msg);
        return;
    }
    cairn_runner next;
    cairn_err err = {{0}};
    if (parse_step(r, msg, op->valuestring, &next, &err) != 0) {
        worker_fail_runner(r, "the runner broke the control protocol: %s", err.msg);
        return;
    }
    step(r, &next);
}

/* ---- process exit ---- */

static bool state_cares(const worker_runner *r) {
    return r->in_state && !(r->has_seen && state_final(r->seen.state)) && !r->w->closing;
}

void worker_on_finished(worker_runner *r) {
    r->finished = true;
    r->deadline = 0;
    r->kill_at = 0;
    if (state_cares(r) && !state_final(r->cur.state)) {
        char reason[CAIRN_STATE_REASON_SIZE];
        if (r->cur.state == CAIRN_RUNNER_SHUTTING_DOWN && r->exit_status == 0 &&
            r->term_signal == 0) {
            cairn_runner st = r->cur;
            st.state = CAIRN_RUNNER_SHUT_DOWN;
            step(r, &st);
        } else {
            if (r->term_signal != 0) {
                snprintf(reason, sizeof reason, "runner killed by signal %d", r->term_signal);
            } else {
                snprintf(reason, sizeof reason, "runner exited with status %lld",
                         (long long)r->exit_status);
            }
            fail_with(r, reason);
        }
    }
    runner_close_handles(r);
}

/* ---- records ---- */

static bool record_done(const worker_runner *r) {
    if (r->open_handles > 0) {
        return false;
    }
    return r->w->closing || !r->in_state || (r->n_queue == 0 && !r->has_held);
}

static void close_check(cairn_worker *w);

static void free_done_records(cairn_worker *w) {
    for (worker_runner **p = &w->runners; *p;) {
        worker_runner *r = *p;
        if (record_done(r)) {
            *p = r->next;
            sodium_memzero(r->secret, sizeof r->secret);
            free(r);
        } else {
            p = &r->next;
        }
    }
    close_check(w);
}

void worker_on_closed(worker_runner *r) {
    free_done_records(r->w);
}

static worker_runner *find_runner(cairn_worker *w, const char *instance_id, uint32_t shard) {
    for (worker_runner *r = w->runners; r; r = r->next) {
        if (r->shard == shard && strcmp(r->instance_id, instance_id) == 0) {
            return r;
        }
    }
    return NULL;
}

static worker_runner *new_record(cairn_worker *w, const cairn_instance *in, uint32_t shard) {
    worker_runner *r = calloc(1, sizeof *r);
    if (!r) {
        cairn_log(w->log, CAIRN_LOG_ERROR, "out of memory for runner %s/%u", in->id, shard);
        return NULL;
    }
    r->w = w;
    snprintf(r->instance_id, sizeof r->instance_id, "%s", in->id);
    snprintf(r->secret, sizeof r->secret, "%s", in->secret);
    r->shard = shard;
    r->in_state = true;
    r->next = w->runners;
    w->runners = r;
    return r;
}

/* ---- spawning ---- */

static uint64_t shard_bytes(const cairn_worker *w, const cairn_cluster_state *s,
                            const cairn_instance *in, const cairn_shard *sh) {
    const cairn_node *self = cairn_state_find_node(s, w->node_id);
    for (uint32_t i = 0; self && i < self->profile.n_model_files; i++) {
        const cairn_model_file *f = &self->profile.model_files[i];
        if (strcmp(f->name, in->model) == 0) {
            return f->layer_bytes * (sh->layer_end - sh->layer_start) +
                   (sh->layer_start == 0 ? f->embd_bytes : 0) +
                   (sh->layer_end == in->n_layers ? f->head_bytes : 0);
        }
    }
    return 0;
}

static int runner_threads(const cairn_worker *w, uint64_t bytes) {
    if (w->threads > 0) {
        return w->threads;
    }
    uint64_t want = (bytes + 16 * MIB - 1) / (16 * MIB);
    uint64_t cpus = (uint64_t)(cairn_cpu_count() > 0 ? cairn_cpu_count() : 1);
    return (int)(want < 1 ? 1 : want > cpus ? cpus : want);
}

/* A model name from the state must name a file in the models directory, nothing else. */
static bool plain_file_name(const char *name) {
    return name[0] && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
           strpbrk(name, "/\\:") == NULL;
}

static void spawn(cairn_worker *w, const cairn_cluster_state *s, const cairn_instance *in,
                  uint32_t k) {
    worker_runner *r = new_record(w, in, k);
    if (!r) {
        return;
    }
    const cairn_shard *sh = &in->shards[k];
    r->shard_bytes = shard_bytes(w, s, in, sh);
    if (!plain_file_name(in->model)) {
        r->exited = r->finished = true;
        fail_with(r, "the model name is not a file name");
        return;
    }
    char path[4096], num[7][24];
    snprintf(path, sizeof path, "%s/%s", w->models_dir, in->model);
    snprintf(num[0], sizeof num[0], "%u", k);
    snprintf(num[1], sizeof num[1], "%u", sh->layer_start);
    snprintf(num[2], sizeof num[2], "%u", sh->layer_end);
    snprintf(num[3], sizeof num[3], "%u", in->n_layers);
    snprintf(num[4], sizeof num[4], "%d", w->slots);
    snprintf(num[5], sizeof num[5], "%d", w->ctx);
    snprintf(num[6], sizeof num[6], "%d", runner_threads(w, r->shard_bytes));
    const char *level = cairn_log_level_name(w->log ? w->log->min_level : CAIRN_LOG_WARN);
    const char *args[] = {w->runner_exe,  "runner",  "--model",    path,       "--instance",
                          in->id,         "--shard", num[0],       "--first",  num[1],
                          "--last",       num[2],    "--n-layers", num[3],     "--listen",
                          w->listen_host, "--slots", num[4],       "--ctx",    num[5],
                          "--threads",    num[6],    "--node",     w->node_id, "--log-level",
                          level,          NULL};
    cairn_err err = {{0}};
    if (runner_spawn(r, (char **)args, &err) != 0) {
        r->exited = r->finished = true;
        fail_with(r, err.msg);
        return;
    }
    set_deadline(r, w->start_timeout_s, "start");
    snprintf(r->deadline_reason, sizeof r->deadline_reason,
             "the runner did not listen within %.0f s", w->start_timeout_s);
    cairn_log(w->log, CAIRN_LOG_INFO, "runner %s/%u started (pid %d): layers %u..%u of %s", in->id,
              k, r->pid, sh->layer_start, sh->layer_end, in->model);
}

/* A runner the state has and this node does not (the node restarted): it cannot come back
 * (FAILED is final), so the state learns it is gone and the master places anew. */
static void tombstone(cairn_worker *w, const cairn_instance *in, uint32_t k) {
    worker_runner *r = new_record(w, in, k);
    if (r) {
        r->cur = in->shards[k].runner;
        r->exited = r->finished = true;
        fail_with(r, "this node lost the runner (the node restarted)");
    }
}

/* ---- sync ---- */

static void shut_down(worker_runner *r) {
    if (!process_alive(r) || r->shutdown_sent) {
        return;
    }
    runner_send_op(r, "shutdown");
    r->shutdown_sent = true;
    r->deadline = 0;
    r->kill_at = cairn_now_seconds() + WORKER_SHUTDOWN_GRACE_S;
}

static void send_next(worker_runner *r, const cairn_cluster_state *s, const cairn_instance *in) {
    if (r->next_sent || !process_alive(r) || r->shutdown_sent || !r->in_open) {
        return;
    }
    const cairn_shard *next = &in->shards[(r->shard + 1) % in->n_shards];
    const cairn_node *node = cairn_state_find_node(s, next->node_id);
    if (next->runner.port == 0 || state_final(next->runner.state) || !node ||
        node->n_addresses == 0) {
        return;
    }
    cJSON *o = cJSON_CreateObject();
    if (o && cJSON_AddStringToObject(o, "op", "next") &&
        cJSON_AddStringToObject(o, "host", node->addresses[0].host) &&
        cJSON_AddNumberToObject(o, "port", next->runner.port)) {
        runner_send(r, o);
        r->next_sent = true;
        cairn_log(r->w->log, CAIRN_LOG_DEBUG, "runner %s/%u: the next shard listens at %s:%u",
                  r->instance_id, r->shard, node->addresses[0].host, (unsigned)next->runner.port);
    }
    cJSON_Delete(o);
}

static void sync_shard(cairn_worker *w, const cairn_cluster_state *s, const cairn_instance *in,
                       uint32_t k) {
    const cairn_runner *seen = &in->shards[k].runner;
    worker_runner *r = find_runner(w, in->id, k);
    if (!r) {
        if (w->closing || state_final(seen->state)) {
            return;
        }
        if (seen->state == CAIRN_RUNNER_IDLE) {
            spawn(w, s, in, k);
        } else {
            tombstone(w, in, k);
        }
        return;
    }
    r->in_state = true;
    r->seen = *seen;
    r->has_seen = true;
    sync_queue(r, seen);
    if (state_final(seen->state)) {
        shut_down(r);
    } else {
        send_next(r, s, in);
    }
}

void cairn_worker_sync(cairn_worker *w, const cairn_cluster_state *s) {
    for (worker_runner *r = w->runners; r; r = r->next) {
        r->in_state = false;
    }
    for (uint32_t i = 0; i < s->n_instances && i < CAIRN_STATE_MAX_INSTANCES; i++) {
        const cairn_instance *in = &s->instances[i];
        for (uint32_t k = 0; k < in->n_shards && k < CAIRN_STATE_MAX_SHARDS; k++) {
            if (strcmp(in->shards[k].node_id, w->node_id) == 0) {
                sync_shard(w, s, in, k);
            }
        }
    }
    for (worker_runner *r = w->runners; r; r = r->next) {
        if (!r->in_state) {
            r->n_queue = 0;
            r->has_held = false;
            shut_down(r);
        }
    }
    free_done_records(w);
}

/* ---- tick ---- */

static void tick_runner(worker_runner *r, double now) {
    if (process_alive(r) && r->deadline > 0 && now >= r->deadline) {
        worker_fail_runner(r, "%s", r->deadline_reason);
    }
    if (process_alive(r) && r->kill_at > 0 && now >= r->kill_at) {
        cairn_log(r->w->log, CAIRN_LOG_WARN, "runner %s/%u did not exit in time: killing it",
                  r->instance_id, r->shard);
        r->kill_at = 0;
        runner_kill(r);
    }
    if (r->exited && !r->finished && now - r->exited_at >= WORKER_EXIT_DRAIN_S) {
        worker_on_finished(r);
    }
    if (r->has_held && now - r->last_loading_at >= WORKER_PROGRESS_REPORT_S) {
        r->has_held = false;
        push(r, &r->held);
    }
    if (r->n_queue > 0 && r->in_state && now - r->proposed_at[0] >= WORKER_REPROPOSE_S &&
        (!r->has_seen || cairn_runner_can_change(&r->seen, &r->queue[0]))) {
        r->proposed_at[0] = now;
        propose(r, &r->queue[0]);
    }
}

void cairn_worker_tick(cairn_worker *w, double now) {
    if (!w) {
        return;
    }
    w->now = now;
    for (worker_runner *r = w->runners; r; r = r->next) {
        tick_runner(r, now);
    }
}

/* ---- new and close ---- */

static char *copy_or(const char *s, const char *fallback) {
    return cairn_strdup(s ? s : fallback);
}

int cairn_worker_new(uv_loop_t *loop, const cairn_worker_config *cfg, cairn_worker **out,
                     cairn_err *err) {
    if (!cfg->node_id || strlen(cfg->node_id) >= CAIRN_STATE_ID_SIZE || !cfg->runner_exe ||
        !cfg->models_dir) {
        return cairn_fail(err, "the worker needs a node id, a runner executable and a models "
                               "directory");
    }
    if (cfg->threads < 0 || cfg->slots < 0 || cfg->ctx < 0 || cfg->load_timeout_s < 0 ||
        cfg->warmup_timeout_s < 0 || cfg->progress_timeout_s < 0 || cfg->start_timeout_s < 0) {
        return cairn_fail(err, "runner threads, slots, context and timeouts must not be negative");
    }
    cairn_worker *w = calloc(1, sizeof *w);
    if (!w) {
        return cairn_fail(err, "out of memory");
    }
    w->loop = loop;
    snprintf(w->node_id, sizeof w->node_id, "%s", cfg->node_id);
    w->runner_exe = cairn_strdup(cfg->runner_exe);
    w->models_dir = cairn_strdup(cfg->models_dir);
    w->listen_host = copy_or(cfg->listen_host, "127.0.0.1");
    if (!w->runner_exe || !w->models_dir || !w->listen_host) {
        cairn_worker_close(w);
        return cairn_fail(err, "out of memory");
    }
    if (cfg->key) {
        sodium_bin2hex(w->key_hex, sizeof w->key_hex, cfg->key->bytes, sizeof cfg->key->bytes);
    }
    w->threads = cfg->threads;
    w->slots = cfg->slots > 0 ? cfg->slots : CAIRN_DEFAULT_SLOTS;
    w->ctx = cfg->ctx;
    w->load_timeout_s = cfg->load_timeout_s;
    w->warmup_timeout_s =
        cfg->warmup_timeout_s > 0 ? cfg->warmup_timeout_s : CAIRN_WORKER_DEFAULT_WARMUP_S;
    w->progress_timeout_s =
        cfg->progress_timeout_s > 0 ? cfg->progress_timeout_s : CAIRN_WORKER_DEFAULT_PROGRESS_S;
    w->start_timeout_s =
        cfg->start_timeout_s > 0 ? cfg->start_timeout_s : CAIRN_WORKER_START_TIMEOUT_S;
    w->log = cfg->log;
    w->report = cfg->report;
    w->user = cfg->user;
    cairn_ignore_broken_pipes(); /* a runner that died must not take the node with it */
    *out = w;
    return 0;
}

static void worker_free(cairn_worker *w) {
    free(w->runner_exe);
    free(w->models_dir);
    free(w->listen_host);
    sodium_memzero(w->key_hex, sizeof w->key_hex);
    free(w);
}

static void on_close_timer_closed(uv_handle_t *h) {
    cairn_worker *w = h->data;
    w->close_timer_open = false;
    close_check(w);
}

/* Closing: once every runner record is gone, the timer goes, then the worker. */
static void close_check(cairn_worker *w) {
    if (!w->closing || w->runners) {
        return;
    }
    if (w->close_timer_open) {
        if (!uv_is_closing((uv_handle_t *)&w->close_timer)) {
            uv_close((uv_handle_t *)&w->close_timer, on_close_timer_closed);
        }
        return;
    }
    worker_free(w);
}

static void on_close_timer(uv_timer_t *t) {
    cairn_worker *w = t->data;
    for (worker_runner *r = w->runners; r; r = r->next) {
        if (process_alive(r)) {
            cairn_log(w->log, CAIRN_LOG_WARN, "runner %s/%u still there: killing it",
                      r->instance_id, r->shard);
            runner_kill(r);
        }
    }
}

void cairn_worker_close(cairn_worker *w) {
    if (!w || w->closing) {
        return;
    }
    w->closing = true;
    w->report = NULL;
    bool any_alive = false;
    for (worker_runner *r = w->runners; r; r = r->next) {
        if (process_alive(r)) {
            any_alive = true;
            runner_send_op(r, "shutdown");
            runner_close_stdin(r); /* the end of file makes it exit at once */
        }
    }
    if (any_alive && uv_timer_init(w->loop, &w->close_timer) == 0) {
        w->close_timer_open = true;
        w->close_timer.data = w;
        uv_timer_start(&w->close_timer, on_close_timer, (uint64_t)(WORKER_CLOSE_GRACE_S * 1000), 0);
    }
    free_done_records(w);
}

/* ---- views ---- */

size_t cairn_worker_live_count(const cairn_worker *w) {
    size_t count = 0;
    for (const worker_runner *r = w ? w->runners : NULL; r; r = r->next) {
        count += process_alive(r) ? 1 : 0;
    }
    return count;
}

size_t cairn_worker_pids(const cairn_worker *w, int *out, size_t max) {
    size_t count = 0;
    for (const worker_runner *r = w ? w->runners : NULL; r && count < max; r = r->next) {
        if (process_alive(r)) {
            out[count++] = r->pid;
        }
    }
    return count;
}

cJSON *cairn_worker_info_json(const cairn_worker *w) {
    cJSON *arr = cJSON_CreateArray();
    for (const worker_runner *r = w ? w->runners : NULL; arr && r; r = r->next) {
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddStringToObject(o, "instance", r->instance_id) ||
            !cJSON_AddNumberToObject(o, "shard", r->shard) ||
            !cJSON_AddNumberToObject(o, "pid", r->pid) ||
            !cJSON_AddStringToObject(o, "state", cairn_runner_state_name(r->cur.state)) ||
            !cJSON_AddBoolToObject(o, "alive", process_alive(r))) {
            cJSON_Delete(o);
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}
