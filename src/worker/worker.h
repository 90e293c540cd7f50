/*
 * worker: the part of a node that runs its share of the cluster's model instances. For every
 * shard of an instance in the cluster state whose node is this node, it spawns one runner
 * process (`cairn runner ...`, src/runner/runner.h) with libuv, speaks the control protocol
 * with it over its stdin and stdout, and proposes each step of the runner's lifecycle as a
 * RUNNER_STATE_CHANGED event through the report callback.
 *
 * It owns the runner processes and their whole process trees: it supervises deadlines (the
 * load, the warm-up, progress while running), kills a runner that misses one or that its
 * instance no longer needs, and reaps every process it started. It never restarts a runner
 * (FAILED is final in the state; the master places the instance anew) and never changes the
 * cluster state itself: it only proposes, and re-proposes what the state does not show yet,
 * because proposals may be dropped (a follower not in step, a change of master).
 *
 * Runs on one libuv loop, not thread-safe, and never blocks the loop. A runner never outlives
 * its node: closing the worker closes the runners' stdin (they exit on its end of file) and
 * kills what is left after a grace period.
 */
#ifndef CAIRN_WORKER_H
#define CAIRN_WORKER_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "cluster/secure.h"
#include "cluster/state.h"
#include "util/log.h"
#include "util/util.h"

#define CAIRN_WORKER_DEFAULT_WARMUP_S 60.0
#define CAIRN_WORKER_DEFAULT_PROGRESS_S 30.0
/* How long a spawned runner may take to open its data-plane port. */
#define CAIRN_WORKER_START_TIMEOUT_S 30.0

typedef struct cairn_worker_config {
    const char *node_id;          /* required: this node's id in the cluster state */
    const char *runner_exe;       /* required: started as `runner_exe runner --model ...` */
    const char *models_dir;       /* required: where the models of the state's instances live */
    const char *listen_host;      /* what runners listen on (--listen); NULL = "127.0.0.1" */
    const cairn_cluster_key *key; /* sent to each runner first; NULL: an open cluster */
    int threads;                  /* per runner; 0: one per 16 MiB of shard, at most the CPUs */
    int slots;                 /* KV slots per runner; 0: CAIRN_DEFAULT_SLOTS (util/defaults.h) */
    int ctx;                   /* positions per slot, passed through (0: the runner's) */
    double load_timeout_s;     /* 0: 30 s plus 1 s per 64 MiB of the shard */
    double warmup_timeout_s;   /* 0: CAIRN_WORKER_DEFAULT_WARMUP_S */
    double progress_timeout_s; /* 0: CAIRN_WORKER_DEFAULT_PROGRESS_S */
    double start_timeout_s;    /* 0: CAIRN_WORKER_START_TIMEOUT_S */
    cairn_logger *log;         /* may be NULL */
    /* Receives each RUNNER_STATE_CHANGED proposal (index and term are for the receiver to
     * set). Must not call back into the worker; the node wires it to its proposals. */
    void (*report)(void *user, cairn_event *e);
    void *user;
} cairn_worker_config;

typedef struct cairn_worker cairn_worker;

/* Copies the configuration; starts nothing until the first sync. */
int cairn_worker_new(uv_loop_t *loop, const cairn_worker_config *cfg, cairn_worker **out,
                     cairn_err *err);
/* Brings the runners in line with the state (the node's copy, read only during the call):
 * spawns runners for new shards of this node, tells runners where the next shard listens,
 * shuts down runners whose instance is gone or ended, and drops the proposals the state now
 * shows. Idempotent; the node calls it after its state changed. */
void cairn_worker_sync(cairn_worker *w, const cairn_cluster_state *s);
/* Time-driven work: deadlines, grace periods, re-proposals, held-back progress reports.
 * now is cairn_now_seconds(); call it every 100 ms or so. */
void cairn_worker_tick(cairn_worker *w, double now);
/* Tells every runner to shut down and closes their stdin, kills what is left after about
 * 2 s, and frees the worker once every handle closed (run the loop until idle). Reports
 * nothing from then on. NULL is fine. */
void cairn_worker_close(cairn_worker *w);

/* Runner processes spawned and not yet reaped. */
size_t cairn_worker_live_count(const cairn_worker *w);
/* Their process ids, at most max of them; returns how many were written. */
size_t cairn_worker_pids(const cairn_worker *w, int *out, size_t max);
/* The runners as JSON for GET /node: [{"instance","shard","pid","state","alive"}, ...].
 * A new array the caller deletes, or NULL when out of memory. */
cJSON *cairn_worker_info_json(const cairn_worker *w);

#endif
