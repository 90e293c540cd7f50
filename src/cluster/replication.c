/*
 * replication: how the state moves between master and followers.
 *
 * The master is the only node that numbers events: its own changes and its followers'
 * proposals become events it applies, logs and sends to every follower in order. A node
 * that takes a new master asks it for a snapshot ("follow request"); from then on it applies
 * the master's events in index order and asks for the tail when it sees a gap. A follower
 * never applies anything that does not come from its master's link. The master accepts from
 * a follower its own profile, reports of the runners on its shards, and placements (checked
 * against the state) and deletions of instances.
 */
#define _POSIX_C_SOURCE 200809L /* pthread types in uv.h under strict C11 */

#include <stdlib.h>
#include <string.h>

#include "cluster/json_fields.h"
#include "cluster/node_internal.h"
#include "cluster/placement.h"
#include "platform/platform.h"
#include "util/log.h"

/* Events kept for followers that lag a little; older ones are covered by snapshots. */
#define LOG_KEEP_RECENT 256
#define LOG_COMPACT_AT 1024

static void log_event(cairn_local_node *n, const cairn_event *e) {
    serve_event_applied(n, e);
    if (!cairn_log_enabled(n->log, CAIRN_LOG_DEBUG)) {
        return;
    }
    cairn_err err = {{0}};
    cJSON *shown = cairn_event_public_cjson(e, &err); /* logs are no place for secrets */
    char *json = shown ? cJSON_PrintUnformatted(shown) : NULL;
    cJSON_Delete(shown);
    cairn_log(n->log, CAIRN_LOG_DEBUG, "event %llu: %s", (unsigned long long)e->index,
              json         ? json
              : err.msg[0] ? err.msg
                           : "out of memory");
    free(json);
}

static void broadcast(cairn_local_node *n, const cairn_log_entry *entry) {
    cairn_err err = {{0}};
    cairn_buf frame = {0};
    if (cairn_wire_encode(CAIRN_WIRE_EVENT, entry->json, entry->json_len, &frame, &err) != 0) {
        cairn_log(n->log, CAIRN_LOG_ERROR, "cannot frame event %llu: %s",
                  (unsigned long long)entry->index, err.msg);
        cairn_buf_free(&frame);
        return;
    }
    for (node_link *l = n->links; l; l = l->next) {
        if (l->phase == LINK_UP && l->follower) {
            link_send_frame(l, &frame);
        }
    }
    cairn_buf_free(&frame);
}

int master_emit(cairn_local_node *n, cairn_event *e, cairn_err *err) {
    if (e->type == CAIRN_EVENT_INSTANCE_PLACED) {
        /* whoever planned it, the secret is the master's own and fresh */
        if (cairn_instance_secret_new(e->as.instance_placed.secret,
                                      sizeof e->as.instance_placed.secret, err) != 0) {
            return -1;
        }
    }
    e->index = n->state->last_index + 1;
    e->term = e->type == CAIRN_EVENT_MASTER_ELECTED ? n->state->term + 1 : n->state->term;
    if (cairn_state_apply(n->state, e, err) != 0) {
        return -1;
    }
    log_event(n, e);
    if (cairn_event_log_append(&n->events, e, err) != 0) {
        /* The state moved on without a logged copy: followers will need a snapshot. */
        cairn_event_log_free(&n->events);
        cairn_event_log_init(&n->events, n->state->last_index);
    } else {
        broadcast(n, &n->events.entries[n->events.count - 1]);
    }
    if (n->events.count > LOG_COMPACT_AT) {
        cairn_event_log_compact(&n->events, n->state, LOG_KEEP_RECENT);
    }
    node_mark_dirty(n);
    return 0;
}

static void emit_or_log(cairn_local_node *n, cairn_event *e) {
    cairn_err err = {{0}};
    if (master_emit(n, e, &err) != 0) {
        cairn_log(n->log, CAIRN_LOG_ERROR, "cannot record %s: %s", cairn_event_type_name(e->type),
                  err.msg);
    }
}

static void emit_joined(cairn_local_node *n, const char *id, const char *name, uint32_t n_addresses,
                        const cairn_address *addresses) {
    cairn_event e;
    memset(&e, 0, sizeof e);
    e.type = CAIRN_EVENT_NODE_JOINED;
    snprintf(e.as.node_joined.node_id, sizeof e.as.node_joined.node_id, "%s", id);
    snprintf(e.as.node_joined.name, sizeof e.as.node_joined.name, "%s", name);
    e.as.node_joined.n_addresses = n_addresses;
    memcpy(e.as.node_joined.addresses, addresses, n_addresses * sizeof *addresses);
    emit_or_log(n, &e);
}

static void emit_node_event(cairn_local_node *n, cairn_event_type type, const char *id,
                            bool connected) {
    cairn_event e;
    memset(&e, 0, sizeof e);
    e.type = type;
    if (type == CAIRN_EVENT_NODE_LEFT) {
        care_node_leaving(&n->care, n->state, id, cairn_now_seconds(), n->log);
        snprintf(e.as.node_left.node_id, sizeof e.as.node_left.node_id, "%.63s", id);
    } else {
        snprintf(e.as.node_connection_changed.node_id, sizeof e.as.node_connection_changed.node_id,
                 "%.63s", id);
        e.as.node_connection_changed.connected = connected;
    }
    emit_or_log(n, &e);
}

void become_master(cairn_local_node *n) {
    cairn_err err = {{0}};
    if (!n->has_state) {
        if (cairn_state_init(n->state, n->cluster, &err) != 0) {
            cairn_log(n->log, CAIRN_LOG_ERROR, "cannot found a cluster: %s", err.msg);
            return;
        }
        n->has_state = true;
        n->born_ms = (uint64_t)cairn_wall_clock_ms();
        snprintf(n->founder, sizeof n->founder, "%s", n->id);
        cairn_log(n->log, CAIRN_LOG_INFO, "founding cluster \"%s\"", n->cluster);
    }
    n->role = ROLE_MASTER;
    n->master_link = NULL;
    n->synced = true;
    n->n_absent = 0;
    care_init(&n->care); /* what a former mastership intended may have happened since */
    cairn_event_log_free(&n->events);
    cairn_event_log_init(&n->events, n->state->last_index);
    for (node_link *l = n->links; l; l = l->next) {
        l->follower = false;
    }
    cairn_event e;
    memset(&e, 0, sizeof e);
    e.type = CAIRN_EVENT_MASTER_ELECTED;
    snprintf(e.as.master_elected.master_id, sizeof e.as.master_elected.master_id, "%s", n->id);
    emit_or_log(n, &e);
    const cairn_node *self = cairn_state_find_node(n->state, n->id);
    if (!self) {
        emit_joined(n, n->id, n->name, n->n_addresses, n->addresses);
    } else if (!self->connected) {
        emit_node_event(n, CAIRN_EVENT_NODE_CONNECTION_CHANGED, n->id, true);
    }
    cairn_log(n->log, CAIRN_LOG_INFO, "this node is the master (term %llu)",
              (unsigned long long)n->state->term);
    n->next_profile = 0; /* report this node's profile right away */
    for (node_link *l = n->links; l; l = l->next) {
        if (l->phase == LINK_UP) {
            link_send_heartbeat(l);
        }
    }
}

void step_down(cairn_local_node *n) {
    n->role = ROLE_NONE;
    n->master_link = NULL;
    n->synced = false;
    for (node_link *l = n->links; l; l = l->next) {
        l->follower = false;
    }
    node_mark_dirty(n);
}

/* ---- follower side ---- */

static cJSON *addresses_json(const cairn_address *a, uint32_t count) {
    cJSON *arr = cJSON_CreateArray();
    for (uint32_t i = 0; arr && i < count; i++) {
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddStringToObject(o, "host", a[i].host) ||
            !cJSON_AddNumberToObject(o, "port", a[i].port)) {
            cJSON_Delete(o);
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static cJSON *lineage_json(const cairn_local_node *n) {
    if (!n->has_state) {
        return cJSON_CreateNull();
    }
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddNumberToObject(o, "born", (double)n->born_ms) ||
        !cJSON_AddStringToObject(o, "founder", n->founder)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

void send_follow_request(cairn_local_node *n) {
    node_link *m = n->master_link;
    if (!m) {
        return;
    }
    cJSON *o = cJSON_CreateObject();
    bool ok = cairn_json_add_child(o, "lineage", lineage_json(n)) &&
              cairn_json_add_child(o, "addresses", addresses_json(n->addresses, n->n_addresses)) &&
              cJSON_AddNumberToObject(o, "after", (double)n->state->last_index) &&
              cJSON_AddBoolToObject(o, "full", !n->synced) &&
              cJSON_AddStringToObject(o, "name", n->name);
    if (ok) {
        link_send_json(m, CAIRN_WIRE_EVENT_REQUEST, o);
    }
    cJSON_Delete(o);
    n->follow_sent_at = cairn_now_seconds();
}

void follow(cairn_local_node *n, node_link *master) {
    n->role = ROLE_FOLLOWER;
    n->master_link = master;
    n->synced = false;
    for (node_link *l = n->links; l; l = l->next) {
        l->follower = false;
    }
    cairn_log(n->log, CAIRN_LOG_INFO, "following %s", master->hello.node_id);
    send_follow_request(n);
    node_mark_dirty(n);
}

void node_link_lost(cairn_local_node *n, node_link *l) {
    if (n->master_link == l) {
        cairn_log(n->log, CAIRN_LOG_WARN, "lost the link to the master %s", l->hello.node_id);
        step_down(n);
    }
    l->follower = false;
    election_update(n);
    node_mark_dirty(n);
}

int on_event_ack(node_link *l, const cJSON *msg, cairn_err *err) {
    bool not_master = false;
    if (CAIRN_JSON_EXPECT_FIELDS(msg, err, "not_master") != 0 ||
        cairn_json_get_bool(msg, "not_master", &not_master, err) != 0) {
        return cairn_fail_prefix(err, "EVENT_ACK");
    }
    if (not_master && l->node->master_link == l) {
        cairn_log(l->node->log, CAIRN_LOG_DEBUG, "%s is not master yet; asking again soon",
                  link_name(l));
    }
    return 0;
}

static int parse_lineage(const cJSON *o, uint64_t *born, char *founder, size_t size,
                         cairn_err *err) {
    if (CAIRN_JSON_EXPECT_FIELDS(o, err, "born", "founder") != 0 ||
        cairn_json_get_number(o, "born", born, err) != 0 ||
        cairn_json_get_text(o, "founder", founder, size, err) != 0) {
        return cairn_fail_prefix(err, "lineage");
    }
    return 0;
}

int on_snapshot(node_link *l, const cJSON *msg, cairn_err *err) {
    cairn_local_node *n = l->node;
    if (n->master_link != l) {
        cairn_log(n->log, CAIRN_LOG_DEBUG, "ignoring a snapshot from %s, not the master",
                  link_name(l));
        return 0;
    }
    uint64_t born = 0;
    char founder[CAIRN_STATE_ID_SIZE];
    if (CAIRN_JSON_EXPECT_FIELDS(msg, err, "lineage", "state") != 0 ||
        parse_lineage(cairn_json_field(msg, "lineage"), &born, founder, sizeof founder, err) != 0) {
        return cairn_fail_prefix(err, "SNAPSHOT");
    }
    cairn_cluster_state *s = cairn_state_new(n->cluster, err);
    if (!s) {
        return -1;
    }
    if (cairn_state_from_snapshot_cjson(cairn_json_field(msg, "state"), s, err) != 0) {
        free(s);
        return cairn_fail_prefix(err, "SNAPSHOT");
    }
    if (strcmp(s->cluster_name, n->cluster) != 0) {
        free(s);
        return cairn_fail(err, "SNAPSHOT of another cluster");
    }
    free(n->state);
    n->state = s;
    n->has_state = true;
    n->born_ms = born;
    snprintf(n->founder, sizeof n->founder, "%s", founder);
    n->synced = true;
    cairn_log(n->log, CAIRN_LOG_INFO, "in step with the master %s at event %llu (term %llu)",
              l->hello.node_id, (unsigned long long)s->last_index, (unsigned long long)s->term);
    n->next_profile = 0; /* the master may not have this node's profile yet */
    node_mark_dirty(n);
    for (node_link *p = n->links; p; p = p->next) {
        if (p->phase == LINK_UP) {
            link_send_heartbeat(p); /* the rank changed with the state */
        }
    }
    election_update(n);
    return 0;
}

int on_event(node_link *l, const cairn_wire_frame *f, cairn_err *err) {
    cairn_local_node *n = l->node;
    if (n->master_link != l || !n->synced) {
        return 0; /* from a former master, or before the snapshot: the snapshot covers it */
    }
    cairn_event e;
    if (cairn_event_from_json((const char *)f->payload, f->len, &e, err) != 0) {
        return cairn_fail_prefix(err, "EVENT");
    }
    if (e.index <= n->state->last_index) {
        return 0;
    }
    if (e.index > n->state->last_index + 1) {
        cairn_log(n->log, CAIRN_LOG_INFO, "missed events %llu..%llu; asking for them",
                  (unsigned long long)n->state->last_index + 1, (unsigned long long)e.index - 1);
        send_follow_request(n);
        return 0;
    }
    cairn_err apply_err = {{0}};
    if (cairn_state_apply(n->state, &e, &apply_err) != 0) {
        cairn_log(n->log, CAIRN_LOG_WARN,
                  "cannot apply event %llu from the master: %s; asking "
                  "for a snapshot",
                  (unsigned long long)e.index, apply_err.msg);
        n->synced = false;
        send_follow_request(n);
        return 0;
    }
    log_event(n, &e);
    node_mark_dirty(n);
    if (e.type == CAIRN_EVENT_NODE_JOINED || e.type == CAIRN_EVENT_NODE_LEFT ||
        e.type == CAIRN_EVENT_MASTER_ELECTED) {
        election_update(n); /* seniorities may have changed */
    }
    return 0;
}

/* ---- master side ---- */

static int parse_addresses(const cJSON *msg, cairn_address *out, uint32_t *count, cairn_err *err) {
    uint32_t n = 0;
    const cJSON *arr = cairn_json_get_array(msg, "addresses", CAIRN_STATE_MAX_ADDRESSES, &n, err);
    if (!arr) {
        return -1;
    }
    const cJSON *item = NULL;
    uint32_t i = 0;
    cJSON_ArrayForEach(item, arr) {
        uint32_t port = 0;
        if (CAIRN_JSON_EXPECT_FIELDS(item, err, "host", "port") != 0 ||
            cairn_json_get_text(item, "host", out[i].host, sizeof out[i].host, err) != 0 ||
            cairn_json_get_u32(item, "port", 65535, &port, err) != 0 || port == 0) {
            return cairn_fail_prefix(err, "address %u", i);
        }
        out[i++].port = (uint16_t)port;
    }
    *count = n;
    return 0;
}

/* The address the master saw the follower's link come from goes first, then the
 * follower's own list, without repeats. */
static uint32_t merge_addresses(const node_link *l, const cairn_address *given, uint32_t n_given,
                                cairn_address *out) {
    uint32_t n = 0;
    if (l->remote_host[0] && l->hello.cluster_port != 0) {
        snprintf(out[0].host, sizeof out[0].host, "%s", l->remote_host);
        out[0].port = l->hello.cluster_port;
        n = 1;
    }
    for (uint32_t i = 0; i < n_given && n < CAIRN_STATE_MAX_ADDRESSES; i++) {
        bool dup = false;
        for (uint32_t j = 0; j < n; j++) {
            dup = dup || (strcmp(out[j].host, given[i].host) == 0 && out[j].port == given[i].port);
        }
        if (!dup) {
            out[n++] = given[i];
        }
    }
    return n;
}

static void send_snapshot(cairn_local_node *n, node_link *l) {
    cairn_err err = {{0}};
    cJSON *o = cJSON_CreateObject();
    bool ok = cairn_json_add_child(o, "lineage", lineage_json(n)) &&
              cairn_json_add_child(o, "state", cairn_state_snapshot_cjson(n->state, &err));
    if (ok) {
        link_send_json(l, CAIRN_WIRE_SNAPSHOT, o);
        l->follower = true;
    } else {
        cairn_log(n->log, CAIRN_LOG_ERROR, "cannot build a snapshot for %s: %s", link_name(l),
                  err.msg[0] ? err.msg : "out of memory");
    }
    cJSON_Delete(o);
}

/* A follower (re)joins: a node from another lineage (or none, e.g. restarted) joins anew
 * with a new seniority, so a restarted node never outranks the master it rejoins. */
static void admit(cairn_local_node *n, node_link *l, bool same_lineage, const char *name,
                  const cairn_address *addresses, uint32_t n_addresses) {
    const char *id = l->hello.node_id;
    const cairn_node *member = cairn_state_find_node(n->state, id);
    if (member && !same_lineage) {
        emit_node_event(n, CAIRN_EVENT_NODE_LEFT, id, false);
        member = NULL;
    }
    if (!member) {
        cairn_address merged[CAIRN_STATE_MAX_ADDRESSES];
        uint32_t count = merge_addresses(l, addresses, n_addresses, merged);
        emit_joined(n, id, name, count, merged);
    } else if (!member->connected) {
        emit_node_event(n, CAIRN_EVENT_NODE_CONNECTION_CHANGED, id, true);
    }
}

int on_event_request(node_link *l, const cJSON *msg, cairn_err *err) {
    cairn_local_node *n = l->node;
    uint64_t after = 0, born = 0;
    bool full = false;
    char name[CAIRN_STATE_NAME_SIZE], founder[CAIRN_STATE_ID_SIZE] = "";
    cairn_address addresses[CAIRN_STATE_MAX_ADDRESSES];
    memset(addresses, 0, sizeof addresses);
    uint32_t n_addresses = 0;
    const cJSON *lineage = cairn_json_field(msg, "lineage");
    if (CAIRN_JSON_EXPECT_FIELDS(msg, err, "after", "full", "lineage", "name", "addresses") != 0 ||
        cairn_json_get_number(msg, "after", &after, err) != 0 ||
        cairn_json_get_bool(msg, "full", &full, err) != 0 ||
        cairn_json_get_text(msg, "name", name, sizeof name, err) != 0 ||
        parse_addresses(msg, addresses, &n_addresses, err) != 0 ||
        (!cJSON_IsNull(lineage) &&
         parse_lineage(lineage, &born, founder, sizeof founder, err) != 0)) {
        return cairn_fail_prefix(err, "EVENT_REQUEST");
    }
    if (!cairn_utf8_is_printable(name, strlen(name))) {
        return cairn_fail(err, "EVENT_REQUEST: the node name is not printable UTF-8");
    }
    if (n->role != ROLE_MASTER) {
        cJSON *ack = cJSON_CreateObject();
        if (ack && cJSON_AddBoolToObject(ack, "not_master", true)) {
            link_send_json(l, CAIRN_WIRE_EVENT_ACK, ack);
        }
        cJSON_Delete(ack);
        return 0;
    }
    if (full || !l->follower) {
        bool same =
            !cJSON_IsNull(lineage) && born == n->born_ms && strcmp(founder, n->founder) == 0;
        admit(n, l, same, name, addresses, n_addresses);
        send_snapshot(n, l);
        return 0;
    }
    const cairn_log_entry *entries = NULL;
    size_t count = 0;
    if (cairn_event_log_tail_after(&n->events, after, &entries, &count) != CAIRN_TAIL_OK) {
        send_snapshot(n, l);
        return 0;
    }
    for (size_t i = 0; i < count && l->phase == LINK_UP; i++) {
        l->out.len = 0;
        if (cairn_wire_encode(CAIRN_WIRE_EVENT, entries[i].json, entries[i].json_len, &l->out,
                              err) != 0) {
            return -1;
        }
        link_send_frame(l, &l->out);
    }
    return 0;
}

/* The kinds of event a follower may propose at all; anything else is a protocol error. */
static bool proposable(const cairn_event *e, const char *peer) {
    switch (e->type) {
    case CAIRN_EVENT_NODE_PROFILE_UPDATED:
        return strcmp(e->as.node_profile_updated.node_id, peer) == 0;
    case CAIRN_EVENT_RUNNER_STATE_CHANGED:
    case CAIRN_EVENT_INSTANCE_PLACED:
    case CAIRN_EVENT_INSTANCE_DELETED: return true;
    default: return false;
    }
}

/* Whether the master records a proposal, given its state: runners only from their shard's
 * node, and placements only when they fit. A refusal is no protocol error (a report may be
 * about an instance the master deleted a moment ago), so the link stays. */
static int proposal_accepted(const cairn_cluster_state *s, const cairn_event *e, const char *peer,
                             cairn_err *err) {
    if (e->type == CAIRN_EVENT_RUNNER_STATE_CHANGED) {
        const cairn_instance *in =
            cairn_state_find_instance(s, e->as.runner_state_changed.instance_id);
        uint32_t k = e->as.runner_state_changed.shard;
        if (!in || k >= in->n_shards) {
            return cairn_fail(err, "no shard %u of instance \"%s\"", k,
                              e->as.runner_state_changed.instance_id);
        }
        if (strcmp(in->shards[k].node_id, peer) != 0) {
            return cairn_fail(err, "shard %u of \"%s\" runs on %s, not on %s", k, in->id,
                              in->shards[k].node_id, peer);
        }
    }
    if (e->type == CAIRN_EVENT_INSTANCE_PLACED) {
        return cairn_placement_check(s, e, err);
    }
    return 0;
}

int on_propose(node_link *l, const cairn_wire_frame *f, cairn_err *err) {
    cairn_local_node *n = l->node;
    cairn_event e;
    if (cairn_event_from_json((const char *)f->payload, f->len, &e, err) != 0) {
        return cairn_fail_prefix(err, "PROPOSE");
    }
    if (!proposable(&e, l->hello.node_id)) {
        return cairn_fail(err, "PROPOSE: a node may not propose %s%s",
                          cairn_event_type_name(e.type),
                          e.type == CAIRN_EVENT_NODE_PROFILE_UPDATED ? " about another node" : "");
    }
    if (n->role != ROLE_MASTER || !l->follower) {
        return 0; /* it will propose again to its real master */
    }
    cairn_err apply_err = {{0}};
    if (proposal_accepted(n->state, &e, l->hello.node_id, &apply_err) != 0 ||
        master_emit(n, &e, &apply_err) != 0) {
        cairn_log(n->log, CAIRN_LOG_WARN, "refusing a proposal of %s (%s): %s", link_name(l),
                  cairn_event_type_name(e.type), apply_err.msg);
    }
    return 0;
}

void node_report(cairn_local_node *n, cairn_event *e) {
    if (n->role == ROLE_MASTER) {
        emit_or_log(n, e);
        return;
    }
    if (n->role != ROLE_FOLLOWER || !n->synced || !n->master_link) {
        return;
    }
    e->index = 1; /* numbered by the master; a placeholder that passes the event checks */
    e->term = 0;
    if (e->type == CAIRN_EVENT_INSTANCE_PLACED) {
        /* the master replaces it: a placeholder that passes the checks too */
        memset(e->as.instance_placed.secret, '0', CAIRN_STATE_SECRET_SIZE - 1);
        e->as.instance_placed.secret[CAIRN_STATE_SECRET_SIZE - 1] = '\0';
    }
    cairn_err err = {{0}};
    char *json = cairn_event_to_json(e, &err);
    if (!json) {
        cairn_log(n->log, CAIRN_LOG_ERROR, "cannot propose %s: %s", cairn_event_type_name(e->type),
                  err.msg);
        return;
    }
    cairn_buf frame = {0};
    if (cairn_wire_encode(CAIRN_WIRE_PROPOSE, json, strlen(json), &frame, &err) == 0) {
        link_send_frame(n->master_link, &frame);
    }
    cairn_buf_free(&frame);
    free(json);
}

static int care_emit(void *user, cairn_event *e, cairn_err *err) {
    return master_emit(user, e, err);
}

static absent_member *absent_entry(cairn_local_node *n, const char *id, double now) {
    for (uint32_t i = 0; i < n->n_absent; i++) {
        if (strcmp(n->absent[i].id, id) == 0) {
            return &n->absent[i];
        }
    }
    if (n->n_absent == CAIRN_STATE_MAX_NODES) {
        return NULL;
    }
    absent_member *a = &n->absent[n->n_absent++];
    snprintf(a->id, sizeof a->id, "%.63s", id);
    a->since = now;
    return a;
}

static void absent_clear(cairn_local_node *n, const char *id) {
    for (uint32_t i = 0; i < n->n_absent; i++) {
        if (strcmp(n->absent[i].id, id) == 0) {
            n->absent[i] = n->absent[--n->n_absent];
            return;
        }
    }
}

void master_tick(cairn_local_node *n, double now) {
    if (n->role != ROLE_MASTER) {
        return;
    }
    /* Walk a copy of the ids: events below change the node list. */
    char ids[CAIRN_STATE_MAX_NODES][CAIRN_STATE_ID_SIZE];
    uint32_t count = n->state->n_nodes;
    for (uint32_t i = 0; i < count; i++) {
        memcpy(ids[i], n->state->nodes[i].id, CAIRN_STATE_ID_SIZE);
    }
    for (uint32_t i = 0; i < count; i++) {
        const cairn_node *member = cairn_state_find_node(n->state, ids[i]);
        if (!member || strcmp(ids[i], n->id) == 0) {
            continue;
        }
        if (link_find_up(n, ids[i])) {
            absent_clear(n, ids[i]);
            continue;
        }
        if (member->connected) {
            emit_node_event(n, CAIRN_EVENT_NODE_CONNECTION_CHANGED, ids[i], false);
        }
        absent_member *a = absent_entry(n, ids[i], now);
        if (a && now - a->since > n->timeout_s) {
            cairn_log(n->log, CAIRN_LOG_INFO, "%s has been gone for %.1f s: removing it", ids[i],
                      now - a->since);
            emit_node_event(n, CAIRN_EVENT_NODE_LEFT, ids[i], false);
            absent_clear(n, ids[i]);
        }
    }
    care_tick(&n->care, n->state, now, &n->rng, n->log, care_emit, n);
}
