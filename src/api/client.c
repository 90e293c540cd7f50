/* api: the HTTP client of the API, on libcurl (see api.h). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <sodium.h>

#include "api/api.h"
#include "util/json.h"

typedef struct get_sink {
    cairn_buf body;
    size_t max_bytes;
    bool too_large;
    bool out_of_memory;
    bool stopped;              /* on_data asked to stop */
    cairn_api_data_fn on_data; /* streams: bytes go here as they arrive once status is 200 */
    void *user;
    CURL *curl;
} get_sink;

/* Collects the body; returning less than given makes curl stop with CURLE_WRITE_ERROR. */
static size_t collect(char *data, size_t size, size_t n, void *user) {
    get_sink *sink = user;
    size_t len = size * n;
    long status = 0;
    curl_easy_getinfo(sink->curl, CURLINFO_RESPONSE_CODE, &status);
    if (sink->on_data && status == 200) {
        if (sink->on_data(sink->user, data, len) != 0) {
            sink->stopped = true;
            return 0;
        }
        return len;
    }
    if (len > sink->max_bytes - sink->body.len) {
        sink->too_large = true;
        return 0;
    }
    if (cairn_buf_append(&sink->body, data, len) != 0) {
        sink->out_of_memory = true;
        return 0;
    }
    return len;
}

/* "host:port" for messages, "[host]:port" for IPv6 addresses. */
static void format_where(const char *host, uint16_t port, char *out, size_t out_size) {
    bool v6 = strchr(host, ':') != NULL;
    snprintf(out, out_size, v6 ? "[%s]:%u" : "%s:%u", host, (unsigned)port);
}

/* http://host:port/path; an IPv6 zone id's '%' is written "%25" as URLs require. */
static int build_url(const char *host, uint16_t port, const char *path, cairn_buf *url,
                     cairn_err *err) {
    bool v6 = strchr(host, ':') != NULL;
    int rc = cairn_buf_puts(url, v6 ? "http://[" : "http://");
    for (const char *c = host; rc == 0 && *c; c++) {
        rc = *c == '%' ? cairn_buf_puts(url, "%25") : cairn_buf_putc(url, *c);
    }
    if (rc == 0) {
        rc = cairn_buf_printf(url, "%s:%u%s%s", v6 ? "]" : "", (unsigned)port,
                              path[0] == '/' ? "" : "/", path);
    }
    return rc == 0 ? 0 : cairn_fail(err, "out of memory");
}

static int transfer_failed(CURLcode rc, const get_sink *sink, const char *where, const char *path,
                           size_t max_bytes, long timeout_ms, const char *detail, cairn_err *err) {
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        return cairn_fail(err, "cannot connect to %s: is a node running? (cairn run)", where);
    case CURLE_OPERATION_TIMEDOUT:
        return cairn_fail(err, "%s did not answer %s within %ld ms", where, path, timeout_ms);
    case CURLE_FILESIZE_EXCEEDED:
        return cairn_fail(err, "the answer of %s to %s is larger than %zu bytes", where, path,
                          max_bytes);
    case CURLE_WRITE_ERROR:
        if (sink->too_large) {
            return cairn_fail(err, "the answer of %s to %s is larger than %zu bytes", where, path,
                              max_bytes);
        }
        if (sink->out_of_memory) {
            return cairn_fail(err, "out of memory reading the answer of %s", where);
        }
        if (sink->stopped) {
            return cairn_fail(err, "stopped reading the answer of %s to %s", where, path);
        }
        break;
    default: break;
    }
    return cairn_fail(err, "%s from %s: %s", path, where,
                      detail[0] ? detail : curl_easy_strerror(rc));
}

static bool configure(CURL *curl, const char *url, get_sink *sink, long timeout_ms, char *detail) {
    /* No proxy: the API is on this machine or the LAN, where an http_proxy from the
     * environment could not answer. No signals: curl's DNS timeouts would otherwise use
     * SIGALRM, which is unsafe with threads. HTTP only, and redirects are not followed. */
    return curl_easy_setopt(curl, CURLOPT_URL, url) == CURLE_OK &&
           curl_easy_setopt(curl, CURLOPT_PROXY, "") == CURLE_OK &&
           curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http") == CURLE_OK &&
           curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
           curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms) == CURLE_OK &&
           curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)sink->max_bytes) ==
               CURLE_OK &&
           curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect) == CURLE_OK &&
           curl_easy_setopt(curl, CURLOPT_WRITEDATA, sink) == CURLE_OK &&
           curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, detail) == CURLE_OK &&
           curl_easy_setopt(curl, CURLOPT_USERAGENT, "cairn/" CAIRN_VERSION) == CURLE_OK;
}

/* What is sent besides the GET default. */
typedef struct send_spec {
    const char *method;    /* NULL: GET */
    const char *json_body; /* NULL: none */
    const char *api_key;   /* NULL or "": no Authorization header */
} send_spec;

/* A key is a header value: a line break in it would smuggle in headers of its own. */
static bool header_safe(const char *value) {
    for (const unsigned char *c = (const unsigned char *)value; *c; c++) {
        if (*c < 0x20 || *c == 0x7f) {
            return false;
        }
    }
    return true;
}

static bool add_header(struct curl_slist **headers, const char *line) {
    struct curl_slist *more = curl_slist_append(*headers, line);
    if (!more) {
        return false;
    }
    *headers = more;
    return true;
}

static bool configure_send(CURL *curl, const send_spec *spec, struct curl_slist **headers) {
    bool ok = true;
    if (spec->api_key && spec->api_key[0]) {
        cairn_buf line = {0};
        ok = cairn_buf_printf(&line, "Authorization: Bearer %s", spec->api_key) == 0 &&
             add_header(headers, line.data);
        if (line.data) {
            sodium_memzero(line.data, line.len);
        }
        cairn_buf_free(&line);
    }
    if (ok && spec->method) {
        ok = curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, spec->method) == CURLE_OK;
    }
    if (ok && spec->method && spec->json_body) {
        ok = add_header(headers, "Content-Type: application/json") &&
             curl_easy_setopt(curl, CURLOPT_POSTFIELDS, spec->json_body) == CURLE_OK;
    }
    return ok && (!*headers || curl_easy_setopt(curl, CURLOPT_HTTPHEADER, *headers) == CURLE_OK);
}

static int perform(CURL *curl, const char *host, uint16_t port, const char *path,
                   const send_spec *spec, get_sink *sink, long timeout_ms, long *status,
                   cairn_err *err) {
    cairn_buf url = {0};
    if (build_url(host, port, path, &url, err) != 0) {
        return -1;
    }
    char detail[CURL_ERROR_SIZE] = "";
    char where[300];
    format_where(host, port, where, sizeof where);
    struct curl_slist *headers = NULL;
    sink->curl = curl;
    if (spec->api_key && !header_safe(spec->api_key)) {
        cairn_buf_free(&url);
        return cairn_fail(err, "the API key must not contain control characters");
    }
    if (!configure(curl, url.data, sink, timeout_ms, detail) ||
        !configure_send(curl, spec, &headers)) {
        cairn_buf_free(&url);
        curl_slist_free_all(headers);
        return cairn_fail(err, "%s from %s: this libcurl lacks an option cairn needs", path, where);
    }
    CURLcode rc = curl_easy_perform(curl);
    cairn_buf_free(&url);
    curl_slist_free_all(headers);
    if (rc != CURLE_OK) {
        return transfer_failed(rc, sink, where, path, sink->max_bytes, timeout_ms, detail, err);
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
    return 0;
}

int cairn_api_get(const char *host, uint16_t port, const char *path, size_t max_bytes,
                  long timeout_ms, char **body, long *status, cairn_err *err) {
    return cairn_api_send(host, port, NULL, NULL, path, NULL, max_bytes, timeout_ms, NULL, NULL,
                          body, status, err);
}

int cairn_api_send(const char *host, uint16_t port, const char *api_key, const char *method,
                   const char *path, const char *json_body, size_t max_bytes, long timeout_ms,
                   cairn_api_data_fn on_data, void *user, char **body, long *status,
                   cairn_err *err) {
    *body = NULL;
    *status = 0;
    /* Reference counted, and thread-safe in the libcurl versions cairn builds with. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return cairn_fail(err, "cannot initialise libcurl");
    }
    CURL *curl = curl_easy_init();
    if (!curl) {
        curl_global_cleanup();
        return cairn_fail(err, "cannot initialise libcurl");
    }
    get_sink sink = {.max_bytes = max_bytes, .on_data = on_data, .user = user};
    send_spec spec = {method, json_body, api_key};
    int rc = perform(curl, host, port, path, &spec, &sink, timeout_ms, status, err);
    curl_easy_cleanup(curl);
    curl_global_cleanup();
    if (rc != 0) {
        cairn_buf_free(&sink.body);
        return -1;
    }
    /* An empty body is still a string. */
    *body = sink.body.data ? cairn_buf_take(&sink.body) : cairn_strdup("");
    if (!*body) {
        return cairn_fail(err, "out of memory");
    }
    return 0;
}

/* The message of an API error answer, {"error":{"message":...}}; NULL if it has none. */
static char *error_message(const char *body) {
    cJSON *root = cairn_json_parse_str(body, "the answer", NULL);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
    char *msg = cJSON_IsString(m) ? cairn_strdup(m->valuestring) : NULL;
    cJSON_Delete(root);
    return msg;
}

int cairn_api_fetch(const char *host, uint16_t port, const char *api_key, const char *path,
                    size_t max_bytes, long timeout_ms, char **body, cairn_err *err) {
    long status = 0;
    if (cairn_api_send(host, port, api_key, NULL, path, NULL, max_bytes, timeout_ms, NULL, NULL,
                       body, &status, err) != 0) {
        return -1;
    }
    return cairn_api_answer_ok(host, port, path, status, body, err);
}

int cairn_api_answer_ok(const char *host, uint16_t port, const char *path, long status, char **body,
                        cairn_err *err) {
    if (status >= 200 && status < 300) {
        return 0;
    }
    char where[300];
    format_where(host, port, where, sizeof where);
    char *msg = error_message(*body);
    if (msg) {
        char shown[256];
        cairn_utf8_printable_copy(shown, sizeof shown, msg);
        cairn_fail(err, "%s answered %ld to %s: %s", where, status, path, shown);
    } else {
        cairn_fail(err, "%s answered %ld to %s (is it a cairn node?)", where, status, path);
    }
    free(msg);
    free(*body);
    *body = NULL;
    return -1;
}

char *cairn_api_url_escape(const char *text) {
    char *escaped = curl_easy_escape(NULL, text, 0);
    char *copy = escaped ? cairn_strdup(escaped) : NULL;
    curl_free(escaped);
    return copy;
}
