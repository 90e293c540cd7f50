/*
 * election: which node is master. Every node ranks candidates the same way and follows the
 * best one it can reach; heartbeats carry each node's rank and the rank of the master it
 * follows, so a node never crowns itself while a peer it sees follows someone better.
 *
 * A rank prefers, in order: a node that holds a cluster state over one that does not yet;
 * the older lineage (two clusters that meet merge into the older one); the more senior node
 * within it (so a stable master is not deposed by newcomers); the lower node id. The
 * ranking must stay a pure function of what heartbeats carry, or nodes would disagree.
 */
#define _POSIX_C_SOURCE 200809L /* pthread types in uv.h under strict C11 */

#include <string.h>

#include "cluster/json_fields.h"
#include "cluster/node_internal.h"
#include "platform/platform.h"
#include "util/log.h"

/* A node with no state waits this long after start for peers before founding a cluster of
 * its own, so nodes started together do not each found one. */
#define STARTUP_GRACE_S 1.5

void node_self_rank(const cairn_local_node *n, node_rank *out) {
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%s", n->id);
    out->has_state = n->has_state;
    out->seniority = NODE_NO_SENIORITY;
    if (n->has_state) {
        out->born_ms = n->born_ms;
        snprintf(out->founder, sizeof out->founder, "%s", n->founder);
        const cairn_node *self = cairn_state_find_node(n->state, n->id);
        if (self) {
            out->seniority = self->seniority;
        }
    }
}

static bool rank_equal(const node_rank *a, const node_rank *b) {
    return strcmp(a->id, b->id) == 0 && a->has_state == b->has_state && a->born_ms == b->born_ms &&
           strcmp(a->founder, b->founder) == 0 && a->seniority == b->seniority;
}

int rank_compare(const node_rank *a, const node_rank *b) {
    if (a->has_state != b->has_state) {
        return a->has_state ? -1 : 1;
    }
    if (a->has_state) {
        if (a->born_ms != b->born_ms) {
            return a->born_ms < b->born_ms ? -1 : 1;
        }
        int c = strcmp(a->founder, b->founder);
        if (c != 0) {
            return c;
        }
        if (a->seniority != b->seniority) {
            return a->seniority < b->seniority ? -1 : 1;
        }
    }
    return strcmp(a->id, b->id);
}

cJSON *rank_to_json(const node_rank *r) {
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "id", r->id) ||
        !cJSON_AddBoolToObject(o, "state", r->has_state) ||
        !cJSON_AddNumberToObject(o, "born", (double)r->born_ms) ||
        !cJSON_AddStringToObject(o, "founder", r->founder) ||
        !cJSON_AddNumberToObject(o, "seniority", (double)r->seniority)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

int rank_from_json(const cJSON *o, node_rank *out, cairn_err *err) {
    node_rank r;
    memset(&r, 0, sizeof r);
    if (CAIRN_JSON_EXPECT_FIELDS(o, err, "id", "state", "born", "founder", "seniority") != 0 ||
        cairn_json_get_text(o, "id", r.id, sizeof r.id, err) != 0 ||
        cairn_json_get_bool(o, "state", &r.has_state, err) != 0 ||
        cairn_json_get_number(o, "born", &r.born_ms, err) != 0 ||
        cairn_json_get_text(o, "founder", r.founder, sizeof r.founder, err) != 0 ||
        cairn_json_get_number(o, "seniority", &r.seniority, err) != 0) {
        return cairn_fail_prefix(err, "rank");
    }
    if (!cairn_wire_node_id_valid(r.id, strlen(r.id)) ||
        (r.founder[0] && !cairn_wire_node_id_valid(r.founder, strlen(r.founder)))) {
        return cairn_fail(err, "rank: malformed node id");
    }
    *out = r;
    return 0;
}

/* The master this node follows, as its heartbeats report it. */
static bool followed_rank(const cairn_local_node *n, node_rank *out) {
    if (n->role == ROLE_MASTER) {
        node_self_rank(n, out);
        return true;
    }
    if (n->role == ROLE_FOLLOWER && n->master_link && n->synced && n->master_link->has_rank) {
        *out = n->master_link->rank;
        return true;
    }
    return false;
}

cJSON *heartbeat_json(const cairn_local_node *n) {
    node_rank self, master;
    node_self_rank(n, &self);
    cJSON *o = cJSON_CreateObject();
    bool ok =
        cairn_json_add_child(
            o, "follows", followed_rank(n, &master) ? rank_to_json(&master) : cJSON_CreateNull()) &&
        cairn_json_add_child(o, "rank", rank_to_json(&self)) &&
        cJSON_AddNumberToObject(o, "term", (double)n->state->term) &&
        cJSON_AddNumberToObject(o, "index", (double)n->state->last_index);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

int heartbeat_apply(node_link *l, const cJSON *hb, cairn_err *err) {
    uint64_t term = 0, index = 0;
    node_rank rank, follows;
    memset(&rank, 0, sizeof rank);
    memset(&follows, 0, sizeof follows);
    const cJSON *f = cairn_json_field(hb, "follows");
    if (CAIRN_JSON_EXPECT_FIELDS(hb, err, "rank", "follows", "term", "index") != 0 ||
        cairn_json_get_number(hb, "term", &term, err) != 0 ||
        cairn_json_get_number(hb, "index", &index, err) != 0 ||
        rank_from_json(cairn_json_field(hb, "rank"), &rank, err) != 0 ||
        (!cJSON_IsNull(f) && rank_from_json(f, &follows, err) != 0)) {
        return cairn_fail_prefix(err, "heartbeat");
    }
    if (strcmp(rank.id, l->hello.node_id) != 0) {
        return cairn_fail(err, "heartbeat: the peer ranks itself as \"%s\"", rank.id);
    }
    bool changed = !l->has_rank || !rank_equal(&rank, &l->rank) ||
                   l->has_follows != !cJSON_IsNull(f) ||
                   (l->has_follows && !rank_equal(&follows, &l->follows));
    l->rank = rank;
    l->has_rank = true;
    l->has_follows = !cJSON_IsNull(f);
    l->follows = follows;
    if (changed) {
        election_update(l->node);
    }
    cairn_local_node *n = l->node;
    /* A master that stepped down (it follows another now, or nobody) and may come back
     * numbers its new term's events for the followers that ask again; it sends nothing to
     * the others. So a follower is out of step as soon as its master's heartbeat says it is
     * not master, or is master of a later term than this node has seen. */
    bool master_is_itself = l->has_follows && strcmp(l->follows.id, l->hello.node_id) == 0;
    if (n->role == ROLE_FOLLOWER && n->master_link == l && n->synced &&
        (!master_is_itself || term > n->state->term)) {
        cairn_log(n->log, CAIRN_LOG_INFO, "%s is no longer the master this node was in step with",
                  link_name(l));
        n->synced = false;
        node_mark_dirty(n);
    }
    /* A follower that asked this peer before it was master asks again as soon as it is. */
    if (n->role == ROLE_FOLLOWER && n->master_link == l && !n->synced && master_is_itself) {
        send_follow_request(n);
    }
    return 0;
}

/* The best candidate: this node, a linked peer, or a master some linked peer follows. */
static void best_candidate(const cairn_local_node *n, node_rank *best, node_link **best_link) {
    node_self_rank(n, best);
    *best_link = NULL;
    for (node_link *l = n->links; l; l = l->next) {
        if (l->phase != LINK_UP || !l->has_rank) {
            continue;
        }
        if (rank_compare(&l->rank, best) < 0) {
            *best = l->rank;
            *best_link = l;
        }
        if (l->has_follows && strcmp(l->follows.id, n->id) != 0 &&
            rank_compare(&l->follows, best) < 0) {
            *best = l->follows;
            *best_link = link_find_up((cairn_local_node *)n, l->follows.id);
        }
    }
}

void election_update(cairn_local_node *n) {
    if (n->closing) {
        return;
    }
    node_rank best;
    node_link *link = NULL;
    best_candidate(n, &best, &link);
    if (strcmp(best.id, n->id) == 0) {
        if (n->role != ROLE_MASTER &&
            (n->has_state || cairn_now_seconds() - n->started_at >= STARTUP_GRACE_S)) {
            become_master(n);
        }
        return;
    }
    if (n->role == ROLE_MASTER) {
        cairn_log(n->log, CAIRN_LOG_INFO, "%s ranks above this node: stepping down", best.id);
        step_down(n);
    }
    if (!link) {
        /* The best master is one a peer follows but this node has no link to yet: wait for
         * the link rather than follow anyone worse. */
        if (n->role == ROLE_FOLLOWER) {
            step_down(n);
        }
        return;
    }
    if (n->role != ROLE_FOLLOWER || n->master_link != link) {
        follow(n, link);
    }
}
