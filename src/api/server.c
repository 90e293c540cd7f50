/* api: the HTTP server of a node's API port, on civetweb (see api.h). */
/* libuv's headers use POSIX types (pthread_rwlock_t) that strict C11 hides. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <civetweb.h>
#include <cjson/cJSON.h>
#include <sodium.h>
#include <uv.h>

#include "api/api.h"
#include "api/guard.h"

/* Worker threads: a streamed completion or an /events subscriber holds one for as long as it
 * lasts, so there are enough for a load of concurrent streams, the subscribers the node
 * admits (16) and the small requests besides. Each is an idle thread
 * (its stack is reserved, not touched) until a request needs it. */
#define API_THREADS 64
/* Largest request head (request line and headers) accepted; bodies have their own limit. */
#define API_MAX_REQUEST "8192"
/* "[" + address + "]:" + port + NUL, with room to spare. */
#define API_LISTEN_SIZE 96
/* The most host names (--allowed-host and the machine's own) the API answers to. */
#define API_MAX_HOSTS 32
/* A decoded request path fits the request head's limit. */
#define API_MAX_PATH 8192
/* The longest Host or Origin header compared; longer ones are refused. */
#define API_MAX_NAME 256

typedef struct api_route {
    const char *path;
    cairn_api_json_fn fn;
} api_route;

struct cairn_api_server {
    struct mg_context *ctx;
    cairn_logger *log;
    void *user;
    api_route routes[2];
    cairn_api_handler_fn handler;
    char *api_key;              /* NULL: no key needed */
    char *cors;                 /* Access-Control-Allow-Origin value; NULL: none */
    char *hosts[API_MAX_HOSTS]; /* names the Host header may carry (IP addresses aside) */
    size_t n_hosts;
    char host[INET6_ADDRSTRLEN]; /* as listened on, e.g. "127.0.0.1" or "::" */
    uint16_t port;
    api_guard *guard;       /* slow and idle clients' bounds */
    int request_timeout_ms; /* for a request's head and body together */
};

/* ---- responses ---- */

/* The CORS headers of every answer, when the node allows other origins. */
static void add_cors(struct mg_connection *conn) {
    const cairn_api_server *s = mg_get_user_data(mg_get_context(conn));
    if (s && s->cors) {
        mg_response_header_add(conn, "Access-Control-Allow-Origin", s->cors, -1);
        mg_response_header_add(conn, "Access-Control-Allow-Headers",
                               "Authorization, Content-Type, x-api-key, anthropic-version, "
                               "anthropic-beta",
                               -1);
        mg_response_header_add(conn, "Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS",
                               -1);
    }
}

static void send_json(struct mg_connection *conn, int status, const char *json, const char *allow) {
    const struct mg_request_info *ri = mg_get_request_info(conn);
    bool head = ri && ri->request_method && strcmp(ri->request_method, "HEAD") == 0;
    size_t len = strlen(json);
    char length[32];
    snprintf(length, sizeof length, "%zu", len);
    mg_response_header_start(conn, status);
    mg_response_header_add(conn, "Content-Type", "application/json", -1);
    mg_response_header_add(conn, "Content-Length", length, -1);
    mg_response_header_add(conn, "Cache-Control", "no-store", -1);
    mg_response_header_add(conn, "X-Content-Type-Options", "nosniff", -1);
    add_cors(conn);
    if (allow) {
        mg_response_header_add(conn, "Allow", allow, -1);
    }
    if (status == 503) {
        char retry[16];
        snprintf(retry, sizeof retry, "%d", CAIRN_API_RETRY_AFTER_S);
        mg_response_header_add(conn, "Retry-After", retry, -1);
    }
    mg_response_header_send(conn);
    if (!head) {
        mg_write(conn, json, len);
    }
}

/* {"error":{"message":...,"type":...}}, built with cJSON so any message is escaped. */
static char *error_json(const char *message, const char *type) {
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    char *text = NULL;
    if (e && cJSON_AddStringToObject(e, "message", message) &&
        cJSON_AddStringToObject(e, "type", type)) {
        text = cJSON_PrintUnformatted(root);
    }
    cJSON_Delete(root);
    return text;
}

bool cairn_api_anthropic_path(const char *path) {
    const char *prefix = "/v1/messages";
    size_t n = strlen(prefix);
    return path && strncmp(path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static const char *anthropic_error_type(int status) {
    switch (status) {
    case 400:
    case 405:
    case 408: return "invalid_request_error";
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 503: return "overloaded_error";
    default: return "api_error";
    }
}

char *cairn_api_anthropic_error_json(int status, const char *message) {
    cJSON *root = cJSON_CreateObject();
    cJSON *e = NULL;
    char *text = NULL;
    if (root && cJSON_AddStringToObject(root, "type", "error") &&
        (e = cJSON_AddObjectToObject(root, "error")) &&
        cJSON_AddStringToObject(e, "type", anthropic_error_type(status)) &&
        cJSON_AddStringToObject(e, "message", message)) {
        text = cJSON_PrintUnformatted(root);
    }
    cJSON_Delete(root);
    return text;
}

/* Whether the request is on one of Anthropic's paths, whose errors take its form; the
 * undecoded path is enough (a client of that API never encodes its fixed paths). */
static bool anthropic_request(const struct mg_connection *conn) {
    const struct mg_request_info *ri = mg_get_request_info(conn);
    return ri && cairn_api_anthropic_path(ri->local_uri);
}

static void send_error(struct mg_connection *conn, int status, const char *type,
                       const char *message, const char *allow) {
    char *json = anthropic_request(conn) ? cairn_api_anthropic_error_json(status, message)
                                         : error_json(message, type);
    /* Out of memory: still answer with the right status and a valid, if generic, body. */
    send_json(conn, status, json ? json : "{\"error\":{\"message\":\"out of memory\"}}", allow);
    free(json);
}

/* ---- slow and idle clients ---- */

/* A worker thread has taken a new connection and is about to wait for its request. */
static int handle_connection(const struct mg_connection *conn, void **conn_data) {
    cairn_api_server *s = mg_get_user_data(mg_get_context(conn));
    if (s) {
        api_guard_admit(s->guard);
    }
    *conn_data = NULL;
    return 0;
}

static void request_arrived(const cairn_api_server *s, const struct mg_request_info *ri) {
    api_guard_arrived(s->guard, ri->remote_addr, (uint16_t)ri->remote_port);
}

/* The configured bounds, defaults filled in; checked against the server's threads. */
static int guard_limits(const cairn_api_config *cfg, api_guard_limits *out, cairn_err *err) {
    int timeout_ms =
        cfg->request_timeout_ms ? cfg->request_timeout_ms : CAIRN_API_DEFAULT_REQUEST_TIMEOUT_MS;
    int per_client =
        cfg->client_connections ? cfg->client_connections : CAIRN_API_DEFAULT_CLIENT_CONNECTIONS;
    int waiting =
        cfg->waiting_requests ? cfg->waiting_requests : CAIRN_API_DEFAULT_WAITING_REQUESTS;
    if (timeout_ms < 100) {
        return cairn_fail(err, "--api-request-timeout must be at least 100 ms");
    }
    if (per_client < 1 || waiting < 1 || waiting >= API_THREADS) {
        return cairn_fail(err,
                          "--api-client-connections must be at least 1 and "
                          "--api-waiting-requests in 1..%d (the API has %d threads)",
                          API_THREADS - 1, API_THREADS);
    }
    *out = (api_guard_limits){timeout_ms, (size_t)per_client, (size_t)waiting};
    return 0;
}

/* ---- replies through the node's handler ---- */

struct cairn_api_reply {
    struct mg_connection *conn;
    bool answered;
    bool streaming;
    bool gone;
};

void cairn_api_reply_json(cairn_api_reply *r, int status, const char *json) {
    if (!r->answered) {
        r->answered = true;
        send_json(r->conn, status, json, NULL);
    }
}

void cairn_api_reply_error(cairn_api_reply *r, int status, const char *type, const char *message,
                           const char *allow) {
    if (!r->answered) {
        r->answered = true;
        send_error(r->conn, status, type, message, allow);
    }
}

void cairn_api_reply_bytes(cairn_api_reply *r, int status, const char *content_type,
                           const void *data, size_t len) {
    if (r->answered) {
        return;
    }
    r->answered = true;
    char length[32];
    snprintf(length, sizeof length, "%zu", len);
    mg_response_header_start(r->conn, status);
    mg_response_header_add(r->conn, "Content-Type", content_type, -1);
    mg_response_header_add(r->conn, "Content-Length", length, -1);
    mg_response_header_add(r->conn, "Cache-Control", "no-store", -1);
    mg_response_header_add(r->conn, "X-Content-Type-Options", "nosniff", -1);
    add_cors(r->conn);
    mg_response_header_send(r->conn);
    mg_write(r->conn, data, len);
}

int cairn_api_stream_begin(cairn_api_reply *r, const char *content_type) {
    if (r->answered) {
        return -1;
    }
    r->answered = true;
    r->streaming = true;
    mg_response_header_start(r->conn, 200);
    mg_response_header_add(r->conn, "Content-Type", content_type, -1);
    mg_response_header_add(r->conn, "Cache-Control", "no-store", -1);
    mg_response_header_add(r->conn, "X-Content-Type-Options", "nosniff", -1);
    add_cors(r->conn);
    mg_response_header_add(r->conn, "Transfer-Encoding", "chunked", -1);
    return mg_response_header_send(r->conn) < 0 ? -1 : 0;
}

int cairn_api_stream_write(cairn_api_reply *r, const void *data, size_t len) {
    if (!r->streaming || r->gone) {
        return -1;
    }
    if (len > 0 && mg_send_chunk(r->conn, data, (unsigned)len) < 0) {
        r->gone = true;
        return -1;
    }
    return 0;
}

int cairn_api_query_param(const cairn_api_call *call, const char *name, char *out,
                          size_t out_size) {
    if (!call->query) {
        return -1;
    }
    int n = mg_get_var(call->query, strlen(call->query), name, out, out_size);
    return n < 0 ? -1 : 0;
}

/* Reads a body of at most CAIRN_API_MAX_BODY bytes; NULL with *status set otherwise: 413
 * too large, 408 cut short (the guard closes a request past its deadline), 500 out of
 * memory. */
static char *read_body(struct mg_connection *conn, size_t *len, int *status) {
    const struct mg_request_info *ri = mg_get_request_info(conn);
    long long declared = ri ? ri->content_length : -1;
    if (declared > (long long)CAIRN_API_MAX_BODY) {
        *status = 413;
        return NULL;
    }
    size_t cap = declared >= 0 ? (size_t)declared : 65536;
    char *body = malloc(cap + 1);
    size_t got = 0;
    while (body) {
        if (got == cap) {
            if (declared >= 0 || cap >= CAIRN_API_MAX_BODY) {
                break;
            }
            char *bigger = realloc(body, cap * 2 + 1);
            if (!bigger) {
                free(body);
                body = NULL;
                break;
            }
            body = bigger;
            cap *= 2;
        }
        int n = mg_read(conn, body + got, cap - got);
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    if (!body) {
        *status = 500;
        return NULL;
    }
    if (declared >= 0 && got < (size_t)declared) {
        free(body);
        *status = 408;
        return NULL;
    }
    if (declared < 0 && got == cap && cap >= CAIRN_API_MAX_BODY) {
        free(body);
        *status = 413;
        return NULL;
    }
    body[got] = '\0';
    *len = got;
    return body;
}

static void send_body_error(const cairn_api_server *s, struct mg_connection *conn, int status) {
    char late[160];
    snprintf(late, sizeof late, "the request did not arrive within %d ms (--api-request-timeout)",
             s->request_timeout_ms);
    if (status == 413) {
        send_error(conn, status, "invalid_request", "the request body is too large", NULL);
    } else if (status == 408) {
        send_error(conn, status, "timeout", late, NULL);
    } else {
        send_error(conn, status, "server_error", "out of memory", NULL);
    }
}

static int serve_handler(cairn_api_server *s, struct mg_connection *conn,
                         const struct mg_request_info *ri, const char *path) {
    size_t len = 0;
    int status = 0;
    char *body = read_body(conn, &len, &status);
    if (!body) {
        send_body_error(s, conn, status);
        return status;
    }
    request_arrived(s, ri);
    cairn_api_reply reply = {.conn = conn};
    cairn_api_call call = {.method = ri->request_method,
                           .path = path,
                           .query = ri->query_string,
                           .body = body,
                           .body_len = len,
                           .reply = &reply};
    int rc = s->handler(s->user, &call);
    free(body);
    if (rc == 1 && !reply.answered) {
        return 0; /* not served: the caller answers 404 */
    }
    if (!reply.answered) {
        send_error(conn, 500, "server_error", "the request was not answered", NULL);
    } else if (reply.streaming && !reply.gone) {
        mg_send_chunk(conn, "", 0);
    }
    return 200;
}

/* ---- requests ---- */

static const api_route *find_route(const cairn_api_server *s, const char *path) {
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(s->routes); i++) {
        if (s->routes[i].fn && strcmp(s->routes[i].path, path) == 0) {
            return &s->routes[i];
        }
    }
    return NULL;
}

static int serve_route(cairn_api_server *s, struct mg_connection *conn, const api_route *r) {
    cairn_err err = {{0}};
    char *json = r->fn(s->user, &err);
    if (!json) {
        const char *msg = err.msg[0] ? err.msg : "the node cannot answer now";
        cairn_log(s->log, CAIRN_LOG_DEBUG, "api: GET %s: %s", r->path, msg);
        send_error(conn, 503, "unavailable", msg, NULL);
        return 503;
    }
    send_json(conn, 200, json, NULL);
    free(json);
    return 200;
}

/* The one request handler, for every path: civetweb then never serves files or its own
 * HTML pages, and unknown paths get the API's JSON 404. Returns the status (for civetweb's
 * access accounting). */
/* Whether the request carries the API key; compared in constant time, so the answer's
 * timing says nothing about how much of a guess was right. */
static bool authorized(const cairn_api_server *s, struct mg_connection *conn) {
    if (!s->api_key) {
        return true;
    }
    const char *header = mg_get_header(conn, "Authorization");
    const char *prefix = "Bearer ";
    const char *given = mg_get_header(conn, "x-api-key"); /* Anthropic's clients */
    if (header && strncmp(header, prefix, strlen(prefix)) == 0) {
        given = header + strlen(prefix);
    }
    size_t len = strlen(s->api_key);
    return given && strlen(given) == len && sodium_memcmp(given, s->api_key, len) == 0;
}

/* ---- Host and Origin: what a browser may make of the API ---- */

/* The name in a Host header ("name", "name:port", "[v6]:port") into out, lowercase and
 * without a trailing dot; false when it does not fit. */
static bool host_name(const char *header, char *out, size_t size) {
    const char *start = header, *end;
    if (*header == '[') {
        start = header + 1;
        end = strchr(start, ']');
    } else {
        end = strchr(header, ':');
        end = end ? end : header + strlen(header);
    }
    size_t n = end ? (size_t)(end - start) : 0;
    if (n == 0 || n >= size) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        out[i] = (char)tolower((unsigned char)start[i]);
    }
    n -= out[n - 1] == '.';
    out[n] = '\0';
    return n > 0;
}

/* An IP address cannot be rebound (a page is only served from it by the node itself), so
 * only names are checked: they must be the node's own. No Host header: not a browser. */
static bool host_allowed(const cairn_api_server *s, struct mg_connection *conn) {
    const char *header = mg_get_header(conn, "Host");
    char name[API_MAX_NAME];
    if (!header) {
        return true;
    }
    if (!host_name(header, name, sizeof name)) {
        return false;
    }
    unsigned char addr[sizeof(struct in6_addr)];
    if (uv_inet_pton(AF_INET, name, addr) == 0 || uv_inet_pton(AF_INET6, name, addr) == 0) {
        return true;
    }
    for (size_t i = 0; i < s->n_hosts; i++) {
        if (strcmp(s->hosts[i], name) == 0) {
            return true;
        }
    }
    return false;
}

/* No Origin: not a browser's cross-site request. Otherwise the origin must be the page's own
 * (the node serves its dashboard: http://HOST) or what --cors allows. */
static bool origin_allowed(const cairn_api_server *s, struct mg_connection *conn) {
    const char *origin = mg_get_header(conn, "Origin");
    if (!origin || (s->cors && (strcmp(s->cors, "*") == 0 || strcasecmp(s->cors, origin) == 0))) {
        return true;
    }
    const char *host = mg_get_header(conn, "Host");
    const char *scheme = "http://";
    return host && strncasecmp(origin, scheme, strlen(scheme)) == 0 &&
           strcasecmp(origin + strlen(scheme), host) == 0;
}

/* A request a browser must not be let make: a foreign Host name (DNS rebinding) or a
 * foreign Origin (cross-site request forgery, text/plain bodies included). */
static bool refused(const cairn_api_server *s, struct mg_connection *conn) {
    if (!host_allowed(s, conn)) {
        send_error(conn, 403, "forbidden",
                   "this node does not answer to that Host name (allow it with "
                   "--allowed-host NAME)",
                   NULL);
        return true;
    }
    if (!origin_allowed(s, conn)) {
        send_error(conn, 403, "forbidden",
                   "cross-origin requests are refused (allow an origin with --cors ORIGIN)", NULL);
        return true;
    }
    return false;
}

/* The request's path, URL-decoded into path[size] (civetweb leaves it encoded: its own
 * decoding would cut the path at an encoded NUL, so DELETE /instance/ID%00... would name
 * ID). Answers a 400 itself, and returns false, for a request whose framing or target
 * could be read two ways: two Content-Length headers (which one a proxy in front believed
 * is unknown), or a NUL in the path or the query. */
static bool decode_target(const struct mg_request_info *ri, struct mg_connection *conn, char *path,
                          size_t size) {
    int lengths = 0;
    for (int i = 0; i < ri->num_headers; i++) {
        lengths +=
            ri->http_headers[i].name && strcasecmp(ri->http_headers[i].name, "Content-Length") == 0;
    }
    const char *raw = ri->local_uri ? ri->local_uri : "";
    int n = mg_url_decode(raw, (int)strlen(raw), path, (int)size, 0);
    const char *why = NULL;
    if (lengths > 1) {
        why = "the request has more than one Content-Length header";
    } else if (n < 0) {
        why = "the request's path is too long";
    } else if (memchr(path, '\0', (size_t)n) ||
               (ri->query_string && strstr(ri->query_string, "%00"))) {
        why = "the request target holds an encoded NUL (%00)";
    }
    if (why) {
        send_error(conn, 400, "bad_request", why, NULL);
        return false;
    }
    return true;
}

static int handle_request(struct mg_connection *conn, void *cbdata) {
    cairn_api_server *s = cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    char path[API_MAX_PATH];
    if (!ri || !decode_target(ri, conn, path, sizeof path)) {
        return 400;
    }
    if (api_guard_over_quota(s->guard, ri->remote_addr, (uint16_t)ri->remote_port)) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "client %.60s holds the most connections allowed, all being served "
                 "(--api-client-connections)",
                 ri->remote_addr);
        send_error(conn, 503, "unavailable", msg, NULL);
        return 503;
    }
    if (refused(s, conn)) {
        return 403;
    }
    if (s->cors && ri && ri->request_method && strcmp(ri->request_method, "OPTIONS") == 0) {
        mg_response_header_start(conn, 204); /* a browser's preflight: no key needed */
        add_cors(conn);
        mg_response_header_send(conn);
        return 204;
    }
    if (!authorized(s, conn)) {
        send_error(conn, 401, "unauthorized",
                   "this node's API needs its key: send Authorization: Bearer KEY (or "
                   "x-api-key: KEY)",
                   NULL);
        return 401;
    }
    const char *method = ri && ri->request_method ? ri->request_method : "";
    const api_route *r = find_route(s, path);
    if (!r && s->handler && ri) {
        int status = serve_handler(s, conn, ri, path);
        if (status != 0) {
            return status;
        }
    }
    if (!r) {
        char msg[200];
        snprintf(msg, sizeof msg, "no such path: %.120s (the API serves /state and /node)", path);
        send_error(conn, 404, "not_found", msg, NULL);
        return 404;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "%.40s is not allowed on %s: use GET", method, r->path);
        send_error(conn, 405, "method_not_allowed", msg, "GET, HEAD");
        return 405;
    }
    request_arrived(s, ri);
    return serve_route(s, conn, r);
}

/* civetweb's own error answers (a malformed request, a request head over the limit) in the
 * API's JSON form. Returns 0: handled. */
static int handle_http_error(struct mg_connection *conn, int status, const char *errmsg) {
    send_error(conn, status, status == 404 ? "not_found" : "bad_request",
               errmsg && errmsg[0] ? errmsg : "bad request", NULL);
    return 0;
}

/* civetweb's log: problems of the server itself are warnings; problems of one connection
 * (a client that hangs up or sends garbage) are the client's, so only debug. Returns 1 so
 * civetweb writes nothing itself. */
static int handle_log(const struct mg_connection *conn, const char *message) {
    cairn_api_server *s = mg_get_user_data(mg_get_context(conn));
    if (!s) {
        return 1;
    }
    const struct mg_request_info *ri = mg_get_request_info(conn);
    if (ri && ri->remote_addr[0]) {
        cairn_log(s->log, CAIRN_LOG_DEBUG, "api: client %s: %s", ri->remote_addr, message);
    } else {
        cairn_log(s->log, CAIRN_LOG_WARN, "api: %s", message);
    }
    return 1;
}

/* ---- listening ---- */

/* Checks host and writes civetweb's listening_ports value for it into out. */
static int listen_spec(const char *host, uint16_t port, char *out, size_t out_size,
                       cairn_err *err) {
    unsigned char addr[sizeof(struct in6_addr)];
    if (uv_inet_pton(AF_INET, host, addr) == 0) {
        snprintf(out, out_size, "%s:%u", host, (unsigned)port);
        return 0;
    }
    if (uv_inet_pton(AF_INET6, host, addr) != 0) {
        return cairn_fail(err,
                          "cannot listen on %s:%u: not an IP address (give one such as "
                          "127.0.0.1, 0.0.0.0 or ::)",
                          host, (unsigned)port);
    }
    if (!mg_check_feature(MG_FEATURES_IPV6)) {
        return cairn_fail(err,
                          "cannot listen on [%s]:%u: this build's HTTP server (civetweb) "
                          "has no IPv6 support; use an IPv4 address such as 0.0.0.0",
                          host, (unsigned)port);
    }
    /* "::" means every interface: civetweb's "+port" is one dual-stack socket for IPv4 and
     * IPv6, where "[::]:port" would be IPv6 only. */
    if (strcmp(host, "::") == 0) {
        snprintf(out, out_size, "+%u", (unsigned)port);
    } else {
        snprintf(out, out_size, "[%s]:%u", host, (unsigned)port);
    }
    return 0;
}

static void probe_close(uv_handle_t *h) {
    (void)h;
}

/* Why could civetweb not listen? civetweb's message carries a platform error number, so
 * ask libuv, which names the error the same way everywhere: bind and listen once more.
 * Returns a libuv error code (0 when listening works now). */
static int probe_listen(const char *host, uint16_t port) {
    struct sockaddr_storage sa;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&sa) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&sa) != 0) {
        return UV_EINVAL;
    }
    uv_loop_t loop;
    int rc = uv_loop_init(&loop);
    if (rc != 0) {
        return rc;
    }
    uv_tcp_t tcp;
    rc = uv_tcp_init(&loop, &tcp);
    if (rc == 0) {
        rc = uv_tcp_bind(&tcp, (const struct sockaddr *)&sa, 0);
        if (rc == 0) {
            rc = uv_listen((uv_stream_t *)&tcp, 1, NULL);
        }
        uv_close((uv_handle_t *)&tcp, probe_close);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&loop);
    return rc;
}

static int start_failed(const cairn_api_server *s, const char *civet_msg, cairn_err *err) {
    char where[INET6_ADDRSTRLEN + 16];
    bool v6 = strchr(s->host, ':') != NULL;
    snprintf(where, sizeof where, v6 ? "[%s]:%u" : "%s:%u", s->host, (unsigned)s->port);
    int rc = probe_listen(s->host, s->port);
    if (rc == UV_EADDRINUSE) {
        return cairn_fail(err,
                          "cannot listen on %s: address already in use: is another node "
                          "running?",
                          where);
    }
    if (rc != 0) {
        return cairn_fail(err, "cannot listen on %s: %s", where, uv_strerror(rc));
    }
    return cairn_fail(err, "cannot listen on %s: %s", where,
                      civet_msg[0] ? civet_msg : "the HTTP server did not start");
}

static uint16_t listened_port(struct mg_context *ctx) {
    struct mg_server_port ports[4];
    int n = mg_get_server_ports(ctx, (int)CAIRN_ARRAY_LEN(ports), ports);
    return n > 0 ? (uint16_t)ports[0].port : 0;
}

static void free_server(cairn_api_server *s) {
    api_guard_free(s->guard);
    if (s->api_key) {
        sodium_memzero(s->api_key, strlen(s->api_key));
    }
    free(s->api_key);
    free(s->cors);
    for (size_t i = 0; i < s->n_hosts; i++) {
        free(s->hosts[i]);
    }
    free(s);
}

static int add_host(cairn_api_server *s, const char *name, const char *suffix, cairn_err *err) {
    char text[API_MAX_NAME], lower[API_MAX_NAME];
    int n = snprintf(text, sizeof text, "%s%s", name, suffix);
    if (n <= 0 || (size_t)n >= sizeof text || !host_name(text, lower, sizeof lower) ||
        strchr(text, ':')) {
        return cairn_fail(err, "--allowed-host %s: not a host name", name);
    }
    if (s->n_hosts == API_MAX_HOSTS) {
        return cairn_fail(err, "at most %d host names may be allowed", API_MAX_HOSTS - 3);
    }
    s->hosts[s->n_hosts] = cairn_strdup(lower);
    return s->hosts[s->n_hosts++] ? 0 : cairn_fail(err, "out of memory");
}

/* localhost, this machine's name (and its mDNS ".local" form), then the configured ones. */
static int set_hosts(cairn_api_server *s, const cairn_api_config *cfg, cairn_err *err) {
    char self[API_MAX_NAME];
    size_t size = sizeof self;
    if (add_host(s, "localhost", "", err) != 0) {
        return -1;
    }
    if (uv_os_gethostname(self, &size) == 0 && self[0] &&
        (add_host(s, self, "", err) != 0 || add_host(s, self, ".local", err) != 0)) {
        return -1;
    }
    for (size_t i = 0; i < cfg->n_allowed_hosts; i++) {
        if (add_host(s, cfg->allowed_hosts[i], "", err) != 0) {
            return -1;
        }
    }
    return 0;
}

static int start_civetweb(cairn_api_server *s, const char *listen, cairn_err *err) {
    char threads[16], timeout_ms[16];
    snprintf(threads, sizeof threads, "%d", API_THREADS);
    snprintf(timeout_ms, sizeof timeout_ms, "%d", s->request_timeout_ms);
    /* civetweb would answer every preflight itself, allowing any origin: empty
     * access_control values leave preflights to handle_request. It would also decode the
     * path, cutting it at an encoded NUL: decode_target does that instead. Its request
     * timeout bounds each read and write, and the whole of a request's head; keep-alive
     * stays off, so no connection idles between requests. */
    const char *options[] = {"listening_ports",
                             listen,
                             "num_threads",
                             threads,
                             "max_request_size",
                             API_MAX_REQUEST,
                             "request_timeout_ms",
                             timeout_ms,
                             "enable_keep_alive",
                             "no",
                             "access_control_allow_origin",
                             "",
                             "access_control_allow_methods",
                             "",
                             "access_control_allow_headers",
                             "",
                             "decode_url",
                             "no",
                             NULL};
    struct mg_callbacks callbacks;
    memset(&callbacks, 0, sizeof callbacks);
    callbacks.log_message = handle_log;
    callbacks.http_error = handle_http_error;
    callbacks.init_connection = handle_connection;
    struct mg_init_data init = {&callbacks, s, options};
    char text[256] = "";
    unsigned code = 0;
    struct mg_error_data error = {&code, text, sizeof text};
    s->ctx = mg_start2(&init, &error);
    if (!s->ctx) {
        return start_failed(s, text, err);
    }
    /* A request that arrives before this line gets civetweb's 404, in JSON (http_error). */
    mg_set_request_handler(s->ctx, "**", handle_request, s);
    s->port = listened_port(s->ctx);
    api_guard_listening_on(s->guard, s->port);
    return 0;
}

int cairn_api_server_start(const cairn_api_config *cfg, cairn_api_server **out, cairn_err *err) {
    *out = NULL;
    const char *host = cfg->host ? cfg->host : "127.0.0.1";
    if (strcmp(host, "localhost") == 0) {
        host = "127.0.0.1";
    }
    char listen[API_LISTEN_SIZE];
    if (strlen(host) >= INET6_ADDRSTRLEN) {
        return cairn_fail(err, "cannot listen on %.60s...: not an IP address", host);
    }
    if (listen_spec(host, cfg->port, listen, sizeof listen, err) != 0) {
        return -1;
    }
    cairn_api_server *s = calloc(1, sizeof *s);
    if (!s) {
        return cairn_fail(err, "out of memory");
    }
    s->log = cfg->log;
    s->user = cfg->user;
    s->routes[0] = (api_route){"/state", cfg->state_json};
    s->routes[1] = (api_route){"/node", cfg->node_json};
    s->handler = cfg->handler;
    if ((cfg->api_key && *cfg->api_key && !(s->api_key = cairn_strdup(cfg->api_key))) ||
        (cfg->cors && *cfg->cors && !(s->cors = cairn_strdup(cfg->cors)))) {
        free_server(s);
        return cairn_fail(err, "out of memory");
    }
    api_guard_limits limits;
    if (set_hosts(s, cfg, err) != 0 || guard_limits(cfg, &limits, err) != 0 ||
        api_guard_new(&limits, cfg->port, s->log, &s->guard, err) != 0) {
        free_server(s);
        return -1;
    }
    s->request_timeout_ms = limits.request_timeout_ms;
    snprintf(s->host, sizeof s->host, "%s", host);
    s->port = cfg->port;
    /* Reference counted by civetweb: the last server's stop releases it. (It returns the
     * features it set up, none asked here, so 0 either way; a failure shows in mg_start2.) */
    (void)mg_init_library(0);
    if (start_civetweb(s, listen, err) != 0) {
        mg_exit_library();
        free_server(s);
        return -1;
    }
    cairn_log(s->log, CAIRN_LOG_INFO, "api: listening on %s%s%s:%u",
              strchr(s->host, ':') ? "[" : "", s->host, strchr(s->host, ':') ? "]" : "",
              (unsigned)s->port);
    *out = s;
    return 0;
}

uint16_t cairn_api_server_port(const cairn_api_server *s) {
    return s ? s->port : 0;
}

void cairn_api_server_stop(cairn_api_server *s) {
    if (!s) {
        return;
    }
    /* mg_stop returns once every worker thread has finished its request and exited, so no
     * callback runs after this line. Its threads check for the stop between waits of up to
     * two seconds (civetweb's SOCKET_TIMEOUT_QUANTUM), which is how long this may take. */
    mg_stop(s->ctx);
    mg_exit_library();
    free_server(s);
}
