/*
 * cluster node: one process per machine. It finds the other nodes (multicast discovery and
 * static peers), keeps one TCP link to each (heartbeats, reconnects with backoff, optional
 * cluster key), takes part in the master election, and keeps its copy of the replicated,
 * event-sourced cluster state in step with the master's.
 *
 * Election: every node ranks itself and each linked peer by (has a cluster state, the age of
 * that state's lineage, seniority in it, node id) and follows the best one it can reach; a
 * node that ranks best among what it sees and what its peers follow becomes master. The
 * master numbers events and sends them to its followers; a follower that takes a new master
 * starts from that master's snapshot, so two sides of a healed partition end with the older
 * side's state.
 *
 * The node runs on one libuv loop and is not thread-safe, except for the two *_json
 * functions, which the HTTP server's threads call. It must never block the loop (no sleeps,
 * no synchronous network I/O) and never trust a byte from a peer before checking it.
 */
#ifndef CAIRN_CLUSTER_NODE_H
#define CAIRN_CLUSTER_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "api/api.h"
#include "cluster/discovery.h"
#include "cluster/secure.h"
#include "util/log.h"
#include "util/util.h"

#define CAIRN_NODE_DEFAULT_CLUSTER "cairn"
#define CAIRN_NODE_DEFAULT_CLUSTER_PORT 52416
#define CAIRN_NODE_DEFAULT_HEARTBEAT_MS 500
#define CAIRN_NODE_DEFAULT_TIMEOUT_MS 3000
#define CAIRN_NODE_DEFAULT_PROFILE_MS 10000
#define CAIRN_NODE_MAX_PEERS 64

typedef struct cairn_node_config {
    const char *node_id;      /* required: 1..63 of [A-Za-z0-9._:-] */
    const char *name;         /* human-readable; NULL or "" for none */
    const char *cluster;      /* NULL = CAIRN_NODE_DEFAULT_CLUSTER */
    const char *listen_host;  /* cluster links: NULL = "0.0.0.0" */
    uint16_t cluster_port;    /* 0 = any free port (tests); see cairn_node_cluster_port */
    uint16_t api_port;        /* told to peers; 0 when the node serves no API */
    const char *const *peers; /* "HOST:PORT" of nodes to dial even without discovery */
    size_t n_peers;
    bool discovery; /* multicast announcements on, with discovery_config */
    cairn_discovery_config discovery_config;
    const cairn_cluster_key *key; /* NULL: an open cluster */
    const char *models_dir;       /* reported in the profile; created when missing */
    uint32_t heartbeat_ms;        /* 0 = default */
    uint32_t timeout_ms;          /* a peer silent this long is gone; 0 = default */
    uint32_t profile_ms;          /* profile refresh period; 0 = default */
    cairn_logger *log;            /* may be NULL */

    /* Serving models. The runner settings also decide each model's memory footprint in the
     * profile (KV cache = slots x context), so placement and runners agree on it. */
    uint64_t memory_cap;    /* bytes: report at most this much memory available; 0: no cap */
    const char *runner_exe; /* the cairn executable runners start from; NULL: this program */
    int runner_threads;     /* compute threads per runner; 0: by shard size, at most the CPUs */
    int runner_slots;       /* KV slots per runner (requests in flight per instance); 0:
                               CAIRN_DEFAULT_SLOTS */
    int runner_ctx;         /* positions per slot; 0: the model's, at most 4096 */
    double load_timeout_s;  /* deadline of a shard's load; 0: scaled with its bytes */
} cairn_node_config;

typedef struct cairn_local_node cairn_local_node;

/* Checks the configuration, listens on the cluster port and starts discovery and timers on
 * loop. On failure nothing is left behind on the loop. */
int cairn_node_start(uv_loop_t *loop, const cairn_node_config *cfg, cairn_local_node **out,
                     cairn_err *err);
/* The port cluster links are accepted on (the one chosen when cluster_port was 0). */
uint16_t cairn_node_cluster_port(const cairn_local_node *n);
/* Tells peers goodbye and closes every handle; the node frees itself from the last close
 * callback, so the caller runs the loop until it is idle afterwards. */
void cairn_node_close(cairn_local_node *n);

/* Thread-safe. The cluster state as canonical snapshot JSON (what GET /state serves), and
 * this node's own view (role, master, links, state hash, resources: GET /node). New
 * malloc'd text, or NULL with err set. */
char *cairn_node_state_json(cairn_local_node *n, cairn_err *err);
char *cairn_node_info_json(cairn_local_node *n, cairn_err *err);

/* Thread-safe: the API server's handler for everything but /state and /node (user is the
 * node): GET /instance/previews?model=M[&nodes=N] previews a placement; POST /instance
 * {"model","nodes"} places an instance; DELETE /instance/ID deletes one; POST /generate
 * {"model","prompt",sampling...} streams a completion as server-sent events. */
int cairn_node_api_handler(void *user, const cairn_api_call *call);
/* On the loop's thread, before the API server stops: ends every call and stream that waits
 * on this node, so the server's threads can finish. */
void cairn_node_api_shutdown(cairn_local_node *n);

#endif
