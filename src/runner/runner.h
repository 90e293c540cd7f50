/*
 * runner: the process that serves one shard of one instance (`cairn runner ...`, started
 * by its node's worker with uv_spawn). It loads layers [first, last) of the model, links
 * with the runners of the neighbouring shards over TCP, and moves requests through the
 * pipeline: the first shard takes token ids, every shard passes hidden states to the next,
 * the last shard samples and sends each token round the ring to the first shard (which
 * feeds it back in) and, through the first shard, to the requester.
 *
 * It owns its shard, its KV slots (one per request in flight), its data-plane links and
 * its compute thread. It must never outlive its node: end of file on the control channel
 * (stdin) makes it exit at once. It never touches the cluster state; its worker reports
 * its lifecycle for it.
 *
 * ---- control channel (worker <-> runner) ----
 * stdin carries frames from the worker, stdout frames to the worker, both CRNW wire frames
 * of type CONTROL whose JSON object has an "op". stderr is the runner's log.
 *
 * worker -> runner
 *   {"op":"start","key":HEX,"secret":HEX}
 *                                first frame: the cluster key as 64 hex digits, or "" for
 *                                an open cluster, and the instance's secret (64 hex digits),
 *                                which every data link to the runner must prove (both kept
 *                                off the command line on purpose)
 *   {"op":"next","host":H,"port":P}
 *                                where the runner of the next shard listens (for the last
 *                                shard: the first shard's runner, closing the ring; a
 *                                single-shard instance gets its own port); sent once
 *   {"op":"shutdown"}            finish: the runner reports shutting_down and exits 0
 *
 * runner -> worker (each a step of the lifecycle in state.h, in this order)
 *   {"op":"listening","port":P}  the data-plane port is open          (-> connecting)
 *   {"op":"connected"}           the link to the next runner is up    (-> connected)
 *   {"op":"loading","done":D,"total":T}  layers loaded of total       (-> loading)
 *   {"op":"loaded"}                                                   (-> loaded)
 *   {"op":"warming_up"}                                               (-> warming_up)
 *   {"op":"ready"}               idle and able to serve               (-> ready)
 *   {"op":"running"}             serving at least one request         (-> running)
 *   {"op":"progress","steps":N}  compute steps done so far, at least once a second while
 *                                running: the worker's token-progress deadline
 *   {"op":"shutting_down"}
 *   {"op":"failed","reason":TEXT} then exits with status 1
 *
 * Test hooks (environment, for the test suite only): CAIRN_RUNNER_TEST_HANG=load|warmup
 * makes the runner stop making progress at that step, as a hung disk or driver would;
 * CAIRN_RUNNER_TEST_STEP_MS=N makes every compute step take N ms longer, so a test can act
 * in the middle of a stream.
 *
 * ---- data plane (runner <-> runner, requester -> first runner) ----
 * Described in runner.c next to the code; the links authenticate and encrypt with the
 * cluster key like the node's cluster links, and then the dialer proves the instance's
 * secret (datalink.c): a link that does not is closed before the runner reads a request.
 */
#ifndef CAIRN_RUNNER_H
#define CAIRN_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "cluster/secure.h"
#include "generation/generation.h"
#include "util/util.h"

/* The entry point of `cairn runner`: parses its arguments and runs until shut down or its
 * worker goes away. Returns the process exit status. */
int cairn_runner_main(int argc, char **argv);

/* ---- streams: one request to an instance's first runner (what a node does for its API) */

typedef struct cairn_stream_request {
    const char *instance;  /* the instance the runner must serve */
    const char *prompt;    /* text, tokenized by the first shard as `cairn generate` does */
    const cJSON *messages; /* or a conversation [{role, content}], through the chat template */
    const int32_t *tokens; /* or token ids (when prompt is NULL) */
    size_t n_tokens;
    const int32_t *resume; /* tokens already streamed to the client by an earlier pipeline */
    size_t n_resume;
    const cairn_generation_params *params;
    const char *secret; /* the instance's secret (64 hex digits, as the state holds it) */
    /* Only count the prompt's tokens: the request takes no slot, generates nothing and is
     * done at once, with finish "count" and the count as its prompt tokens. */
    bool count;
} cairn_stream_request;

typedef enum cairn_stream_failure {
    CAIRN_STREAM_LOST,    /* the pipeline went away: the request may resume elsewhere */
    CAIRN_STREAM_REFUSED, /* the request itself is wrong: trying again will not help */
    CAIRN_STREAM_BUSY,    /* the instance cannot take it now (not ready, queue full) */
} cairn_stream_failure;

typedef struct cairn_stream_callbacks {
    /* logprobs: {id, logprob, bytes, top:[{id, logprob, bytes}]} when the request asked for
     * them (the runner's word, checked by whoever formats it), otherwise NULL. */
    void (*on_token)(void *user, int32_t token, const char *text, size_t len,
                     const cJSON *logprobs);
    /* The request is complete; text is the remainder held back until the end; stop_index
     * names the stop string (of params->stop) that ended it, or is -1. */
    void (*on_done)(void *user, const char *finish, const char *text, size_t len, int prompt_tokens,
                    int completion_tokens, int stop_index);
    /* The stream ended without completing; message says why. */
    void (*on_error)(void *user, cairn_stream_failure why, const char *message);
    /* May be NULL. The runner admitted the request, whose prompt (with the resumed tokens)
     * has prompt_tokens tokens; comes before any token. */
    void (*on_start)(void *user, int prompt_tokens);
} cairn_stream_callbacks;

typedef struct cairn_stream cairn_stream;

/* Dials host:port (numeric), sends the request and reports through the callbacks on loop.
 * After on_done or on_error the stream frees itself; until then cairn_stream_close cancels
 * it (no callback follows). key NULL: an open cluster. */
int cairn_stream_open(uv_loop_t *loop, const char *host, uint16_t port,
                      const cairn_cluster_key *key, const cairn_stream_request *req,
                      const cairn_stream_callbacks *cb, void *user, cairn_stream **out,
                      cairn_err *err);
void cairn_stream_close(cairn_stream *s);
/* Whether the link to a runner can carry the request (req->resume aside): its CONTROL frame
 * must fit the wire's payload limit and JSON depth (CAIRN_WIRE_MAX_EVENT and
 * CAIRN_WIRE_JSON_MAX_DEPTH, which the encoder enforces when the stream opens). A request
 * that fails here would fail the same way on every try: refuse it up front. */
int cairn_stream_request_check(const cairn_stream_request *req, cairn_err *err);

#endif
