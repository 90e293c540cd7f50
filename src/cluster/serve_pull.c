/*
 * serve_pull: POST /models/pull {"repo", "file"?}: a model file downloaded into this
 * node's models directory (the same resumable, checksummed transfer as `cairn pull`),
 * answered as NDJSON progress lines and a last {"status":"success",...} or {"error":...}.
 * The node's profile is refreshed right after, so the cluster sees the file (with its
 * hash) within moments.
 *
 * The transfer runs on the request's API thread; it reads only the node's models
 * directory, which never changes after start.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/serve_internal.h"
#include "platform/platform.h"
#include "util/json.h"

typedef struct pull_reply {
    const cairn_api_call *call;
    double last_shown;
    bool gone;
} pull_reply;

static void write_line(pull_reply *p, cJSON *o) {
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    cairn_buf b = {0};
    if (!p->gone && text && cairn_buf_printf(&b, "%s\n", text) == 0 &&
        cairn_api_stream_write(p->call->reply, b.data, b.len) != 0) {
        p->gone = true; /* the download goes on: the file is still wanted */
    }
    cairn_buf_free(&b);
    free(text);
}

static void on_pull_progress(void *user, uint64_t done, uint64_t total) {
    pull_reply *p = user;
    double now = cairn_now_seconds();
    if (now - p->last_shown < 0.25 && done < total) {
        return;
    }
    p->last_shown = now;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "downloading");
    cJSON_AddNumberToObject(o, "completed", (double)done);
    cJSON_AddNumberToObject(o, "total", (double)total);
    write_line(p, o);
}

static void refresh_profile(cairn_local_node *n, void *arg) {
    (void)arg;
    n->next_profile = 0;
}

static void pull(cairn_local_node *n, const char *repo, const char *given, pull_reply *p) {
    const char *token = getenv("HF_TOKEN");
    char file[512] = "";
    cairn_err err = {{0}};
    if (given) {
        snprintf(file, sizeof file, "%s", given);
    } else if (cairn_hf_pick_gguf(cairn_hf_endpoint(), repo, token, file, sizeof file, &err) != 0 ||
               (!cairn_hf_file_ok(file) &&
                cairn_fail(&err, "the repository lists a file name that cannot be pulled") != 0)) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "error", err.msg);
        write_line(p, e);
        return;
    }
    const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
    char url[2048], path[4096], sha[65] = "";
    snprintf(url, sizeof url, "%s/%s/resolve/main/%s", cairn_hf_endpoint(), repo, file);
    snprintf(path, sizeof path, "%s/%s", n->models_dir, base);
    cJSON *start = cJSON_CreateObject();
    cJSON_AddStringToObject(start, "status", "pulling");
    cJSON_AddStringToObject(start, "file", base);
    write_line(p, start);
    cairn_download_options opt = {token, on_pull_progress, NULL, p};
    cJSON *last = cJSON_CreateObject();
    if (cairn_download(url, path, &opt, sha, &err) != 0) {
        cJSON_AddStringToObject(last, "error", err.msg);
    } else {
        cJSON_AddStringToObject(last, "status", "success");
        cJSON_AddStringToObject(last, "file", base);
        cJSON_AddStringToObject(last, "sha256", sha);
        run_on_loop(n, refresh_profile, NULL);
    }
    write_line(p, last);
}

void serve_pull(cairn_local_node *n, const cairn_api_call *call) {
    cairn_err err = {{0}};
    cJSON *o = cairn_json_parse(call->body, call->body_len, "the body", &err);
    const char *repo = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "repo"));
    const cJSON *file = cJSON_GetObjectItemCaseSensitive(o, "file");
    bool file_ok = !file || cJSON_IsNull(file) || cairn_hf_file_ok(cJSON_GetStringValue(file));
    if (!o) {
        cairn_api_reply_error(call->reply, 400, "invalid_request", err.msg, NULL);
    } else if (!cJSON_IsObject(o) || !cairn_hf_repo_ok(repo) || !file_ok) {
        cairn_api_reply_error(call->reply, 400, "invalid_request",
                              "give {\"repo\":\"owner/name\"} and optionally \"file\" (a GGUF "
                              "file in it)",
                              NULL);
    } else if (cairn_api_stream_begin(call->reply, "application/x-ndjson") == 0) {
        pull_reply p = {.call = call};
        pull(n, repo, cJSON_GetStringValue(file), &p);
    }
    cJSON_Delete(o);
}
