/*
 * runner internals, shared by the runner process (runner.c: arguments, control channel,
 * lifecycle; flow.c: requests moving through the pipeline), the data-plane links both it and
 * the node's request client use (datalink.c), and the codec of request parameters
 * (params.c). Nothing outside src/runner/ includes this header.
 */
#ifndef CAIRN_RUNNER_INTERNAL_H
#define CAIRN_RUNNER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "cluster/secure.h"
#include "cluster/wire.h"
#include "engine/engine.h"
#include "generation/generation.h"
#include "tokenizer/tokenizer.h"
#include "util/log.h"
#include "util/util.h"

/* ---- datalink.c: one TCP data-plane link, framed and optionally keyed ---- */

typedef struct dlink dlink;

typedef struct dlink_callbacks {
    /* The link is ready to carry frames: after the key handshake on keyed links, and once
     * the dialer proved the instance's secret (datalink.c). */
    void (*on_up)(dlink *l);
    /* One frame; return -1 with err to close the link with that message. */
    int (*on_frame)(dlink *l, const cairn_wire_frame *f, cairn_err *err);
    /* The link is gone (reason says why); the link is freed right after this returns. */
    void (*on_close)(dlink *l, const char *reason);
} dlink_callbacks;

/* key NULL: an open link. secret: the instance's (copied), which the dialer proves and the
 * acceptor checks. Both return NULL with err set (and then no callback ever runs); on
 * success the callbacks follow. */
dlink *dlink_accept(uv_stream_t *server, const cairn_cluster_key *key,
                    const uint8_t secret[CAIRN_INSTANCE_SECRET_SIZE], const dlink_callbacks *cb,
                    void *user, cairn_err *err);
dlink *dlink_dial(uv_loop_t *loop, const char *host, uint16_t port, const cairn_cluster_key *key,
                  const uint8_t secret[CAIRN_INSTANCE_SECRET_SIZE], const dlink_callbacks *cb,
                  void *user, cairn_err *err);
/* Queues frames; after a failure the link is closing and later sends do nothing. */
void dlink_send_control(dlink *l, const cJSON *obj);
void dlink_send_activations(dlink *l, const cairn_wire_data_header *h, const float *values);
/* Closes the link (idempotent); on_close follows from the loop. */
void dlink_close(dlink *l, const char *reason);
void *dlink_user(const dlink *l);
void dlink_set_user(dlink *l, void *user);
bool dlink_is_up(const dlink *l);
const char *dlink_name(const dlink *l); /* "host:port" of the other end */
size_t dlink_queued(const dlink *l);    /* bytes written but not yet sent */

/* ---- params.c: what a request asks for, as JSON ---- */

/* Generation parameters with storage for their stop strings. */
#define REQUEST_MAX_STOPS 16
#define REQUEST_MAX_STOP_BYTES 512
typedef struct request_params {
    cairn_generation_params gen;
    char *stop_text[REQUEST_MAX_STOPS];
    const char *stop_ptrs[REQUEST_MAX_STOPS];
} request_params;

cJSON *request_params_to_json(const cairn_generation_params *p);
/* Strict: unknown fields and values out of range are errors. */
int request_params_from_json(const cJSON *o, request_params *out, cairn_err *err);
void request_params_free(request_params *p);

/* Token arrays as JSON arrays of integers in [0, n_vocab) (n_vocab 0: any id >= 0). */
cJSON *tokens_to_json(const int32_t *tokens, size_t n);
int tokens_from_json(const cJSON *arr, size_t max, int32_t **out, size_t *n, cairn_err *err);

/* ---- the runner process (runner.c, flow.c) ---- */
/* Most requests waiting for a free KV slot at the first shard before new ones are refused. */
#define RUNNER_MAX_WAITING 256
/* Most prompt tokens a request may carry as JSON ids (a whole context at most). */
#define RUNNER_MAX_REQUEST_TOKENS 262144

typedef enum runner_phase {
    PHASE_STARTING,   /* waiting for the worker's "start" */
    PHASE_CONNECTING, /* listening; waiting for "next" or dialing it */
    PHASE_LOADING,
    PHASE_WARMING_UP,
    PHASE_READY, /* serving (READY or RUNNING as requests come and go) */
    PHASE_SHUTTING_DOWN,
} runner_phase;

typedef enum job_kind { JOB_BEGIN, JOB_FORWARD, JOB_END, JOB_WARMUP } job_kind;

/* One unit of work for the shard. Jobs of one slot are done in arrival order, so a slot is
 * never cleared under a request that still has work in flight; jobs of different slots
 * share compute steps (see flow.c), done on a pool thread one step at a time. */
typedef struct job {
    struct job *next;
    job_kind kind;
    uint64_t rid;
    int slot;
    cJSON *msg; /* BEGIN and END: the message to pass on (owned) */
    int pos, n_tokens;
    int keep;        /* BEGIN: the positions of the slot the request reuses */
    int32_t *tokens; /* first shard */
    float *hidden;   /* other shards: n_tokens * n_embd */
    bool sample;     /* last shard: the step ends the prompt or is a decode step */
    float *out;
    int rc;
    cairn_err err;
    bool hang; /* test hook */
} job;

/* A KV slot and the request using it. */
typedef struct runner_slot {
    bool used;
    uint64_t rid;
    int n_total;                /* prompt plus resumed tokens */
    cairn_gen_session *session; /* last shard */
    /* first shard only */
    dlink *client;
    uint64_t client_id;
    bool cancelled;
    int next_pos;
} runner_slot;

/* The tokens whose keys and values a slot's cells hold on every shard, kept by the first
 * shard after the slot's request is over: a later request whose tokens start the same way
 * (the next turn of a chat, the same system prompt) computes only what follows. */
typedef struct slot_tokens {
    int32_t *ids;
    int n, cap;
    uint64_t last_used; /* for choosing among slots that share nothing with a request */
} slot_tokens;

/* A request that waits at the first shard for a free slot. */
typedef struct waiting_request {
    struct waiting_request *next;
    dlink *client;
    uint64_t client_id;
    int32_t *tokens; /* prompt then resumed tokens */
    size_t n_tokens, n_resume;
    cJSON *params;
} waiting_request;

typedef struct runner {
    uv_loop_t *loop;
    cairn_logger log;
    /* arguments */
    const char *model_path;
    const char *instance;
    const char *listen_host;
    int shard, first, last, n_layers, slots, ctx, threads;
    bool is_first, is_last;
    const char *hang;  /* CAIRN_RUNNER_TEST_HANG */
    int step_delay_ms; /* CAIRN_RUNNER_TEST_STEP_MS: slow streams down for tests */
    int max_waiting;   /* RUNNER_MAX_WAITING, or CAIRN_RUNNER_TEST_MAX_WAITING in tests */
    /* control channel */
    uv_pipe_t ctl_in, ctl_out;
    cairn_wire_decoder *ctl_decoder;
    char ctl_buf[65536];
    bool keyed;
    cairn_cluster_key key;
    uint8_t secret[CAIRN_INSTANCE_SECRET_SIZE]; /* the instance's, from "start" */
    runner_phase phase;
    /* data plane */
    uv_tcp_t listener;
    uint16_t port;
    char next_host[64];
    uint16_t next_port;
    int dial_attempts;
    int n_proving; /* accepted links that have not proven the instance's secret yet */
    dlink *next;
    uint64_t next_lost_at; /* loop time the link to the next shard went, 0 while up */
    char next_lost_reason[256];
    uv_timer_t timer; /* dial retries, progress reports */
    /* engine */
    cairn_shard *shard_obj;
    cairn_tokenizer *tok;
    char *chat_template; /* first shard: renders requests that carry messages */
    int n_embd, n_vocab, n_ctx, n_batch;
    uv_work_t load_work;
    uv_async_t progress_async;
    uv_mutex_t progress_lock;
    int load_done, load_total, load_done_sent;
    int load_rc;
    cairn_err load_err;
    /* compute */
    job *jobs_head, *jobs_tail;
    job *step;     /* the jobs of the step on the pool thread, in order */
    bool stepping; /* from choosing a step until its results have been acted on */
    uv_work_t job_work;
    uint8_t *slot_seen; /* scratch for choosing a step: what each slot's jobs allow */
    job **step_forward; /* scratch: the step's forward jobs */
    cairn_batch *step_batches;
    float **step_outs;
    int step_sequences;      /* forward jobs in the last step (written on the pool thread) */
    int most_step_sequences; /* the most so far */
    /* requests */
    runner_slot *slot_table;
    slot_tokens *slot_cached; /* first shard */
    uint64_t slot_clock;
    waiting_request *waiting_head, *waiting_tail;
    size_t n_waiting;
    uint64_t next_rid;
    bool running_reported;
    uint64_t steps, steps_reported;
    int exit_status;
} runner;

/* runner.c */
void runner_report(runner *r, const char *op);
void runner_fail(runner *r, const char *fmt, ...) CAIRN_PRINTF(2, 3);
void runner_activity(runner *r); /* a slot was taken or freed: READY <-> RUNNING */

/* flow.c */
int flow_init(runner *r, cairn_err *err);
void flow_free(runner *r);
void flow_enqueue(runner *r, job *j);
job *flow_job_new(job_kind kind);
void flow_job_free(job *j);
/* Frames of a data link whose hello said who it is. */
int flow_on_client_frame(runner *r, dlink *l, const cJSON *msg, cairn_err *err);
int flow_on_pipeline_frame(runner *r, dlink *l, const cairn_wire_frame *f, cairn_err *err);
void flow_client_gone(runner *r, dlink *l);
void flow_warm_up(runner *r);

#endif
