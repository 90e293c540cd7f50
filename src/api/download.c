/*
 * download: fetches a file over HTTP(S) into place, for `cairn pull`. The bytes go to
 * PATH.part, which survives an interrupted transfer: the next attempt asks only for the
 * rest (a Range request), within one run and across runs. The file is checked against the
 * SHA-256 the server names (Hugging Face's X-Linked-ETag for LFS files, or an ETag of 64
 * hex digits) before it is renamed to PATH, so a truncated or corrupted download never
 * looks like a model.
 *
 * Owns its transfer and the .part file. Must never leave a file under PATH that was not
 * verified (when the server names a hash), nor follow a redirect to anything but HTTP(S).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "api/api.h"
#include "platform/platform.h"
#include "util/json.h"

#define DOWNLOAD_ATTEMPTS 5

typedef struct transfer {
    FILE *out;
    char sha256[65]; /* from the headers, "" when the server names none */
    const cairn_download_options *opt;
    curl_off_t resumed_from;
    bool write_failed;
} transfer;

static size_t on_body(char *data, size_t size, size_t n, void *user) {
    transfer *t = user;
    size_t len = size * n;
    if (fwrite(data, 1, len, t->out) != len) {
        t->write_failed = true;
        return 0;
    }
    return len;
}

static bool starts_with_nocase(const char *line, size_t len, const char *prefix) {
    size_t n = strlen(prefix);
    if (len <= n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (tolower((unsigned char)line[i]) != prefix[i]) {
            return false;
        }
    }
    return true;
}

/* X-Linked-ETag: "<64 hex>" (or ETag of that shape) names the file's SHA-256. */
static void header_hash(const char *line, size_t len, char out[65]) {
    const char *names[] = {"x-linked-etag:", "etag:"};
    for (size_t i = 0; i < 2; i++) {
        size_t nl = strlen(names[i]);
        if (!starts_with_nocase(line, len, names[i])) {
            continue;
        }
        const char *v = line + nl;
        while (*v == ' ' || *v == '"' || *v == 'W' || *v == '/') {
            v++;
        }
        size_t hex = 0;
        while (hex < 64 && isxdigit((unsigned char)v[hex])) {
            hex++;
        }
        if (hex == 64 && !isxdigit((unsigned char)v[64]) && (i == 0 || !out[0])) {
            for (size_t k = 0; k < 64; k++) {
                out[k] = (char)tolower((unsigned char)v[k]);
            }
            out[64] = '\0';
        }
    }
}

static size_t on_header(char *data, size_t size, size_t n, void *user) {
    transfer *t = user;
    header_hash(data, size * n, t->sha256);
    return size * n;
}

static int on_progress(void *user, curl_off_t total, curl_off_t now, curl_off_t up_total,
                       curl_off_t up_now) {
    (void)up_total;
    (void)up_now;
    transfer *t = user;
    if (t->opt->progress && total > 0) {
        t->opt->progress(t->opt->user, (uint64_t)(t->resumed_from + now),
                         (uint64_t)(t->resumed_from + total));
    }
    return 0;
}

/* What every transfer of a pull sets: the URL, redirects within HTTP(S) only, no signals,
 * the bearer token when there is one, the error buffer and the user agent. Returns the
 * header list the caller frees after the transfer (NULL without a token). */
static struct curl_slist *setup_common(CURL *curl, const char *url, const char *token,
                                       char *detail) {
    struct curl_slist *headers = NULL;
    if (token && *token) {
        char auth[1024];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        headers = curl_slist_append(NULL, auth);
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, detail);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "cairn/" CAIRN_VERSION);
    return headers;
}

/* One attempt: appends to part from where it ends. */
static CURLcode attempt(const char *url, const char *part, transfer *t, long *status,
                        char *detail) {
    int64_t have = cairn_file_size(part);
    t->resumed_from = have > 0 ? (curl_off_t)have : 0;
    t->out = cairn_fopen(part, "ab");
    if (!t->out) {
        return CURLE_WRITE_ERROR;
    }
    CURL *curl = curl_easy_init();
    struct curl_slist *headers = NULL;
    CURLcode rc = CURLE_FAILED_INIT;
    if (curl) {
        headers = setup_common(curl, url, t->opt->token, detail);
        curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L);
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 30000L);
        /* a stalled transfer (under 1 KiB/s for a minute) is retried rather than awaited */
        curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1024L);
        curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 60L);
        curl_easy_setopt(curl, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)t->resumed_from);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, t);
        curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(curl, CURLOPT_HEADERDATA, t);
        curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(curl, CURLOPT_XFERINFODATA, t);
        rc = curl_easy_perform(curl);
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
        curl_easy_cleanup(curl);
    }
    curl_slist_free_all(headers);
    if (fclose(t->out) != 0) {
        t->write_failed = true;
    }
    return t->write_failed ? CURLE_WRITE_ERROR : rc;
}

static int verify_and_place(const char *part, const char *path, const char *want, cairn_err *err) {
    if (want[0]) {
        char got[65];
        if (cairn_file_sha256(part, got, err) != 0) {
            return -1;
        }
        if (strcmp(got, want) != 0) {
            remove(part);
            return cairn_fail(err,
                              "the download's checksum is wrong (sha256 %.12s..., the server "
                              "names %.12s...): it was deleted",
                              got, want);
        }
    }
    if (cairn_replace_file(part, path, err) != 0) {
        return -1;
    }
    return 0;
}

/* One name of a repository path: [A-Za-z0-9._-], not empty, "." or "..". */
static bool name_ok(const char *s, size_t n) {
    if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

/* The number of '/'-separated names in path when each is fine, else 0. */
static int path_names(const char *path) {
    size_t len = path ? strlen(path) : 0;
    if (len == 0 || len > CAIRN_HF_FILE_MAX) {
        return 0;
    }
    int names = 0;
    for (const char *seg = path; seg; names++) {
        const char *slash = strchr(seg, '/');
        if (!name_ok(seg, slash ? (size_t)(slash - seg) : strlen(seg))) {
            return 0;
        }
        seg = slash ? slash + 1 : NULL;
    }
    return names;
}

bool cairn_hf_repo_ok(const char *repo) {
    return path_names(repo) == 2;
}

bool cairn_hf_file_ok(const char *file) {
    if (path_names(file) == 0) {
        return false;
    }
    const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
    return base[0] != '.'; /* hidden, like the .part files downloads go through */
}

int cairn_download(const char *url, const char *path, const cairn_download_options *opt,
                   char sha256[65], cairn_err *err) {
    char part[4096];
    if (snprintf(part, sizeof part, "%s.part", path) >= (int)sizeof part) {
        return cairn_fail(err, "the path is too long: %s", path);
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return cairn_fail(err, "cannot initialise libcurl");
    }
    transfer t = {.opt = opt};
    CURLcode rc = CURLE_OK;
    long status = 0;
    char detail[CURL_ERROR_SIZE] = "";
    for (int i = 0; i < DOWNLOAD_ATTEMPTS; i++) {
        detail[0] = '\0';
        t.write_failed = false;
        rc = attempt(url, part, &t, &status, detail);
        /* 416: the part already holds the whole file */
        if (rc == CURLE_OK || status == 416 || rc == CURLE_WRITE_ERROR ||
            (status >= 400 && status < 500)) {
            break;
        }
        if (opt->on_retry) {
            opt->on_retry(opt->user, detail[0] ? detail : curl_easy_strerror(rc));
        }
    }
    curl_global_cleanup();
    if (rc != CURLE_OK && status != 416 && cairn_file_size(part) == 0) {
        remove(part); /* nothing to resume: leave no trace of a refused transfer */
    }
    if (rc != CURLE_OK && status != 416) {
        if (rc == CURLE_WRITE_ERROR) {
            return cairn_fail(err, "cannot write %s", part);
        }
        if (status >= 400) {
            return cairn_fail(err, "%s answered %ld%s", url, status,
                              status == 401 || status == 403
                                  ? " (a gated or private repository needs HF_TOKEN)"
                              : status == 404 ? " (no such repository or file)"
                                              : "");
        }
        return cairn_fail(err,
                          "downloading %s: %s (the partial file is kept; run again to "
                          "resume)",
                          url, detail[0] ? detail : curl_easy_strerror(rc));
    }
    if (sha256) {
        snprintf(sha256, 65, "%s", t.sha256);
    }
    return verify_and_place(part, path, t.sha256, err);
}

typedef struct small_body {
    cairn_buf buf;
    size_t max;
    bool too_large;
} small_body;

static size_t on_small(char *data, size_t size, size_t n, void *user) {
    small_body *b = user;
    size_t len = size * n;
    if (b->buf.len + len > b->max || cairn_buf_append(&b->buf, data, len) != 0) {
        b->too_large = true;
        return 0;
    }
    return len;
}

int cairn_fetch_url(const char *url, const char *token, size_t max_bytes, char **body, long *status,
                    cairn_err *err) {
    *body = NULL;
    *status = 0;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return cairn_fail(err, "cannot initialise libcurl");
    }
    CURL *curl = curl_easy_init();
    struct curl_slist *headers = NULL;
    small_body b = {.max = max_bytes};
    char detail[CURL_ERROR_SIZE] = "";
    CURLcode rc = CURLE_FAILED_INIT;
    if (curl) {
        headers = setup_common(curl, url, token, detail);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 60000L);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_small);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
        rc = curl_easy_perform(curl);
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
        curl_easy_cleanup(curl);
    }
    curl_slist_free_all(headers);
    curl_global_cleanup();
    if (rc != CURLE_OK || cairn_buf_putc(&b.buf, '\0') != 0) {
        cairn_buf_free(&b.buf);
        return cairn_fail(err, "%s: %s", url,
                          b.too_large ? "the answer is too large"
                          : detail[0] ? detail
                                      : curl_easy_strerror(rc));
    }
    *body = cairn_buf_take(&b.buf);
    return 0;
}

const char *cairn_hf_endpoint(void) {
    const char *e = getenv("CAIRN_HF_ENDPOINT");
    return e && *e ? e : "https://huggingface.co";
}

int cairn_hf_pick_gguf(const char *endpoint, const char *repo, const char *token, char *file,
                       size_t size, cairn_err *err) {
    char url[1024];
    snprintf(url, sizeof url, "%s/api/models/%s", endpoint, repo);
    char *body = NULL;
    long status = 0;
    if (cairn_fetch_url(url, token, (size_t)8 << 20, &body, &status, err) != 0) {
        return -1;
    }
    cairn_err why = {{0}};
    cJSON *o = status == 200 ? cairn_json_parse_str(body, "the listing", &why) : NULL;
    free(body);
    if (!o) {
        return status == 200
                   ? cairn_fail(err, "cannot list %s: %s", repo, why.msg)
                   : cairn_fail(err, "cannot list %s (%ld): no such repository?", repo, status);
    }
    int found = 0;
    cairn_buf names = {0};
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(o, "siblings")) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(s, "rfilename"));
        size_t len = name ? strlen(name) : 0;
        if (len > 5 && strcmp(name + len - 5, ".gguf") == 0) {
            if (found++ == 0) {
                snprintf(file, size, "%s", name);
            }
            cairn_buf_printf(&names, "%s%s", names.len ? ", " : "", name);
        }
    }
    cJSON_Delete(o);
    int rc = 0;
    if (found != 1) {
        rc = cairn_fail(err,
                        found ? "%s holds several GGUF files (%.300s): name one, REPO:FILE"
                              : "%s holds no GGUF file%.0s",
                        repo, names.data ? names.data : "");
    }
    cairn_buf_free(&names);
    return rc;
}
