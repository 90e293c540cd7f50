/*
 * serve_events: GET /events, the cluster's events as server-sent events, for dashboards
 * and scripts that follow the cluster live. A subscriber first gets the whole state
 * ("event: state"), then every event this node applies ("event: cluster", the event's JSON
 * as in GET /state's terms), and a comment line every 15 s so a dead connection shows.
 *
 * Owns the subscribers' buffers. Must never let a slow subscriber hold memory without
 * bound: one that falls 4 MiB behind is dropped. Nor let subscribers take every API thread
 * (each holds one): past WATCH_MAX_SUBSCRIBERS a new one is refused with a 503, and a gone
 * one is noticed by its next write (an event or the keepalive).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "cluster/serve_internal.h"

#define WATCH_MAX_BEHIND ((size_t)4 << 20)
#define WATCH_KEEPALIVE_NS (15ull * 1000 * 1000 * 1000)
#define WATCH_MAX_SUBSCRIBERS 16

typedef struct event_watch {
    struct event_watch *next;
    cairn_buf out;
    bool closed;      /* dropped, or the node is shutting down */
    bool client_done; /* the request's thread is gone: free it */
} event_watch;

void serve_event_applied(cairn_local_node *n, const cairn_event *e) {
    if (!n->serve_ready) {
        return;
    }
    uv_mutex_lock(&n->call_lock);
    bool any = n->watches != NULL;
    uv_mutex_unlock(&n->call_lock);
    if (!any) {
        return;
    }
    cairn_err err = {{0}};
    cJSON *shown = cairn_event_public_cjson(e, &err);
    char *json = shown ? cJSON_PrintUnformatted(shown) : NULL;
    cJSON_Delete(shown);
    if (!json) {
        return;
    }
    uv_mutex_lock(&n->call_lock);
    event_watch **p = &n->watches;
    while (*p) {
        event_watch *w = *p;
        if (w->client_done) {
            *p = w->next;
            cairn_buf_free(&w->out);
            free(w);
            continue;
        }
        if (!w->closed && (w->out.len > WATCH_MAX_BEHIND ||
                           cairn_buf_printf(&w->out, "event: cluster\ndata: %s\n\n", json) != 0)) {
            w->closed = true;
        }
        p = &w->next;
    }
    uv_cond_broadcast(&n->call_cond);
    uv_mutex_unlock(&n->call_lock);
    free(json);
}

/* At shutdown (call_lock held): every subscriber's thread finishes. */
void serve_events_close(cairn_local_node *n) {
    for (event_watch *w = n->watches; w; w = w->next) {
        w->closed = true;
    }
}

void serve_events_free(cairn_local_node *n) {
    while (n->watches) {
        event_watch *w = n->watches;
        n->watches = w->next;
        cairn_buf_free(&w->out);
        free(w);
    }
}

static int write_text(const cairn_api_call *call, const char *text, size_t len) {
    return cairn_api_stream_write(call->reply, text, len);
}

void serve_events(cairn_local_node *n, const cairn_api_call *call) {
    event_watch *w = calloc(1, sizeof *w);
    cairn_err err = {{0}};
    char *state = cairn_node_state_json(n, &err);
    if (!w || !state) {
        free(w);
        free(state);
        cairn_api_reply_error(call->reply, 503, "unavailable",
                              err.msg[0] ? err.msg : "out of memory", NULL);
        return;
    }
    uv_mutex_lock(&n->call_lock);
    size_t live = 0;
    for (const event_watch *o = n->watches; o; o = o->next) {
        live += !o->client_done;
    }
    bool open = !n->calls_closed && live < WATCH_MAX_SUBSCRIBERS;
    if (open) {
        w->next = n->watches;
        n->watches = w;
    }
    uv_mutex_unlock(&n->call_lock);
    if (!open) {
        free(w);
        free(state);
        cairn_api_reply_error(call->reply, 503, "unavailable",
                              live >= WATCH_MAX_SUBSCRIBERS
                                  ? "too many subscribers to /events on this node; try another"
                                  : "the node is shutting down",
                              NULL);
        return;
    }
    cairn_buf first = {0};
    bool writing = cairn_api_stream_begin(call->reply, "text/event-stream") == 0 &&
                   cairn_buf_printf(&first, "event: state\ndata: %s\n\n", state) == 0 &&
                   write_text(call, first.data, first.len) == 0;
    cairn_buf_free(&first);
    free(state);
    cairn_buf chunk = {0};
    uv_mutex_lock(&n->call_lock);
    while (writing && !w->closed) {
        if (w->out.len == 0 &&
            uv_cond_timedwait(&n->call_cond, &n->call_lock, WATCH_KEEPALIVE_NS) == UV_ETIMEDOUT &&
            w->out.len == 0) {
            uv_mutex_unlock(&n->call_lock);
            writing = write_text(call, ": keepalive\n\n", 13) == 0;
            uv_mutex_lock(&n->call_lock);
            continue;
        }
        cairn_buf swap = chunk;
        chunk = w->out;
        w->out = swap;
        uv_mutex_unlock(&n->call_lock);
        writing = chunk.len == 0 || write_text(call, chunk.data, chunk.len) == 0;
        chunk.len = 0;
        uv_mutex_lock(&n->call_lock);
    }
    w->client_done = true; /* freed by the next event, or when the node goes */
    uv_mutex_unlock(&n->call_lock);
    cairn_buf_free(&chunk);
}
