/*
 * instances: the master's care of model instances. An instance with a failed runner cannot
 * serve, and runners never come back from FAILED, so the master deletes it and places the
 * model again (on as many nodes as before, so the same ones when they are still fit), after
 * a backoff that grows while the model keeps failing. A node on which runners failed three
 * times is left out of later placements until its failures fade: they halve with every
 * quiet CARE_FAILURE_HALF_LIFE_S, and are forgiven once a runner of the node has served a
 * request. Instances that a NODE_LEFT takes down are placed again too, on the fewest of
 * the remaining nodes that fit.
 *
 * The care works on the state it is given and emits through a callback, so a new master
 * finds failed runners in its state and handles them the same way. It keeps only
 * intentions (what to place, and when to try) and failure counts, all bounded.
 */
#define _POSIX_C_SOURCE 200809L /* pthread types in uv.h under strict C11 */

#include <stdio.h>
#include <string.h>

#include "cluster/node_internal.h"
#include "cluster/placement.h"
#include "util/log.h"

#define FIRST_BACKOFF_S 1.0
#define MAX_BACKOFF_S 30.0

void care_init(instance_care *c) {
    memset(c, 0, sizeof *c);
}

static double backoff_after(uint32_t failures) {
    double d = FIRST_BACKOFF_S;
    for (uint32_t i = 1; i < failures && d < MAX_BACKOFF_S; i++) {
        d *= 2;
    }
    return d < MAX_BACKOFF_S ? d : MAX_BACKOFF_S;
}

/* ---- counters ---- */

static care_count *model_count(instance_care *c, const char *sha256) {
    for (uint32_t i = 0; i < c->n_model_failures; i++) {
        if (strcmp(c->model_failures[i].key, sha256) == 0) {
            return &c->model_failures[i];
        }
    }
    if (c->n_model_failures == CARE_MAX_COUNTS) {
        return NULL; /* more models than a state holds: nothing to learn */
    }
    care_count *e = &c->model_failures[c->n_model_failures++];
    memset(e, 0, sizeof *e);
    snprintf(e->key, sizeof e->key, "%s", sha256);
    return e;
}

static care_node *node_record(instance_care *c, const char *node_id) {
    for (uint32_t i = 0; i < c->n_node_failures; i++) {
        if (strcmp(c->node_failures[i].id, node_id) == 0) {
            return &c->node_failures[i];
        }
    }
    if (c->n_node_failures == CARE_MAX_COUNTS) {
        return NULL; /* more failing nodes than a state holds: nothing to learn */
    }
    care_node *r = &c->node_failures[c->n_node_failures++];
    memset(r, 0, sizeof *r);
    snprintf(r->id, sizeof r->id, "%s", node_id);
    return r;
}

uint32_t care_node_failures(const instance_care *c, const char *node_id) {
    for (uint32_t i = 0; i < c->n_node_failures; i++) {
        if (strcmp(c->node_failures[i].id, node_id) == 0) {
            return c->node_failures[i].failures;
        }
    }
    return 0;
}

/* True when the node is left out from now on. */
static bool count_node_failure(instance_care *c, const char *node_id, double now) {
    care_node *r = node_record(c, node_id);
    if (!r) {
        return false;
    }
    r->failures++;
    r->decays_at = now + CARE_FAILURE_HALF_LIFE_S;
    return r->failures >= CARE_NODE_FAILURE_LIMIT;
}

static const cairn_runner *runner_at(const cairn_cluster_state *s, const char *instance,
                                     uint32_t shard) {
    const cairn_instance *in = cairn_state_find_instance(s, instance);
    return in && shard < in->n_shards ? &in->shards[shard].runner : NULL;
}

/* Watches one serving runner of the node; the node is forgiven when it serves to the end
 * (READY again), not when it merely starts to: a runner that fails on every request must
 * still leave its node out. */
static void watch_serving(care_node *r, const cairn_cluster_state *s) {
    if (r->serving[0]) {
        const cairn_runner *ru = runner_at(s, r->serving, r->serving_shard);
        if (ru && ru->state == CAIRN_RUNNER_RUNNING) {
            return;
        }
        if (ru && ru->state == CAIRN_RUNNER_READY) {
            r->failures = 0;
        }
        r->serving[0] = '\0';
    }
    for (uint32_t i = 0; r->failures > 0 && i < s->n_instances; i++) {
        const cairn_instance *in = &s->instances[i];
        for (uint32_t k = 0; k < in->n_shards; k++) {
            if (in->shards[k].runner.state == CAIRN_RUNNER_RUNNING &&
                strcmp(in->shards[k].node_id, r->id) == 0) {
                snprintf(r->serving, sizeof r->serving, "%s", in->id);
                r->serving_shard = k;
                return;
            }
        }
    }
}

/* Failures fade with time and with service; a node with none left is forgotten. */
static void forgive_nodes(instance_care *c, const cairn_cluster_state *s, double now) {
    uint32_t i = 0;
    while (i < c->n_node_failures) {
        care_node *r = &c->node_failures[i];
        while (r->failures > 0 && now >= r->decays_at) {
            r->failures /= 2;
            r->decays_at += CARE_FAILURE_HALF_LIFE_S;
        }
        watch_serving(r, s);
        if (r->failures == 0) {
            *r = c->node_failures[--c->n_node_failures];
            continue;
        }
        i++;
    }
}

const char *care_placement_blocked(const instance_care *c, const char *model) {
    for (uint32_t i = 0; i < c->n_intents; i++) {
        const care_intent *t = &c->intents[i];
        if (t->blocked[0] && (strcmp(t->model, model) == 0 || strcmp(t->sha256, model) == 0)) {
            return t->blocked;
        }
    }
    return NULL;
}

/* ---- intentions ---- */

static void add_intent(instance_care *c, const cairn_instance *in, uint32_t n_nodes, double at,
                       cairn_logger *log) {
    if (c->n_intents == CARE_MAX_INTENTS) {
        cairn_log(log, CAIRN_LOG_WARN, "too many models waiting to be placed: %s is dropped",
                  c->intents[0].model);
        memmove(&c->intents[0], &c->intents[1], (c->n_intents - 1) * sizeof c->intents[0]);
        c->n_intents--;
    }
    care_intent *t = &c->intents[c->n_intents++];
    memset(t, 0, sizeof *t);
    snprintf(t->model, sizeof t->model, "%s", in->model);
    snprintf(t->sha256, sizeof t->sha256, "%s", in->model_sha256);
    t->n_nodes = n_nodes;
    t->next_attempt = at;
    t->backoff_s = FIRST_BACKOFF_S;
}

void care_node_leaving(instance_care *c, const cairn_cluster_state *s, const char *node_id,
                       double now, cairn_logger *log) {
    for (uint32_t i = 0; i < s->n_instances; i++) {
        const cairn_instance *in = &s->instances[i];
        for (uint32_t k = 0; k < in->n_shards; k++) {
            if (strcmp(in->shards[k].node_id, node_id) == 0) {
                cairn_log(log, CAIRN_LOG_INFO, "%s leaves: instance %s of %s will be placed again",
                          node_id, in->id, in->model);
                add_intent(c, in, 0, now, log);
                break;
            }
        }
    }
}

/* ---- failed runners ---- */

static bool has_failed_runner(const cairn_instance *in) {
    for (uint32_t k = 0; k < in->n_shards; k++) {
        if (in->shards[k].runner.state == CAIRN_RUNNER_FAILED) {
            return true;
        }
    }
    return false;
}

/* Counts the failure against the model and the nodes whose runners failed, and returns the
 * node count to place the model on again: as before, unless a node is now left out. */
static uint32_t note_failure(instance_care *c, const cairn_instance *in, double now,
                             double *delay) {
    care_count *m = model_count(c, in->model_sha256);
    uint32_t streak = m ? ++m->count : 1;
    *delay = backoff_after(streak);
    uint32_t n_nodes = in->n_shards;
    for (uint32_t k = 0; k < in->n_shards; k++) {
        if (in->shards[k].runner.state == CAIRN_RUNNER_FAILED &&
            count_node_failure(c, in->shards[k].node_id, now)) {
            n_nodes = 0; /* the fewest of the nodes left that fit */
        }
    }
    return n_nodes;
}

static void delete_failed(instance_care *c, const cairn_cluster_state *s, double now,
                          cairn_logger *log, care_emit_fn emit, void *user) {
    char ids[CAIRN_STATE_MAX_INSTANCES][CAIRN_STATE_ID_SIZE];
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->n_instances; i++) {
        if (has_failed_runner(&s->instances[i])) {
            memcpy(ids[n++], s->instances[i].id, CAIRN_STATE_ID_SIZE);
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        const cairn_instance *in = cairn_state_find_instance(s, ids[i]);
        if (!in) {
            continue;
        }
        cairn_instance copy = *in; /* the deletion removes it from the state */
        double delay = 0;
        uint32_t n_nodes = note_failure(c, &copy, now, &delay);
        cairn_event e;
        memset(&e, 0, sizeof e);
        e.type = CAIRN_EVENT_INSTANCE_DELETED;
        memcpy(e.as.instance_deleted.instance_id, copy.id, CAIRN_STATE_ID_SIZE);
        cairn_err err = {{0}};
        if (emit(user, &e, &err) != 0) {
            cairn_log(log, CAIRN_LOG_ERROR, "cannot delete the failed instance %s: %s", copy.id,
                      err.msg);
            continue;
        }
        cairn_log(log, CAIRN_LOG_INFO, "instance %s of %s failed; placing it again in %.0f s",
                  copy.id, copy.model, delay);
        add_intent(c, &copy, n_nodes, now + delay, log);
    }
}

/* A model whose instances all run again starts its backoff afresh. */
static void forget_recovered(instance_care *c, const cairn_cluster_state *s) {
    for (uint32_t i = 0; i < s->n_instances; i++) {
        const cairn_instance *in = &s->instances[i];
        bool ready = true;
        for (uint32_t k = 0; k < in->n_shards && ready; k++) {
            cairn_runner_state st = in->shards[k].runner.state;
            ready = st == CAIRN_RUNNER_READY || st == CAIRN_RUNNER_RUNNING;
        }
        for (uint32_t j = 0; ready && j < c->n_model_failures; j++) {
            if (strcmp(c->model_failures[j].key, in->model_sha256) == 0) {
                c->model_failures[j].count = 0;
            }
        }
    }
}

/* ---- placing ---- */

static void new_instance_id(const cairn_cluster_state *s, cairn_rng *rng, char *id, size_t size) {
    do {
        snprintf(id, size, "i-%08x", (unsigned)(cairn_rng_next(rng) >> 32));
    } while (cairn_state_find_instance(s, id));
}

static void build_request(const instance_care *c, const cairn_cluster_state *s,
                          const care_intent *t, uint32_t n_nodes, cairn_placement_request *req) {
    memset(req, 0, sizeof *req);
    snprintf(req->model, sizeof req->model, "%s", t->sha256);
    req->n_nodes = n_nodes;
    for (uint32_t i = 0; i < s->n_nodes; i++) {
        if (care_node_failures(c, s->nodes[i].id) >= CARE_NODE_FAILURE_LIMIT) {
            memcpy(req->exclude[req->n_exclude++], s->nodes[i].id, CAIRN_STATE_ID_SIZE);
        }
    }
}

/* Names the nodes the request leaves out, after the planner's reason. */
static void explain_left_out(const cairn_placement_request *req, char *reason, size_t size) {
    size_t len = strlen(reason);
    for (uint32_t i = 0; i < req->n_exclude && len + 1 < size; i++) {
        snprintf(reason + len, size - len, "%s%s",
                 i ? ", " : "; left out after repeated runner failures: ", req->exclude[i]);
        len = strlen(reason);
    }
}

/* One attempt; true when the model was placed. On as many nodes as before first, then on
 * the fewest that fit. */
static bool attempt(instance_care *c, const cairn_cluster_state *s, care_intent *t, cairn_rng *rng,
                    cairn_logger *log, care_emit_fn emit, void *user) {
    cairn_placement_request req;
    cairn_event e;
    char reason[CAIRN_STATE_REASON_SIZE] = "";
    char id[CAIRN_STATE_ID_SIZE];
    new_instance_id(s, rng, id, sizeof id);
    build_request(c, s, t, t->n_nodes, &req);
    int rc = cairn_placement_plan(s, &req, id, &e, reason, sizeof reason);
    if (rc != 0 && t->n_nodes != 0) {
        build_request(c, s, t, 0, &req);
        rc = cairn_placement_plan(s, &req, id, &e, reason, sizeof reason);
    }
    if (rc != 0) {
        explain_left_out(&req, reason, sizeof reason);
    }
    cairn_err err = {{0}};
    if (rc == 0 && emit(user, &e, &err) != 0) {
        snprintf(reason, sizeof reason, "%.200s", err.msg);
        rc = -1;
    }
    if (rc != 0) {
        cairn_log(log, CAIRN_LOG_INFO, "cannot place %s yet (next try in %.0f s): %s", t->model,
                  t->backoff_s, reason);
        snprintf(t->blocked, sizeof t->blocked, "%s", reason);
        return false;
    }
    cairn_log(log, CAIRN_LOG_INFO, "placed %s as %s on %u nodes", e.as.instance_placed.model, id,
              e.as.instance_placed.n_shards);
    return true;
}

static void place_due(instance_care *c, const cairn_cluster_state *s, double now, cairn_rng *rng,
                      cairn_logger *log, care_emit_fn emit, void *user) {
    uint32_t i = 0;
    while (i < c->n_intents) {
        care_intent *t = &c->intents[i];
        if (now < t->next_attempt) {
            i++;
            continue;
        }
        if (attempt(c, s, t, rng, log, emit, user)) {
            memmove(t, t + 1, (c->n_intents - i - 1) * sizeof *t);
            c->n_intents--;
            continue;
        }
        t->next_attempt = now + t->backoff_s;
        t->backoff_s = t->backoff_s * 2 < MAX_BACKOFF_S ? t->backoff_s * 2 : MAX_BACKOFF_S;
        i++;
    }
}

void care_tick(instance_care *c, const cairn_cluster_state *s, double now, cairn_rng *rng,
               cairn_logger *log, care_emit_fn emit, void *user) {
    forget_recovered(c, s);
    forgive_nodes(c, s, now);
    delete_failed(c, s, now, log, emit, user);
    place_due(c, s, now, rng, log, emit, user);
}
