/*
 * serve internals, shared by serve.c (calls onto the loop, relays, cairn's own paths) and
 * the files of the other APIs' paths (serve_openai.c, serve_ollama.c, serve_anthropic.c). Nothing
 * outside src/cluster/ includes this.
 */
#ifndef CAIRN_CLUSTER_SERVE_INTERNAL_H
#define CAIRN_CLUSTER_SERVE_INTERNAL_H

#include <cjson/cJSON.h>

#include "api/request.h"
#include "cluster/node_internal.h"
#include "runner/runner.h"

typedef struct node_call {
    struct node_call *next;
    void (*fn)(cairn_local_node *n, void *arg);
    void *arg;
    bool done, ok;
} node_call;

/* A generation relayed from an instance's first runner to one API request. */
struct relay {
    relay *next; /* the loop's list */
    cairn_local_node *node;
    /* shared with the request's thread, under node->call_lock */
    cairn_buf out;    /* events not yet taken, one JSON object per line */
    bool finished;    /* nothing more will be appended */
    bool client_done; /* the request's thread is gone: the loop frees the relay */
    /* the request's thread's: a server-sent stream begun, probed while it waits; or NULL */
    cairn_api_reply *probe;
    /* the loop's */
    cairn_api_generation req; /* what the request asks for: model, prompt, sampling */
    char id[48];              /* the request's id in its API's answers, for /v1/cancel/ID */
    bool count;               /* only count the prompt's tokens (done: finish "count") */
    bool starts;              /* emit {"start","prompt_tokens"} once the runner admits it */
    int32_t *sent;
    size_t n_sent, cap_sent, n_resumed;
    cairn_stream *stream;
    char instance[CAIRN_STATE_ID_SIZE];
    char lost_instance[CAIRN_STATE_ID_SIZE];
    double lost_at, deadline, created;
    double absent_since;  /* since when no instance of the model exists; 0 while one does */
    int fruitless_losses; /* streams lost in a row without a token */
    bool first_token_seen;
};

/* Runs fn(n, arg) on the loop and waits for it; -1 when the node is shutting down. */
int run_on_loop(cairn_local_node *n, void (*fn)(cairn_local_node *, void *), void *arg);

/* A relay for a request of node n whose body parses as the flavour says; NULL with err
 * (and *status, 400 or 500) otherwise. relay_free until started. */
relay *relay_new(cairn_local_node *n, const cairn_api_call *call, cairn_api_flavor flavor,
                 int *status, cairn_err *err);
void relay_free(relay *r);
/* Hands r to the loop, which owns it from then on (a seed is drawn when the request gave
 * none); -1 (r still the caller's) when the node is shutting down. */
int relay_start(relay *r);
/* Calls on_relay_event with each event of the stream as it comes ({"token","text"}, then a last
 * {"done",...} or {"error",...}) until the last one or until on_relay_event returns non-zero (the
 * client is gone), then gives r back to the loop. With r->probe set, a wait without events
 * writes an SSE comment every 2 s and ends the drain when the client is gone. */
void relay_drain(relay *r, int (*on_relay_event)(void *user, const cJSON *event), void *user);

/* How an API serves a relayed generation (serve_relay). */
typedef struct relay_api {
    cairn_api_flavor flavor; /* how the body parses */
    const char *id_prefix;   /* of the request's id, e.g. "chatcmpl-" */
    /* Takes what the API needs of the parsed request (r->req, r->id) and may set r->count
     * or r->starts; returns the content type of a streamed answer, or NULL for one whole
     * answer that the API writes once serve_relay returns. */
    const char *(*prepare)(void *user, relay *r);
    int (*on_event)(void *user, const cJSON *event); /* as relay_drain's */
    /* Answers a request refused before it started: status 400 (the body), 404 (no such
     * model), 500 (out of memory) or 503 (shutting down). */
    void (*refuse)(void *user, int status, const char *message);
} relay_api;

/* Serves a generation request the way every API does: parses the call's body, gives it an
 * id, checks that the cluster knows its model, starts its relay, begins a streamed answer
 * (probed while it waits, so that a client that leaves frees the request) and drains the
 * relay's events into the API. 0 once drained (the API then finishes its answer), -1 when
 * refused (refuse has answered). An API thread. */
int serve_relay(cairn_local_node *n, const cairn_api_call *call, const relay_api *api, void *user);

/* On the loop: stops the relay with this id on this node: its stream closes (the first
 * runner frees the request's slot) and the request ends as if stopped. False when no such
 * relay runs here. */
bool relay_cancel_here(cairn_local_node *n, const char *id);

/* serve_cancel.c: stops the request with this id wherever in the cluster it is relayed:
 * here, or on the peer that serves it (asked over the cluster links, waiting up to 2 s for
 * their answers). An API thread; false when no node has it. */
bool relay_cancel(cairn_local_node *n, const char *id);

/* How a relayed generation went, gathered from its events by the API shapers. */
typedef struct relay_outcome {
    bool done, failed;
    char finish[16]; /* "stop" or "length" once done */
    char error[512]; /* once failed */
    bool refused;    /* failed because the request itself was wrong (a 4xx, not a 5xx) */
    int prompt_tokens, completion_tokens;
    int stop_index; /* once done: the stop string that ended it (req.gen.stop), or -1 */
} relay_outcome;
/* Takes one event into *o; returns the text it carries, or NULL (an error event). */
const char *relay_outcome_take(relay_outcome *o, const cJSON *event);

/* The instances of distinct models (the first of each), for model lists; on the loop. */
size_t placed_models(const cairn_local_node *n, const cairn_instance **out, size_t max);

/* serve_events.c: GET /events (an API thread); at shutdown, under call_lock, ending every
 * subscriber; and freeing what is left when the node goes */
void serve_events(cairn_local_node *n, const cairn_api_call *call);
void serve_events_close(cairn_local_node *n);
void serve_events_free(cairn_local_node *n);

/* serve_pull.c: POST /models/pull (an API thread) */
void serve_pull(cairn_local_node *n, const cairn_api_call *call);

/* serve_metrics.c: GET /metrics (an API thread) */
void serve_metrics(cairn_local_node *n, const cairn_api_call *call);

/* serve_logprobs.c: a token's log-probabilities as its relay event carries them ("logprobs",
 * the last runner's report). The entry of OpenAI's chat and Ollama: {token, logprob, bytes,
 * top_logprobs:[{token, logprob, bytes}]}, or NULL when the report is malformed. */
cJSON *logprobs_entry(const cJSON *report);
/* OpenAI's legacy completions: {tokens, token_logprobs, top_logprobs, text_offset}, one
 * column entry per token; offset counts the characters of the tokens so far. */
cJSON *logprobs_legacy_new(void);
int logprobs_legacy_append(cJSON *legacy, const cJSON *report, size_t *offset);

/* serve_openai.c: 1 when the call is not an OpenAI path */
int serve_openai(cairn_local_node *n, const cairn_api_call *call);
/* serve_ollama.c: 1 when the call is not an Ollama path */
int serve_ollama(cairn_local_node *n, const cairn_api_call *call);
/* serve_anthropic.c: 1 when the call is not an Anthropic path */
int serve_anthropic(cairn_local_node *n, const cairn_api_call *call);

#endif
