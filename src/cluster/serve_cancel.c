/*
 * serve_cancel: POST /v1/cancel/{id} for the whole cluster. A request is relayed by the node
 * whose API took it, and a client may send its cancel to any node, so a cancel for a
 * request that is not relayed here is asked of every peer over the cluster links:
 *   {"op":"cancel","id":ID,"ask":N}  ->  {"op":"cancel_result","ask":N,"found":bool}
 * The asking API thread waits until a peer has found it, every peer has answered, or
 * CANCEL_WAIT_NS has passed.
 *
 * Owns the asks in flight (the loop's list; their answers under call_lock). Must never
 * trust a peer: an id is checked like our own, an answer to an ask this node does not know
 * is ignored, and an ask nobody answers is freed by a later one.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "cluster/json_fields.h"
#include "cluster/serve_internal.h"
#include "cluster/wire.h"

#define CANCEL_WAIT_NS (2ull * 1000 * 1000 * 1000)

typedef struct cancel_ask {
    struct cancel_ask *next;
    uint64_t serial;
    char id[48]; /* as relay.id */
    bool listed; /* on the loop's list: the loop frees it once client_done */
    /* under call_lock */
    size_t waiting;   /* answers still due */
    bool found;       /* here or on a peer */
    bool client_done; /* the API thread stopped waiting */
} cancel_ask;

static bool valid_id(const char *id) {
    size_t len = id ? strlen(id) : 0;
    return len > 0 && len < sizeof((cancel_ask *)0)->id && cairn_utf8_is_printable(id, len);
}

/* Frees the asks whose API thread has stopped waiting (answers still due are then ignored),
 * or all of them (the node is going). On the loop. */
static void forget_asks(cairn_local_node *n, bool all) {
    cancel_ask **p = &n->cancel_asks;
    while (*p) {
        cancel_ask *a = *p;
        bool done = all;
        if (!done) {
            uv_mutex_lock(&n->call_lock);
            done = a->client_done;
            uv_mutex_unlock(&n->call_lock);
        }
        if (done) {
            *p = a->next;
            free(a);
            continue;
        }
        p = &a->next;
    }
}

/* On the loop: the relay here, or else the question to every peer. */
static void ask_cluster(cairn_local_node *n, void *arg) {
    cancel_ask *a = arg;
    forget_asks(n, false);
    if (relay_cancel_here(n, a->id)) {
        a->found = true;
        return;
    }
    a->serial = ++n->cancel_serial;
    cJSON *msg = cJSON_CreateObject();
    if (!msg || !cJSON_AddStringToObject(msg, "op", "cancel") ||
        !cJSON_AddStringToObject(msg, "id", a->id) ||
        !cJSON_AddNumberToObject(msg, "ask", (double)a->serial)) {
        cJSON_Delete(msg);
        return;
    }
    size_t asked = 0;
    for (node_link *l = n->links; l; l = l->next) {
        if (l->phase == LINK_UP) {
            link_send_json(l, CAIRN_WIRE_CONTROL, msg);
            asked++;
        }
    }
    cJSON_Delete(msg);
    if (asked > 0) {
        a->waiting = asked;
        a->listed = true;
        a->next = n->cancel_asks;
        n->cancel_asks = a;
    }
}

bool relay_cancel(cairn_local_node *n, const char *id) {
    cancel_ask *a = calloc(1, sizeof *a);
    if (!a || !valid_id(id)) {
        free(a);
        return false;
    }
    memcpy(a->id, id, strlen(id) + 1);
    if (run_on_loop(n, ask_cluster, a) != 0 || !a->listed) {
        bool found = a->found;
        free(a);
        return found;
    }
    uint64_t deadline = uv_hrtime() + CANCEL_WAIT_NS;
    uv_mutex_lock(&n->call_lock);
    while (a->waiting > 0 && !a->found && !n->calls_closed) {
        uint64_t now = uv_hrtime();
        if (now >= deadline ||
            uv_cond_timedwait(&n->call_cond, &n->call_lock, deadline - now) == UV_ETIMEDOUT) {
            break;
        }
    }
    bool found = a->found;
    a->client_done = true; /* the loop frees it from here on */
    uv_mutex_unlock(&n->call_lock);
    return found;
}

static int answer_cancel(node_link *l, const cJSON *msg, cairn_err *err) {
    const char *id = cJSON_GetStringValue(cairn_json_field(msg, "id"));
    uint64_t ask = 0;
    if (!valid_id(id) || cairn_json_get_number(msg, "ask", &ask, err) != 0) {
        return cairn_fail(err, "malformed cancel from a peer");
    }
    bool found = relay_cancel_here(l->node, id);
    cJSON *reply = cJSON_CreateObject();
    if (reply && cJSON_AddStringToObject(reply, "op", "cancel_result") &&
        cJSON_AddNumberToObject(reply, "ask", (double)ask) &&
        cJSON_AddBoolToObject(reply, "found", found)) {
        link_send_json(l, CAIRN_WIRE_CONTROL, reply);
    }
    cJSON_Delete(reply);
    return 0;
}

static int take_answer(cairn_local_node *n, const cJSON *msg, cairn_err *err) {
    uint64_t ask = 0;
    bool found = false;
    if (cairn_json_get_number(msg, "ask", &ask, err) != 0 ||
        cairn_json_get_bool(msg, "found", &found, err) != 0) {
        return cairn_fail(err, "malformed cancel_result from a peer");
    }
    for (cancel_ask *a = n->cancel_asks; a; a = a->next) {
        if (a->serial != ask) {
            continue;
        }
        uv_mutex_lock(&n->call_lock);
        a->found = a->found || found;
        a->waiting -= a->waiting > 0;
        uv_cond_broadcast(&n->call_cond);
        uv_mutex_unlock(&n->call_lock);
        break;
    }
    forget_asks(n, false);
    return 0;
}

int serve_peer_control(node_link *l, const cJSON *msg, cairn_err *err) {
    const char *op = cJSON_GetStringValue(cairn_json_field(msg, "op"));
    if (op && strcmp(op, "cancel") == 0) {
        return answer_cancel(l, msg, err);
    }
    if (op && strcmp(op, "cancel_result") == 0) {
        return take_answer(l->node, msg, err);
    }
    return cairn_fail(err, "unknown control message from a peer");
}

void serve_cancel_free(cairn_local_node *n) {
    forget_asks(n, true);
}
