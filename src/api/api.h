/*
 * api: the HTTP interface of a node. The server half (server.c, on civetweb) answers
 * GET /state and GET /node on the node's API port; the client half (client.c, on libcurl)
 * is how cairn's commands and other programs read them; print.c turns a /state answer into
 * the table `cairn nodes` prints.
 *
 * Owns its civetweb context, its worker threads (and guard.c's watchdog, which bounds slow
 * and idle clients) and its client transfers, nothing else. It must never touch the
 * cluster state directly: the server only calls the callbacks a node gives it, from
 * civetweb's worker threads, and serves the JSON text they return. Keeping
 * the node's data behind those callbacks is what lets the node decide how to take a
 * consistent, thread-safe copy of its state.
 *
 * Every answer is JSON with Cache-Control: no-store. Errors are
 *   {"error":{"message":"...","type":"not_found"}}
 * with type "not_found" (404), "method_not_allowed" (405, with an Allow header),
 * "forbidden" (403: a foreign Host or Origin), "unavailable" (503: a callback failed, or a
 * client over its connections), "timeout" (408: a request cut off at its deadline) or
 * "bad_request" (civetweb's own 4xx/5xx).
 */
#ifndef CAIRN_API_H
#define CAIRN_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util/log.h"
#include "util/util.h"

/* The API port a node listens on unless told otherwise. */
#define CAIRN_API_DEFAULT_PORT 52415
/* Where the commands that call the API find a node unless told otherwise. */
#define CAIRN_API_DEFAULT_ADDRESS "127.0.0.1:" CAIRN_STRINGIFY(CAIRN_API_DEFAULT_PORT)
/* The most a /state answer may weigh: a full cluster state is about 1 MB of JSON at most
 * (64 nodes with 64 model files each and 32 instances), so 16 MiB leaves room to grow. */
#define CAIRN_API_MAX_STATE_BYTES ((size_t)16 * 1024 * 1024)

/* Called from the server's worker threads: must be thread-safe. Returns a new malloc'd,
 * NUL-terminated JSON text, or NULL with err set (the server then answers 503 with the
 * message). */
typedef char *(*cairn_api_json_fn)(void *user, cairn_err *err);

/* Requests other than GET /state and /node go to the node's handler, on a worker thread. */
#define CAIRN_API_MAX_BODY ((size_t)8 * 1024 * 1024)
/* Every 503 (busy, no ready instance, shutting down) says when to try again, in seconds. */
#define CAIRN_API_RETRY_AFTER_S 2
/* Slow and idle clients (see cairn_api_config): how long a request's head, and then its
 * body, may take to arrive; how many connections one client address may hold; how many
 * connections whose request has not arrived may be held at once, out of the server's 64
 * threads, the rest staying free for requests that have arrived. */
#define CAIRN_API_DEFAULT_REQUEST_TIMEOUT_MS 10000
#define CAIRN_API_DEFAULT_CLIENT_CONNECTIONS 32
#define CAIRN_API_DEFAULT_WAITING_REQUESTS 32

typedef struct cairn_api_reply cairn_api_reply; /* one request's answer, opaque */

typedef struct cairn_api_call {
    const char *method; /* "GET", "POST", "DELETE", ... */
    const char *path;   /* decoded, without the query */
    const char *query;  /* raw query string after '?', or NULL */
    const char *body;   /* NUL-terminated (the body may hold NULs of its own; see body_len) */
    size_t body_len;
    cairn_api_reply *reply;
} cairn_api_call;

/* Answers the call through exactly one of the reply functions below and returns 0, or
 * returns 1 for a path it does not serve (the server answers 404). Must be thread-safe:
 * several calls run at once, and a stream may hold its thread for as long as it lasts. */
typedef int (*cairn_api_handler_fn)(void *user, const cairn_api_call *call);

/* A whole JSON answer. */
void cairn_api_reply_json(cairn_api_reply *r, int status, const char *json);
/* The API's JSON error form with a type such as "invalid_request" or "not_found"; allow
 * (may be NULL) becomes an Allow header. */
void cairn_api_reply_error(cairn_api_reply *r, int status, const char *type, const char *message,
                           const char *allow);
/* A whole answer of any type (e.g. the dashboard's HTML). */
void cairn_api_reply_bytes(cairn_api_reply *r, int status, const char *content_type,
                           const void *data, size_t len);
/* The dashboard page, embedded at build time (src/api/dashboard.html). */
extern const unsigned char cairn_dashboard_html[];
extern const size_t cairn_dashboard_html_len;

/* A streamed 200 answer of content_type (e.g. "text/event-stream"), sent in chunks as
 * written. write returns -1 once the client is gone: stop producing then. */
int cairn_api_stream_begin(cairn_api_reply *r, const char *content_type);
int cairn_api_stream_write(cairn_api_reply *r, const void *data, size_t len);

/* Anthropic's Messages API (/v1/messages and the paths under it) answers every error, the
 * server's own (401, 403, 413...) included, in Anthropic's form
 * {"type":"error","error":{"type","message"}}, its type named after the status:
 * invalid_request_error (400, 405, 408), authentication_error (401), permission_error
 * (403), not_found_error (404), request_too_large (413), overloaded_error (503), api_error
 * (others). The error's JSON text is malloc'd; NULL when out of memory. */
bool cairn_api_anthropic_path(const char *path);
char *cairn_api_anthropic_error_json(int status, const char *message);

/* The value of a query parameter (URL-decoded) into out; -1 when absent or too long. */
int cairn_api_query_param(const cairn_api_call *call, const char *name, char *out, size_t out_size);

typedef struct cairn_api_config {
    /* An IP address to listen on: NULL means "127.0.0.1" (this machine only); "0.0.0.0"
     * opens it to the LAN over IPv4, "::" over IPv4 and IPv6 (when the HTTP server was
     * built with IPv6, see cairn_api_server_start). "localhost" means 127.0.0.1; other host
     * names are refused. */
    const char *host;
    uint16_t port;                /* 0 = an ephemeral port (tests), see cairn_api_server_port */
    cairn_logger *log;            /* may be NULL; its sink, if any, must be thread-safe */
    cairn_api_json_fn state_json; /* GET /state; NULL: the path answers 404 */
    cairn_api_json_fn node_json;  /* GET /node; NULL: the path answers 404 */
    cairn_api_handler_fn handler; /* every other path; NULL: 404 */
    void *user;                   /* passed to every callback */
    /* When set, every request needs "Authorization: Bearer API_KEY" or, as Anthropic's
     * clients send it, "x-api-key: API_KEY" (401 otherwise). */
    const char *api_key;
    /* When set, answers allow this origin ("*" for any) and preflights are answered. A
     * request with an Origin header that is neither this nor the node's own origin is a 403
     * (a web page elsewhere must not drive the API), and so is every preflight unless set. */
    const char *cors;
    /* Host names the API answers to besides IP addresses, "localhost" and this machine's
     * host name (with and without ".local"): a request whose Host header names anything
     * else is a 403, which defeats DNS rebinding. */
    const char *const *allowed_hosts;
    size_t n_allowed_hosts;
    /* A request's head must arrive within this many ms of the connection's start (a
     * connection that sends nothing is closed then), and its body within as many more;
     * 0: CAIRN_API_DEFAULT_REQUEST_TIMEOUT_MS. */
    int request_timeout_ms;
    /* The most connections one client address may hold (0: the default). Past it, its
     * oldest connection whose request has not arrived is closed; when all of them are
     * being served, the new one is answered 503. */
    int client_connections;
    /* The most connections whose request has not fully arrived, all clients together (0:
     * the default; less than the server's threads). Past it, the oldest of them is closed,
     * so a client that sends its request at once is always served. */
    int waiting_requests;
} cairn_api_config;

typedef struct cairn_api_server cairn_api_server;

/* Starts listening and serving on a few worker threads; the callbacks may be called as soon
 * as this returns (or slightly before). Fails with a message naming host:port, e.g.
 * "cannot listen on 127.0.0.1:52415: address already in use: is another node running?".
 * An IPv6 address fails clearly when civetweb was built without IPv6 (Debian's is).
 * Start and stop use civetweb's process-wide library initialisation, which is reference
 * counted but not thread-safe: call them from one thread (the node's main thread). */
int cairn_api_server_start(const cairn_api_config *cfg, cairn_api_server **out, cairn_err *err);
/* The port actually listened on (the ephemeral one when cfg->port was 0). */
uint16_t cairn_api_server_port(const cairn_api_server *s);
/* Stops accepting, waits for the requests in progress (and so the callbacks) to finish,
 * joins the threads and frees everything; takes up to about two seconds (civetweb's threads
 * wake that often to notice the stop). NULL is a no-op. */
void cairn_api_server_stop(cairn_api_server *s);

/* Client (libcurl): GET http://host:port/path (host may be an IPv6 address, without
 * brackets), with the body limited to max_bytes and the whole transfer to timeout_ms. No
 * proxy and no redirect is ever followed: the API lives on the LAN. Returns 0 with *body
 * (malloc'd, NUL-terminated, the caller frees it) and *status for any HTTP answer, or -1 with
 * a message such as "cannot connect to 127.0.0.1:52415: is a node running? (cairn run)".
 * Thread-safe. */
int cairn_api_get(const char *host, uint16_t port, const char *path, size_t max_bytes,
                  long timeout_ms, char **body, long *status, cairn_err *err);

/* cairn_api_get for callers that want the 200 answer only: any other status is an error
 * whose message names the address, the status and the API's own error message, e.g.
 * "127.0.0.1:52415 answered 503 to /state: the node has no state yet". api_key: sent as
 * Authorization: Bearer KEY (a node run with --api-key wants it); NULL or "": none. */
int cairn_api_fetch(const char *host, uint16_t port, const char *api_key, const char *path,
                    size_t max_bytes, long timeout_ms, char **body, cairn_err *err);

/* Any method (NULL: GET) with an optional JSON body and api_key as for cairn_api_fetch.
 * With on_data, a 200 answer's bytes go to it as they arrive (a stream; return non-zero to
 * stop) and *body gets nothing of them; any other answer is collected into *body as with
 * cairn_api_get. */
typedef int (*cairn_api_data_fn)(void *user, const char *data, size_t len);
int cairn_api_send(const char *host, uint16_t port, const char *api_key, const char *method,
                   const char *path, const char *json_body, size_t max_bytes, long timeout_ms,
                   cairn_api_data_fn on_data, void *user, char **body, long *status,
                   cairn_err *err);
/* 0 for a 2xx status; otherwise -1 with the API's error message (as cairn_api_fetch words
 * it), and *body is freed. */
int cairn_api_answer_ok(const char *host, uint16_t port, const char *path, long status, char **body,
                        cairn_err *err);

/* Downloads url into path (see download.c): through path.part, resuming after interrupted
 * transfers (a few retries, and across runs), checked against the SHA-256 the server names
 * before the rename. The hash used (or "") goes to sha256 when not NULL. */
typedef struct cairn_download_options {
    const char *token; /* sent as a bearer token when not NULL or empty */
    void (*progress)(void *user, uint64_t done, uint64_t total);
    void (*on_retry)(void *user, const char *why);
    void *user;
} cairn_download_options;
int cairn_download(const char *url, const char *path, const cairn_download_options *opt,
                   char sha256[65], cairn_err *err);

/* Whether a repository ("owner/name") and a file in it (a relative path) may be pulled:
 * '/'-separated names of [A-Za-z0-9._-], at most CAIRN_HF_FILE_MAX bytes in all, none of
 * them empty, "." or "..", and the file's last name not hidden. "a/", "." and "../x" are
 * refused: the file's last name becomes a file in the models directory. */
#define CAIRN_HF_FILE_MAX 200
bool cairn_hf_repo_ok(const char *repo);
bool cairn_hf_file_ok(const char *file);

/* Where models are pulled from: CAIRN_HF_ENDPOINT, or Hugging Face. */
const char *cairn_hf_endpoint(void);
/* The one GGUF file a repository lists (its API's siblings), into file; an error lists
 * them when there are several. */
int cairn_hf_pick_gguf(const char *endpoint, const char *repo, const char *token, char *file,
                       size_t size, cairn_err *err);

/* GET of a whole URL (http or https, redirects followed), for `cairn pull`'s listings. */
int cairn_fetch_url(const char *url, const char *token, size_t max_bytes, char **body, long *status,
                    cairn_err *err);

/* text escaped for a URL's query; malloc'd, NULL when out of memory. */
char *cairn_api_url_escape(const char *text);

/* Formats a GET /state answer as the `cairn nodes` table: a line about the cluster (name,
 * master, term, last index) then one line per node (NODE with " *" on the master, ADDRESS,
 * LINK, MEMORY, CPU, OS, MODELS). Missing or mistyped fields print as "-"; text that is not
 * JSON, or not an object, is an error (nothing is printed). */
int cairn_api_print_nodes(const char *state_json, FILE *out, cairn_err *err);

#endif
