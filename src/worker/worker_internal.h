/*
 * worker internals, shared by worker.c (the runners' lifecycle against the cluster state:
 * spawning decisions, proposals, deadlines, close) and process.c (one runner process: spawn,
 * control frames over its pipes, kill, exit). Nothing outside src/worker/ includes this.
 */
#ifndef CAIRN_WORKER_INTERNAL_H
#define CAIRN_WORKER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "cluster/wire.h"
#include "platform/platform.h"
#include "worker/worker.h"

/* More than the lifecycle has distinct steps: the queue collapses repeats of a step. */
#define WORKER_QUEUE_MAX 16
/* A proposal the state does not show yet is proposed again this often. */
#define WORKER_REPROPOSE_S 1.0
/* Loading progress goes out at most this often (the last one always goes). */
#define WORKER_PROGRESS_REPORT_S 0.25
/* A runner told to shut down (or that said it is shutting down) is killed after this. */
#define WORKER_SHUTDOWN_GRACE_S 3.0
/* Closing the worker: runners still there after this are killed. */
#define WORKER_CLOSE_GRACE_S 2.0
/* After a runner exits, its last messages may still be in the pipe: wait this long for the
 * end of its stdout before judging the exit. */
#define WORKER_EXIT_DRAIN_S 0.5
/* The control channel carries small JSON objects only. */
#define WORKER_MAX_CONTROL CAIRN_WIRE_MAX_SMALL

typedef struct worker_runner worker_runner;

struct worker_runner {
    worker_runner *next;
    cairn_worker *w;
    char instance_id[CAIRN_STATE_ID_SIZE];
    char secret[CAIRN_STATE_SECRET_SIZE]; /* the instance's, for the runner's "start" */
    uint32_t shard;
    uint64_t shard_bytes;

    /* the process: handles open, and what became of it */
    uv_process_t proc;
    uv_pipe_t in, out; /* the runner's stdin (we write) and stdout (we read) */
    int open_handles;
    bool spawned, in_open, out_open, exited, finished;
    int pid;
    int64_t exit_status;
    int term_signal;
    double exited_at;
    cairn_process_tree *tree;
    cairn_wire_decoder *decoder;
    char read_buf[4096];

    /* lifecycle: cur is the runner's latest step as the worker knows it; the queue holds
     * the steps proposed but not yet shown by the state, oldest first */
    cairn_runner cur;
    cairn_runner queue[WORKER_QUEUE_MAX];
    double proposed_at[WORKER_QUEUE_MAX];
    uint32_t n_queue;
    bool has_held; /* loading progress held back by the rate limit */
    cairn_runner held;
    double last_loading_at;
    bool has_seen; /* the runner as the last synced state shows it */
    cairn_runner seen;
    bool in_state; /* its instance and shard are (still) in the state */

    /* supervision */
    double deadline; /* 0: none */
    char deadline_reason[96];
    bool next_sent, shutdown_sent;
    double kill_at; /* 0: no kill scheduled */
};

struct cairn_worker {
    uv_loop_t *loop;
    char node_id[CAIRN_STATE_ID_SIZE];
    char *runner_exe, *models_dir, *listen_host;
    char key_hex[2 * CAIRN_CLUSTER_KEY_SIZE + 1]; /* "" for an open cluster */
    int threads, slots, ctx;
    double load_timeout_s, warmup_timeout_s, progress_timeout_s, start_timeout_s;
    cairn_logger *log;
    void (*report)(void *user, cairn_event *e);
    void *user;

    worker_runner *runners;
    double now; /* of the last tick or callback */
    bool closing;
    uv_timer_t close_timer;
    bool close_timer_open;
};

/* ---- process.c ---- */
/* Spawns the runner of r (its fields instance_id, shard, shard_bytes set) with the given
 * arguments and sends the start frame. On failure nothing is left open. */
int runner_spawn(worker_runner *r, char **args, cairn_err *err);
/* Sends one control object (ignored once stdin is closed). */
void runner_send(worker_runner *r, const cJSON *msg);
void runner_send_op(worker_runner *r, const char *op);
/* Closes the runner's stdin: it exits on the end of file. */
void runner_close_stdin(worker_runner *r);
/* Kills the runner's whole process tree (it is reaped by the exit callback). */
void runner_kill(worker_runner *r);
/* Closes what is still open of a runner whose process is gone; frees it from the last close
 * callback when worker_may_free() says so. */
void runner_close_handles(worker_runner *r);

/* ---- worker.c, called back by process.c ---- */
/* One control object from the runner. */
void worker_on_control(worker_runner *r, const cJSON *msg);
/* The runner broke the protocol or its pipe failed: it is killed and reported FAILED. */
void worker_fail_runner(worker_runner *r, const char *fmt, ...) CAIRN_PRINTF(2, 3);
/* The process exited and its stdout ended (or the drain time passed). */
void worker_on_finished(worker_runner *r);
/* Every handle of r is closed. */
void worker_on_closed(worker_runner *r);

#endif
