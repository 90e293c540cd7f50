/*
 * placement: where the shards of a model instance go. Given the cluster state, it picks the
 * nodes that hold the model (by file name or SHA-256) and splits the model's layers over
 * them in proportion to their free memory, as an INSTANCE_PLACED event; it checks a proposed
 * placement the same way before the master records it; and it describes a placement as JSON
 * for previews.
 *
 * Pure: no I/O, no clocks, no randomness, no state of its own; the same state and request
 * always give the same placement. Memory figures come from the nodes' profiles: a node's
 * free memory is what its profile reports minus the footprints of the shards the state
 * already places on it, and a model's cost on a node is that node's footprint of the file
 * (layers x layer_bytes, plus embd_bytes on the first shard and head_bytes on the last).
 */
#ifndef CAIRN_CLUSTER_PLACEMENT_H
#define CAIRN_CLUSTER_PLACEMENT_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/state.h"
#include "util/util.h"

struct cJSON;

typedef struct cairn_placement_request {
    /* A model file name as profiles list it, or the file's SHA-256 (64 lowercase hex). */
    char model[CAIRN_STATE_NAME_SIZE];
    /* Exactly this many nodes (shards); 0: the fewest that fit. */
    uint32_t n_nodes;
    /* Nodes not to use. */
    uint32_t n_exclude;
    char exclude[CAIRN_STATE_MAX_NODES][CAIRN_STATE_ID_SIZE];
} cairn_placement_request;

/*
 * Plans an instance called instance_id. Eligible nodes are connected members, not
 * excluded, with the model hashed and a footprint in their profile; when the name stands for
 * different files on different nodes, the file held by the most free memory is used (ties:
 * the lower hash). Nodes are taken by free memory (most first, then by id) until the model
 * fits, or exactly n_nodes of them; the pipeline orders them by id; layers go in proportion
 * to what each node has left after the embeddings (first shard) and the head (last shard),
 * by largest remainder, at least one each, and move from a node that cannot hold its share
 * to the one with the most room.
 *
 * Fills *out with an INSTANCE_PLACED event (index and term 0: the master numbers it) and
 * returns 0; otherwise returns -1 with a one-line, quantified reason in reason[reason_size],
 * e.g. `model "x.gguf" needs 1.2 GiB; the 2 nodes that have it offer 800.0 MiB (400.0 MiB
 * missing)`.
 */
int cairn_placement_plan(const cairn_cluster_state *s, const cairn_placement_request *req,
                         const char *instance_id, cairn_event *out, char *reason,
                         size_t reason_size);

/* The master's check of a proposed INSTANCE_PLACED against s: every shard's node is a
 * connected member holding a file with the event's SHA-256 (by any name) and a footprint of
 * the event's layer count, no node holds two shards, and every shard fits the node's free
 * memory. */
int cairn_placement_check(const cairn_cluster_state *s, const cairn_event *placed, cairn_err *err);

/* A placement for previews: {"instance","model","model_sha256","n_layers","total_bytes",
 * "shards":[{"node","layer_start","layer_end","layers","bytes","available_bytes"}]} with
 * each shard's cost and its node's free memory in s. A new tree the caller deletes, or NULL
 * with err. */
struct cJSON *cairn_placement_json(const cairn_cluster_state *s, const cairn_event *placed,
                                   cairn_err *err);

/* A node's free memory in s for placement (see above); 0 for an unknown node. */
uint64_t cairn_placement_available(const cairn_cluster_state *s, const char *node_id);

#endif
