/*
 * serve: the node's API beyond /state and /node: placement previews, placing and deleting
 * instances, and generation requests relayed to an instance's first runner.
 *
 * The API server calls in from its own threads while everything about the cluster lives on
 * the node's loop, so each call is handed to the loop (a queue, an async wake-up, a
 * condition variable) and its thread waits for the answer. A generation request becomes a
 * relay: the loop opens a stream to a ready instance's first runner and appends each token
 * as a server-sent event to the relay's buffer, which the request's thread writes out. When
 * the stream is lost (a runner or a node died), the relay waits for the instance to be
 * placed again and resumes there with the prompt plus every token already sent, so the
 * client sees one stream with no token lost or repeated; when the model cannot be placed
 * again, the request ends with the reason rather than waiting out its deadline.
 *
 * Owns the call queue and the relays. Must never block the loop, and never let an API
 * thread touch the node's state.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/json_fields.h"
#include "cluster/placement.h"
#include "cluster/serve_internal.h"
#include "platform/platform.h"
#include "runner/runner.h"
#include "sampling/sampling.h"
#include "util/json.h"

/* How long a generation waits for a ready instance: a first load of a large model takes a
 * while, and so does placing an instance again after a node is lost. */
#define RELAY_WAIT_S 600.0
/* ... and how long when no instance of the model exists at all (none placed yet, or the one
 * streaming was deleted): long enough for the master to place a failed instance again after
 * its backoff. A relay on the master ends at once when the master's last try to place the
 * model again failed: no node can take it now. */
#define RELAY_NO_INSTANCE_S 30.0
/* A lost instance is not tried again this soon (it is normally failed and replaced). */
#define RELAY_LOST_RETRY_S 5.0
/* A request whose stream is lost this many times in a row without a token in between ends
 * with the last loss's reason: it is more likely the request's fault than the cluster's. Only
 * a stream that made progress gives the relay another RELAY_WAIT_S, so the waits add up to a
 * bounded total. */
#define RELAY_MAX_FRUITLESS_LOSSES 3
/* A server-sent stream that waits (for an instance, or a resume) writes a comment this
 * often, so a client that left is noticed and its API thread freed. */
#define RELAY_PROBE_NS (2ull * 1000 * 1000 * 1000)
/* How long placing or deleting waits for the master to record it. */
#define CHANGE_WAIT_MS 10000

/* ---- calls onto the loop ---- */

/* Runs fn(n, arg) on the loop and waits for it; -1 when the node is shutting down. */
int run_on_loop(cairn_local_node *n, void (*fn)(cairn_local_node *, void *), void *arg) {
    node_call c = {.fn = fn, .arg = arg};
    uv_mutex_lock(&n->call_lock);
    if (n->calls_closed) {
        uv_mutex_unlock(&n->call_lock);
        return -1;
    }
    node_call **tail = &n->calls;
    while (*tail) {
        tail = &(*tail)->next;
    }
    *tail = &c;
    uv_mutex_unlock(&n->call_lock);
    uv_async_send(&n->call_async);
    uv_mutex_lock(&n->call_lock);
    while (!c.done) {
        uv_cond_wait(&n->call_cond, &n->call_lock);
    }
    uv_mutex_unlock(&n->call_lock);
    return c.ok ? 0 : -1;
}

static void on_call_async(uv_async_t *a) {
    cairn_local_node *n = a->data;
    uv_mutex_lock(&n->call_lock);
    node_call *c = n->calls;
    n->calls = NULL;
    uv_mutex_unlock(&n->call_lock);
    while (c) {
        node_call *next = c->next; /* c lives on a waiting thread's stack until done */
        c->fn(n, c->arg);
        uv_mutex_lock(&n->call_lock);
        c->done = true;
        c->ok = true;
        uv_cond_broadcast(&n->call_cond);
        uv_mutex_unlock(&n->call_lock);
        c = next;
    }
}

int serve_init(cairn_local_node *n, cairn_err *err) {
    if (uv_mutex_init(&n->call_lock) != 0 || uv_cond_init(&n->call_cond) != 0 ||
        uv_async_init(n->loop, &n->call_async, on_call_async) != 0) {
        return cairn_fail(err, "cannot set up the API's calls");
    }
    n->call_async.data = n;
    n->serve_ready = true;
    return 0;
}

void cairn_node_api_shutdown(cairn_local_node *n) {
    if (!n || !n->serve_ready) {
        return;
    }
    uv_mutex_lock(&n->call_lock);
    n->calls_closed = true;
    for (node_call *c = n->calls; c; c = c->next) {
        c->done = true; /* ok stays false */
    }
    n->calls = NULL;
    serve_events_close(n);
    for (relay *r = n->relays; r; r = r->next) {
        if (!r->finished) {
            cairn_buf_puts(&r->out, "{\"error\":{\"message\":\"the node is shutting "
                                    "down\",\"type\":\"unavailable\"}}\n");
            r->finished = true;
        }
    }
    uv_cond_broadcast(&n->call_cond);
    uv_mutex_unlock(&n->call_lock);
}

/* ---- relays ---- */

void relay_free(relay *r) {
    cairn_buf_free(&r->out);
    cairn_api_generation_free(&r->req);
    free(r->sent);
    free(r);
}

/* Appends one event to the relay's output for its thread. */
static void relay_event(relay *r, cJSON *event, bool last) {
    char *text = event ? cJSON_PrintUnformatted(event) : NULL;
    cJSON_Delete(event);
    cairn_local_node *n = r->node;
    uv_mutex_lock(&n->call_lock);
    if (!r->finished) {
        if (text) {
            cairn_buf_printf(&r->out, "%s\n", text);
        } else {
            cairn_buf_puts(&r->out, "{\"error\":{\"message\":\"out of memory\"}}\n");
            last = true;
        }
        r->finished = last;
    }
    uv_cond_broadcast(&n->call_cond);
    uv_mutex_unlock(&n->call_lock);
    free(text);
}

static void relay_error(relay *r, const char *type, const char *message) {
    r->node->metric_failed++;
    cJSON *o = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddStringToObject(e, "type", type);
    relay_event(r, o, true);
}

static void on_stream_token(void *user, int32_t token, const char *text, size_t len,
                            const cJSON *logprobs) {
    relay *r = user;
    cairn_local_node *n = r->node;
    if (!r->first_token_seen) {
        r->first_token_seen = true;
        n->metric_first_tokens++;
        n->metric_ttft_sum += cairn_now_seconds() - r->created;
    }
    n->metric_tokens += token >= 0;
    if (token >= 0) {
        if (r->n_sent == r->cap_sent) {
            size_t cap = r->cap_sent ? r->cap_sent * 2 : 64;
            int32_t *bigger = realloc(r->sent, cap * sizeof *bigger);
            if (!bigger) {
                relay_error(r, "server_error", "out of memory");
                cairn_stream_close(r->stream);
                r->stream = NULL;
                return;
            }
            r->sent = bigger;
            r->cap_sent = cap;
        }
        r->sent[r->n_sent++] = token;
    }
    char *copy = cairn_strndup(text, len);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "token", token);
    cJSON_AddStringToObject(o, "text", copy ? copy : "");
    if (logprobs) {
        cJSON_AddItemToObject(o, "logprobs", cJSON_Duplicate(logprobs, true));
    }
    free(copy);
    relay_event(r, o, false);
}

static void on_stream_done(void *user, const char *finish, const char *text, size_t len,
                           int prompt_tokens, int completion_tokens, int stop_index) {
    relay *r = user;
    r->stream = NULL;
    char *copy = cairn_strndup(text, len);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "done", true);
    cJSON_AddStringToObject(o, "finish", finish);
    cJSON_AddStringToObject(o, "text", copy ? copy : "");
    cJSON_AddNumberToObject(o, "prompt_tokens", prompt_tokens - (int)r->n_resumed);
    cJSON_AddNumberToObject(o, "completion_tokens", completion_tokens);
    cJSON_AddStringToObject(o, "instance", r->instance);
    if (stop_index >= 0) {
        cJSON_AddNumberToObject(o, "stop_index", stop_index);
    }
    free(copy);
    relay_event(r, o, true);
}

static void on_stream_error(void *user, cairn_stream_failure why, const char *message) {
    relay *r = user;
    r->stream = NULL;
    if (why == CAIRN_STREAM_REFUSED) {
        relay_error(r, "invalid_request", message);
        return;
    }
    if (why == CAIRN_STREAM_BUSY) {
        relay_error(r, "unavailable", message);
        return;
    }
    bool progress = r->n_sent > r->n_resumed;
    r->fruitless_losses = progress ? 0 : r->fruitless_losses + 1;
    if (r->fruitless_losses >= RELAY_MAX_FRUITLESS_LOSSES) {
        char msg[400];
        snprintf(msg, sizeof msg, "the request's stream was lost %d times without a token: %s",
                 r->fruitless_losses, message);
        cairn_log(r->node->log, CAIRN_LOG_INFO, "giving up a request on instance %s: %s",
                  r->instance, msg);
        relay_error(r, "unavailable", msg);
        return;
    }
    cairn_log(r->node->log, CAIRN_LOG_INFO,
              "lost the stream of a request on instance %s after %zu tokens (%s): resuming it "
              "when the model is ready again",
              r->instance, r->n_sent, message);
    r->node->metric_resumed++;
    snprintf(r->lost_instance, sizeof r->lost_instance, "%s", r->instance);
    r->lost_at = cairn_now_seconds();
    if (progress) {
        r->deadline = r->lost_at + RELAY_WAIT_S;
    }
}

/* The prompt's size, for the APIs that tell it before the first token (Anthropic's
 * message_start); a resumed stream tells it again, counted without the resumed tokens. */
static void on_stream_start(void *user, int prompt_tokens) {
    relay *r = user;
    if (!r->starts) {
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "start", true);
    cJSON_AddNumberToObject(o, "prompt_tokens", prompt_tokens - (int)r->n_resumed);
    relay_event(r, o, false);
}

static const cairn_stream_callbacks stream_callbacks = {on_stream_token, on_stream_done,
                                                        on_stream_error, on_stream_start};

static bool model_matches(const cairn_instance *in, const char *model) {
    return strcmp(in->model, model) == 0 || strcmp(in->model_sha256, model) == 0;
}

static bool instance_ready(const cairn_instance *in) {
    for (uint32_t k = 0; k < in->n_shards; k++) {
        const cairn_runner *ru = &in->shards[k].runner;
        if ((ru->state != CAIRN_RUNNER_READY && ru->state != CAIRN_RUNNER_RUNNING) ||
            ru->port == 0) {
            return false;
        }
    }
    return in->n_shards > 0;
}

/* A ready instance of the relay's model (the least busy one first), or NULL; *any tells
 * whether an instance of the model exists at all. */
static const cairn_instance *pick_instance(cairn_local_node *n, const relay *r, double now,
                                           bool *any) {
    const cairn_instance *best = NULL;
    *any = false;
    for (uint32_t i = 0; i < n->state->n_instances; i++) {
        const cairn_instance *in = &n->state->instances[i];
        if (!model_matches(in, r->req.model)) {
            continue;
        }
        *any = true;
        bool recently_lost =
            strcmp(in->id, r->lost_instance) == 0 && now - r->lost_at < RELAY_LOST_RETRY_S;
        if (instance_ready(in) && !recently_lost &&
            (!best || (best->shards[0].runner.state == CAIRN_RUNNER_RUNNING &&
                       in->shards[0].runner.state == CAIRN_RUNNER_READY))) {
            best = in;
        }
    }
    return best;
}

static void relay_open(cairn_local_node *n, relay *r, const cairn_instance *in) {
    const cairn_node *head = cairn_state_find_node(n->state, in->shards[0].node_id);
    if (!head || head->n_addresses == 0) {
        return;
    }
    cairn_stream_request req = {.instance = in->id,
                                .prompt = r->req.prompt,
                                .messages = r->req.messages,
                                .resume = r->sent,
                                .n_resume = r->n_sent,
                                .params = &r->req.gen,
                                .secret = in->secret,
                                .count = r->count};
    cairn_err err = {{0}};
    if (cairn_stream_open(n->loop, head->addresses[0].host, in->shards[0].runner.port,
                          n->keyed ? &n->key : NULL, &req, &stream_callbacks, r, &r->stream,
                          &err) != 0) {
        cairn_log(n->log, CAIRN_LOG_WARN, "cannot reach instance %s: %s", in->id, err.msg);
        r->stream = NULL;
        return;
    }
    r->n_resumed = r->n_sent;
    snprintf(r->instance, sizeof r->instance, "%s", in->id);
}

static void relay_give_up(relay *r, const char *msg) {
    cairn_log(r->node->log, CAIRN_LOG_INFO, "giving up a request: %s", msg);
    relay_error(r, "unavailable", msg);
}

/* Why a request whose model has no instance ends now, into msg; false while it may wait. */
static bool no_instance_ends(const cairn_local_node *n, const relay *r, double now, char *msg,
                             size_t size) {
    const char *model = r->req.model;
    bool lost = r->lost_instance[0] != '\0';
    const char *blocked = n->role == ROLE_MASTER ? care_placement_blocked(&n->care, model) : NULL;
    if (blocked) {
        snprintf(msg, size, "%s%s cannot be placed again now: %s",
                 lost ? "the lost instance of " : "", model, blocked);
        return true;
    }
    if (now < r->absent_since + RELAY_NO_INSTANCE_S) {
        return false;
    }
    if (lost) {
        snprintf(msg, size, "the lost instance of %s was not placed again in time", model);
    } else {
        snprintf(msg, size, "no instance of %s is placed (place one: cairn place %s)", model,
                 model);
    }
    return true;
}

static void relay_tick(cairn_local_node *n, relay *r, double now) {
    if (r->stream || r->finished || !n->has_state) {
        return;
    }
    bool any = false;
    const cairn_instance *in = pick_instance(n, r, now, &any);
    if (in) {
        relay_open(n, r, in);
        return;
    }
    char msg[600];
    if (any) {
        r->absent_since = 0;
        if (now >= r->deadline) {
            snprintf(msg, sizeof msg, "no instance of %s became ready in time", r->req.model);
            relay_give_up(r, msg);
        }
        return;
    }
    if (r->absent_since == 0) {
        r->absent_since = now;
    }
    if (no_instance_ends(n, r, now, msg, sizeof msg)) {
        relay_give_up(r, msg);
    }
}

void serve_tick(cairn_local_node *n, double now) {
    relay **p = &n->relays;
    while (*p) {
        relay *r = *p;
        uv_mutex_lock(&n->call_lock);
        bool gone = r->client_done;
        uv_mutex_unlock(&n->call_lock);
        if (gone) {
            cairn_stream_close(r->stream);
            *p = r->next;
            relay_free(r);
            continue;
        }
        relay_tick(n, r, now);
        p = &r->next;
    }
}

void serve_close(cairn_local_node *n) {
    if (!n->serve_ready) {
        return;
    }
    cairn_node_api_shutdown(n);
    while (n->relays) {
        relay *r = n->relays;
        n->relays = r->next;
        cairn_stream_close(r->stream);
        relay_free(r);
    }
}

void serve_free(cairn_local_node *n) {
    serve_events_free(n);
    serve_cancel_free(n);
    if (n->serve_ready) {
        uv_cond_destroy(&n->call_cond);
        uv_mutex_destroy(&n->call_lock);
        n->serve_ready = false;
    }
}

/* ---- request bodies ---- */

/* A request the runners' link cannot carry would be retried in vain: it is a 400 now. */
static int fits_the_link(const cairn_api_generation *g, cairn_err *err) {
    cairn_stream_request sr = {.prompt = g->prompt, .messages = g->messages, .params = &g->gen};
    return cairn_stream_request_check(&sr, err);
}

/* ---- handlers (API threads) ---- */

relay *relay_new(cairn_local_node *n, const cairn_api_call *call, cairn_api_flavor flavor,
                 int *status, cairn_err *err) {
    relay *r = calloc(1, sizeof *r);
    if (!r) {
        *status = 500;
        cairn_fail(err, "out of memory");
        return NULL;
    }
    r->node = n;
    if (cairn_api_parse_generation(call->body, call->body_len, flavor, &r->req, err) != 0 ||
        fits_the_link(&r->req, err) != 0) {
        *status = 400;
        relay_free(r);
        return NULL;
    }
    return r;
}

static void add_relay(cairn_local_node *n, void *arg) {
    relay *r = arg;
    n->metric_requests++;
    r->created = cairn_now_seconds();
    r->deadline = r->created + RELAY_WAIT_S;
    r->next = n->relays;
    n->relays = r;
    relay_tick(n, r, r->created);
}

int relay_start(relay *r) {
    if (!r->req.seed_given) {
        r->req.gen.sampling.seed = (uint64_t)cairn_wall_clock_ms();
    }
    return run_on_loop(r->node, add_relay, r);
}

typedef struct model_query {
    const char *model;
    bool known; /* placed, or held by a node that could serve it */
} model_query;

static void find_model(cairn_local_node *n, void *arg) {
    model_query *q = arg;
    for (uint32_t i = 0; n->has_state && i < n->state->n_instances && !q->known; i++) {
        q->known = model_matches(&n->state->instances[i], q->model);
    }
    for (uint32_t i = 0; n->has_state && i < n->state->n_nodes && !q->known; i++) {
        const cairn_node_profile *p = &n->state->nodes[i].profile;
        for (uint32_t f = 0; f < p->n_model_files && !q->known; f++) {
            q->known = strcmp(p->model_files[f].name, q->model) == 0 ||
                       strcmp(p->model_files[f].sha256, q->model) == 0;
        }
    }
}

static bool model_known(cairn_local_node *n, const char *model) {
    model_query q = {model, false};
    return run_on_loop(n, find_model, &q) == 0 && q.known;
}

int serve_relay(cairn_local_node *n, const cairn_api_call *call, const relay_api *api, void *user) {
    cairn_err err = {{0}};
    int status = 0;
    relay *r = relay_new(n, call, api->flavor, &status, &err);
    if (!r) {
        api->refuse(user, status, err.msg);
        return -1;
    }
    snprintf(r->id, sizeof r->id, "%s%llx", api->id_prefix,
             (unsigned long long)(cairn_wall_clock_ms() ^ (uint64_t)(uintptr_t)r));
    const char *stream_type = api->prepare(user, r);
    if (!model_known(n, r->req.model)) {
        char msg[300];
        snprintf(msg, sizeof msg,
                 "the model %s is neither placed on this cluster nor held by any of its nodes",
                 r->req.model);
        api->refuse(user, 404, msg);
        relay_free(r);
        return -1;
    }
    if (relay_start(r) != 0) {
        api->refuse(user, 503, "the node is shutting down");
        relay_free(r);
        return -1;
    }
    if (stream_type) {
        cairn_api_stream_begin(call->reply, stream_type);
        r->probe = call->reply;
    }
    relay_drain(r, api->on_event, user); /* r belongs to the loop now */
    return 0;
}

/* Hands each complete line (one event) of text to on_relay_event; returns non-zero to stop. */
static int drain_lines(cairn_buf *chunk, int (*on_relay_event)(void *, const cJSON *), void *user,
                       bool *stopped) {
    size_t start = 0;
    for (size_t i = 0; i < chunk->len && !*stopped; i++) {
        if (chunk->data[i] != '\n') {
            continue;
        }
        cJSON *event = cairn_json_parse(chunk->data + start, i - start, "an event", NULL);
        *stopped = !event || on_relay_event(user, event) != 0;
        cJSON_Delete(event);
        start = i + 1;
    }
    return 0;
}

/* Waits, under call_lock, for output or the end; false when the probe found the client
 * gone meanwhile (an SSE comment that cannot be written). */
static bool wait_output(relay *r) {
    cairn_local_node *n = r->node;
    /* the call lock's condition is broadcast for every relay and loop call: the probe keeps
     * its own clock */
    uint64_t next_probe = uv_hrtime() + RELAY_PROBE_NS;
    while (r->out.len == 0 && !r->finished) {
        if (!r->probe) {
            uv_cond_wait(&n->call_cond, &n->call_lock);
            continue;
        }
        uint64_t now = uv_hrtime();
        if (now < next_probe) {
            (void)uv_cond_timedwait(&n->call_cond, &n->call_lock, next_probe - now);
            continue;
        }
        next_probe = now + RELAY_PROBE_NS;
        uv_mutex_unlock(&n->call_lock);
        bool gone = cairn_api_stream_write(r->probe, ": waiting\n\n", 11) != 0;
        uv_mutex_lock(&n->call_lock);
        if (gone) {
            return false;
        }
    }
    return true;
}

void relay_drain(relay *r, int (*on_relay_event)(void *user, const cJSON *event), void *user) {
    cairn_local_node *n = r->node;
    cairn_buf chunk = {0};
    bool stopped = false;
    uv_mutex_lock(&n->call_lock);
    for (;;) {
        if (!wait_output(r)) {
            break;
        }
        bool last = r->finished;
        cairn_buf swap = chunk; /* take the output, leave the emptied buffer for more */
        chunk = r->out;
        r->out = swap;
        uv_mutex_unlock(&n->call_lock);
        drain_lines(&chunk, on_relay_event, user, &stopped);
        chunk.len = 0;
        uv_mutex_lock(&n->call_lock);
        if (last || stopped) {
            break;
        }
    }
    r->client_done = true; /* the loop frees r from here on */
    uv_mutex_unlock(&n->call_lock);
    cairn_buf_free(&chunk);
}

bool relay_cancel_here(cairn_local_node *n, const char *id) {
    for (relay *r = n->relays; r; r = r->next) {
        uv_mutex_lock(&n->call_lock);
        bool live = !r->finished && !r->client_done && r->id[0] && strcmp(r->id, id) == 0;
        uv_mutex_unlock(&n->call_lock);
        if (!live) {
            continue;
        }
        cairn_stream_close(r->stream);
        r->stream = NULL;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "done", true);
        cJSON_AddStringToObject(o, "finish", "cancelled");
        cJSON_AddStringToObject(o, "text", "");
        cJSON_AddNumberToObject(o, "prompt_tokens", 0);
        cJSON_AddNumberToObject(o, "completion_tokens", (double)r->n_sent);
        relay_event(r, o, true);
        return true;
    }
    return false;
}

const char *relay_outcome_take(relay_outcome *o, const cJSON *event) {
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(event, "error");
    if (err) {
        const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(err, "message"));
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(err, "type"));
        snprintf(o->error, sizeof o->error, "%s", msg ? msg : "the generation failed");
        o->failed = true;
        o->refused = type && strcmp(type, "invalid_request") == 0;
        return NULL;
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(event, "done"))) {
        const char *finish =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(event, "finish"));
        snprintf(o->finish, sizeof o->finish, "%s", finish ? finish : "stop");
        o->prompt_tokens =
            (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(event, "prompt_tokens"));
        o->completion_tokens =
            (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(event, "completion_tokens"));
        const cJSON *stop = cJSON_GetObjectItemCaseSensitive(event, "stop_index");
        o->stop_index = cJSON_IsNumber(stop) ? (int)stop->valuedouble : -1;
        o->done = true;
    }
    const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(event, "text"));
    return text ? text : "";
}

size_t placed_models(const cairn_local_node *n, const cairn_instance **out, size_t max) {
    size_t count = 0;
    for (uint32_t i = 0; n->has_state && i < n->state->n_instances && count < max; i++) {
        const cairn_instance *in = &n->state->instances[i];
        bool seen = false;
        for (size_t k = 0; k < count && !seen; k++) {
            seen = strcmp(out[k]->model, in->model) == 0;
        }
        if (!seen) {
            out[count++] = in;
        }
    }
    return count;
}

static int write_sse(void *user, const cJSON *event) {
    cairn_api_reply *reply = user;
    char *text = cJSON_PrintUnformatted(event);
    int rc = -1;
    if (text) {
        cairn_buf line = {0};
        rc = cairn_buf_printf(&line, "data: %s\n\n", text) == 0
                 ? cairn_api_stream_write(reply, line.data, line.len)
                 : -1;
        cairn_buf_free(&line);
        free(text);
    }
    return rc;
}

static void serve_generate(cairn_local_node *n, const cairn_api_call *call) {
    cairn_err err = {{0}};
    int status = 0;
    relay *r = relay_new(n, call, CAIRN_API_GENERATE, &status, &err);
    if (!r) {
        cairn_api_reply_error(call->reply, status,
                              status == 400 ? "invalid_request" : "server_error", err.msg, NULL);
        return;
    }
    if (relay_start(r) != 0) {
        cairn_api_reply_error(call->reply, 503, "unavailable", "the node is shutting down", NULL);
        relay_free(r);
        return;
    }
    cairn_api_stream_begin(call->reply, "text/event-stream");
    r->probe = call->reply;
    relay_drain(r, write_sse, call->reply);
}

typedef struct placement_call {
    cairn_placement_request req;
    bool create;
    char instance[CAIRN_STATE_ID_SIZE];
    int status;
    char *json;
    char reason[512];
} placement_call;

static void plan_on_loop(cairn_local_node *n, void *arg) {
    placement_call *pc = arg;
    if (!n->has_state) {
        pc->status = 503;
        snprintf(pc->reason, sizeof pc->reason, "this node has no cluster state yet");
        return;
    }
    if (pc->create) {
        snprintf(pc->instance, sizeof pc->instance, "i-%08x",
                 (unsigned)(cairn_rng_next(&n->rng) & 0xffffffffu));
    } else {
        snprintf(pc->instance, sizeof pc->instance, "preview");
    }
    cairn_event *e = calloc(1, sizeof *e);
    cairn_err err = {{0}};
    if (!e) {
        pc->status = 500;
        snprintf(pc->reason, sizeof pc->reason, "out of memory");
        return;
    }
    if (cairn_placement_plan(n->state, &pc->req, pc->instance, e, pc->reason, sizeof pc->reason) !=
        0) {
        pc->status = 409;
    } else {
        cJSON *o = cairn_placement_json(n->state, e, &err);
        pc->json = o ? cJSON_PrintUnformatted(o) : NULL;
        cJSON_Delete(o);
        pc->status = pc->json ? 200 : 500;
        if (pc->create && pc->json) {
            node_report(n, e);
        }
    }
    free(e);
}

typedef struct instance_query {
    char id[CAIRN_STATE_ID_SIZE];
    bool exists;
    bool delete_it;
} instance_query;

static void instance_on_loop(cairn_local_node *n, void *arg) {
    instance_query *q = arg;
    q->exists = n->has_state && cairn_state_find_instance(n->state, q->id) != NULL;
    if (q->exists && q->delete_it) {
        cairn_event e = {.type = CAIRN_EVENT_INSTANCE_DELETED};
        snprintf(e.as.instance_deleted.instance_id, sizeof e.as.instance_deleted.instance_id, "%s",
                 q->id);
        node_report(n, &e);
    }
}

/* Polls until the instance exists (or is gone); the master records changes in well under a
 * second, so a long wait means the change was refused or the cluster has no master. */
static bool wait_for_instance(cairn_local_node *n, const char *id, bool want) {
    for (int waited = 0; waited < CHANGE_WAIT_MS; waited += 100) {
        instance_query q = {0};
        snprintf(q.id, sizeof q.id, "%s", id);
        if (run_on_loop(n, instance_on_loop, &q) != 0) {
            return false;
        }
        if (q.exists == want) {
            return true;
        }
        cairn_sleep_ms(100);
    }
    return false;
}

static int placement_request(const cairn_api_call *call, const char *body_or_query, bool from_query,
                             placement_call *pc, cairn_err *err) {
    char model[CAIRN_STATE_NAME_SIZE] = "", nodes[16] = "";
    double n_nodes = 0;
    if (from_query) {
        if (cairn_api_query_param(call, "model", model, sizeof model) != 0) {
            return cairn_fail(err, "give the model: ?model=NAME[&nodes=N]");
        }
        if (cairn_api_query_param(call, "nodes", nodes, sizeof nodes) == 0) {
            char *end = NULL;
            n_nodes = strtod(nodes, &end);
            n_nodes = end && end != nodes && *end == '\0' ? n_nodes : -1;
        }
    } else {
        cJSON *o = cairn_json_parse(body_or_query, call->body_len, "the body", err);
        if (!o) {
            return -1;
        }
        const char *m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "model"));
        if (m && strlen(m) < sizeof model) {
            snprintf(model, sizeof model, "%s", m);
        }
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "nodes");
        bool bad = n && !cJSON_IsNull(n) && !cJSON_IsNumber(n);
        n_nodes = n && cJSON_IsNumber(n) ? n->valuedouble : 0;
        cJSON_Delete(o);
        if (bad) {
            return cairn_fail(err, "\"nodes\" must be a number");
        }
    }
    /* the negated test also refuses NaN; a fraction of a node is no count either */
    if (!model[0] || !(n_nodes >= 0 && n_nodes <= CAIRN_STATE_MAX_SHARDS) ||
        n_nodes != (double)(uint32_t)n_nodes) {
        return cairn_fail(err,
                          "give a model (file name or sha256) and a whole number of nodes "
                          "up to %d",
                          CAIRN_STATE_MAX_SHARDS);
    }
    snprintf(pc->req.model, sizeof pc->req.model, "%s", model);
    pc->req.n_nodes = (uint32_t)n_nodes;
    return 0;
}

static void serve_placement(cairn_local_node *n, const cairn_api_call *call, bool create) {
    placement_call *pc = calloc(1, sizeof *pc);
    cairn_err err = {{0}};
    if (!pc) {
        cairn_api_reply_error(call->reply, 500, "server_error", "out of memory", NULL);
        return;
    }
    pc->create = create;
    if (placement_request(call, call->body, !create, pc, &err) != 0) {
        cairn_api_reply_error(call->reply, 400, "invalid_request", err.msg, NULL);
    } else if (run_on_loop(n, plan_on_loop, pc) != 0) {
        cairn_api_reply_error(call->reply, 503, "unavailable", "the node is shutting down", NULL);
    } else if (pc->status != 200) {
        cairn_api_reply_error(call->reply, pc->status,
                              pc->status == 409 ? "placement_failed" : "unavailable",
                              pc->reason[0] ? pc->reason : "out of memory", NULL);
    } else if (create && !wait_for_instance(n, pc->instance, true)) {
        cairn_api_reply_error(call->reply, 504, "unavailable",
                              "the master did not record the placement (is there a master, "
                              "and does the model still fit?)",
                              NULL);
    } else {
        cairn_api_reply_json(call->reply, create ? 201 : 200, pc->json);
    }
    free(pc->json);
    free(pc);
}

static void serve_delete(cairn_local_node *n, const cairn_api_call *call, const char *id) {
    instance_query q = {.delete_it = true};
    if (strlen(id) >= sizeof q.id || !cairn_wire_node_id_valid(id, strlen(id))) {
        cairn_api_reply_error(call->reply, 400, "invalid_request", "not an instance id", NULL);
        return;
    }
    snprintf(q.id, sizeof q.id, "%s", id);
    if (run_on_loop(n, instance_on_loop, &q) != 0) {
        cairn_api_reply_error(call->reply, 503, "unavailable", "the node is shutting down", NULL);
    } else if (!q.exists) {
        cairn_api_reply_error(call->reply, 404, "not_found", "no such instance", NULL);
    } else if (!wait_for_instance(n, id, false)) {
        cairn_api_reply_error(call->reply, 504, "unavailable",
                              "the master did not record the deletion", NULL);
    } else {
        char json[128];
        snprintf(json, sizeof json, "{\"deleted\":\"%s\"}", id);
        cairn_api_reply_json(call->reply, 200, json);
    }
}

/* GET /models: every model file the cluster's nodes hold, by hash, with the nodes. */
static cJSON *model_entry(cJSON *list, const cairn_model_file *f) {
    const cJSON *m;
    cJSON_ArrayForEach(m, list) {
        const char *sha = cJSON_GetStringValue(cJSON_GetObjectItem(m, "sha256"));
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(m, "name"));
        if (strcmp(sha, f->sha256) == 0 && strcmp(name, f->name) == 0) {
            return (cJSON *)m;
        }
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", f->name);
    cJSON_AddStringToObject(o, "sha256", f->sha256);
    cJSON_AddNumberToObject(o, "size", (double)f->size);
    cJSON_AddNumberToObject(o, "n_layers", f->n_layers);
    cJSON_AddArrayToObject(o, "nodes");
    cJSON_AddItemToArray(list, o);
    return o;
}

static void list_model_files(cairn_local_node *n, void *arg) {
    cJSON *list = arg;
    for (uint32_t i = 0; n->has_state && i < n->state->n_nodes; i++) {
        const cairn_node *node = &n->state->nodes[i];
        for (uint32_t k = 0; k < node->profile.n_model_files; k++) {
            cJSON *m = model_entry(list, &node->profile.model_files[k]);
            cJSON_AddItemToArray(cJSON_GetObjectItem(m, "nodes"), cJSON_CreateString(node->id));
        }
    }
}

static void serve_model_files(cairn_local_node *n, const cairn_api_call *call) {
    cJSON *list = cJSON_CreateArray();
    if (!list || run_on_loop(n, list_model_files, list) != 0) {
        cJSON_Delete(list);
        cairn_api_reply_error(call->reply, 503, "unavailable", "the node is shutting down", NULL);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "models", list);
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    cairn_api_reply_json(call->reply, 200, json ? json : "{}");
    free(json);
}

static bool is(const cairn_api_call *call, const char *method, const char *path) {
    return strcmp(call->method, method) == 0 && strcmp(call->path, path) == 0;
}

int cairn_node_api_handler(void *user, const cairn_api_call *call) {
    cairn_local_node *n = user;
    if (serve_anthropic(n, call) == 0 || serve_openai(n, call) == 0 || serve_ollama(n, call) == 0) {
        return 0;
    }
    const char *prefix = "/instance/";
    if (is(call, "POST", "/generate")) {
        serve_generate(n, call);
    } else if (is(call, "GET", "/") || is(call, "GET", "/dashboard")) {
        cairn_api_reply_bytes(call->reply, 200, "text/html; charset=utf-8", cairn_dashboard_html,
                              cairn_dashboard_html_len);
    } else if (is(call, "POST", "/models/pull")) {
        serve_pull(n, call);
    } else if (is(call, "GET", "/metrics")) {
        serve_metrics(n, call);
    } else if (is(call, "GET", "/events")) {
        serve_events(n, call);
    } else if (is(call, "GET", "/models")) {
        serve_model_files(n, call);
    } else if (is(call, "GET", "/instance/previews")) {
        serve_placement(n, call, false);
    } else if (is(call, "POST", "/instance")) {
        serve_placement(n, call, true);
    } else if (strcmp(call->method, "DELETE") == 0 &&
               strncmp(call->path, prefix, strlen(prefix)) == 0) {
        serve_delete(n, call, call->path + strlen(prefix));
    } else if (strcmp(call->path, "/generate") == 0 || strcmp(call->path, "/instance") == 0 ||
               strcmp(call->path, "/instance/previews") == 0) {
        cairn_api_reply_error(call->reply, 405, "method_not_allowed",
                              "see the API's methods in the README", NULL);
    } else {
        return 1;
    }
    return 0;
}
