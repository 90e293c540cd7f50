/* JSON form of cluster events and state snapshots, and the event log that keeps events in
 * that form. Decoders only move values into structs (checking types, ranges and lengths on
 * the way); what the values mean is checked once, by cairn_event_check() and
 * cairn_state_check(), for JSON and hand-built structs alike. */
#include "cluster/json_fields.h"
#include "cluster/state.h"
#include "util/json.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

/* ---- encoding ---- */

static bool add_str(cJSON *o, const char *key, const char *value) {
    return cJSON_AddStringToObject(o, key, value) != NULL;
}

/* Exact: every number is checked to be below 10^15 before it is encoded. */
static bool add_num(cJSON *o, const char *key, uint64_t value) {
    return cJSON_AddNumberToObject(o, key, (double)value) != NULL;
}

static bool add_bool(cJSON *o, const char *key, bool value) {
    return cJSON_AddBoolToObject(o, key, value) != NULL;
}

static bool append_child(cJSON *array, cJSON *child) {
    if (!child) {
        return false;
    }
    if (!cJSON_AddItemToArray(array, child)) {
        cJSON_Delete(child);
        return false;
    }
    return true;
}

static cJSON *finish(cJSON *o, bool ok) {
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *address_json(const cairn_address *a) {
    cJSON *o = cJSON_CreateObject();
    return finish(o, o && add_str(o, "host", a->host) && add_num(o, "port", a->port));
}

static cJSON *addresses_json(uint32_t n, const cairn_address *addrs) {
    cJSON *arr = cJSON_CreateArray();
    bool ok = arr != NULL;
    for (uint32_t i = 0; ok && i < n; i++) {
        ok = append_child(arr, address_json(&addrs[i]));
    }
    return finish(arr, ok);
}

static cJSON *device_json(const cairn_device *d) {
    cJSON *o = cJSON_CreateObject();
    return finish(o, o && add_str(o, "name", d->name) &&
                         add_str(o, "description", d->description) &&
                         add_str(o, "type", cairn_device_type_name(d->type)) &&
                         add_num(o, "memory_total", d->memory_total) &&
                         add_num(o, "memory_free", d->memory_free));
}

static cJSON *model_file_json(const cairn_model_file *f) {
    cJSON *o = cJSON_CreateObject();
    return finish(o, o && add_str(o, "name", f->name) && add_num(o, "size", f->size) &&
                         add_str(o, "sha256", f->sha256) && add_num(o, "n_layers", f->n_layers) &&
                         add_num(o, "layer_bytes", f->layer_bytes) &&
                         add_num(o, "embd_bytes", f->embd_bytes) &&
                         add_num(o, "head_bytes", f->head_bytes));
}

typedef const char *(*sort_key_fn)(const void *items, uint32_t i);

/* order = 0..n-1 sorted by key. Insertion sort: n is at most 64, and the arrays are
 * usually in order already. */
static void sort_indices(uint32_t *order, uint32_t n, const void *items, sort_key_fn key) {
    for (uint32_t i = 0; i < n; i++) {
        uint32_t j = i;
        while (j > 0 && strcmp(key(items, order[j - 1]), key(items, i)) > 0) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
}

static const char *file_key(const void *items, uint32_t i) {
    return ((const cairn_model_file *)items)[i].name;
}

static const char *node_key(const void *items, uint32_t i) {
    return ((const cairn_node *)items)[i].id;
}

static const char *instance_key(const void *items, uint32_t i) {
    return ((const cairn_instance *)items)[i].id;
}

/* sorted: files by name (the canonical order of a snapshot) or as given (an event). */
static cJSON *model_files_json(const cairn_node_profile *p, bool sorted) {
    uint32_t order[CAIRN_STATE_MAX_MODEL_FILES];
    for (uint32_t i = 0; i < p->n_model_files; i++) {
        order[i] = i;
    }
    if (sorted) {
        sort_indices(order, p->n_model_files, p->model_files, file_key);
    }
    cJSON *arr = cJSON_CreateArray();
    bool ok = arr != NULL;
    for (uint32_t i = 0; ok && i < p->n_model_files; i++) {
        ok = append_child(arr, model_file_json(&p->model_files[order[i]]));
    }
    return finish(arr, ok);
}

static cJSON *profile_json(const cairn_node_profile *p, bool sorted) {
    cJSON *o = cJSON_CreateObject();
    cJSON *devices = cJSON_CreateArray();
    bool ok = o && devices;
    for (uint32_t i = 0; ok && i < p->n_devices; i++) {
        ok = append_child(devices, device_json(&p->devices[i]));
    }
    if (!ok) {
        cJSON_Delete(devices);
        return finish(o, false);
    }
    /* devices comes after these fields in the canonical order, so it is still ours to
     * delete when one of them cannot be added. */
    if (!(add_num(o, "memory_total", p->memory_total) &&
          add_num(o, "memory_available", p->memory_available) &&
          add_str(o, "cpu_model", p->cpu_model) && add_num(o, "cpu_cores", p->cpu_cores) &&
          add_str(o, "os", p->os) && add_num(o, "disk_free", p->disk_free))) {
        cJSON_Delete(devices);
        return finish(o, false);
    }
    return finish(o, cairn_json_add_child(o, "devices", devices) &&
                         cairn_json_add_child(o, "model_files", model_files_json(p, sorted)));
}

static cJSON *runner_json(const cairn_runner *r) {
    cJSON *o = cJSON_CreateObject();
    return finish(o, o && add_str(o, "state", cairn_runner_state_name(r->state)) &&
                         add_num(o, "done", r->done) && add_num(o, "total", r->total) &&
                         add_str(o, "reason", r->reason) && add_num(o, "port", r->port));
}

static cJSON *shard_spec_json(const cairn_shard_spec *sh) {
    cJSON *o = cJSON_CreateObject();
    return finish(o, o && add_str(o, "node", sh->node_id) &&
                         add_num(o, "layer_start", sh->layer_start) &&
                         add_num(o, "layer_end", sh->layer_end));
}

static bool add_placement_fields(cJSON *o, const cairn_event *e) {
    cJSON *shards = cJSON_CreateArray();
    bool ok = shards != NULL;
    for (uint32_t k = 0; ok && k < e->as.instance_placed.n_shards; k++) {
        ok = append_child(shards, shard_spec_json(&e->as.instance_placed.shards[k]));
    }
    if (!ok) {
        cJSON_Delete(shards);
        return false;
    }
    /* shards is still ours to delete when a field before it cannot be added. */
    if (!(add_str(o, "instance", e->as.instance_placed.instance_id) &&
          add_str(o, "model", e->as.instance_placed.model) &&
          add_str(o, "model_sha256", e->as.instance_placed.model_sha256) &&
          add_str(o, "secret", e->as.instance_placed.secret) &&
          add_num(o, "n_layers", e->as.instance_placed.n_layers))) {
        cJSON_Delete(shards);
        return false;
    }
    return cairn_json_add_child(o, "shards", shards);
}

static bool add_event_fields(cJSON *o, const cairn_event *e) {
    switch (e->type) {
    case CAIRN_EVENT_NODE_JOINED:
        return add_str(o, "node", e->as.node_joined.node_id) &&
               add_str(o, "name", e->as.node_joined.name) &&
               cairn_json_add_child(
                   o, "addresses",
                   addresses_json(e->as.node_joined.n_addresses, e->as.node_joined.addresses));
    case CAIRN_EVENT_NODE_LEFT: return add_str(o, "node", e->as.node_left.node_id);
    case CAIRN_EVENT_NODE_CONNECTION_CHANGED:
        return add_str(o, "node", e->as.node_connection_changed.node_id) &&
               add_bool(o, "connected", e->as.node_connection_changed.connected);
    case CAIRN_EVENT_NODE_PROFILE_UPDATED:
        return add_str(o, "node", e->as.node_profile_updated.node_id) &&
               cairn_json_add_child(o, "profile",
                                    profile_json(&e->as.node_profile_updated.profile, false));
    case CAIRN_EVENT_MASTER_ELECTED: return add_str(o, "master", e->as.master_elected.master_id);
    case CAIRN_EVENT_INSTANCE_PLACED: return add_placement_fields(o, e);
    case CAIRN_EVENT_INSTANCE_DELETED:
        return add_str(o, "instance", e->as.instance_deleted.instance_id);
    case CAIRN_EVENT_RUNNER_STATE_CHANGED:
        return add_str(o, "instance", e->as.runner_state_changed.instance_id) &&
               add_num(o, "shard", e->as.runner_state_changed.shard) &&
               cairn_json_add_child(o, "runner", runner_json(&e->as.runner_state_changed.runner));
    }
    return false;
}

cJSON *cairn_event_to_cjson(const cairn_event *e, cairn_err *err) {
    /* Never emit what a peer would reject. */
    if (cairn_event_check(e, err) != 0) {
        return NULL;
    }
    cJSON *o = cJSON_CreateObject();
    bool ok = o && add_num(o, "index", e->index) && add_num(o, "term", e->term) &&
              add_str(o, "type", cairn_event_type_name(e->type)) && add_event_fields(o, e);
    if (!ok) {
        cJSON_Delete(o);
        cairn_fail(err, "out of memory encoding an event");
        return NULL;
    }
    return o;
}

static char *print_and_delete(cJSON *o, const char *what, cairn_err *err) {
    if (!o) {
        return NULL;
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text) {
        cairn_fail(err, "out of memory printing %s", what);
    }
    return text;
}

char *cairn_event_to_json(const cairn_event *e, cairn_err *err) {
    return print_and_delete(cairn_event_to_cjson(e, err), "an event", err);
}

/* ---- snapshot encoding ---- */

static cJSON *node_json(const cairn_node *n) {
    cJSON *o = cJSON_CreateObject();
    return finish(
        o, o && add_str(o, "id", n->id) && add_str(o, "name", n->name) &&
               cairn_json_add_child(o, "addresses", addresses_json(n->n_addresses, n->addresses)) &&
               add_num(o, "seniority", n->seniority) && add_bool(o, "connected", n->connected) &&
               cairn_json_add_child(o, "profile", profile_json(&n->profile, true)));
}

static cJSON *shard_json(const cairn_shard *sh) {
    cJSON *o = cJSON_CreateObject();
    return finish(o, o && add_str(o, "node", sh->node_id) &&
                         add_num(o, "layer_start", sh->layer_start) &&
                         add_num(o, "layer_end", sh->layer_end) &&
                         cairn_json_add_child(o, "runner", runner_json(&sh->runner)));
}

static cJSON *instance_json(const cairn_instance *in) {
    cJSON *o = cJSON_CreateObject();
    cJSON *shards = cJSON_CreateArray();
    bool ok = o && shards;
    for (uint32_t k = 0; ok && k < in->n_shards; k++) {
        ok = append_child(shards, shard_json(&in->shards[k]));
    }
    if (!ok) {
        cJSON_Delete(shards);
        return finish(o, false);
    }
    /* shards is still ours to delete when a field before it cannot be added. */
    if (!(add_str(o, "id", in->id) && add_str(o, "model", in->model) &&
          add_str(o, "model_sha256", in->model_sha256) && add_str(o, "secret", in->secret) &&
          add_num(o, "n_layers", in->n_layers))) {
        cJSON_Delete(shards);
        return finish(o, false);
    }
    return finish(o, cairn_json_add_child(o, "shards", shards));
}

static cJSON *nodes_json(const cairn_cluster_state *s) {
    uint32_t order[CAIRN_STATE_MAX_NODES];
    sort_indices(order, s->n_nodes, s->nodes, node_key);
    cJSON *arr = cJSON_CreateArray();
    bool ok = arr != NULL;
    for (uint32_t i = 0; ok && i < s->n_nodes; i++) {
        ok = append_child(arr, node_json(&s->nodes[order[i]]));
    }
    return finish(arr, ok);
}

static cJSON *instances_json(const cairn_cluster_state *s) {
    uint32_t order[CAIRN_STATE_MAX_INSTANCES];
    sort_indices(order, s->n_instances, s->instances, instance_key);
    cJSON *arr = cJSON_CreateArray();
    bool ok = arr != NULL;
    for (uint32_t i = 0; ok && i < s->n_instances; i++) {
        ok = append_child(arr, instance_json(&s->instances[order[i]]));
    }
    return finish(arr, ok);
}

cJSON *cairn_state_snapshot_cjson(const cairn_cluster_state *s, cairn_err *err) {
    if (cairn_state_check(s, err) != 0) {
        return NULL;
    }
    cJSON *o = cJSON_CreateObject();
    bool ok = o && add_str(o, "cluster", s->cluster_name) &&
              add_num(o, "last_index", s->last_index) && add_num(o, "term", s->term) &&
              add_str(o, "master", s->master_id) &&
              cairn_json_add_child(o, "nodes", nodes_json(s)) &&
              cairn_json_add_child(o, "instances", instances_json(s));
    if (!ok) {
        cJSON_Delete(o);
        cairn_fail(err, "out of memory encoding a snapshot");
        return NULL;
    }
    return o;
}

char *cairn_state_snapshot_json(const cairn_cluster_state *s, cairn_err *err) {
    return print_and_delete(cairn_state_snapshot_cjson(s, err), "a snapshot", err);
}

/* ---- what the API shows: the same without the instances' secrets ---- */

char *cairn_state_public_json(const cairn_cluster_state *s, cairn_err *err) {
    cJSON *o = cairn_state_snapshot_cjson(s, err);
    cJSON *in = NULL;
    cJSON_ArrayForEach(in, cJSON_GetObjectItemCaseSensitive(o, "instances")) {
        cJSON_DeleteItemFromObjectCaseSensitive(in, "secret");
    }
    return print_and_delete(o, "a snapshot", err);
}

cJSON *cairn_event_public_cjson(const cairn_event *e, cairn_err *err) {
    cJSON *o = cairn_event_to_cjson(e, err);
    if (o && e->type == CAIRN_EVENT_INSTANCE_PLACED) {
        cJSON_DeleteItemFromObjectCaseSensitive(o, "secret");
    }
    return o;
}

/* ---- decoding helpers (the generic ones are in json_fields.c) ---- */

static int get_name(const cJSON *o, const char *key, const char *what,
                    int (*from_name)(const char *, int *), int *out, cairn_err *err) {
    const char *s = cJSON_GetStringValue(cairn_json_field(o, key));
    if (!s || from_name(s, out) != 0) {
        return cairn_fail(err, "\"%s\" must be a known %s name", key, what);
    }
    return 0;
}

static int device_type_by_name(const char *name, int *out) {
    cairn_device_type t;
    if (cairn_device_type_from_name(name, &t) != 0) {
        return -1;
    }
    *out = (int)t;
    return 0;
}

static int runner_state_by_name(const char *name, int *out) {
    cairn_runner_state st;
    if (cairn_runner_state_from_name(name, &st) != 0) {
        return -1;
    }
    *out = (int)st;
    return 0;
}

/* ---- decoding ---- */

static int address_from(const cJSON *o, cairn_address *a, cairn_err *err) {
    uint32_t port = 0;
    if (CAIRN_JSON_EXPECT_FIELDS(o, err, "host", "port") != 0 ||
        cairn_json_get_text(o, "host", a->host, sizeof a->host, err) != 0 ||
        cairn_json_get_u32(o, "port", 65535, &port, err) != 0) {
        return -1;
    }
    a->port = (uint16_t)port;
    return 0;
}

static int addresses_from(const cJSON *o, uint32_t *n, cairn_address *addrs, cairn_err *err) {
    const cJSON *arr = cairn_json_get_array(o, "addresses", CAIRN_STATE_MAX_ADDRESSES, n, err);
    if (!arr) {
        return -1;
    }
    uint32_t i = 0;
    const cJSON *item = NULL;
    cJSON_ArrayForEach(item, arr) {
        if (address_from(item, &addrs[i], err) != 0) {
            return cairn_fail_prefix(err, "addresses[%u]", i);
        }
        i++;
    }
    return 0;
}

static int device_from(const cJSON *o, cairn_device *d, cairn_err *err) {
    int type = 0;
    if (CAIRN_JSON_EXPECT_FIELDS(o, err, "name", "description", "type", "memory_total",
                                 "memory_free") != 0 ||
        cairn_json_get_text(o, "name", d->name, sizeof d->name, err) != 0 ||
        cairn_json_get_text(o, "description", d->description, sizeof d->description, err) != 0 ||
        get_name(o, "type", "device type", device_type_by_name, &type, err) != 0 ||
        cairn_json_get_number(o, "memory_total", &d->memory_total, err) != 0 ||
        cairn_json_get_number(o, "memory_free", &d->memory_free, err) != 0) {
        return -1;
    }
    d->type = (cairn_device_type)type;
    return 0;
}

static int model_file_from(const cJSON *o, cairn_model_file *f, cairn_err *err) {
    if (CAIRN_JSON_EXPECT_FIELDS(o, err, "name", "size", "sha256", "n_layers", "layer_bytes",
                                 "embd_bytes", "head_bytes") != 0 ||
        cairn_json_get_text(o, "name", f->name, sizeof f->name, err) != 0 ||
        cairn_json_get_number(o, "size", &f->size, err) != 0 ||
        cairn_json_get_text(o, "sha256", f->sha256, sizeof f->sha256, err) != 0 ||
        cairn_json_get_u32(o, "n_layers", CAIRN_STATE_MAX_LAYERS, &f->n_layers, err) != 0 ||
        cairn_json_get_number(o, "layer_bytes", &f->layer_bytes, err) != 0 ||
        cairn_json_get_number(o, "embd_bytes", &f->embd_bytes, err) != 0 ||
        cairn_json_get_number(o, "head_bytes", &f->head_bytes, err) != 0) {
        return -1;
    }
    return 0;
}

static int profile_lists_from(const cJSON *o, cairn_node_profile *p, cairn_err *err) {
    const cJSON *devices =
        cairn_json_get_array(o, "devices", CAIRN_STATE_MAX_DEVICES, &p->n_devices, err);
    if (!devices) {
        return -1;
    }
    uint32_t i = 0;
    const cJSON *item = NULL;
    cJSON_ArrayForEach(item, devices) {
        if (device_from(item, &p->devices[i], err) != 0) {
            return cairn_fail_prefix(err, "devices[%u]", i);
        }
        i++;
    }
    const cJSON *files =
        cairn_json_get_array(o, "model_files", CAIRN_STATE_MAX_MODEL_FILES, &p->n_model_files, err);
    if (!files) {
        return -1;
    }
    i = 0;
    cJSON_ArrayForEach(item, files) {
        if (model_file_from(item, &p->model_files[i], err) != 0) {
            return cairn_fail_prefix(err, "model_files[%u]", i);
        }
        i++;
    }
    return 0;
}

static int profile_from(const cJSON *o, cairn_node_profile *p, cairn_err *err) {
    if (CAIRN_JSON_EXPECT_FIELDS(o, err, "memory_total", "memory_available", "cpu_model",
                                 "cpu_cores", "os", "disk_free", "devices", "model_files") != 0 ||
        cairn_json_get_number(o, "memory_total", &p->memory_total, err) != 0 ||
        cairn_json_get_number(o, "memory_available", &p->memory_available, err) != 0 ||
        cairn_json_get_text(o, "cpu_model", p->cpu_model, sizeof p->cpu_model, err) != 0 ||
        cairn_json_get_u32(o, "cpu_cores", CAIRN_STATE_MAX_CPU_CORES, &p->cpu_cores, err) != 0 ||
        cairn_json_get_text(o, "os", p->os, sizeof p->os, err) != 0 ||
        cairn_json_get_number(o, "disk_free", &p->disk_free, err) != 0 ||
        profile_lists_from(o, p, err) != 0) {
        return cairn_fail_prefix(err, "profile");
    }
    return 0;
}

static int runner_from(const cJSON *o, cairn_runner *r, cairn_err *err) {
    int state = 0;
    uint32_t port = 0;
    if (CAIRN_JSON_EXPECT_FIELDS(o, err, "state", "done", "total", "reason", "port") != 0 ||
        get_name(o, "state", "runner state", runner_state_by_name, &state, err) != 0 ||
        cairn_json_get_number(o, "done", &r->done, err) != 0 ||
        cairn_json_get_number(o, "total", &r->total, err) != 0 ||
        cairn_json_get_text(o, "reason", r->reason, sizeof r->reason, err) != 0 ||
        cairn_json_get_u32(o, "port", 65535, &port, err) != 0) {
        return cairn_fail_prefix(err, "runner");
    }
    r->state = (cairn_runner_state)state;
    r->port = (uint16_t)port;
    return 0;
}

/* A shard's node and layers; the runner (snapshots only) is read by the caller. */
static int shard_range_from(const cJSON *o, char *node_id, uint32_t *start, uint32_t *end,
                            cairn_err *err) {
    if (cairn_json_get_text(o, "node", node_id, CAIRN_STATE_ID_SIZE, err) != 0 ||
        cairn_json_get_u32(o, "layer_start", CAIRN_STATE_MAX_LAYERS, start, err) != 0 ||
        cairn_json_get_u32(o, "layer_end", CAIRN_STATE_MAX_LAYERS, end, err) != 0) {
        return -1;
    }
    return 0;
}

static int placement_from(const cJSON *o, cairn_event *e, cairn_err *err) {
    if (cairn_json_get_text(o, "instance", e->as.instance_placed.instance_id,
                            sizeof e->as.instance_placed.instance_id, err) != 0 ||
        cairn_json_get_text(o, "model", e->as.instance_placed.model,
                            sizeof e->as.instance_placed.model, err) != 0 ||
        cairn_json_get_text(o, "model_sha256", e->as.instance_placed.model_sha256,
                            sizeof e->as.instance_placed.model_sha256, err) != 0 ||
        cairn_json_get_text(o, "secret", e->as.instance_placed.secret,
                            sizeof e->as.instance_placed.secret, err) != 0 ||
        cairn_json_get_u32(o, "n_layers", CAIRN_STATE_MAX_LAYERS, &e->as.instance_placed.n_layers,
                           err) != 0) {
        return -1;
    }
    const cJSON *shards = cairn_json_get_array(o, "shards", CAIRN_STATE_MAX_SHARDS,
                                               &e->as.instance_placed.n_shards, err);
    if (!shards) {
        return -1;
    }
    uint32_t k = 0;
    const cJSON *item = NULL;
    cJSON_ArrayForEach(item, shards) {
        cairn_shard_spec *sh = &e->as.instance_placed.shards[k];
        if (CAIRN_JSON_EXPECT_FIELDS(item, err, "node", "layer_start", "layer_end") != 0 ||
            shard_range_from(item, sh->node_id, &sh->layer_start, &sh->layer_end, err) != 0) {
            return cairn_fail_prefix(err, "shards[%u]", k);
        }
        k++;
    }
    return 0;
}

/* Checks the type's field set, then reads the type's own fields. */
static int event_fields_from(const cJSON *o, cairn_event *e, cairn_err *err) {
#define HEAD "index", "term", "type"
    switch (e->type) {
    case CAIRN_EVENT_NODE_JOINED:
        if (CAIRN_JSON_EXPECT_FIELDS(o, err, HEAD, "node", "name", "addresses") != 0 ||
            cairn_json_get_text(o, "node", e->as.node_joined.node_id, CAIRN_STATE_ID_SIZE, err) !=
                0 ||
            cairn_json_get_text(o, "name", e->as.node_joined.name, CAIRN_STATE_NAME_SIZE, err) !=
                0) {
            return -1;
        }
        return addresses_from(o, &e->as.node_joined.n_addresses, e->as.node_joined.addresses, err);
    case CAIRN_EVENT_NODE_LEFT:
        if (CAIRN_JSON_EXPECT_FIELDS(o, err, HEAD, "node") != 0) {
            return -1;
        }
        return cairn_json_get_text(o, "node", e->as.node_left.node_id, CAIRN_STATE_ID_SIZE, err);
    case CAIRN_EVENT_NODE_CONNECTION_CHANGED:
        if (CAIRN_JSON_EXPECT_FIELDS(o, err, HEAD, "node", "connected") != 0 ||
            cairn_json_get_text(o, "node", e->as.node_connection_changed.node_id,
                                CAIRN_STATE_ID_SIZE, err) != 0) {
            return -1;
        }
        return cairn_json_get_bool(o, "connected", &e->as.node_connection_changed.connected, err);
    case CAIRN_EVENT_NODE_PROFILE_UPDATED:
        if (CAIRN_JSON_EXPECT_FIELDS(o, err, HEAD, "node", "profile") != 0 ||
            cairn_json_get_text(o, "node", e->as.node_profile_updated.node_id, CAIRN_STATE_ID_SIZE,
                                err) != 0) {
            return -1;
        }
        return profile_from(cairn_json_field(o, "profile"), &e->as.node_profile_updated.profile,
                            err);
    case CAIRN_EVENT_MASTER_ELECTED:
        if (CAIRN_JSON_EXPECT_FIELDS(o, err, HEAD, "master") != 0) {
            return -1;
        }
        return cairn_json_get_text(o, "master", e->as.master_elected.master_id, CAIRN_STATE_ID_SIZE,
                                   err);
    case CAIRN_EVENT_INSTANCE_PLACED:
        if (CAIRN_JSON_EXPECT_FIELDS(o, err, HEAD, "instance", "model", "model_sha256", "secret",
                                     "n_layers", "shards") != 0) {
            return -1;
        }
        return placement_from(o, e, err);
    case CAIRN_EVENT_INSTANCE_DELETED:
        if (CAIRN_JSON_EXPECT_FIELDS(o, err, HEAD, "instance") != 0) {
            return -1;
        }
        return cairn_json_get_text(o, "instance", e->as.instance_deleted.instance_id,
                                   CAIRN_STATE_ID_SIZE, err);
    case CAIRN_EVENT_RUNNER_STATE_CHANGED:
        if (CAIRN_JSON_EXPECT_FIELDS(o, err, HEAD, "instance", "shard", "runner") != 0 ||
            cairn_json_get_text(o, "instance", e->as.runner_state_changed.instance_id,
                                CAIRN_STATE_ID_SIZE, err) != 0 ||
            cairn_json_get_u32(o, "shard", CAIRN_STATE_MAX_SHARDS - 1,
                               &e->as.runner_state_changed.shard, err) != 0) {
            return -1;
        }
        return runner_from(cairn_json_field(o, "runner"), &e->as.runner_state_changed.runner, err);
    }
#undef HEAD
    return cairn_fail(err, "unknown event type");
}

static int event_from(const cJSON *o, cairn_event *e, cairn_err *err) {
    if (!cJSON_IsObject(o)) {
        return cairn_fail(err, "expected an object");
    }
    const char *type = cJSON_GetStringValue(cairn_json_field(o, "type"));
    if (!type) {
        return cairn_fail(err, "\"type\" must be a string");
    }
    if (cairn_event_type_from_name(type, &e->type) != 0) {
        return cairn_fail(err, "unknown type \"%.64s\"", type);
    }
    if (event_fields_from(o, e, err) != 0 ||
        cairn_json_get_number(o, "index", &e->index, err) != 0 ||
        cairn_json_get_number(o, "term", &e->term, err) != 0) {
        return -1;
    }
    return 0;
}

int cairn_event_from_cjson(const cJSON *obj, cairn_event *out, cairn_err *err) {
    cairn_event *e = calloc(1, sizeof *e);
    if (!e) {
        return cairn_fail(err, "out of memory decoding an event");
    }
    int rc = event_from(obj, e, err) != 0 ? cairn_fail_prefix(err, "event") : 0;
    if (rc == 0) {
        rc = cairn_event_check(e, err);
    }
    if (rc == 0) {
        *out = *e;
    }
    free(e);
    return rc;
}

int cairn_event_from_json(const char *json, size_t len, cairn_event *out, cairn_err *err) {
    cJSON *root = cairn_json_parse(json, len, "event", err);
    if (!root) {
        return -1;
    }
    int rc = cairn_event_from_cjson(root, out, err);
    cJSON_Delete(root);
    return rc;
}

/* ---- snapshot decoding ---- */

static int node_from(const cJSON *o, cairn_node *n, cairn_err *err) {
    if (CAIRN_JSON_EXPECT_FIELDS(o, err, "id", "name", "addresses", "seniority", "connected",
                                 "profile") != 0 ||
        cairn_json_get_text(o, "id", n->id, sizeof n->id, err) != 0 ||
        cairn_json_get_text(o, "name", n->name, sizeof n->name, err) != 0 ||
        addresses_from(o, &n->n_addresses, n->addresses, err) != 0 ||
        cairn_json_get_number(o, "seniority", &n->seniority, err) != 0 ||
        cairn_json_get_bool(o, "connected", &n->connected, err) != 0) {
        return -1;
    }
    return profile_from(cairn_json_field(o, "profile"), &n->profile, err);
}

static int instance_from(const cJSON *o, cairn_instance *in, cairn_err *err) {
    if (CAIRN_JSON_EXPECT_FIELDS(o, err, "id", "model", "model_sha256", "secret", "n_layers",
                                 "shards") != 0 ||
        cairn_json_get_text(o, "id", in->id, sizeof in->id, err) != 0 ||
        cairn_json_get_text(o, "model", in->model, sizeof in->model, err) != 0 ||
        cairn_json_get_text(o, "model_sha256", in->model_sha256, sizeof in->model_sha256, err) !=
            0 ||
        cairn_json_get_text(o, "secret", in->secret, sizeof in->secret, err) != 0 ||
        cairn_json_get_u32(o, "n_layers", CAIRN_STATE_MAX_LAYERS, &in->n_layers, err) != 0) {
        return -1;
    }
    const cJSON *shards =
        cairn_json_get_array(o, "shards", CAIRN_STATE_MAX_SHARDS, &in->n_shards, err);
    if (!shards) {
        return -1;
    }
    uint32_t k = 0;
    const cJSON *item = NULL;
    cJSON_ArrayForEach(item, shards) {
        cairn_shard *sh = &in->shards[k];
        if (CAIRN_JSON_EXPECT_FIELDS(item, err, "node", "layer_start", "layer_end", "runner") !=
                0 ||
            shard_range_from(item, sh->node_id, &sh->layer_start, &sh->layer_end, err) != 0 ||
            runner_from(cairn_json_field(item, "runner"), &sh->runner, err) != 0) {
            return cairn_fail_prefix(err, "shards[%u]", k);
        }
        k++;
    }
    return 0;
}

static int compare_nodes(const void *a, const void *b) {
    return strcmp(((const cairn_node *)a)->id, ((const cairn_node *)b)->id);
}

static int compare_instances(const void *a, const void *b) {
    return strcmp(((const cairn_instance *)a)->id, ((const cairn_instance *)b)->id);
}

static int compare_files(const void *a, const void *b) {
    return strcmp(((const cairn_model_file *)a)->name, ((const cairn_model_file *)b)->name);
}

/* Gives memory the order cairn_state_apply() keeps. Duplicate ids are left for
 * cairn_state_check() to report. */
static void sort_state(cairn_cluster_state *s) {
    qsort(s->nodes, s->n_nodes, sizeof s->nodes[0], compare_nodes);
    qsort(s->instances, s->n_instances, sizeof s->instances[0], compare_instances);
    for (uint32_t i = 0; i < s->n_nodes; i++) {
        cairn_node_profile *p = &s->nodes[i].profile;
        qsort(p->model_files, p->n_model_files, sizeof p->model_files[0], compare_files);
    }
}

static int state_lists_from(const cJSON *o, cairn_cluster_state *s, cairn_err *err) {
    const cJSON *nodes = cairn_json_get_array(o, "nodes", CAIRN_STATE_MAX_NODES, &s->n_nodes, err);
    if (!nodes) {
        return -1;
    }
    uint32_t i = 0;
    const cJSON *item = NULL;
    cJSON_ArrayForEach(item, nodes) {
        if (node_from(item, &s->nodes[i], err) != 0) {
            return cairn_fail_prefix(err, "nodes[%u]", i);
        }
        i++;
    }
    const cJSON *instances =
        cairn_json_get_array(o, "instances", CAIRN_STATE_MAX_INSTANCES, &s->n_instances, err);
    if (!instances) {
        return -1;
    }
    i = 0;
    cJSON_ArrayForEach(item, instances) {
        if (instance_from(item, &s->instances[i], err) != 0) {
            return cairn_fail_prefix(err, "instances[%u]", i);
        }
        i++;
    }
    return 0;
}

static int state_from(const cJSON *o, cairn_cluster_state *s, cairn_err *err) {
    if (CAIRN_JSON_EXPECT_FIELDS(o, err, "cluster", "last_index", "term", "master", "nodes",
                                 "instances") != 0 ||
        cairn_json_get_text(o, "cluster", s->cluster_name, sizeof s->cluster_name, err) != 0 ||
        cairn_json_get_number(o, "last_index", &s->last_index, err) != 0 ||
        cairn_json_get_number(o, "term", &s->term, err) != 0 ||
        cairn_json_get_text(o, "master", s->master_id, sizeof s->master_id, err) != 0 ||
        state_lists_from(o, s, err) != 0) {
        return cairn_fail_prefix(err, "snapshot");
    }
    sort_state(s);
    return cairn_state_check(s, err);
}

int cairn_state_from_snapshot_cjson(const cJSON *obj, cairn_cluster_state *out, cairn_err *err) {
    cairn_cluster_state *s = calloc(1, sizeof *s);
    if (!s) {
        return cairn_fail(err, "out of memory decoding a snapshot");
    }
    int rc = state_from(obj, s, err);
    if (rc == 0) {
        memcpy(out, s, sizeof *s);
    }
    free(s);
    return rc;
}

int cairn_state_from_snapshot(const char *json, size_t len, cairn_cluster_state *out,
                              cairn_err *err) {
    cJSON *root = cairn_json_parse(json, len, "snapshot", err);
    if (!root) {
        return -1;
    }
    int rc = cairn_state_from_snapshot_cjson(root, out, err);
    cJSON_Delete(root);
    return rc;
}

/* ---- the event log ---- */

void cairn_event_log_init(cairn_event_log *log, uint64_t after_index) {
    memset(log, 0, sizeof *log);
    log->first_index = after_index + 1;
}

void cairn_event_log_free(cairn_event_log *log) {
    for (size_t i = 0; i < log->count; i++) {
        free(log->entries[i].json);
    }
    free(log->entries);
    memset(log, 0, sizeof *log);
}

static int log_reserve_one(cairn_event_log *log, cairn_err *err) {
    if (log->count < log->cap) {
        return 0;
    }
    size_t cap = log->cap ? log->cap * 2 : 64;
    cairn_log_entry *grown = realloc(log->entries, cap * sizeof *grown);
    if (!grown) {
        return cairn_fail(err, "out of memory growing the event log to %zu entries", cap);
    }
    log->entries = grown;
    log->cap = cap;
    return 0;
}

int cairn_event_log_append(cairn_event_log *log, const cairn_event *e, cairn_err *err) {
    uint64_t next = log->first_index + log->count;
    if (e->index != next) {
        return cairn_fail(err, "event log: got event %llu, expected %llu",
                          (unsigned long long)e->index, (unsigned long long)next);
    }
    if (log_reserve_one(log, err) != 0) {
        return -1;
    }
    char *json = cairn_event_to_json(e, err);
    if (!json) {
        return cairn_fail_prefix(err, "event log");
    }
    size_t len = strlen(json);
    log->entries[log->count++] =
        (cairn_log_entry){.index = e->index, .json = json, .json_len = len};
    log->json_bytes += len;
    return 0;
}

void cairn_event_log_compact(cairn_event_log *log, const cairn_cluster_state *covered,
                             size_t keep_recent) {
    /* Entries with index <= covered->last_index are redundant; keep the newest keep_recent. */
    if (covered->last_index < log->first_index) {
        return;
    }
    uint64_t redundant = covered->last_index - log->first_index + 1;
    if (redundant > log->count) {
        redundant = log->count;
    }
    if (redundant <= keep_recent) {
        return;
    }
    size_t drop = (size_t)(redundant - keep_recent);
    for (size_t i = 0; i < drop; i++) {
        log->json_bytes -= log->entries[i].json_len;
        free(log->entries[i].json);
    }
    memmove(log->entries, log->entries + drop, (log->count - drop) * sizeof log->entries[0]);
    log->count -= drop;
    log->first_index += drop;
}

cairn_tail_status cairn_event_log_tail_after(const cairn_event_log *log, uint64_t last_applied,
                                             const cairn_log_entry **entries, size_t *count) {
    uint64_t next = log->first_index + log->count;
    if (last_applied + 1 < log->first_index) {
        return CAIRN_TAIL_NEED_SNAPSHOT;
    }
    if (last_applied >= next) {
        return CAIRN_TAIL_AHEAD;
    }
    size_t from = (size_t)(last_applied + 1 - log->first_index);
    *entries = log->entries + from;
    *count = log->count - from;
    return CAIRN_TAIL_OK;
}
