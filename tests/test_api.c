/* Tests of the API module on loopback: the server's routes, errors and headers, the client's
 * messages (refused connection, timeout, size limit), a port already in use, IPv6, address
 * parsing, and the `cairn nodes` table from real and malformed /state answers. */
/* libuv's headers use POSIX types (pthread_rwlock_t) that strict C11 hides. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <civetweb.h>
#include <curl/curl.h>
#include <uv.h>

#include "api/api.h"
#include "cluster/state.h"
#include "platform/platform.h"

#define STATE_TEXT "{\"cluster\":\"test\",\"nodes\":[]}"
#define NODE_TEXT "{\"id\":\"n1\"}"
#define TIMEOUT_MS 5000

/* ---- a server with fixed answers ---- */

typedef struct fixture {
    const char *state; /* NULL: the callback fails */
    const char *node;
    size_t big;   /* > 0: /node answers a JSON string of this many bytes */
    int sleep_ms; /* /state sleeps this long first */
    cairn_api_server *server;
    uint16_t port;
} fixture;

static char *state_cb(void *user, cairn_err *err) {
    fixture *f = user;
    if (f->sleep_ms > 0) {
        cairn_sleep_ms(f->sleep_ms);
    }
    if (!f->state) {
        cairn_fail(err, "the node has no state yet");
        return NULL;
    }
    return cairn_strdup(f->state);
}

static char *node_cb(void *user, cairn_err *err) {
    fixture *f = user;
    if (f->big == 0) {
        return cairn_strdup(f->node);
    }
    char *s = malloc(f->big + 1);
    if (!s) {
        cairn_fail(err, "out of memory");
        return NULL;
    }
    memset(s, 'x', f->big);
    s[0] = '"';
    s[f->big - 1] = '"';
    s[f->big] = '\0';
    return s;
}

static int start_on(fixture *f, const char *host, uint16_t port, cairn_err *err) {
    cairn_api_config cfg = {host, port, NULL, state_cb, node_cb, NULL, f,
                            NULL, NULL, NULL, 0,        0,       0,    0};
    int rc = cairn_api_server_start(&cfg, &f->server, err);
    if (rc == 0) {
        f->port = cairn_api_server_port(f->server);
    }
    return rc;
}

static void start(fixture *f) {
    cairn_err err = {{0}};
    if (start_on(f, NULL, 0, &err) != 0) {
        print_error("start: %s\n", err.msg);
        fail();
    }
    assert_int_not_equal(f->port, 0);
}

static long get(const fixture *f, const char *path, size_t max, char **body) {
    cairn_err err = {{0}};
    long status = 0;
    if (cairn_api_get("127.0.0.1", f->port, path, max, TIMEOUT_MS, body, &status, &err) != 0) {
        print_error("GET %s: %s\n", path, err.msg);
        fail();
    }
    return status;
}

/* ---- routes ---- */

static void test_routes(void **state) {
    (void)state;
    fixture f = {STATE_TEXT, NODE_TEXT, 0, 0, NULL, 0};
    start(&f);
    char *body = NULL;
    assert_int_equal(get(&f, "/state", 1 << 20, &body), 200);
    assert_string_equal(body, STATE_TEXT);
    free(body);
    assert_int_equal(get(&f, "/node", 1 << 20, &body), 200);
    assert_string_equal(body, NODE_TEXT);
    free(body);
    /* The query string is not part of the path. */
    assert_int_equal(get(&f, "/state?x=1", 1 << 20, &body), 200);
    assert_string_equal(body, STATE_TEXT);
    free(body);
    const char *missing[] = {"/", "/nope", "/state/", "/State", "/index.html", "/../etc/passwd"};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(missing); i++) {
        assert_int_equal(get(&f, missing[i], 1 << 20, &body), 404);
        assert_non_null(strstr(body, "\"type\":\"not_found\""));
        assert_non_null(strstr(body, "{\"error\":{\"message\":\"no such path: "));
        free(body);
    }
    cairn_api_server_stop(f.server);
}

static void test_callback_error_is_503(void **state) {
    (void)state;
    fixture f = {NULL, NODE_TEXT, 0, 0, NULL, 0};
    start(&f);
    char *body = NULL;
    assert_int_equal(get(&f, "/state", 1 << 20, &body), 503);
    assert_string_equal(body, "{\"error\":{\"message\":\"the node has no state yet\","
                              "\"type\":\"unavailable\"}}");
    free(body);
    cairn_api_server_stop(f.server);
}

static void test_fetch(void **state) {
    (void)state;
    fixture f = {NULL, NODE_TEXT, 0, 0, NULL, 0};
    start(&f);
    cairn_err err = {{0}};
    char *body = NULL;
    assert_int_equal(
        cairn_api_fetch("127.0.0.1", f.port, NULL, "/node", 1024, TIMEOUT_MS, &body, &err), 0);
    assert_string_equal(body, NODE_TEXT);
    free(body);
    char expected[160];
    snprintf(expected, sizeof expected,
             "127.0.0.1:%u answered 503 to /state: the node has no state yet", (unsigned)f.port);
    assert_int_equal(
        cairn_api_fetch("127.0.0.1", f.port, NULL, "/state", 1024, TIMEOUT_MS, &body, &err), -1);
    assert_string_equal(err.msg, expected);
    assert_null(body);
    assert_int_equal(
        cairn_api_fetch("127.0.0.1", f.port, NULL, "/x", 1024, TIMEOUT_MS, &body, &err), -1);
    assert_non_null(strstr(err.msg, "answered 404 to /x: no such path: /x"));
    cairn_api_server_stop(f.server);
}

static void test_missing_callback_is_404(void **state) {
    (void)state;
    fixture f = {STATE_TEXT, NODE_TEXT, 0, 0, NULL, 0};
    cairn_api_config cfg = {"127.0.0.1", 0,    NULL, state_cb, NULL, NULL, &f,
                            NULL,        NULL, NULL, 0,        0,    0,    0};
    cairn_err err = {{0}};
    assert_int_equal(cairn_api_server_start(&cfg, &f.server, &err), 0);
    f.port = cairn_api_server_port(f.server);
    char *body = NULL;
    assert_int_equal(get(&f, "/node", 1 << 20, &body), 404);
    free(body);
    assert_int_equal(get(&f, "/state", 1 << 20, &body), 200);
    free(body);
    cairn_api_server_stop(f.server);
}

/* ---- methods and headers, through libcurl directly ---- */

typedef struct raw_answer {
    long status;
    cairn_buf headers;
    cairn_buf body;
} raw_answer;

static size_t raw_collect(char *data, size_t size, size_t n, void *user) {
    return cairn_buf_append(user, data, size * n) == 0 ? size * n : 0;
}

static void raw_request_with(uint16_t port, const char *method, const char *path,
                             struct curl_slist *headers, raw_answer *out);

static void raw_request(uint16_t port, const char *method, const char *path, raw_answer *out) {
    raw_request_with(port, method, path, NULL, out);
}

static void raw_request_with(uint16_t port, const char *method, const char *path,
                             struct curl_slist *headers, raw_answer *out) {
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", (unsigned)port, path);
    CURL *curl = curl_easy_init();
    assert_non_null(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_PROXY, "");
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)TIMEOUT_MS);
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, raw_collect);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &out->headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, raw_collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &out->body);
    assert_int_equal(curl_easy_perform(curl), CURLE_OK);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out->status);
    curl_easy_cleanup(curl);
    assert_int_equal(cairn_buf_putc(&out->headers, '\0'), 0);
    assert_int_equal(cairn_buf_putc(&out->body, '\0'), 0);
}

static void raw_free(raw_answer *a) {
    cairn_buf_free(&a->headers);
    cairn_buf_free(&a->body);
}

/* With an API key, only requests that carry it are answered: a missing, wrong, longer or
 * shorter key is a 401, with the same JSON error form. With CORS on, answers carry the
 * allowed origin and a preflight (OPTIONS) is answered without the key. */
static void test_api_key(void **state) {
    (void)state;
    fixture f = {STATE_TEXT, NODE_TEXT, 0, 0, NULL, 0};
    cairn_api_config cfg = {
        "127.0.0.1",           0,    NULL, state_cb, node_cb, NULL, &f, "s3cret-key",
        "https://app.example", NULL, 0,    0,        0,       0};
    cairn_err err = {{0}};
    assert_int_equal(cairn_api_server_start(&cfg, &f.server, &err), 0);
    f.port = cairn_api_server_port(f.server);
    const char *wrong[] = {NULL, "Authorization: Bearer s3cret-kez",
                           "Authorization: Bearer s3cret-key2", "Authorization: Bearer s3cret",
                           "Authorization: s3cret-key"};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        struct curl_slist *h = wrong[i] ? curl_slist_append(NULL, wrong[i]) : NULL;
        raw_answer a = {0};
        raw_request_with(f.port, "GET", "/state", h, &a);
        assert_int_equal(a.status, 401);
        assert_non_null(strstr(a.body.data, "\"type\":\"unauthorized\""));
        raw_free(&a);
        curl_slist_free_all(h);
    }
    struct curl_slist *h = curl_slist_append(NULL, "Authorization: Bearer s3cret-key");
    raw_answer a = {0};
    raw_request_with(f.port, "GET", "/state", h, &a);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.body.data, STATE_TEXT);
    assert_non_null(strstr(a.headers.data, "Access-Control-Allow-Origin: https://app.example"));
    raw_free(&a);
    curl_slist_free_all(h);
    /* a browser's preflight needs no key */
    memset(&a, 0, sizeof a);
    raw_request(f.port, "OPTIONS", "/state", &a);
    assert_int_equal(a.status, 204);
    assert_non_null(strstr(a.headers.data, "Access-Control-Allow-Headers: Authorization"));
    raw_free(&a);
    cairn_api_server_stop(f.server);
}

/* One request with the given headers (NULL-terminated list); returns its status and keeps
 * the answer in a. */
static long request_headers(uint16_t port, const char *method, const char *const *headers,
                            raw_answer *a) {
    struct curl_slist *h = NULL;
    for (size_t i = 0; headers[i]; i++) {
        h = curl_slist_append(h, headers[i]);
    }
    memset(a, 0, sizeof *a);
    raw_request_with(port, method, "/state", h, a);
    curl_slist_free_all(h);
    return a->status;
}

static void expect_status(uint16_t port, const char *method, const char *const *headers,
                          long status, const char *body_has) {
    raw_answer a;
    long got = request_headers(port, method, headers, &a);
    if (got != status || (body_has && !strstr(a.body.data, body_has))) {
        print_error("%s with %s: %ld %s\n", method, headers[0], got, a.body.data);
    }
    assert_int_equal(got, status);
    assert_true(!body_has || strstr(a.body.data, body_has));
    /* no answer lets another origin read it */
    assert_null(strstr(a.headers.data, "Access-Control-Allow-Origin: *"));
    assert_null(strstr(a.headers.data, "Access-Control-Allow-Origin: https://attacker"));
    raw_free(&a);
}

/* What a web page may make a browser do: a foreign Host name (DNS rebinding) or a foreign
 * Origin (a cross-site POST, text/plain included) is a 403, preflights are not answered
 * without --cors (civetweb would allow any origin), and clients that send neither header,
 * or only the node's own names and addresses, are served. */
static void test_browser_guards(void **state) {
    (void)state;
    fixture f = {STATE_TEXT, NODE_TEXT, 0, 0, NULL, 0};
    const char *const extra[] = {"cairn.lan"};
    cairn_api_config cfg = {"127.0.0.1", 0,    NULL,  state_cb, node_cb, NULL, &f,
                            NULL,        NULL, extra, 1,        0,       0,    0};
    cairn_err err = {{0}};
    assert_int_equal(cairn_api_server_start(&cfg, &f.server, &err), 0);
    uint16_t port = cairn_api_server_port(f.server);
    char self[256], self_host[300], same_origin[300];
    size_t size = sizeof self;
    assert_int_equal(uv_os_gethostname(self, &size), 0);
    snprintf(self_host, sizeof self_host, "Host: %s:%u", self, (unsigned)port);
    snprintf(same_origin, sizeof same_origin, "Origin: http://127.0.0.1:%u", (unsigned)port);
    const char *const served[][3] = {
        {"Host: localhost:52415", NULL},
        {"Host: LOCALHOST.", NULL},
        {"Host: 192.168.7.9:1", NULL},
        {"Host: [::1]:52415", NULL},
        {"Host: cairn.lan", NULL},
        {self_host, NULL},
        {same_origin, NULL},
        {"X-None: 1", NULL},
    };
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(served); i++) {
        expect_status(port, "GET", served[i], 200, NULL);
    }
    const char *const rebound[][2] = {{"Host: attacker.example", NULL},
                                      {"Host: attacker.example:52415", NULL},
                                      {"Host: localhost.attacker.example", NULL},
                                      {"Host: ", NULL}};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(rebound); i++) {
        expect_status(port, "GET", rebound[i], 403, "--allowed-host");
    }
    const char *const forged[] = {"Origin: https://attacker.example", "Content-Type: text/plain",
                                  NULL};
    expect_status(port, "POST", forged, 403, "--cors");
    const char *const null_origin[] = {"Origin: null", NULL};
    expect_status(port, "GET", null_origin, 403, "--cors");
    const char *const preflight[] = {"Origin: https://attacker.example",
                                     "Access-Control-Request-Method: POST", NULL};
    expect_status(port, "OPTIONS", preflight, 403, "--cors");
    cairn_api_server_stop(f.server);

    /* with --cors, that origin (only) is let in, and its preflights are answered */
    cfg.cors = "https://app.example";
    assert_int_equal(cairn_api_server_start(&cfg, &f.server, &err), 0);
    port = cairn_api_server_port(f.server);
    expect_status(port, "POST", forged, 403, "--cors");
    expect_status(port, "OPTIONS", preflight, 403, "--cors");
    const char *const app[] = {"Origin: https://app.example", "Access-Control-Request-Method: POST",
                               NULL};
    raw_answer a;
    assert_int_equal(request_headers(port, "OPTIONS", app, &a), 204);
    assert_non_null(strstr(a.headers.data, "Access-Control-Allow-Origin: https://app.example"));
    raw_free(&a);
    assert_int_equal(request_headers(port, "GET", app, &a), 200);
    assert_non_null(strstr(a.headers.data, "Access-Control-Allow-Origin: https://app.example"));
    raw_free(&a);
    cairn_api_server_stop(f.server);
}

/* Sends request as bytes over a fresh connection and returns the answer's first line (or
 * "" when the server closed without one) into line. */
static void raw_exchange(uint16_t port, const char *request, char *line, size_t size) {
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/", (unsigned)port);
    CURL *curl = curl_easy_init();
    assert_non_null(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_PROXY, "");
    curl_easy_setopt(curl, CURLOPT_CONNECT_ONLY, 1L);
    assert_int_equal(curl_easy_perform(curl), CURLE_OK);
    size_t sent = 0;
    assert_int_equal(curl_easy_send(curl, request, strlen(request), &sent), CURLE_OK);
    assert_int_equal(sent, strlen(request));
    size_t got = 0;
    line[0] = '\0';
    for (int i = 0; i < 500 && got + 1 < size && !strchr(line, '\r'); i++) {
        size_t n = 0;
        CURLcode rc = curl_easy_recv(curl, line + got, size - 1 - got, &n);
        if (rc == CURLE_AGAIN) {
            cairn_sleep_ms(10);
            continue;
        }
        if (rc != CURLE_OK || n == 0) {
            break;
        }
        got += n;
        line[got] = '\0';
    }
    char *end = strchr(line, '\r');
    if (end) {
        *end = '\0';
    }
    curl_easy_cleanup(curl);
}

/* Requests whose framing or target could be read two ways are a 400, not silence and not
 * a guess: two Content-Length headers, an encoded NUL in the path or the query. */
static void test_ambiguous_requests(void **state) {
    (void)state;
    fixture f = {STATE_TEXT, NODE_TEXT, 0, 0, NULL, 0};
    start(&f);
    char line[256];
    raw_exchange(f.port,
                 "POST /state HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n"
                 "Content-Length: 2\r\n\r\n{}",
                 line, sizeof line);
    assert_string_equal(line, "HTTP/1.1 400 Bad Request");
    raw_exchange(f.port, "GET /state%00.html HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", line,
                 sizeof line);
    assert_string_equal(line, "HTTP/1.1 400 Bad Request");
    raw_exchange(f.port, "GET /state?x=%00 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", line, sizeof line);
    assert_string_equal(line, "HTTP/1.1 400 Bad Request");
    raw_exchange(f.port, "GET /state HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", line, sizeof line);
    assert_string_equal(line, "HTTP/1.1 200 OK");
    cairn_api_server_stop(f.server);
}

static void test_methods_and_headers(void **state) {
    (void)state;
    fixture f = {STATE_TEXT, NODE_TEXT, 0, 0, NULL, 0};
    start(&f);
    raw_answer a = {0};
    raw_request(f.port, "GET", "/state", &a);
    assert_int_equal(a.status, 200);
    assert_non_null(strstr(a.headers.data, "Content-Type: application/json\r\n"));
    assert_non_null(strstr(a.headers.data, "Cache-Control: no-store\r\n"));
    char length[64];
    snprintf(length, sizeof length, "Content-Length: %zu\r\n", strlen(STATE_TEXT));
    assert_non_null(strstr(a.headers.data, length));
    assert_string_equal(a.body.data, STATE_TEXT);
    raw_free(&a);

    memset(&a, 0, sizeof a);
    raw_request(f.port, "HEAD", "/node", &a);
    assert_int_equal(a.status, 200);
    snprintf(length, sizeof length, "Content-Length: %zu\r\n", strlen(NODE_TEXT));
    assert_non_null(strstr(a.headers.data, length));
    assert_string_equal(a.body.data, "");
    raw_free(&a);

    const char *methods[] = {"POST", "PUT", "DELETE", "OPTIONS"};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(methods); i++) {
        memset(&a, 0, sizeof a);
        raw_request(f.port, methods[i], "/state", &a);
        assert_int_equal(a.status, 405);
        assert_non_null(strstr(a.headers.data, "Allow: GET, HEAD\r\n"));
        assert_non_null(strstr(a.headers.data, "Cache-Control: no-store\r\n"));
        assert_non_null(strstr(a.body.data, "\"type\":\"method_not_allowed\""));
        raw_free(&a);
    }
    /* A request head over the limit gets civetweb's own error, in the API's JSON form. */
    char *big = malloc(20001);
    assert_non_null(big);
    memcpy(big, "X-Big: ", 7);
    memset(big + 7, 'b', 20000 - 7);
    big[20000] = '\0';
    struct curl_slist *headers = curl_slist_append(NULL, big);
    assert_non_null(headers);
    memset(&a, 0, sizeof a);
    raw_request_with(f.port, "GET", "/state", headers, &a);
    curl_slist_free_all(headers);
    free(big);
    printf("oversized request: %ld %s\n", a.status, a.body.data);
    assert_true(a.status >= 400 && a.status < 500);
    assert_non_null(strstr(a.headers.data, "Content-Type: application/json\r\n"));
    assert_non_null(strstr(a.body.data, "\"type\":\"bad_request\""));
    raw_free(&a);
    /* An unknown path is 404 whatever the method. */
    memset(&a, 0, sizeof a);
    raw_request(f.port, "POST", "/nope", &a);
    assert_int_equal(a.status, 404);
    raw_free(&a);
    cairn_api_server_stop(f.server);
}

/* ---- client errors ---- */

static void test_connection_refused(void **state) {
    (void)state;
    fixture f = {STATE_TEXT, NODE_TEXT, 0, 0, NULL, 0};
    start(&f);
    uint16_t port = f.port;
    cairn_api_server_stop(f.server);
    char expected[128];
    snprintf(expected, sizeof expected,
             "cannot connect to 127.0.0.1:%u: is a node running? (cairn run)", (unsigned)port);
    cairn_err err = {{0}};
    char *body = (char *)"untouched";
    long status = -1;
    assert_int_equal(
        cairn_api_get("127.0.0.1", port, "/state", 1024, TIMEOUT_MS, &body, &status, &err), -1);
    assert_string_equal(err.msg, expected);
    assert_null(body);
    assert_int_equal(status, 0);
}

static void test_body_limit(void **state) {
    (void)state;
    fixture f = {STATE_TEXT, NODE_TEXT, 100000, 0, NULL, 0};
    start(&f);
    char *body = NULL;
    /* Exactly the limit is fine, one byte less is not. */
    assert_int_equal(get(&f, "/node", 100000, &body), 200);
    assert_int_equal(strlen(body), 100000);
    free(body);
    cairn_err err = {{0}};
    long status = 0;
    assert_int_equal(
        cairn_api_get("127.0.0.1", f.port, "/node", 99999, TIMEOUT_MS, &body, &status, &err), -1);
    assert_non_null(strstr(err.msg, "is larger than 99999 bytes"));
    assert_null(body);
    cairn_api_server_stop(f.server);
}

static void test_timeout(void **state) {
    (void)state;
    fixture f = {STATE_TEXT, NODE_TEXT, 0, 1000, NULL, 0};
    start(&f);
    cairn_err err = {{0}};
    char *body = NULL;
    long status = 0;
    assert_int_equal(cairn_api_get("127.0.0.1", f.port, "/state", 1024, 200, &body, &status, &err),
                     -1);
    char expected[128];
    snprintf(expected, sizeof expected, "127.0.0.1:%u did not answer /state within 200 ms",
             (unsigned)f.port);
    assert_string_equal(err.msg, expected);
    /* Stop waits for the sleeping callback. */
    cairn_api_server_stop(f.server);
}

/* ---- listening ---- */

static void keep_line(void *user, cairn_log_level level, const char *line, size_t len) {
    (void)level;
    cairn_buf *lines = user;
    assert_int_equal(cairn_buf_append(lines, line, len), 0);
    assert_int_equal(cairn_buf_putc(lines, '\n'), 0);
}

static void test_port_in_use(void **state) {
    (void)state;
    fixture a = {STATE_TEXT, NODE_TEXT, 0, 0, NULL, 0};
    fixture b = a;
    start(&a);
    /* civetweb's own account of the failure goes to the logger, as a warning. */
    cairn_logger log;
    cairn_logger_init(&log, CAIRN_LOG_WARN, "n1", NULL);
    cairn_buf lines = {0};
    cairn_log_set_sink(&log, keep_line, &lines);
    cairn_api_config cfg = {"127.0.0.1", a.port, &log, state_cb, node_cb, NULL, &b,
                            NULL,        NULL,   NULL, 0,        0,       0,    0};
    cairn_err err = {{0}};
    assert_int_equal(cairn_api_server_start(&cfg, &b.server, &err), -1);
    assert_null(b.server);
    assert_non_null(lines.data);
    assert_non_null(strstr(lines.data, " WARN  [n1] api: cannot bind to 127.0.0.1:"));
    cairn_buf_free(&lines);
    char expected[128];
    snprintf(expected, sizeof expected,
             "cannot listen on 127.0.0.1:%u: address already in use: is another node running?",
             (unsigned)a.port);
    assert_string_equal(err.msg, expected);
    /* The first server still answers. */
    char *body = NULL;
    assert_int_equal(get(&a, "/state", 1024, &body), 200);
    free(body);
    cairn_api_server_stop(a.server);
}

static void test_hosts(void **state) {
    (void)state;
    fixture f = {STATE_TEXT, NODE_TEXT, 0, 0, NULL, 0};
    cairn_err err = {{0}};
    assert_int_equal(start_on(&f, "example.com", 0, &err), -1);
    assert_string_equal(err.msg, "cannot listen on example.com:0: not an IP address (give one "
                                 "such as 127.0.0.1, 0.0.0.0 or ::)");
    assert_int_equal(start_on(&f, "localhost", 0, &err), 0);
    char *body = NULL;
    assert_int_equal(get(&f, "/state", 1024, &body), 200);
    free(body);
    cairn_api_server_stop(f.server);
    /* Two servers at once, then stopped in the order they started (civetweb's library
     * initialisation is counted). */
    fixture g = f;
    start(&f);
    start(&g);
    assert_int_not_equal(f.port, g.port);
    cairn_api_server_stop(f.server);
    assert_int_equal(get(&g, "/node", 1024, &body), 200);
    free(body);
    cairn_api_server_stop(g.server);
    cairn_api_server_stop(NULL);
}

static void test_ipv6(void **state) {
    (void)state;
    fixture f = {STATE_TEXT, NODE_TEXT, 0, 0, NULL, 0};
    cairn_err err = {{0}};
    int rc = start_on(&f, "::1", 0, &err);
    if (!mg_check_feature(MG_FEATURES_IPV6)) {
        printf("ipv6: this civetweb was built without IPv6: the server is checked to refuse "
               "[::1] clearly, the client against a closed [::1] port\n");
        assert_int_equal(rc, -1);
        assert_string_equal(err.msg, "cannot listen on [::1]:0: this build's HTTP server "
                                     "(civetweb) has no IPv6 support; use an IPv4 address "
                                     "such as 0.0.0.0");
        /* The client still speaks IPv6: a closed port on ::1 gives the bracketed message. */
        fixture v4 = f;
        start(&v4);
        uint16_t port = v4.port;
        cairn_api_server_stop(v4.server);
        char *body = NULL;
        long status = 0;
        assert_int_equal(
            cairn_api_get("::1", port, "/state", 1024, TIMEOUT_MS, &body, &status, &err), -1);
        char expected[128];
        snprintf(expected, sizeof expected,
                 "cannot connect to [::1]:%u: is a node running? (cairn run)", (unsigned)port);
        assert_string_equal(err.msg, expected);
        return;
    }
    if (rc != 0) {
        printf("ipv6: ::1 is not available here (%s): IPv4 only\n", err.msg);
        return;
    }
    char *body = NULL;
    long status = 0;
    assert_int_equal(cairn_api_get("::1", f.port, "/state", 1024, TIMEOUT_MS, &body, &status, &err),
                     0);
    assert_int_equal(status, 200);
    assert_string_equal(body, STATE_TEXT);
    free(body);
    cairn_api_server_stop(f.server);
}

static void test_parse_address(void **state) {
    (void)state;
    char host[64];
    uint16_t port = 0;
    cairn_err err = {{0}};
    assert_int_equal(cairn_parse_address("10.0.0.2:80", 1, host, sizeof host, &port, &err), 0);
    assert_string_equal(host, "10.0.0.2");
    assert_int_equal(port, 80);
    assert_int_equal(cairn_parse_address("node-a", 52415, host, sizeof host, &port, &err), 0);
    assert_string_equal(host, "node-a");
    assert_int_equal(port, 52415);
    assert_int_equal(cairn_parse_address("[fe80::1%eth0]:9", 1, host, sizeof host, &port, &err), 0);
    assert_string_equal(host, "fe80::1%eth0");
    assert_int_equal(port, 9);
    assert_int_equal(cairn_parse_address("[::1]", 7, host, sizeof host, &port, &err), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 7);
    const char *bad[] = {"",       ":80",  "h:",     "h:0",   "h:65536",   "h:-1",  "h:8x", "::1",
                         "::1:80", "[::1", "[::1]x", "[]:80", "[::1]:abc", "h: 80", "h:+80"};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(bad); i++) {
        err.msg[0] = '\0';
        if (cairn_parse_address(bad[i], 1, host, sizeof host, &port, &err) != -1) {
            print_error("'%s' was accepted\n", bad[i]);
            fail();
        }
        assert_true(err.msg[0] != '\0');
    }
    char tiny[4];
    assert_int_equal(cairn_parse_address("abcd:1", 1, tiny, sizeof tiny, &port, &err), -1);
    /* A default port of 0 makes the port required (as --peer does). */
    assert_int_equal(cairn_parse_address("10.0.0.2", 0, host, sizeof host, &port, &err), -1);
    assert_int_equal(cairn_parse_address("[::1]", 0, host, sizeof host, &port, &err), -1);
    assert_int_equal(cairn_parse_address("[::1]:5", 0, host, sizeof host, &port, &err), 0);
}

/* ---- the nodes table ---- */

static char *print_to_string(const char *json, int *rc, cairn_err *err) {
    FILE *f = tmpfile();
    assert_non_null(f);
    *rc = cairn_api_print_nodes(json, f, err);
    long size = ftell(f);
    assert_true(size >= 0);
    char *text = calloc((size_t)size + 1, 1);
    assert_non_null(text);
    rewind(f);
    assert_int_equal(fread(text, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    return text;
}

static void apply_ok(cairn_cluster_state *s, cairn_event *e) {
    cairn_err err = {{0}};
    e->index = s->last_index + 1;
    if (e->type != CAIRN_EVENT_MASTER_ELECTED) {
        e->term = s->term;
    }
    if (cairn_state_apply(s, e, &err) != 0) {
        print_error("apply: %s\n", err.msg);
        fail();
    }
}

static void join(cairn_cluster_state *s, const char *id, const char *host, uint16_t port) {
    cairn_event e = {0};
    e.type = CAIRN_EVENT_NODE_JOINED;
    snprintf(e.as.node_joined.node_id, sizeof e.as.node_joined.node_id, "%s", id);
    snprintf(e.as.node_joined.name, sizeof e.as.node_joined.name, "%s", id);
    e.as.node_joined.n_addresses = 1;
    snprintf(e.as.node_joined.addresses[0].host, CAIRN_STATE_HOST_SIZE, "%s", host);
    e.as.node_joined.addresses[0].port = port;
    apply_ok(s, &e);
}

static cairn_cluster_state *sample_state(void) {
    cairn_err err = {{0}};
    cairn_cluster_state *s = cairn_state_new("home", &err);
    assert_non_null(s);
    cairn_event e = {0};
    e.type = CAIRN_EVENT_MASTER_ELECTED;
    e.term = 3;
    snprintf(e.as.master_elected.master_id, CAIRN_STATE_ID_SIZE, "alpha");
    apply_ok(s, &e);
    join(s, "alpha", "192.168.1.10", 52416);
    join(s, "beta", "fe80::2", 52416);

    cairn_event *p = calloc(1, sizeof *p);
    assert_non_null(p);
    p->type = CAIRN_EVENT_NODE_PROFILE_UPDATED;
    snprintf(p->as.node_profile_updated.node_id, CAIRN_STATE_ID_SIZE, "alpha");
    cairn_node_profile *pr = &p->as.node_profile_updated.profile;
    pr->memory_total = UINT64_C(25125558272); /* 23.4 GiB */
    pr->memory_available = UINT64_C(12025908428);
    snprintf(pr->cpu_model, sizeof pr->cpu_model,
             "Intel(R) Core(TM) i7-8550U CPU @ 1.80GHz with a very long name");
    pr->cpu_cores = 8;
    snprintf(pr->os, sizeof pr->os, "linux 6.1");
    pr->n_model_files = 2;
    snprintf(pr->model_files[0].name, CAIRN_STATE_NAME_SIZE, "a.gguf");
    snprintf(pr->model_files[1].name, CAIRN_STATE_NAME_SIZE, "b.gguf");
    apply_ok(s, p);
    free(p);

    e = (cairn_event){0};
    e.type = CAIRN_EVENT_NODE_CONNECTION_CHANGED;
    snprintf(e.as.node_connection_changed.node_id, CAIRN_STATE_ID_SIZE, "beta");
    e.as.node_connection_changed.connected = false;
    apply_ok(s, &e);
    return s;
}

static void test_print_nodes(void **state) {
    (void)state;
    cairn_cluster_state *s = sample_state();
    cairn_err err = {{0}};
    char *json = cairn_state_snapshot_json(s, &err);
    assert_non_null(json);
    int rc = -1;
    char *text = print_to_string(json, &rc, &err);
    assert_int_equal(rc, 0);
    printf("%s", text);
    const char *expected =
        "cluster home, master alpha, term 3, last index 5, 2 nodes\n"
        "NODE     ADDRESS             LINK  MEMORY         CPU                             "
        "OS         MODELS\n"
        "alpha *  192.168.1.10:52416  up    11.2/23.4 GiB  8x Intel(R) Core(TM) i7-855...  "
        "linux 6.1  2\n"
        "beta     [fe80::2]:52416     down  -              -                               "
        "-          0\n";
    assert_string_equal(text, expected);
    free(text);
    free(json);
    free(s);
}

static void test_print_empty_cluster(void **state) {
    (void)state;
    cairn_err err = {{0}};
    cairn_cluster_state *s = cairn_state_new("fresh", &err);
    assert_non_null(s);
    char *json = cairn_state_snapshot_json(s, &err);
    assert_non_null(json);
    int rc = -1;
    char *text = print_to_string(json, &rc, &err);
    assert_int_equal(rc, 0);
    assert_string_equal(text, "cluster fresh, master none elected, term 0, last index 0, "
                              "0 nodes\n");
    free(text);
    free(json);
    free(s);
}

static void test_print_malformed(void **state) {
    (void)state;
    const char *not_json[] = {"", "{", "nodes", "{\"nodes\":[}", "{} x", "\"\\u12\""};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(not_json); i++) {
        cairn_err err = {{0}};
        int rc = 0;
        char *text = print_to_string(not_json[i], &rc, &err);
        assert_int_equal(rc, -1);
        assert_non_null(strstr(err.msg, "the cluster state is not valid JSON"));
        assert_string_equal(text, "");
        free(text);
    }
    const char *not_object[] = {"[]", "null", "42", "\"x\"", "true"};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(not_object); i++) {
        cairn_err err = {{0}};
        int rc = 0;
        char *text = print_to_string(not_object[i], &rc, &err);
        assert_int_equal(rc, -1);
        assert_string_equal(err.msg, "the cluster state is not a JSON object");
        free(text);
    }
    /* Odd but well-formed answers print, with "-" where a field is missing or mistyped. */
    const char *odd[] = {
        "{}",
        "{\"nodes\":5,\"term\":-1,\"last_index\":1e300,\"cluster\":7,\"master\":null}",
        "{\"nodes\":[1,\"x\",null,[],{}]}",
        "{\"nodes\":[{\"id\":5,\"addresses\":{},\"connected\":\"yes\",\"profile\":[]}]}",
        "{\"nodes\":[{\"id\":\"a\",\"addresses\":[{\"host\":\"h\"}],\"profile\":"
        "{\"memory_total\":-5,\"cpu_cores\":1e20,\"cpu_model\":[],\"model_files\":{}}}]}",
        "{\"nodes\":[{\"id\":\"a\",\"profile\":{\"memory_total\":1e15,\"memory_available\":"
        "\"x\",\"cpu_cores\":0.5,\"os\":\"\"}}]}",
    };
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(odd); i++) {
        cairn_err err = {{0}};
        int rc = -1;
        char *text = print_to_string(odd[i], &rc, &err);
        if (rc != 0) {
            print_error("'%s': %s\n", odd[i], err.msg);
            fail();
        }
        assert_true(strncmp(text, "cluster ", 8) == 0);
        free(text);
    }
}

static void test_print_hostile_text(void **state) {
    (void)state;
    /* Control characters (a terminal escape), invalid UTF-8 and very long text are made
     * harmless; multi-byte characters stay and count as one column each. */
    const char *json = "{\"cluster\":\"c\\u001b[31m\",\"master\":\"\\u00e9t\\u00e9\","
                       "\"nodes\":[{\"id\":\"\\u00e9t\\u00e9\",\"connected\":true,"
                       "\"profile\":{\"os\":\"\xff\xfe\",\"cpu_model\":\"" /* 300 chars */
                       "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                       "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                       "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                       "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                       "xxxx\"}}]}";
    cairn_err err = {{0}};
    int rc = -1;
    char *text = print_to_string(json, &rc, &err);
    assert_int_equal(rc, 0);
    printf("%s", text);
    assert_null(strchr(text, '\x1b'));
    assert_null(strchr(text, '\xff'));
    assert_non_null(strstr(text, "cluster c?[31m, master \xc3\xa9t\xc3\xa9,"));
    assert_non_null(strstr(text, "\n\xc3\xa9t\xc3\xa9 *  -        up    -       "));
    assert_non_null(strstr(text, "xxx...  ??"));
    free(text);

    /* Deep nesting is refused by the parser rather than overflowing the stack. */
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 1);
    assert_non_null(deep);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    deep[2 * depth] = '\0';
    text = print_to_string(deep, &rc, &err);
    assert_int_equal(rc, -1);
    free(text);
    free(deep);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_callback_error_is_503),
        cmocka_unit_test(test_missing_callback_is_404),
        cmocka_unit_test(test_fetch),
        cmocka_unit_test(test_methods_and_headers),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_body_limit),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_port_in_use),
        cmocka_unit_test(test_hosts),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_parse_address),
        cmocka_unit_test(test_print_nodes),
        cmocka_unit_test(test_api_key),
        cmocka_unit_test(test_browser_guards),
        cmocka_unit_test(test_ambiguous_requests),
        cmocka_unit_test(test_print_empty_cluster),
        cmocka_unit_test(test_print_malformed),
        cmocka_unit_test(test_print_hostile_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
