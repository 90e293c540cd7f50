/*
 * node: the lifecycle of a cluster node on its libuv loop: configuration, the listening
 * socket, discovery, the dial targets (static peers, discovered nodes, addresses from the
 * state) with their backoff, the periodic tick, the node's own profile, and the JSON views
 * the HTTP threads read.
 *
 * The tick drives everything time-based, so no handler ever waits. The views are the only
 * data shared with other threads, and only under view_lock.
 */
#define _POSIX_C_SOURCE 200809L /* pthread types in uv.h under strict C11 */

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cluster/json_fields.h"
#include "cluster/node_internal.h"
#include "cluster/profile.h"
#include "platform/platform.h"
#include "util/log.h"

#define TICK_MS 100
/* Redial backoff: doubles from the first to the last, with up to 25% jitter. */
#define BACKOFF_FIRST_MS 250
#define BACKOFF_MAX_MS 8000
/* A learned (not static) target that has not been heard of for this long is forgotten. */
#define TARGET_FORGET_S 60.0
/* The higher id of a pair waits this long for the lower one to dial before it dials. */
#define DIAL_DEFER_S 2.0

/* ---- views for the HTTP threads ---- */

void node_mark_dirty(cairn_local_node *n) {
    n->view_dirty = true;
    n->worker_stale = true;
}

static cJSON *links_json(const cairn_local_node *n, double now) {
    cJSON *arr = cJSON_CreateArray();
    for (const node_link *l = n->links; arr && l; l = l->next) {
        if (l->phase != LINK_UP) {
            continue;
        }
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddStringToObject(o, "peer", l->hello.node_id) ||
            !cJSON_AddStringToObject(o, "address", l->remote) ||
            !cJSON_AddBoolToObject(o, "dialed", l->dialer) ||
            !cJSON_AddNumberToObject(o, "up_seconds", now - l->up_at) ||
            !cJSON_AddNumberToObject(o, "last_heard_ms", (now - l->last_heard) * 1000.0) ||
            !cJSON_AddBoolToObject(o, "follower", l->follower)) {
            cJSON_Delete(o);
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static const char *role_name(node_role r) {
    return r == ROLE_MASTER ? "master" : r == ROLE_FOLLOWER ? "follower" : "none";
}

static void count_handle(uv_handle_t *h, void *arg) {
    (void)h;
    (*(int *)arg)++;
}

static char *build_info(cairn_local_node *n, double now) {
    char hash[2 * CAIRN_STATE_HASH_SIZE + 1];
    sodium_bin2hex(hash, sizeof hash, n->state_hash, CAIRN_STATE_HASH_SIZE);
    size_t rss = 0;
    uv_resident_set_memory(&rss);
    int handles = 0;
    uv_walk(n->loop, count_handle, &handles);
    const char *master = n->role == ROLE_MASTER ? n->id
                         : n->role == ROLE_FOLLOWER && n->master_link
                             ? n->master_link->hello.node_id
                             : "";
    cJSON *o = cJSON_CreateObject();
    bool ok = cairn_json_add_child(o, "links", links_json(n, now)) &&
              cJSON_AddStringToObject(o, "id", n->id) &&
              cJSON_AddStringToObject(o, "name", n->name) &&
              cJSON_AddStringToObject(o, "cluster", n->cluster) &&
              cJSON_AddStringToObject(o, "version", CAIRN_VERSION) &&
              cJSON_AddStringToObject(o, "role", role_name(n->role)) &&
              cJSON_AddStringToObject(o, "master", master) &&
              cJSON_AddBoolToObject(o, "synced", n->synced) &&
              cJSON_AddNumberToObject(o, "term", (double)n->state->term) &&
              cJSON_AddNumberToObject(o, "last_index", (double)n->state->last_index) &&
              cJSON_AddStringToObject(o, "state_hash", n->has_state ? hash : "") &&
              cJSON_AddBoolToObject(o, "keyed", n->keyed) &&
              cJSON_AddNumberToObject(o, "cluster_port", n->cluster_port) &&
              cJSON_AddNumberToObject(o, "api_port", n->api_port) &&
              cJSON_AddNumberToObject(o, "uptime_seconds", now - n->started_at) &&
              cJSON_AddNumberToObject(o, "rss_bytes", (double)rss) &&
              cJSON_AddNumberToObject(o, "open_files", (double)cairn_open_handle_count()) &&
              cJSON_AddNumberToObject(o, "loop_handles", handles) &&
              cJSON_AddNumberToObject(o, "targets", (double)n->n_targets) &&
              cJSON_AddNumberToObject(o, "event_log_entries", (double)n->events.count) &&
              cairn_json_add_child(o, "runners", cairn_worker_info_json(n->worker));
    char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return text;
}

/* Rebuilds what changed: the state view only when the state did (it can be large). */
static void publish(cairn_local_node *n, double now) {
    char *state = NULL;
    uint64_t index = n->state->last_index;
    bool state_changed = n->view_dirty;
    if (state_changed) {
        cairn_err err = {{0}};
        state = cairn_state_public_json(n->state, &err);
        if (!state || cairn_state_hash(n->state, n->state_hash, &err) != 0) {
            cairn_log(n->log, CAIRN_LOG_ERROR, "cannot publish the state: %s", err.msg);
        }
        n->view_dirty = false;
    }
    char *info = build_info(n, now);
    uv_mutex_lock(&n->view_lock);
    if (state) {
        free(n->view_state);
        n->view_state = state;
        n->view_index = index;
    }
    if (info) {
        free(n->view_info);
        n->view_info = info;
    }
    uv_mutex_unlock(&n->view_lock);
    n->view_built_at = now;
}

static char *copy_view(cairn_local_node *n, char *const *view, cairn_err *err) {
    uv_mutex_lock(&n->view_lock);
    char *copy = *view ? cairn_strdup(*view) : NULL;
    bool had = *view != NULL;
    uv_mutex_unlock(&n->view_lock);
    if (!copy) {
        cairn_fail(err, had ? "out of memory" : "the node is starting");
    }
    return copy;
}

char *cairn_node_state_json(cairn_local_node *n, cairn_err *err) {
    return copy_view(n, &n->view_state, err);
}

char *cairn_node_info_json(cairn_local_node *n, cairn_err *err) {
    return copy_view(n, &n->view_info, err);
}

/* ---- dial targets ---- */

static void target_remove(cairn_local_node *n, dial_target *t) {
    for (dial_target **p = &n->targets; *p; p = &(*p)->next) {
        if (*p == t) {
            *p = t->next;
            n->n_targets--;
            if (t->link) {
                t->link->target = NULL;
            }
            free(t);
            return;
        }
    }
}

/* The learned target heard of longest ago, to make room. */
static dial_target *stalest_target(cairn_local_node *n) {
    dial_target *stalest = NULL;
    for (dial_target *t = n->targets; t; t = t->next) {
        if (!t->is_static && !t->link && (!stalest || t->last_learned < stalest->last_learned)) {
            stalest = t;
        }
    }
    return stalest;
}

void node_target_learn(cairn_local_node *n, const char *host, uint16_t port, const char *id,
                       bool is_static) {
    double now = cairn_now_seconds();
    for (dial_target *t = n->targets; t; t = t->next) {
        if (t->port == port && strcmp(t->host, host) == 0) {
            t->last_learned = now;
            if (id && id[0]) {
                snprintf(t->id, sizeof t->id, "%s", id);
            }
            return;
        }
    }
    if (n->n_targets >= NODE_MAX_TARGETS) {
        dial_target *old = stalest_target(n);
        if (!old) {
            return;
        }
        target_remove(n, old);
    }
    dial_target *t = calloc(1, sizeof *t);
    if (!t) {
        return;
    }
    snprintf(t->host, sizeof t->host, "%s", host);
    t->port = port;
    snprintf(t->id, sizeof t->id, "%s", id ? id : "");
    t->is_static = is_static;
    t->created = t->last_learned = now;
    t->next = n->targets;
    n->targets = t;
    n->n_targets++;
    cairn_log(n->log, CAIRN_LOG_DEBUG, "learned of %s at %s:%u", id && id[0] ? id : "a peer", host,
              (unsigned)port);
}

static bool should_dial(cairn_local_node *n, dial_target *t, double now) {
    if (t->link || now < t->next_attempt) {
        return false;
    }
    if (t->id[0]) {
        if (strcmp(t->id, n->id) == 0 || link_find_up(n, t->id)) {
            return false;
        }
        /* Both ends learn of each other; the lower id dials first, so usually one link. */
        if (!t->is_static && strcmp(n->id, t->id) > 0 && now - t->created < DIAL_DEFER_S) {
            return false;
        }
    }
    return true;
}

static void targets_tick(cairn_local_node *n, double now) {
    dial_target *next = NULL;
    for (dial_target *t = n->targets; t; t = next) {
        next = t->next;
        if (!t->is_static && !t->link && now - t->last_learned > TARGET_FORGET_S) {
            target_remove(n, t);
            continue;
        }
        if (!should_dial(n, t, now)) {
            continue;
        }
        uint32_t base = t->backoff_ms ? t->backoff_ms : BACKOFF_FIRST_MS;
        t->backoff_ms = base * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : base * 2;
        double jitter = 1.0 + 0.25 * cairn_rng_uniform(&n->rng);
        t->next_attempt = now + base / 1000.0 * jitter;
        link_dial(n, t);
    }
}

/* Every member's addresses are worth dialing: with --peer only, that is how nodes that
 * were each given one peer find all the others. */
static void learn_from_state(cairn_local_node *n) {
    for (uint32_t i = 0; i < n->state->n_nodes; i++) {
        const cairn_node *m = &n->state->nodes[i];
        if (strcmp(m->id, n->id) == 0 || link_find_up(n, m->id)) {
            continue;
        }
        for (uint32_t a = 0; a < m->n_addresses; a++) {
            node_target_learn(n, m->addresses[a].host, m->addresses[a].port, m->id, false);
        }
    }
}

static void on_discovered(void *user, const cairn_announcement *a, const char *host) {
    cairn_local_node *n = user;
    if (!n->closing) {
        node_target_learn(n, host, a->cluster_port, a->node_id, false);
    }
}

/* ---- own profile ---- */

static bool differs_by(uint64_t a, uint64_t b, uint64_t tolerance) {
    return (a > b ? a - b : b - a) > tolerance;
}

static bool devices_equal(const cairn_device *a, const cairn_device *b) {
    return strcmp(a->name, b->name) == 0 && strcmp(a->description, b->description) == 0 &&
           a->type == b->type && a->memory_total == b->memory_total;
}

static bool files_equal(const cairn_model_file *a, const cairn_model_file *b) {
    return strcmp(a->name, b->name) == 0 && a->size == b->size &&
           strcmp(a->sha256, b->sha256) == 0 && a->n_layers == b->n_layers &&
           a->layer_bytes == b->layer_bytes && a->embd_bytes == b->embd_bytes &&
           a->head_bytes == b->head_bytes;
}

/* Available memory, free disk and free device memory move all the time; only moves of more
 * than 64 MiB are worth an event, so an idle cluster does not grow its event log. The state
 * keeps model files sorted by name, and so does the profile gatherer. */
static bool profile_changed(const cairn_node_profile *a, const cairn_node_profile *b) {
    const uint64_t slack = (uint64_t)64 << 20;
    if (differs_by(a->memory_available, b->memory_available, slack) ||
        differs_by(a->disk_free, b->disk_free, slack) || a->memory_total != b->memory_total ||
        strcmp(a->cpu_model, b->cpu_model) != 0 || a->cpu_cores != b->cpu_cores ||
        strcmp(a->os, b->os) != 0 || a->n_devices != b->n_devices ||
        a->n_model_files != b->n_model_files) {
        return true;
    }
    for (uint32_t i = 0; i < a->n_devices && i < CAIRN_STATE_MAX_DEVICES; i++) {
        if (!devices_equal(&a->devices[i], &b->devices[i])) {
            return true;
        }
    }
    for (uint32_t i = 0; i < a->n_model_files && i < CAIRN_STATE_MAX_MODEL_FILES; i++) {
        if (!files_equal(&a->model_files[i], &b->model_files[i])) {
            return true;
        }
    }
    return false;
}

static void profile_tick(cairn_local_node *n, double now) {
    if (now < n->next_profile || !n->synced) {
        return;
    }
    n->next_profile = now + n->profile_s;
    cairn_event *e = calloc(1, sizeof *e);
    if (!e) {
        return;
    }
    cairn_err err = {{0}};
    cairn_node_profile *p = &e->as.node_profile_updated.profile;
    if (cairn_profile_gather(n->models_dir, p, &err) < 0) {
        cairn_log(n->log, CAIRN_LOG_WARN, "cannot gather this node's profile: %s", err.msg);
        free(e);
        return;
    }
    model_files_fill(n->model_files, p);
    cairn_profile_cap_memory(p, n->memory_cap);
    const cairn_node *self = cairn_state_find_node(n->state, n->id);
    if (self && !profile_changed(&self->profile, p)) {
        free(e);
        return;
    }
    e->type = CAIRN_EVENT_NODE_PROFILE_UPDATED;
    snprintf(e->as.node_profile_updated.node_id, sizeof e->as.node_profile_updated.node_id, "%s",
             n->id);
    node_report(n, e);
    free(e);
}

/* ---- the tick ---- */

static void on_tick(uv_timer_t *timer) {
    cairn_local_node *n = timer->data;
    double now = cairn_now_seconds();
    links_tick(n, now);
    if (n->has_state) {
        learn_from_state(n);
    }
    targets_tick(n, now);
    election_update(n);
    if (n->role == ROLE_FOLLOWER && !n->synced && now - n->follow_sent_at > 1.0) {
        send_follow_request(n);
    }
    master_tick(n, now);
    /* The worker syncs here rather than where the state changes: its reports change the
     * state again (on the master at once), which must not re-enter it. */
    if (n->worker_stale && n->has_state) {
        n->worker_stale = false;
        cairn_worker_sync(n->worker, n->state);
    }
    cairn_worker_tick(n->worker, now);
    serve_tick(n, now);
    profile_tick(n, now);
    if (n->view_dirty || now - n->view_built_at >= 0.5) {
        publish(n, now);
    }
}

/* ---- start and close ---- */

static void on_connection(uv_stream_t *server, int status) {
    cairn_local_node *n = server->data;
    if (status < 0) {
        cairn_log(n->log, CAIRN_LOG_WARN, "accepting a link failed: %s", uv_strerror(status));
        return;
    }
    if (!n->closing) {
        link_accept(n, server);
    }
}

static int copy_config(cairn_local_node *n, const cairn_node_config *cfg, cairn_err *err) {
    const char *cluster = cfg->cluster ? cfg->cluster : CAIRN_NODE_DEFAULT_CLUSTER;
    const char *listen = cfg->listen_host ? cfg->listen_host : "0.0.0.0";
    if (!cfg->node_id || strlen(cfg->node_id) >= sizeof n->id ||
        strlen(cluster) >= sizeof n->cluster || strlen(listen) >= sizeof n->listen_host ||
        (cfg->name && strlen(cfg->name) >= sizeof n->name)) {
        return cairn_fail(err, "node id, name, cluster name or listen address missing or too long");
    }
    snprintf(n->id, sizeof n->id, "%s", cfg->node_id);
    uint64_t seed = uv_hrtime() ^ ((uint64_t)uv_os_getpid() << 32) ^ cairn_wall_clock_ms();
    n->incarnation = cairn_splitmix64(&seed) | 1; /* never 0, which means "not sent" */
    snprintf(n->name, sizeof n->name, "%s", cfg->name ? cfg->name : "");
    snprintf(n->cluster, sizeof n->cluster, "%s", cluster);
    snprintf(n->listen_host, sizeof n->listen_host, "%s", listen);
    /* The state validates ids and names exactly as every peer will. */
    cairn_event probe;
    memset(&probe, 0, sizeof probe);
    probe.type = CAIRN_EVENT_NODE_JOINED;
    probe.index = 1;
    snprintf(probe.as.node_joined.node_id, sizeof probe.as.node_joined.node_id, "%s", n->id);
    snprintf(probe.as.node_joined.name, sizeof probe.as.node_joined.name, "%s", n->name);
    if (cairn_event_check(&probe, err) != 0) {
        return cairn_fail(err,
                          "node id \"%s\" or name is not valid: ids are 1..63 of "
                          "[A-Za-z0-9._:-]",
                          n->id);
    }
    n->api_port = cfg->api_port;
    n->keyed = cfg->key != NULL;
    if (cfg->key) {
        n->key = *cfg->key;
    }
    n->heartbeat_s =
        (cfg->heartbeat_ms ? cfg->heartbeat_ms : CAIRN_NODE_DEFAULT_HEARTBEAT_MS) / 1e3;
    n->timeout_s = (cfg->timeout_ms ? cfg->timeout_ms : CAIRN_NODE_DEFAULT_TIMEOUT_MS) / 1e3;
    n->profile_s = (cfg->profile_ms ? cfg->profile_ms : CAIRN_NODE_DEFAULT_PROFILE_MS) / 1e3;
    if (n->heartbeat_s * 2 > n->timeout_s) {
        return cairn_fail(err, "the peer timeout must be at least twice the heartbeat interval");
    }
    return 0;
}

static int add_static_peers(cairn_local_node *n, const cairn_node_config *cfg, cairn_err *err) {
    for (size_t i = 0; i < cfg->n_peers; i++) {
        char host[CAIRN_STATE_HOST_SIZE];
        uint16_t port = 0;
        if (cairn_parse_address(cfg->peers[i], 0, host, sizeof host, &port, err) != 0) {
            return cairn_fail_prefix(err, "--peer");
        }
        struct sockaddr_in6 probe6;
        struct sockaddr_in probe4;
        if (uv_ip4_addr(host, port, &probe4) != 0 && uv_ip6_addr(host, port, &probe6) != 0) {
            return cairn_fail(err, "--peer %s: give a numeric IPv4 or IPv6 address", cfg->peers[i]);
        }
        node_target_learn(n, host, port, NULL, true);
    }
    return 0;
}

/* The addresses this node tells the cluster: its listen address when it is a specific one,
 * otherwise every non-loopback interface address (loopback when there is nothing else). */
static void own_addresses(cairn_local_node *n) {
    n->n_addresses = 0;
    if (strcmp(n->listen_host, "0.0.0.0") != 0 && strcmp(n->listen_host, "::") != 0) {
        snprintf(n->addresses[0].host, sizeof n->addresses[0].host, "%s", n->listen_host);
        n->addresses[0].port = n->cluster_port;
        n->n_addresses = 1;
        return;
    }
    uv_interface_address_t *ifs = NULL;
    int count = 0;
    if (uv_interface_addresses(&ifs, &count) == 0) {
        for (int i = 0; i < count && n->n_addresses < CAIRN_STATE_MAX_ADDRESSES; i++) {
            if (ifs[i].is_internal || ifs[i].address.address4.sin_family != AF_INET) {
                continue; /* IPv6 link-local addresses would need their zone on every peer */
            }
            cairn_address *a = &n->addresses[n->n_addresses++];
            uv_ip4_name(&ifs[i].address.address4, a->host, sizeof a->host);
            a->port = n->cluster_port;
        }
        uv_free_interface_addresses(ifs, count);
    }
    if (n->n_addresses == 0) {
        snprintf(n->addresses[0].host, sizeof n->addresses[0].host, "127.0.0.1");
        n->addresses[0].port = n->cluster_port;
        n->n_addresses = 1;
    }
}

static int start_listening(cairn_local_node *n, uint16_t port, cairn_err *err) {
    struct sockaddr_storage addr;
    if (uv_ip4_addr(n->listen_host, port, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(n->listen_host, port, (struct sockaddr_in6 *)&addr) != 0) {
        return cairn_fail(err, "listen address \"%s\" is not a numeric IP address", n->listen_host);
    }
    int rc = uv_tcp_init(n->loop, &n->listener);
    if (rc != 0) {
        return cairn_fail(err, "cannot create the cluster socket: %s", uv_strerror(rc));
    }
    n->open_handles++;
    n->listener.data = n;
    rc = uv_tcp_bind(&n->listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&n->listener, 128, on_connection);
    }
    if (rc != 0) {
        return cairn_fail(err, "cannot listen for cluster links on %s:%u: %s%s", n->listen_host,
                          (unsigned)port, uv_strerror(rc),
                          rc == UV_EADDRINUSE ? " (is another node running? see --port)" : "");
    }
    struct sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&n->listener, (struct sockaddr *)&bound, &len);
    n->cluster_port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                        : ((struct sockaddr_in *)&bound)->sin_port);
    return 0;
}

static int start_discovery(cairn_local_node *n, const cairn_node_config *cfg, cairn_err *err) {
    cairn_announcement self;
    memset(&self, 0, sizeof self);
    self.protocol = CAIRN_WIRE_VERSION;
    snprintf(self.node_id, sizeof self.node_id, "%s", n->id);
    snprintf(self.cluster, sizeof self.cluster, "%s", n->cluster);
    self.cluster_port = n->cluster_port;
    self.api_port = n->api_port;
    cairn_discovery_config dc = cfg->discovery_config;
    dc.log = n->log;
    return cairn_discovery_start(n->loop, &dc, &self, on_discovered, n, &n->discovery, err);
}

static void node_free(cairn_local_node *n) {
    model_files_close(n->model_files);
    serve_free(n);
    while (n->targets) {
        target_remove(n, n->targets);
    }
    cairn_event_log_free(&n->events);
    uv_mutex_destroy(&n->view_lock);
    free(n->view_state);
    free(n->view_info);
    free(n->models_dir);
    free(n->state);
    free(n);
}

void node_handle_closed(cairn_local_node *n) {
    if (n->open_handles == 0 && n->links == NULL) {
        node_free(n);
    }
}

static void on_own_handle_closed(uv_handle_t *h) {
    cairn_local_node *n = h->data;
    n->open_handles--;
    node_handle_closed(n);
}

static void close_handles(cairn_local_node *n) {
    n->closing = true;
    int started = n->open_handles;
    n->open_handles = 0;
    if (started >= 1) {
        n->open_handles++;
        uv_close((uv_handle_t *)&n->listener, on_own_handle_closed);
    }
    if (started >= 2) {
        n->open_handles++;
        uv_close((uv_handle_t *)&n->tick, on_own_handle_closed);
    }
    if (started >= 3) {
        serve_close(n);
        n->open_handles++;
        uv_close((uv_handle_t *)&n->call_async, on_own_handle_closed);
    }
    if (n->discovery) {
        cairn_discovery_close(n->discovery);
        n->discovery = NULL;
    }
    cairn_worker_close(n->worker); /* it frees itself once its runners are gone */
    n->worker = NULL;
}

/* A model file's hash is known: its profile goes out at the next tick. */
static void on_model_file_ready(void *user) {
    ((cairn_local_node *)user)->next_profile = 0;
}

static int prepare_models_dir(cairn_local_node *n, const cairn_node_config *cfg, cairn_err *err) {
    n->models_dir = cfg->models_dir ? cairn_strdup(cfg->models_dir) : cairn_default_models_dir(err);
    if (!n->models_dir) {
        return -1;
    }
    if (cairn_make_dirs(n->models_dir, err) != 0) {
        return cairn_fail_prefix(err, "models directory");
    }
    n->memory_cap = cfg->memory_cap;
    n->model_files = model_files_new(n->loop, n->models_dir, cfg->runner_ctx, cfg->runner_slots,
                                     n->log, on_model_file_ready, n);
    return n->model_files ? 0 : cairn_fail(err, "out of memory");
}

static void on_worker_report(void *user, cairn_event *e) {
    cairn_local_node *n = user;
    if (!n->closing) {
        node_report(n, e);
    }
}

static int start_worker(cairn_local_node *n, const cairn_node_config *cfg, cairn_err *err) {
    char exe[4096];
    size_t len = sizeof exe;
    if (!cfg->runner_exe && uv_exepath(exe, &len) != 0) {
        return cairn_fail(err, "cannot find this program's path to start runners from");
    }
    /* Runners are dialed at the first address this node announces (the runner's port in
     * the state is at that address), so that is the one address they listen on: a runner
     * on every interface would serve whoever reaches any of them. */
    cairn_worker_config wc = {.node_id = n->id,
                              .runner_exe = cfg->runner_exe ? cfg->runner_exe : exe,
                              .models_dir = n->models_dir,
                              .listen_host = n->addresses[0].host,
                              .key = n->keyed ? &n->key : NULL,
                              .threads = cfg->runner_threads,
                              .slots = cfg->runner_slots,
                              .ctx = cfg->runner_ctx,
                              .load_timeout_s = cfg->load_timeout_s,
                              .log = n->log,
                              .report = on_worker_report,
                              .user = n};
    return cairn_worker_new(n->loop, &wc, &n->worker, err);
}

int cairn_node_start(uv_loop_t *loop, const cairn_node_config *cfg, cairn_local_node **out,
                     cairn_err *err) {
    cairn_local_node *n = calloc(1, sizeof *n);
    if (!n) {
        return cairn_fail(err, "out of memory");
    }
    n->loop = loop;
    n->log = cfg->log;
    n->started_at = cairn_now_seconds();
    cairn_rng_seed(&n->rng, (uint64_t)cairn_wall_clock_ms() ^ (uint64_t)(uintptr_t)n);
    cairn_event_log_init(&n->events, 0);
    if (uv_mutex_init(&n->view_lock) != 0) {
        free(n);
        return cairn_fail(err, "cannot create a mutex");
    }
    n->state = copy_config(n, cfg, err) == 0 ? cairn_state_new(n->cluster, err) : NULL;
    if (!n->state || prepare_models_dir(n, cfg, err) != 0 || add_static_peers(n, cfg, err) != 0) {
        node_free(n);
        return -1;
    }
    int rc = start_listening(n, cfg->cluster_port, err);
    if (rc == 0) {
        own_addresses(n);
        rc = uv_timer_init(loop, &n->tick);
        if (rc == 0) {
            n->open_handles++;
            n->tick.data = n;
            rc = uv_timer_start(&n->tick, on_tick, TICK_MS, TICK_MS);
        }
        if (rc != 0) {
            cairn_fail(err, "cannot start the node's timer: %s", uv_strerror(rc));
        }
    }
    if (rc == 0) {
        rc = serve_init(n, err);
        n->open_handles += rc == 0;
    }
    if (rc == 0 && cfg->discovery) {
        rc = start_discovery(n, cfg, err);
    }
    if (rc == 0) {
        rc = start_worker(n, cfg, err);
    }
    if (rc != 0) {
        if (n->open_handles > 0) {
            close_handles(n); /* node_free runs from the last close callback */
        } else {
            node_free(n);
        }
        return -1;
    }
    publish(n, cairn_now_seconds());
    cairn_log(n->log, CAIRN_LOG_INFO, "node %s of cluster \"%s\" listening on %s:%u (%s)", n->id,
              n->cluster, n->listen_host, (unsigned)n->cluster_port,
              n->keyed ? "links need the cluster key" : "open cluster: no --key given");
    *out = n;
    return 0;
}

uint16_t cairn_node_cluster_port(const cairn_local_node *n) {
    return n->cluster_port;
}

void cairn_node_close(cairn_local_node *n) {
    if (n->closing) {
        return;
    }
    cairn_log(n->log, CAIRN_LOG_INFO, "leaving the cluster");
    cJSON *bye = cJSON_CreateObject();
    if (bye) {
        cJSON_AddStringToObject(bye, "reason", "the node is shutting down");
    }
    close_handles(n);
    node_link *next = NULL;
    for (node_link *l = n->links; l; l = next) {
        next = l->next;
        if (l->phase == LINK_UP && bye) {
            link_send_json(l, CAIRN_WIRE_GOODBYE, bye);
        }
        link_close(l, "this node is shutting down", false);
    }
    cJSON_Delete(bye);
}
