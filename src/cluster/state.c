/* The cluster state: validation of events and states, the fold step, lookups and the hash.
 * JSON and the event log are in event.c. */
#include "cluster/state.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

/* ---- names ---- */

static const char *const EVENT_TYPE_NAMES[] = {
    [CAIRN_EVENT_NODE_JOINED] = "node_joined",
    [CAIRN_EVENT_NODE_LEFT] = "node_left",
    [CAIRN_EVENT_NODE_CONNECTION_CHANGED] = "node_connection_changed",
    [CAIRN_EVENT_NODE_PROFILE_UPDATED] = "node_profile_updated",
    [CAIRN_EVENT_MASTER_ELECTED] = "master_elected",
    [CAIRN_EVENT_INSTANCE_PLACED] = "instance_placed",
    [CAIRN_EVENT_INSTANCE_DELETED] = "instance_deleted",
    [CAIRN_EVENT_RUNNER_STATE_CHANGED] = "runner_state_changed",
};

static const char *const RUNNER_STATE_NAMES[CAIRN_RUNNER_STATE_COUNT] = {
    [CAIRN_RUNNER_IDLE] = "idle",
    [CAIRN_RUNNER_CONNECTING] = "connecting",
    [CAIRN_RUNNER_CONNECTED] = "connected",
    [CAIRN_RUNNER_LOADING] = "loading",
    [CAIRN_RUNNER_LOADED] = "loaded",
    [CAIRN_RUNNER_WARMING_UP] = "warming_up",
    [CAIRN_RUNNER_READY] = "ready",
    [CAIRN_RUNNER_RUNNING] = "running",
    [CAIRN_RUNNER_SHUTTING_DOWN] = "shutting_down",
    [CAIRN_RUNNER_SHUT_DOWN] = "shut_down",
    [CAIRN_RUNNER_FAILED] = "failed",
};

static const char *const DEVICE_TYPE_NAMES[] = {
    [CAIRN_DEVICE_CPU] = "cpu",
    [CAIRN_DEVICE_GPU] = "gpu",
    [CAIRN_DEVICE_IGPU] = "igpu",
    [CAIRN_DEVICE_ACCEL] = "accel",
};

static const char *name_at(const char *const *names, size_t count, unsigned value) {
    return value < count ? names[value] : NULL;
}

static int index_of_name(const char *const *names, size_t count, const char *name) {
    for (size_t i = 0; i < count; i++) {
        if (names[i] && strcmp(names[i], name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

const char *cairn_event_type_name(cairn_event_type t) {
    return name_at(EVENT_TYPE_NAMES, CAIRN_ARRAY_LEN(EVENT_TYPE_NAMES), (unsigned)t);
}

const char *cairn_runner_state_name(cairn_runner_state st) {
    return name_at(RUNNER_STATE_NAMES, CAIRN_ARRAY_LEN(RUNNER_STATE_NAMES), (unsigned)st);
}

const char *cairn_device_type_name(cairn_device_type t) {
    return name_at(DEVICE_TYPE_NAMES, CAIRN_ARRAY_LEN(DEVICE_TYPE_NAMES), (unsigned)t);
}

int cairn_event_type_from_name(const char *name, cairn_event_type *out) {
    int i = index_of_name(EVENT_TYPE_NAMES, CAIRN_ARRAY_LEN(EVENT_TYPE_NAMES), name);
    if (i < 0) {
        return -1;
    }
    *out = (cairn_event_type)i;
    return 0;
}

int cairn_runner_state_from_name(const char *name, cairn_runner_state *out) {
    int i = index_of_name(RUNNER_STATE_NAMES, CAIRN_ARRAY_LEN(RUNNER_STATE_NAMES), name);
    if (i < 0) {
        return -1;
    }
    *out = (cairn_runner_state)i;
    return 0;
}

int cairn_device_type_from_name(const char *name, cairn_device_type *out) {
    int i = index_of_name(DEVICE_TYPE_NAMES, CAIRN_ARRAY_LEN(DEVICE_TYPE_NAMES), name);
    if (i < 0) {
        return -1;
    }
    *out = (cairn_device_type)i;
    return 0;
}

/* ---- field checks ---- */

/* Length of the string in buf, or -1 when buf holds no NUL (a struct filled by hand). */
static long bounded_len(const char *buf, size_t size) {
    const char *nul = memchr(buf, '\0', size);
    return nul ? (long)(nul - buf) : -1;
}

static int check_text(const char *buf, size_t size, bool allow_empty, const char *what,
                      cairn_err *err) {
    long len = bounded_len(buf, size);
    if (len < 0) {
        return cairn_fail(err, "%s is longer than %zu bytes", what, size - 1);
    }
    if (len == 0 && !allow_empty) {
        return cairn_fail(err, "%s is empty", what);
    }
    if (!cairn_utf8_is_printable(buf, (size_t)len)) {
        return cairn_fail(err, "%s is not printable UTF-8", what);
    }
    return 0;
}

static bool chars_in(const char *s, const char *extra) {
    for (; *s; s++) {
        char c = *s;
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && !strchr(extra, c)) {
            return false;
        }
    }
    return true;
}

static int check_id(const char *buf, const char *what, cairn_err *err) {
    if (check_text(buf, CAIRN_STATE_ID_SIZE, false, what, err) != 0) {
        return -1;
    }
    if (!chars_in(buf, "._:-")) {
        return cairn_fail(err, "%s \"%s\" may only hold letters, digits and . _ : -", what, buf);
    }
    return 0;
}

static int check_sha256(const char *buf, bool allow_empty, const char *what, cairn_err *err) {
    long len = bounded_len(buf, CAIRN_STATE_SHA256_SIZE);
    if (len == 0 && allow_empty) {
        return 0;
    }
    bool hex = len == 64;
    for (long i = 0; hex && i < len; i++) {
        hex = (buf[i] >= '0' && buf[i] <= '9') || (buf[i] >= 'a' && buf[i] <= 'f');
    }
    if (!hex) {
        return cairn_fail(err, "%s must be 64 lowercase hex digits", what);
    }
    return 0;
}

static int check_number(uint64_t v, const char *what, cairn_err *err) {
    if (v > CAIRN_STATE_MAX_NUMBER) {
        return cairn_fail(err, "%s %llu is over the limit %llu", what, (unsigned long long)v,
                          (unsigned long long)CAIRN_STATE_MAX_NUMBER);
    }
    return 0;
}

static int check_addresses(uint32_t n, const cairn_address *addrs, cairn_err *err) {
    if (n > CAIRN_STATE_MAX_ADDRESSES) {
        return cairn_fail(err, "%u addresses (at most %d)", n, CAIRN_STATE_MAX_ADDRESSES);
    }
    for (uint32_t i = 0; i < n; i++) {
        if (check_text(addrs[i].host, sizeof addrs[i].host, false, "host", err) != 0) {
            return cairn_fail_prefix(err, "address %u", i);
        }
        if (!chars_in(addrs[i].host, "._:%-")) {
            return cairn_fail(err, "address %u: host \"%s\" is not an address or host name", i,
                              addrs[i].host);
        }
        if (addrs[i].port == 0) {
            return cairn_fail(err, "address %u: port 0", i);
        }
    }
    return 0;
}

static int check_device(const cairn_device *d, cairn_err *err) {
    if (check_text(d->name, sizeof d->name, false, "name", err) != 0 ||
        check_text(d->description, sizeof d->description, true, "description", err) != 0 ||
        check_number(d->memory_total, "memory_total", err) != 0 ||
        check_number(d->memory_free, "memory_free", err) != 0) {
        return -1;
    }
    if (!cairn_device_type_name(d->type)) {
        return cairn_fail(err, "unknown device type %d", (int)d->type);
    }
    return 0;
}

/* The footprint: all zero for a file the node cannot read as a model; otherwise the whole
 * model (every layer, the embeddings and the head) stays below the number limit, so sums of
 * footprints never overflow. */
static int check_footprint(const cairn_model_file *f, cairn_err *err) {
    if (f->n_layers > CAIRN_STATE_MAX_LAYERS) {
        return cairn_fail(err, "n_layers %u is over the limit %d", f->n_layers,
                          CAIRN_STATE_MAX_LAYERS);
    }
    if (check_number(f->layer_bytes, "layer_bytes", err) != 0 ||
        check_number(f->embd_bytes, "embd_bytes", err) != 0 ||
        check_number(f->head_bytes, "head_bytes", err) != 0) {
        return -1;
    }
    if (f->n_layers == 0) {
        if (f->layer_bytes != 0 || f->embd_bytes != 0 || f->head_bytes != 0) {
            return cairn_fail(err, "a footprint without layers has bytes");
        }
        return 0;
    }
    uint64_t total = 0;
    if (cairn_mul_overflows(f->n_layers, f->layer_bytes, &total) ||
        cairn_add_overflows(total, f->embd_bytes, &total) ||
        cairn_add_overflows(total, f->head_bytes, &total) || total > CAIRN_STATE_MAX_NUMBER) {
        return cairn_fail(err, "the footprint of %u layers is over the limit %llu bytes",
                          f->n_layers, (unsigned long long)CAIRN_STATE_MAX_NUMBER);
    }
    return 0;
}

static int check_model_file(const cairn_model_file *f, cairn_err *err) {
    if (check_text(f->name, sizeof f->name, false, "name", err) != 0 ||
        check_number(f->size, "size", err) != 0 ||
        check_sha256(f->sha256, true, "sha256", err) != 0 || check_footprint(f, err) != 0) {
        return -1;
    }
    return 0;
}

static int check_profile(const cairn_node_profile *p, cairn_err *err) {
    if (check_number(p->memory_total, "memory_total", err) != 0 ||
        check_number(p->memory_available, "memory_available", err) != 0 ||
        check_number(p->disk_free, "disk_free", err) != 0 ||
        check_text(p->cpu_model, sizeof p->cpu_model, true, "cpu_model", err) != 0 ||
        check_text(p->os, sizeof p->os, true, "os", err) != 0) {
        return -1;
    }
    if (p->cpu_cores > CAIRN_STATE_MAX_CPU_CORES) {
        return cairn_fail(err, "cpu_cores %u is over the limit %d", p->cpu_cores,
                          CAIRN_STATE_MAX_CPU_CORES);
    }
    if (p->n_devices > CAIRN_STATE_MAX_DEVICES) {
        return cairn_fail(err, "%u devices (at most %d)", p->n_devices, CAIRN_STATE_MAX_DEVICES);
    }
    for (uint32_t i = 0; i < p->n_devices; i++) {
        if (check_device(&p->devices[i], err) != 0) {
            return cairn_fail_prefix(err, "device %u", i);
        }
    }
    if (p->n_model_files > CAIRN_STATE_MAX_MODEL_FILES) {
        return cairn_fail(err, "%u model files (at most %d)", p->n_model_files,
                          CAIRN_STATE_MAX_MODEL_FILES);
    }
    for (uint32_t i = 0; i < p->n_model_files; i++) {
        if (check_model_file(&p->model_files[i], err) != 0) {
            return cairn_fail_prefix(err, "model file %u", i);
        }
        for (uint32_t j = 0; j < i; j++) {
            if (strcmp(p->model_files[i].name, p->model_files[j].name) == 0) {
                return cairn_fail(err, "model file \"%s\" is listed twice", p->model_files[i].name);
            }
        }
    }
    return 0;
}

/* From CONNECTING through RUNNING a runner accepts data-plane links on its port. */
static bool runner_has_port(cairn_runner_state st) {
    return st >= CAIRN_RUNNER_CONNECTING && st <= CAIRN_RUNNER_RUNNING;
}

static int check_runner(const cairn_runner *r, cairn_err *err) {
    const char *name = cairn_runner_state_name(r->state);
    if (!name) {
        return cairn_fail(err, "unknown runner state %d", (int)r->state);
    }
    if (r->state == CAIRN_RUNNER_LOADING) {
        if (r->total == 0 || r->total > CAIRN_STATE_MAX_NUMBER || r->done > r->total) {
            return cairn_fail(err,
                              "loading progress %llu/%llu is not 0 <= done <= total, total >= 1",
                              (unsigned long long)r->done, (unsigned long long)r->total);
        }
    } else if (r->done != 0 || r->total != 0) {
        return cairn_fail(err, "a %s runner has progress (only loading has)", name);
    }
    if (check_text(r->reason, sizeof r->reason, true, "reason", err) != 0) {
        return -1;
    }
    bool failed = r->state == CAIRN_RUNNER_FAILED;
    if (failed != (r->reason[0] != '\0')) {
        return cairn_fail(err, failed ? "a failed runner needs a reason"
                                      : "only a failed runner has a reason");
    }
    if (r->state == CAIRN_RUNNER_IDLE && r->port != 0) {
        return cairn_fail(err, "an idle runner has port %u (it has none yet)", r->port);
    }
    if (runner_has_port(r->state) && r->port == 0) {
        return cairn_fail(err, "a %s runner needs its port", name);
    }
    return 0;
}

/* Shard k of a layout covers [start, end): it must begin where the previous one ended. */
static int check_shard_range(uint32_t k, uint32_t start, uint32_t end, uint32_t expected_start,
                             cairn_err *err) {
    if (start != expected_start || end <= start) {
        return cairn_fail(err, "shard %u covers layers [%u, %u), expected [%u, >%u)", k, start, end,
                          expected_start, expected_start);
    }
    return 0;
}

static int check_layout_counts(uint32_t n_layers, uint32_t n_shards, cairn_err *err) {
    if (n_layers == 0 || n_layers > CAIRN_STATE_MAX_LAYERS) {
        return cairn_fail(err, "n_layers %u is not in 1..%d", n_layers, CAIRN_STATE_MAX_LAYERS);
    }
    if (n_shards == 0 || n_shards > CAIRN_STATE_MAX_SHARDS) {
        return cairn_fail(err, "%u shards (1 to %d)", n_shards, CAIRN_STATE_MAX_SHARDS);
    }
    return 0;
}

static int check_layout_end(uint32_t last_end, uint32_t n_layers, cairn_err *err) {
    if (last_end != n_layers) {
        return cairn_fail(err, "shards cover layers [0, %u) of %u", last_end, n_layers);
    }
    return 0;
}

/* ---- event checks (no state needed) ---- */

static int check_node_joined(const cairn_event *e, cairn_err *err) {
    if (check_id(e->as.node_joined.node_id, "node id", err) != 0 ||
        check_text(e->as.node_joined.name, sizeof e->as.node_joined.name, true, "node name", err) !=
            0) {
        return -1;
    }
    return check_addresses(e->as.node_joined.n_addresses, e->as.node_joined.addresses, err);
}

static int check_instance_placed(const cairn_event *e, cairn_err *err) {
    if (check_id(e->as.instance_placed.instance_id, "instance id", err) != 0 ||
        check_text(e->as.instance_placed.model, sizeof e->as.instance_placed.model, false, "model",
                   err) != 0 ||
        check_sha256(e->as.instance_placed.model_sha256, false, "model_sha256", err) != 0 ||
        check_sha256(e->as.instance_placed.secret, false, "secret", err) != 0 ||
        check_layout_counts(e->as.instance_placed.n_layers, e->as.instance_placed.n_shards, err) !=
            0) {
        return -1;
    }
    uint32_t end = 0;
    for (uint32_t k = 0; k < e->as.instance_placed.n_shards; k++) {
        const cairn_shard_spec *sh = &e->as.instance_placed.shards[k];
        if (check_id(sh->node_id, "shard node id", err) != 0 ||
            check_shard_range(k, sh->layer_start, sh->layer_end, end, err) != 0) {
            return -1;
        }
        end = sh->layer_end;
    }
    return check_layout_end(end, e->as.instance_placed.n_layers, err);
}

static int check_event_payload(const cairn_event *e, cairn_err *err) {
    switch (e->type) {
    case CAIRN_EVENT_NODE_JOINED: return check_node_joined(e, err);
    case CAIRN_EVENT_NODE_LEFT: return check_id(e->as.node_left.node_id, "node id", err);
    case CAIRN_EVENT_NODE_CONNECTION_CHANGED:
        return check_id(e->as.node_connection_changed.node_id, "node id", err);
    case CAIRN_EVENT_NODE_PROFILE_UPDATED:
        if (check_id(e->as.node_profile_updated.node_id, "node id", err) != 0) {
            return -1;
        }
        return check_profile(&e->as.node_profile_updated.profile, err) != 0
                   ? cairn_fail_prefix(err, "profile")
                   : 0;
    case CAIRN_EVENT_MASTER_ELECTED:
        if (e->term == 0) {
            return cairn_fail(err, "an election needs a term >= 1");
        }
        return check_id(e->as.master_elected.master_id, "master id", err);
    case CAIRN_EVENT_INSTANCE_PLACED: return check_instance_placed(e, err);
    case CAIRN_EVENT_INSTANCE_DELETED:
        return check_id(e->as.instance_deleted.instance_id, "instance id", err);
    case CAIRN_EVENT_RUNNER_STATE_CHANGED:
        if (check_id(e->as.runner_state_changed.instance_id, "instance id", err) != 0) {
            return -1;
        }
        if (e->as.runner_state_changed.shard >= CAIRN_STATE_MAX_SHARDS) {
            return cairn_fail(err, "shard %u is out of range", e->as.runner_state_changed.shard);
        }
        return check_runner(&e->as.runner_state_changed.runner, err);
    }
    return cairn_fail(err, "unknown event type %d", (int)e->type);
}

int cairn_event_check(const cairn_event *e, cairn_err *err) {
    const char *type = cairn_event_type_name(e->type);
    if (!type) {
        return cairn_fail(err, "event %llu: unknown type %d", (unsigned long long)e->index,
                          (int)e->type);
    }
    if (e->index == 0 || check_number(e->index, "index", err) != 0 ||
        check_number(e->term, "term", err) != 0) {
        return cairn_fail(err, "event %s: index %llu or term %llu out of range", type,
                          (unsigned long long)e->index, (unsigned long long)e->term);
    }
    if (check_event_payload(e, err) != 0) {
        return cairn_fail_prefix(err, "event %llu (%s)", (unsigned long long)e->index, type);
    }
    return 0;
}

/* ---- runner lifecycle ---- */

static bool runner_step_allowed(cairn_runner_state from, cairn_runner_state to) {
    if (from == CAIRN_RUNNER_SHUT_DOWN || from == CAIRN_RUNNER_FAILED) {
        return false;
    }
    if (to == CAIRN_RUNNER_FAILED) {
        return true;
    }
    if (to == CAIRN_RUNNER_SHUTTING_DOWN) {
        return from != CAIRN_RUNNER_SHUTTING_DOWN;
    }
    switch (from) {
    case CAIRN_RUNNER_IDLE: return to == CAIRN_RUNNER_CONNECTING;
    case CAIRN_RUNNER_CONNECTING: return to == CAIRN_RUNNER_CONNECTED;
    case CAIRN_RUNNER_CONNECTED: return to == CAIRN_RUNNER_LOADING;
    case CAIRN_RUNNER_LOADING: return to == CAIRN_RUNNER_LOADING || to == CAIRN_RUNNER_LOADED;
    case CAIRN_RUNNER_LOADED: return to == CAIRN_RUNNER_WARMING_UP;
    case CAIRN_RUNNER_WARMING_UP: return to == CAIRN_RUNNER_READY;
    case CAIRN_RUNNER_READY: return to == CAIRN_RUNNER_RUNNING;
    case CAIRN_RUNNER_RUNNING: return to == CAIRN_RUNNER_READY;
    case CAIRN_RUNNER_SHUTTING_DOWN: return to == CAIRN_RUNNER_SHUT_DOWN;
    default: return false;
    }
}

/* The step to CONNECTING sets the port; it stays until the runner ends, when it may also
 * be reported as 0 (but never as another port). */
static bool runner_port_allowed(const cairn_runner *from, const cairn_runner *to) {
    if (runner_has_port(to->state)) {
        return to->port != 0 && (from->state == CAIRN_RUNNER_IDLE || to->port == from->port);
    }
    if (to->state == CAIRN_RUNNER_IDLE) {
        return to->port == 0;
    }
    return to->port == 0 || to->port == from->port;
}

bool cairn_runner_can_change(const cairn_runner *from, const cairn_runner *to) {
    if (!runner_step_allowed(from->state, to->state) || !runner_port_allowed(from, to)) {
        return false;
    }
    if (from->state == CAIRN_RUNNER_LOADING && to->state == CAIRN_RUNNER_LOADING) {
        return to->total == from->total && to->done >= from->done;
    }
    return true;
}

/* ---- lookups ---- */

static int node_index(const cairn_cluster_state *s, const char *id) {
    for (uint32_t i = 0; i < s->n_nodes && i < CAIRN_STATE_MAX_NODES; i++) {
        if (strcmp(s->nodes[i].id, id) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static int instance_index(const cairn_cluster_state *s, const char *id) {
    for (uint32_t i = 0; i < s->n_instances && i < CAIRN_STATE_MAX_INSTANCES; i++) {
        if (strcmp(s->instances[i].id, id) == 0) {
            return (int)i;
        }
    }
    return -1;
}

const cairn_node *cairn_state_find_node(const cairn_cluster_state *s, const char *id) {
    int i = node_index(s, id);
    return i < 0 ? NULL : &s->nodes[i];
}

const cairn_instance *cairn_state_find_instance(const cairn_cluster_state *s, const char *id) {
    int i = instance_index(s, id);
    return i < 0 ? NULL : &s->instances[i];
}

/* ---- state checks ---- */

static int check_node(const cairn_cluster_state *s, const cairn_node *n, cairn_err *err) {
    if (check_id(n->id, "id", err) != 0 ||
        check_text(n->name, sizeof n->name, true, "name", err) != 0 ||
        check_addresses(n->n_addresses, n->addresses, err) != 0) {
        return -1;
    }
    if (n->seniority == 0 || n->seniority > s->last_index) {
        return cairn_fail(err, "seniority %llu is not in 1..last_index %llu",
                          (unsigned long long)n->seniority, (unsigned long long)s->last_index);
    }
    if (check_profile(&n->profile, err) != 0) {
        return cairn_fail_prefix(err, "profile");
    }
    return 0;
}

static int check_instance(const cairn_cluster_state *s, const cairn_instance *in, cairn_err *err) {
    if (check_id(in->id, "id", err) != 0 ||
        check_text(in->model, sizeof in->model, false, "model", err) != 0 ||
        check_sha256(in->model_sha256, false, "model_sha256", err) != 0 ||
        check_sha256(in->secret, false, "secret", err) != 0 ||
        check_layout_counts(in->n_layers, in->n_shards, err) != 0) {
        return -1;
    }
    uint32_t end = 0;
    for (uint32_t k = 0; k < in->n_shards; k++) {
        const cairn_shard *sh = &in->shards[k];
        if (check_id(sh->node_id, "shard node id", err) != 0 ||
            check_shard_range(k, sh->layer_start, sh->layer_end, end, err) != 0) {
            return -1;
        }
        if (node_index(s, sh->node_id) < 0) {
            return cairn_fail(err, "shard %u is on unknown node \"%s\"", k, sh->node_id);
        }
        if (check_runner(&sh->runner, err) != 0) {
            return cairn_fail_prefix(err, "shard %u runner", k);
        }
        end = sh->layer_end;
    }
    return check_layout_end(end, in->n_layers, err);
}

static int check_state_header(const cairn_cluster_state *s, cairn_err *err) {
    if (check_text(s->cluster_name, sizeof s->cluster_name, false, "cluster name", err) != 0 ||
        check_number(s->last_index, "last_index", err) != 0 ||
        check_number(s->term, "term", err) != 0) {
        return -1;
    }
    if (bounded_len(s->master_id, sizeof s->master_id) < 0) {
        return cairn_fail(err, "master id is not terminated");
    }
    if ((s->term == 0) != (s->master_id[0] == '\0')) {
        return cairn_fail(err, "term %llu with %s master", (unsigned long long)s->term,
                          s->term == 0 ? "a" : "no");
    }
    if (s->master_id[0] && check_id(s->master_id, "master id", err) != 0) {
        return -1;
    }
    if (s->n_nodes > CAIRN_STATE_MAX_NODES || s->n_instances > CAIRN_STATE_MAX_INSTANCES) {
        return cairn_fail(err, "%u nodes and %u instances (at most %d and %d)", s->n_nodes,
                          s->n_instances, CAIRN_STATE_MAX_NODES, CAIRN_STATE_MAX_INSTANCES);
    }
    return 0;
}

int cairn_state_check(const cairn_cluster_state *s, cairn_err *err) {
    if (check_state_header(s, err) != 0) {
        return cairn_fail_prefix(err, "state");
    }
    for (uint32_t i = 0; i < s->n_nodes; i++) {
        const cairn_node *n = &s->nodes[i];
        if (check_node(s, n, err) != 0) {
            return cairn_fail_prefix(err, "state: node %u", i);
        }
        for (uint32_t j = 0; j < i; j++) {
            if (strcmp(n->id, s->nodes[j].id) == 0 || n->seniority == s->nodes[j].seniority) {
                return cairn_fail(err, "state: nodes %u and %u share an id or seniority", j, i);
            }
        }
    }
    for (uint32_t i = 0; i < s->n_instances; i++) {
        if (check_instance(s, &s->instances[i], err) != 0) {
            return cairn_fail_prefix(err, "state: instance %u", i);
        }
        for (uint32_t j = 0; j < i; j++) {
            if (strcmp(s->instances[i].id, s->instances[j].id) == 0) {
                return cairn_fail(err, "state: instances %u and %u share the id \"%s\"", j, i,
                                  s->instances[i].id);
            }
        }
    }
    return 0;
}

/* ---- init ---- */

int cairn_state_init(cairn_cluster_state *s, const char *cluster_name, cairn_err *err) {
    size_t len = strlen(cluster_name);
    if (len >= sizeof s->cluster_name) {
        return cairn_fail(err, "cluster name is longer than %zu bytes", sizeof s->cluster_name - 1);
    }
    if (len == 0 || !cairn_utf8_is_printable(cluster_name, len)) {
        return cairn_fail(err, "cluster name must be non-empty printable UTF-8");
    }
    memset(s, 0, sizeof *s);
    memcpy(s->cluster_name, cluster_name, len + 1);
    return 0;
}

cairn_cluster_state *cairn_state_new(const char *cluster_name, cairn_err *err) {
    cairn_cluster_state *s = malloc(sizeof *s);
    if (!s) {
        cairn_fail(err, "out of memory for a cluster state");
        return NULL;
    }
    if (cairn_state_init(s, cluster_name, err) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

/* ---- apply: validation against the state ---- */

static int check_sequence(const cairn_cluster_state *s, const cairn_event *e, cairn_err *err) {
    if (e->index <= s->last_index) {
        return cairn_fail(err, "event %llu was already applied (state is at %llu)",
                          (unsigned long long)e->index, (unsigned long long)s->last_index);
    }
    if (e->index != s->last_index + 1) {
        return cairn_fail(err, "event %llu leaves a gap after %llu", (unsigned long long)e->index,
                          (unsigned long long)s->last_index);
    }
    bool election = e->type == CAIRN_EVENT_MASTER_ELECTED;
    if (election ? e->term <= s->term : e->term != s->term) {
        return cairn_fail(err, "event %llu has term %llu, the state's term is %llu%s",
                          (unsigned long long)e->index, (unsigned long long)e->term,
                          (unsigned long long)s->term,
                          election ? " (an election must raise it)" : "");
    }
    return 0;
}

static int need_node(const cairn_cluster_state *s, const char *id, cairn_err *err) {
    if (node_index(s, id) < 0) {
        return cairn_fail(err, "unknown node \"%s\"", id);
    }
    return 0;
}

static int check_placement(const cairn_cluster_state *s, const cairn_event *e, cairn_err *err) {
    if (instance_index(s, e->as.instance_placed.instance_id) >= 0) {
        return cairn_fail(err, "instance \"%s\" exists already", e->as.instance_placed.instance_id);
    }
    if (s->n_instances >= CAIRN_STATE_MAX_INSTANCES) {
        return cairn_fail(err, "the cluster has the maximum of %d instances",
                          CAIRN_STATE_MAX_INSTANCES);
    }
    for (uint32_t k = 0; k < e->as.instance_placed.n_shards; k++) {
        if (need_node(s, e->as.instance_placed.shards[k].node_id, err) != 0) {
            return cairn_fail_prefix(err, "shard %u", k);
        }
    }
    return 0;
}

static int check_runner_change(const cairn_cluster_state *s, const cairn_event *e, cairn_err *err) {
    int i = instance_index(s, e->as.runner_state_changed.instance_id);
    if (i < 0) {
        return cairn_fail(err, "unknown instance \"%s\"", e->as.runner_state_changed.instance_id);
    }
    const cairn_instance *in = &s->instances[i];
    uint32_t k = e->as.runner_state_changed.shard;
    if (k >= in->n_shards) {
        return cairn_fail(err, "instance \"%s\" has no shard %u", in->id, k);
    }
    const cairn_runner *from = &in->shards[k].runner;
    const cairn_runner *to = &e->as.runner_state_changed.runner;
    if (!cairn_runner_can_change(from, to)) {
        return cairn_fail(err, "runner %s/%u cannot go from %s (%llu/%llu) to %s (%llu/%llu)",
                          in->id, k, cairn_runner_state_name(from->state),
                          (unsigned long long)from->done, (unsigned long long)from->total,
                          cairn_runner_state_name(to->state), (unsigned long long)to->done,
                          (unsigned long long)to->total);
    }
    return 0;
}

static int check_against_state(const cairn_cluster_state *s, const cairn_event *e, cairn_err *err) {
    switch (e->type) {
    case CAIRN_EVENT_NODE_JOINED:
        if (node_index(s, e->as.node_joined.node_id) >= 0) {
            return cairn_fail(err, "node \"%s\" is a member already", e->as.node_joined.node_id);
        }
        if (s->n_nodes >= CAIRN_STATE_MAX_NODES) {
            return cairn_fail(err, "the cluster has the maximum of %d nodes",
                              CAIRN_STATE_MAX_NODES);
        }
        return 0;
    case CAIRN_EVENT_NODE_LEFT: return need_node(s, e->as.node_left.node_id, err);
    case CAIRN_EVENT_NODE_CONNECTION_CHANGED:
        return need_node(s, e->as.node_connection_changed.node_id, err);
    case CAIRN_EVENT_NODE_PROFILE_UPDATED:
        return need_node(s, e->as.node_profile_updated.node_id, err);
    case CAIRN_EVENT_MASTER_ELECTED: return 0;
    case CAIRN_EVENT_INSTANCE_PLACED: return check_placement(s, e, err);
    case CAIRN_EVENT_INSTANCE_DELETED:
        if (instance_index(s, e->as.instance_deleted.instance_id) < 0) {
            return cairn_fail(err, "unknown instance \"%s\"", e->as.instance_deleted.instance_id);
        }
        return 0;
    case CAIRN_EVENT_RUNNER_STATE_CHANGED: return check_runner_change(s, e, err);
    }
    return cairn_fail(err, "unknown event type %d", (int)e->type);
}

/* ---- apply: the changes, which cannot fail once validated ---- */

/* Arrays stay sorted by id so memory matches what a snapshot decodes to; nothing relies on
 * the order (lookups scan, serialization sorts). */
static uint32_t node_insert_position(const cairn_cluster_state *s, const char *id) {
    uint32_t pos = 0;
    while (pos < s->n_nodes && strcmp(s->nodes[pos].id, id) < 0) {
        pos++;
    }
    return pos;
}

static void add_node(cairn_cluster_state *s, const cairn_event *e) {
    uint32_t pos = node_insert_position(s, e->as.node_joined.node_id);
    memmove(&s->nodes[pos + 1], &s->nodes[pos], (s->n_nodes - pos) * sizeof s->nodes[0]);
    cairn_node *n = &s->nodes[pos];
    memset(n, 0, sizeof *n);
    memcpy(n->id, e->as.node_joined.node_id, sizeof n->id);
    memcpy(n->name, e->as.node_joined.name, sizeof n->name);
    n->n_addresses = e->as.node_joined.n_addresses;
    memcpy(n->addresses, e->as.node_joined.addresses, sizeof n->addresses);
    n->seniority = e->index;
    n->connected = true;
    s->n_nodes++;
}

static void remove_instance_at(cairn_cluster_state *s, uint32_t i) {
    memmove(&s->instances[i], &s->instances[i + 1],
            (s->n_instances - i - 1) * sizeof s->instances[0]);
    s->n_instances--;
    memset(&s->instances[s->n_instances], 0, sizeof s->instances[0]);
}

static bool instance_uses_node(const cairn_instance *in, const char *node_id) {
    for (uint32_t k = 0; k < in->n_shards; k++) {
        if (strcmp(in->shards[k].node_id, node_id) == 0) {
            return true;
        }
    }
    return false;
}

static void remove_node(cairn_cluster_state *s, const char *id) {
    uint32_t i = 0;
    while (i < s->n_instances) {
        if (instance_uses_node(&s->instances[i], id)) {
            remove_instance_at(s, i);
        } else {
            i++;
        }
    }
    int at = node_index(s, id);
    uint32_t pos = (uint32_t)at;
    memmove(&s->nodes[pos], &s->nodes[pos + 1], (s->n_nodes - pos - 1) * sizeof s->nodes[0]);
    s->n_nodes--;
    memset(&s->nodes[s->n_nodes], 0, sizeof s->nodes[0]);
}

static int compare_model_files(const void *a, const void *b) {
    return strcmp(((const cairn_model_file *)a)->name, ((const cairn_model_file *)b)->name);
}

static void set_profile(cairn_cluster_state *s, const cairn_event *e) {
    cairn_node *n = &s->nodes[node_index(s, e->as.node_profile_updated.node_id)];
    n->profile = e->as.node_profile_updated.profile;
    /* Names are unique, so the sort has one result whatever the algorithm. */
    qsort(n->profile.model_files, n->profile.n_model_files, sizeof n->profile.model_files[0],
          compare_model_files);
}

static void add_instance(cairn_cluster_state *s, const cairn_event *e) {
    uint32_t pos = 0;
    while (pos < s->n_instances &&
           strcmp(s->instances[pos].id, e->as.instance_placed.instance_id) < 0) {
        pos++;
    }
    memmove(&s->instances[pos + 1], &s->instances[pos],
            (s->n_instances - pos) * sizeof s->instances[0]);
    cairn_instance *in = &s->instances[pos];
    memset(in, 0, sizeof *in);
    memcpy(in->id, e->as.instance_placed.instance_id, sizeof in->id);
    memcpy(in->model, e->as.instance_placed.model, sizeof in->model);
    memcpy(in->model_sha256, e->as.instance_placed.model_sha256, sizeof in->model_sha256);
    memcpy(in->secret, e->as.instance_placed.secret, sizeof in->secret);
    in->n_layers = e->as.instance_placed.n_layers;
    in->n_shards = e->as.instance_placed.n_shards;
    for (uint32_t k = 0; k < in->n_shards; k++) {
        const cairn_shard_spec *spec = &e->as.instance_placed.shards[k];
        memcpy(in->shards[k].node_id, spec->node_id, sizeof in->shards[k].node_id);
        in->shards[k].layer_start = spec->layer_start;
        in->shards[k].layer_end = spec->layer_end;
        in->shards[k].runner.state = CAIRN_RUNNER_IDLE;
    }
    s->n_instances++;
}

static void set_runner(cairn_cluster_state *s, const cairn_event *e) {
    cairn_instance *in = &s->instances[instance_index(s, e->as.runner_state_changed.instance_id)];
    in->shards[e->as.runner_state_changed.shard].runner = e->as.runner_state_changed.runner;
}

static void change(cairn_cluster_state *s, const cairn_event *e) {
    switch (e->type) {
    case CAIRN_EVENT_NODE_JOINED: add_node(s, e); break;
    case CAIRN_EVENT_NODE_LEFT: remove_node(s, e->as.node_left.node_id); break;
    case CAIRN_EVENT_NODE_CONNECTION_CHANGED:
        s->nodes[node_index(s, e->as.node_connection_changed.node_id)].connected =
            e->as.node_connection_changed.connected;
        break;
    case CAIRN_EVENT_NODE_PROFILE_UPDATED: set_profile(s, e); break;
    case CAIRN_EVENT_MASTER_ELECTED:
        memcpy(s->master_id, e->as.master_elected.master_id, sizeof s->master_id);
        s->term = e->term;
        break;
    case CAIRN_EVENT_INSTANCE_PLACED: add_instance(s, e); break;
    case CAIRN_EVENT_INSTANCE_DELETED:
        remove_instance_at(s, (uint32_t)instance_index(s, e->as.instance_deleted.instance_id));
        break;
    case CAIRN_EVENT_RUNNER_STATE_CHANGED: set_runner(s, e); break;
    }
    s->last_index = e->index;
}

int cairn_state_apply(cairn_cluster_state *s, const cairn_event *e, cairn_err *err) {
    if (cairn_event_check(e, err) != 0 || check_sequence(s, e, err) != 0) {
        return -1;
    }
    if (check_against_state(s, e, err) != 0) {
        return cairn_fail_prefix(err, "event %llu (%s)", (unsigned long long)e->index,
                                 cairn_event_type_name(e->type));
    }
    change(s, e);
    return 0;
}

/* ---- hash ---- */

int cairn_state_hash(const cairn_cluster_state *s, uint8_t out[CAIRN_STATE_HASH_SIZE],
                     cairn_err *err) {
    if (sodium_init() < 0) {
        return cairn_fail(err, "libsodium failed to initialize");
    }
    char *json = cairn_state_snapshot_json(s, err);
    if (!json) {
        return cairn_fail_prefix(err, "state hash");
    }
    crypto_generichash(out, CAIRN_STATE_HASH_SIZE, (const unsigned char *)json, strlen(json), NULL,
                       0);
    free(json);
    return 0;
}
