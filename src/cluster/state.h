/*
 * cluster state: the replicated, event-sourced picture of one cluster (its nodes and their
 * hardware, the elected master, the model instances placed on nodes and the runners that
 * serve their shards), the events that change it, their JSON form, and the master's log.
 *
 * Every change is an event. The master numbers events consecutively and sends them to every
 * node; each node folds them with cairn_state_apply(), so a node's state is the fold of the
 * events it has applied. A node that joins or lags gets a snapshot (the whole state as JSON)
 * plus the tail of events after it, so no log grows without bound. Nodes compare states by
 * cairn_state_hash().
 *
 * This module is pure: no I/O, no clocks, no randomness, no global state. cairn_state_apply()
 * must stay a deterministic function of (state, event): any input that depends on the node
 * applying it would make the cluster's copies diverge. Events and snapshots come from peers,
 * so every size is bounded and every field is validated before anything trusts it.
 *
 * State and events are plain values (fixed-size arrays, no pointers): copy them with
 * assignment, free them with free() when heap-allocated. The state is large (about 1 MB),
 * so allocate it with cairn_state_new() rather than on the stack.
 */
#ifndef CAIRN_CLUSTER_STATE_H
#define CAIRN_CLUSTER_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

struct cJSON;

/* ---- limits: part of the protocol, since every node must accept the same events ---- */

/* Buffer sizes include the terminating NUL. */
#define CAIRN_STATE_ID_SIZE 64     /* node and instance ids: [A-Za-z0-9._:-]+ */
#define CAIRN_STATE_NAME_SIZE 128  /* cluster, node, model, file, device and CPU names */
#define CAIRN_STATE_HOST_SIZE 64   /* an IPv4/IPv6 address or host name */
#define CAIRN_STATE_OS_SIZE 64     /* "linux", "windows 11", ... */
#define CAIRN_STATE_SHA256_SIZE 65 /* 64 lowercase hex digits */
#define CAIRN_STATE_SECRET_SIZE 65 /* an instance secret: 32 bytes as 64 lowercase hex digits */
#define CAIRN_STATE_REASON_SIZE 256

#define CAIRN_STATE_MAX_NODES 64
#define CAIRN_STATE_MAX_ADDRESSES 8
#define CAIRN_STATE_MAX_DEVICES 8
#define CAIRN_STATE_MAX_MODEL_FILES 64
#define CAIRN_STATE_MAX_INSTANCES 32
#define CAIRN_STATE_MAX_SHARDS 16
#define CAIRN_STATE_MAX_LAYERS 65536
#define CAIRN_STATE_MAX_CPU_CORES 65536
/* Every integer (index, term, byte count, progress) stays below 10^15: JSON numbers are
 * doubles, and cJSON prints integers of at most 15 digits exactly and without an exponent,
 * which keeps the canonical serialization (and so the hash) exact. 10^15 bytes is 1 PB. */
#define CAIRN_STATE_MAX_NUMBER UINT64_C(999999999999999)

/* ---- the state ---- */

typedef struct cairn_address {
    char host[CAIRN_STATE_HOST_SIZE]; /* [A-Za-z0-9._:%-]+ (IPv6 zone ids included) */
    uint16_t port;                    /* 1..65535 */
} cairn_address;

/* ggml's backend device kinds (ggml_backend_dev_type without META). */
typedef enum cairn_device_type {
    CAIRN_DEVICE_CPU,
    CAIRN_DEVICE_GPU,
    CAIRN_DEVICE_IGPU,
    CAIRN_DEVICE_ACCEL,
} cairn_device_type;

typedef struct cairn_device {
    char name[CAIRN_STATE_NAME_SIZE]; /* ggml device name, e.g. "CPU", "CUDA0"; not empty */
    char description[CAIRN_STATE_NAME_SIZE];
    cairn_device_type type;
    uint64_t memory_total; /* bytes */
    uint64_t memory_free;
} cairn_device;

typedef struct cairn_model_file {
    char name[CAIRN_STATE_NAME_SIZE]; /* not empty; unique within a profile */
    uint64_t size;                    /* bytes */
    /* Empty while the node has not hashed the file yet (hashing tens of GB takes a while,
     * and the file should be visible before that). */
    char sha256[CAIRN_STATE_SHA256_SIZE];
    /* What a shard of this model costs in memory, for placement; all 0 when the file is not
     * a model the node can read (and then it never takes part in a placement). */
    uint32_t n_layers;    /* 0..CAIRN_STATE_MAX_LAYERS */
    uint64_t layer_bytes; /* one layer's weights plus its KV cache at the runners' context */
    uint64_t embd_bytes;  /* extra on the first shard: the token embeddings */
    uint64_t head_bytes;  /* extra on the last shard: the output norm and head */
} cairn_model_file;

/* What a node reports about itself. Text fields may be empty when unknown. */
typedef struct cairn_node_profile {
    uint64_t memory_total; /* bytes */
    uint64_t memory_available;
    char cpu_model[CAIRN_STATE_NAME_SIZE];
    uint32_t cpu_cores; /* 0..CAIRN_STATE_MAX_CPU_CORES, 0 when unknown */
    char os[CAIRN_STATE_OS_SIZE];
    uint64_t disk_free; /* bytes free where the node keeps models */
    uint32_t n_devices;
    cairn_device devices[CAIRN_STATE_MAX_DEVICES]; /* in the node's own order */
    uint32_t n_model_files;
    /* In the state, sorted by name (apply sorts them); in an event, in any order. */
    cairn_model_file model_files[CAIRN_STATE_MAX_MODEL_FILES];
} cairn_node_profile;

typedef struct cairn_node {
    char id[CAIRN_STATE_ID_SIZE];
    char name[CAIRN_STATE_NAME_SIZE]; /* human-readable, may be empty */
    uint32_t n_addresses;
    cairn_address addresses[CAIRN_STATE_MAX_ADDRESSES]; /* in order of preference */
    /* The index of the event that added the node: lower is older. Election uses it to
     * prefer long-standing nodes, and it is unique within a state. */
    uint64_t seniority;
    bool connected;
    cairn_node_profile profile; /* zero until the node's first NODE_PROFILE_UPDATED */
} cairn_node;

/*
 * A runner serves one shard of an instance on that shard's node. Its lifecycle:
 *
 *   IDLE -> CONNECTING -> CONNECTED -> LOADING (-> LOADING ...) -> LOADED -> WARMING_UP
 *        -> READY <-> RUNNING
 *   any state but SHUTTING_DOWN, SHUT_DOWN, FAILED -> SHUTTING_DOWN -> SHUT_DOWN
 *   any state but SHUT_DOWN, FAILED -> FAILED (with a reason)
 *
 * SHUT_DOWN and FAILED are final: to retry, the master deletes the instance and places a
 * new one, so a stale report about the old runner can never revive it.
 */
typedef enum cairn_runner_state {
    CAIRN_RUNNER_IDLE,
    CAIRN_RUNNER_CONNECTING,
    CAIRN_RUNNER_CONNECTED,
    CAIRN_RUNNER_LOADING,
    CAIRN_RUNNER_LOADED,
    CAIRN_RUNNER_WARMING_UP,
    CAIRN_RUNNER_READY,
    CAIRN_RUNNER_RUNNING,
    CAIRN_RUNNER_SHUTTING_DOWN,
    CAIRN_RUNNER_SHUT_DOWN,
    CAIRN_RUNNER_FAILED,
} cairn_runner_state;
#define CAIRN_RUNNER_STATE_COUNT 11

typedef struct cairn_runner {
    cairn_runner_state state;
    /* LOADING only: done of total units (layers) loaded, 1 <= total, done <= total; within
     * one LOADING stretch total stays the same and done never goes back. 0/0 otherwise. */
    uint64_t done;
    uint64_t total;
    char reason[CAIRN_STATE_REASON_SIZE]; /* FAILED only (not empty); empty otherwise */
    /* The TCP port the runner accepts data-plane links on, at its node's address: 0 while
     * IDLE, set by the step to CONNECTING and unchanged afterwards (SHUTTING_DOWN, SHUT_DOWN
     * and FAILED may keep it or report 0). */
    uint16_t port;
} cairn_runner;

/* Layers [layer_start, layer_end) of an instance, on one node. An instance's shards are in
 * layer order, contiguous, and cover [0, n_layers). The runner of shard k of instance i is
 * identified by (i, k); its node is the shard's node. */
typedef struct cairn_shard {
    char node_id[CAIRN_STATE_ID_SIZE];
    uint32_t layer_start;
    uint32_t layer_end;
    cairn_runner runner;
} cairn_shard;

typedef struct cairn_instance {
    char id[CAIRN_STATE_ID_SIZE];
    char model[CAIRN_STATE_NAME_SIZE];          /* not empty */
    char model_sha256[CAIRN_STATE_SHA256_SIZE]; /* required */
    /* Random, made by the master when it places the instance: every connection to one of
     * the instance's runners must prove it holds it (runner.h). Only members hold it: it
     * travels in events and snapshots, sealed on keyed clusters, and never in what the API
     * shows (cairn_state_public_json). */
    char secret[CAIRN_STATE_SECRET_SIZE];
    uint32_t n_layers; /* 1..CAIRN_STATE_MAX_LAYERS */
    uint32_t n_shards; /* 1..CAIRN_STATE_MAX_SHARDS */
    cairn_shard shards[CAIRN_STATE_MAX_SHARDS];
} cairn_instance;

typedef struct cairn_cluster_state {
    char cluster_name[CAIRN_STATE_NAME_SIZE]; /* not empty */
    uint64_t last_index; /* index of the last applied event; 0 before the first */
    /* The current master and its term. Term 0 means no master was elected yet (and then
     * master_id is empty). The master need not be a member: on a fresh cluster its election
     * is event 1 and its own NODE_JOINED follows; a master that left keeps the title until
     * the next election. */
    uint64_t term;
    char master_id[CAIRN_STATE_ID_SIZE];
    /* Kept sorted by id (strcmp) by apply and by snapshot decoding. Nothing depends on it:
     * lookups scan and serialization sorts, so a state built by hand in any order encodes
     * and hashes the same. */
    uint32_t n_nodes;
    cairn_node nodes[CAIRN_STATE_MAX_NODES];
    uint32_t n_instances;
    cairn_instance instances[CAIRN_STATE_MAX_INSTANCES];
} cairn_cluster_state;

/* ---- events ---- */

typedef enum cairn_event_type {
    /* A node is added (connected, with an empty profile); its seniority is the event's
     * index. Its id must not be a member already. */
    CAIRN_EVENT_NODE_JOINED = 1,
    /* A node is removed, and with it every instance that has a shard on it (an instance
     * cannot run with a missing shard). */
    CAIRN_EVENT_NODE_LEFT,
    /* A member's link to the master came up or went down; it stays a member either way. */
    CAIRN_EVENT_NODE_CONNECTION_CHANGED,
    /* A member's whole profile is replaced. */
    CAIRN_EVENT_NODE_PROFILE_UPDATED,
    /* A new master, for a term higher than the current one. */
    CAIRN_EVENT_MASTER_ELECTED,
    /* A new instance whose shards are on member nodes; every runner starts IDLE. */
    CAIRN_EVENT_INSTANCE_PLACED,
    CAIRN_EVENT_INSTANCE_DELETED,
    /* One runner moves along its lifecycle (or reports loading progress). */
    CAIRN_EVENT_RUNNER_STATE_CHANGED,
} cairn_event_type;

typedef struct cairn_shard_spec {
    char node_id[CAIRN_STATE_ID_SIZE];
    uint32_t layer_start;
    uint32_t layer_end;
} cairn_shard_spec;

/* One change. index and term are assigned by the master: the index must be the state's
 * last_index + 1, and the term the state's term (for MASTER_ELECTED: greater than it, and
 * it becomes the state's term). */
typedef struct cairn_event {
    cairn_event_type type;
    uint64_t index; /* 1..CAIRN_STATE_MAX_NUMBER */
    uint64_t term;
    union {
        struct {
            char node_id[CAIRN_STATE_ID_SIZE];
            char name[CAIRN_STATE_NAME_SIZE];
            uint32_t n_addresses;
            cairn_address addresses[CAIRN_STATE_MAX_ADDRESSES];
        } node_joined;
        struct {
            char node_id[CAIRN_STATE_ID_SIZE];
        } node_left;
        struct {
            char node_id[CAIRN_STATE_ID_SIZE];
            bool connected;
        } node_connection_changed;
        struct {
            char node_id[CAIRN_STATE_ID_SIZE];
            cairn_node_profile profile;
        } node_profile_updated;
        struct {
            char master_id[CAIRN_STATE_ID_SIZE];
        } master_elected;
        struct {
            char instance_id[CAIRN_STATE_ID_SIZE];
            char model[CAIRN_STATE_NAME_SIZE];
            char model_sha256[CAIRN_STATE_SHA256_SIZE];
            char secret[CAIRN_STATE_SECRET_SIZE]; /* the master's; a proposal's is replaced */
            uint32_t n_layers;
            uint32_t n_shards;
            cairn_shard_spec shards[CAIRN_STATE_MAX_SHARDS];
        } instance_placed;
        struct {
            char instance_id[CAIRN_STATE_ID_SIZE];
        } instance_deleted;
        struct {
            char instance_id[CAIRN_STATE_ID_SIZE];
            uint32_t shard;      /* index into the instance's shards */
            cairn_runner runner; /* the runner's new state, progress and reason */
        } runner_state_changed;
    } as;
} cairn_event;

/* ---- state ---- */

/* An empty state (no nodes, no master, last_index 0) for the named cluster. */
int cairn_state_init(cairn_cluster_state *s, const char *cluster_name, cairn_err *err);
/* The same on the heap; the caller frees with free(). */
cairn_cluster_state *cairn_state_new(const char *cluster_name, cairn_err *err);

/* Applies one event. Validates everything first (the event on its own, its index and term
 * against the state, the nodes/instances/runners it names, the runner transition) and on
 * any failure returns -1 with the state untouched. Deterministic: the same state and event
 * give the same result on every node. */
int cairn_state_apply(cairn_cluster_state *s, const cairn_event *e, cairn_err *err);

/* Checks an event on its own (type, lengths, character sets, ranges, shard layout, runner
 * fields): what can be known without a state. cairn_state_apply() and
 * cairn_event_from_json() call it; a master may call it before numbering an event. */
int cairn_event_check(const cairn_event *e, cairn_err *err);
/* Checks every invariant of a state (what cairn_state_apply() maintains), e.g. one read
 * from a snapshot: names, ranges, sorted unique ids, shards on member nodes, runners. */
int cairn_state_check(const cairn_cluster_state *s, cairn_err *err);

/* Whether a runner may go from `from` to `to` (state, progress and port rules above). */
bool cairn_runner_can_change(const cairn_runner *from, const cairn_runner *to);

/* Lookups by id; NULL when absent. */
const cairn_node *cairn_state_find_node(const cairn_cluster_state *s, const char *id);
const cairn_instance *cairn_state_find_instance(const cairn_cluster_state *s, const char *id);

/* Names used in JSON ("node_joined", "loading", "gpu", ...); NULL for a value out of range.
 * The *_from_name functions return -1 for an unknown name. */
const char *cairn_event_type_name(cairn_event_type t);
const char *cairn_runner_state_name(cairn_runner_state st);
const char *cairn_device_type_name(cairn_device_type t);
int cairn_event_type_from_name(const char *name, cairn_event_type *out);
int cairn_runner_state_from_name(const char *name, cairn_runner_state *out);
int cairn_device_type_from_name(const char *name, cairn_device_type *out);

/* ---- JSON (src/cluster/event.c) ----
 *
 * An event is one object: {"index":N,"term":N,"type":"<name>", ...the type's fields}, e.g.
 *   {"index":7,"term":1,"type":"runner_state_changed","instance":"i1","shard":0,
 *    "runner":{"state":"loading","done":3,"total":12,"reason":"","port":40001}}
 * A snapshot is {"cluster":..,"last_index":..,"term":..,"master":..,"nodes":[..],
 * "instances":[..]}, with nodes and instances sorted by id and model files by name, so the
 * same state always gives the same bytes (this is also what GET /state serves).
 *
 * Decoding is strict: every field is required, unknown or repeated fields are errors, every
 * type, range and length is checked, strings must be valid UTF-8 without control
 * characters, and nothing but whitespace may follow the value. */

/* Encodes to compact JSON text; the caller frees it with free(). NULL on failure. */
char *cairn_event_to_json(const cairn_event *e, cairn_err *err);
/* Decodes len bytes of JSON text (no NUL needed) into *out, which is written only on
 * success; the decoded event also passes cairn_event_check(). */
int cairn_event_from_json(const char *json, size_t len, cairn_event *out, cairn_err *err);
/* The same on cJSON trees, for messages that embed events. to_cjson returns a new tree the
 * caller deletes with cJSON_Delete(). */
struct cJSON *cairn_event_to_cjson(const cairn_event *e, cairn_err *err);
int cairn_event_from_cjson(const struct cJSON *obj, cairn_event *out, cairn_err *err);

/* The whole state as canonical compact JSON text; the caller frees it with free(). */
char *cairn_state_snapshot_json(const cairn_cluster_state *s, cairn_err *err);
struct cJSON *cairn_state_snapshot_cjson(const cairn_cluster_state *s, cairn_err *err);
/* Decodes a snapshot (nodes, instances and files in any order) and checks it with
 * cairn_state_check(); *out is written only on success. */
int cairn_state_from_snapshot(const char *json, size_t len, cairn_cluster_state *out,
                              cairn_err *err);
int cairn_state_from_snapshot_cjson(const struct cJSON *obj, cairn_cluster_state *out,
                                    cairn_err *err);

/* What the API shows of the state and of an event: their JSON without the instances'
 * secrets, which only members may read. */
char *cairn_state_public_json(const cairn_cluster_state *s, cairn_err *err);
struct cJSON *cairn_event_public_cjson(const cairn_event *e, cairn_err *err);

/* BLAKE2b-256 of the canonical snapshot JSON: equal states have equal hashes whatever the
 * order of their arrays in memory. */
#define CAIRN_STATE_HASH_SIZE 32
int cairn_state_hash(const cairn_cluster_state *s, uint8_t out[CAIRN_STATE_HASH_SIZE],
                     cairn_err *err);

/* ---- the event log ----
 *
 * The events after some point, kept in their JSON wire form (what is resent to a lagging
 * node, and far smaller than the worst-case event struct). The owner bounds it by calling
 * cairn_event_log_compact() with a state that covers the old events, e.g. the one it would
 * send as a snapshot. */

typedef struct cairn_log_entry {
    uint64_t index;
    char *json; /* compact JSON of the event, owned by the log */
    size_t json_len;
} cairn_log_entry;

typedef struct cairn_event_log {
    cairn_log_entry *entries; /* entries[i].index == first_index + i */
    size_t count;
    size_t cap;
    uint64_t first_index; /* index of entries[0], or of the next event when empty */
    size_t json_bytes;    /* total JSON bytes held */
} cairn_event_log;

typedef enum cairn_tail_status {
    CAIRN_TAIL_OK,            /* the events after the index (possibly none) */
    CAIRN_TAIL_NEED_SNAPSHOT, /* compacted away: send a snapshot instead */
    CAIRN_TAIL_AHEAD,         /* the asker claims events this log never had */
} cairn_tail_status;

/* An empty log whose first event will be after_index + 1 (0 for a new cluster, or the
 * index of the snapshot a node started from). */
void cairn_event_log_init(cairn_event_log *log, uint64_t after_index);
void cairn_event_log_free(cairn_event_log *log);
/* Appends an event; its index must be the next one. */
int cairn_event_log_append(cairn_event_log *log, const cairn_event *e, cairn_err *err);
/* Drops the events `covered` already includes (index <= covered->last_index), except the
 * newest keep_recent of those, so a node a little behind still gets a tail rather than a
 * whole snapshot. */
void cairn_event_log_compact(cairn_event_log *log, const cairn_cluster_state *covered,
                             size_t keep_recent);
/* The events a node needs after applying up to last_applied: on CAIRN_TAIL_OK, *entries
 * and *count (0 when it is up to date) point into the log, valid until it next changes. */
cairn_tail_status cairn_event_log_tail_after(const cairn_event_log *log, uint64_t last_applied,
                                             const cairn_log_entry **entries, size_t *count);

#endif
