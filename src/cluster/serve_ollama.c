/*
 * serve_ollama: the Ollama-compatible paths of a node's API, for the tools that speak it.
 * POST /api/generate and POST /api/chat run a relay (serve.c) and answer with one JSON
 * object per line (NDJSON, streamed unless "stream": false); GET /api/tags and /api/ps list
 * the models placed on the cluster; GET /api/version names the version.
 *
 * Owns nothing between calls. Must never touch the cluster state from an API thread.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/serve_internal.h"
#include "platform/platform.h"
#include "sampling/sampling.h"
#include "util/log.h"

typedef struct ollama_reply {
    const cairn_api_call *call;
    bool chat, stream;
    char model[CAIRN_STATE_NAME_SIZE];
    cairn_buf text;
    relay_outcome out;
    bool logprobs;   /* the request asked for them */
    cJSON *whole_lp; /* the whole answer's entries, token by token */
} ollama_reply;

static void ollama_error(const cairn_api_call *call, int status, const char *message) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", message);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    cairn_api_reply_json(call->reply, status, text ? text : "{}");
    free(text);
}

static void created_at(char *out, size_t size) {
    cairn_log_format_timestamp(cairn_wall_clock_ms(), out, size);
}

/* One answer line: a piece of text, or (done) the end with its counts; logprobs (taken, may
 * be NULL) lists its tokens' log-probabilities. */
static cJSON *line(const ollama_reply *o, const char *text, bool done, cJSON *logprobs) {
    char when[32];
    created_at(when, sizeof when);
    cJSON *l = cJSON_CreateObject();
    cJSON_AddStringToObject(l, "model", o->model);
    cJSON_AddStringToObject(l, "created_at", when);
    if (o->chat) {
        cJSON *m = cJSON_AddObjectToObject(l, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddStringToObject(m, "content", text);
    } else {
        cJSON_AddStringToObject(l, "response", text);
    }
    if (logprobs) {
        cJSON_AddItemToObject(l, "logprobs", logprobs);
    }
    cJSON_AddBoolToObject(l, "done", done);
    if (done) {
        cJSON_AddStringToObject(l, "done_reason", o->out.finish);
        cJSON_AddNumberToObject(l, "prompt_eval_count", o->out.prompt_tokens);
        cJSON_AddNumberToObject(l, "eval_count", o->out.completion_tokens);
    }
    return l;
}

static int write_line(ollama_reply *o, cJSON *l) {
    char *text = cJSON_PrintUnformatted(l);
    cJSON_Delete(l);
    cairn_buf b = {0};
    int rc = text && cairn_buf_printf(&b, "%s\n", text) == 0
                 ? cairn_api_stream_write(o->call->reply, b.data, b.len)
                 : -1;
    cairn_buf_free(&b);
    free(text);
    return rc;
}

static int on_ollama_event(void *user, const cJSON *event) {
    ollama_reply *o = user;
    const char *text = relay_outcome_take(&o->out, event);
    if (!text) {
        return 0;
    }
    const cJSON *report = o->logprobs ? cJSON_GetObjectItemCaseSensitive(event, "logprobs") : NULL;
    cJSON *entry = report ? logprobs_entry(report) : NULL;
    if (!o->stream) {
        if (entry && !cJSON_AddItemToArray(o->whole_lp, entry)) {
            cJSON_Delete(entry);
        }
        return cairn_buf_puts(&o->text, text) != 0 ? -1 : 0;
    }
    cJSON *entries = entry ? cJSON_CreateArray() : NULL;
    if (entries && !cJSON_AddItemToArray(entries, entry)) {
        cJSON_Delete(entry);
    }
    if ((*text || entries) && write_line(o, line(o, text, false, entries)) != 0) {
        return -1;
    }
    return o->out.done ? write_line(o, line(o, "", true, NULL)) : 0;
}

static void serve_generation(cairn_local_node *n, const cairn_api_call *call, bool chat) {
    ollama_reply o = {.call = call, .chat = chat};
    cairn_err err = {{0}};
    int status = 0;
    relay *r =
        relay_new(n, call, chat ? CAIRN_API_OLLAMA_CHAT : CAIRN_API_OLLAMA_GENERATE, &status, &err);
    if (!r) {
        ollama_error(call, status, err.msg);
        return;
    }
    o.stream = r->req.stream;
    o.logprobs = r->req.gen.logprobs;
    snprintf(o.model, sizeof o.model, "%s", r->req.model);
    if (o.logprobs && !o.stream && !(o.whole_lp = cJSON_CreateArray())) {
        o.logprobs = false;
    }
    if (relay_start(r) != 0) {
        ollama_error(call, 503, "the node is shutting down");
        relay_free(r);
        cJSON_Delete(o.whole_lp);
        return;
    }
    if (o.stream) {
        cairn_api_stream_begin(call->reply, "application/x-ndjson");
    }
    relay_drain(r, on_ollama_event, &o); /* r belongs to the loop now */
    if (o.out.failed && o.stream) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "error", o.out.error);
        write_line(&o, e);
    } else if (o.out.failed || !o.out.done) {
        ollama_error(call, o.out.failed && o.out.refused ? 400 : 503,
                     o.out.failed ? o.out.error : "the stream ended early");
    } else if (!o.stream) {
        char *text = cairn_buf_take(&o.text);
        cJSON *l = line(&o, text ? text : "", true, o.whole_lp);
        o.whole_lp = NULL;
        free(text);
        char *json = cJSON_PrintUnformatted(l);
        cJSON_Delete(l);
        cairn_api_reply_json(call->reply, 200, json ? json : "{}");
        free(json);
    }
    cJSON_Delete(o.whole_lp);
    cairn_buf_free(&o.text);
}

typedef struct tag_list {
    cJSON *models;
} tag_list;

static void list_tags(cairn_local_node *n, void *arg) {
    tag_list *t = arg;
    const cairn_instance *placed[CAIRN_STATE_MAX_INSTANCES];
    size_t count = placed_models(n, placed, CAIRN_STATE_MAX_INSTANCES);
    for (size_t i = 0; i < count; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", placed[i]->model);
        cJSON_AddStringToObject(o, "model", placed[i]->model);
        cJSON_AddStringToObject(o, "digest", placed[i]->model_sha256);
        cJSON_AddItemToArray(t->models, o);
    }
}

static void serve_tags(cairn_local_node *n, const cairn_api_call *call) {
    tag_list t = {cJSON_CreateArray()};
    if (!t.models || run_on_loop(n, list_tags, &t) != 0) {
        cJSON_Delete(t.models);
        ollama_error(call, 503, "the node is shutting down");
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "models", t.models);
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    cairn_api_reply_json(call->reply, 200, json ? json : "{}");
    free(json);
}

int serve_ollama(cairn_local_node *n, const cairn_api_call *call) {
    bool post = strcmp(call->method, "POST") == 0, get = strcmp(call->method, "GET") == 0;
    if (post && strcmp(call->path, "/api/chat") == 0) {
        serve_generation(n, call, true);
    } else if (post && strcmp(call->path, "/api/generate") == 0) {
        serve_generation(n, call, false);
    } else if (get &&
               (strcmp(call->path, "/api/tags") == 0 || strcmp(call->path, "/api/ps") == 0)) {
        serve_tags(n, call);
    } else if (get && strcmp(call->path, "/api/version") == 0) {
        cairn_api_reply_json(call->reply, 200, "{\"version\":\"" CAIRN_VERSION "\"}");
    } else {
        return 1;
    }
    return 0;
}
