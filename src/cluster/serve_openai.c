/*
 * serve_openai: the OpenAI-compatible paths of a node's API. GET /v1/models lists the
 * models placed on the cluster; POST /v1/completions and POST /v1/chat/completions run a
 * relay (serve.c) and shape its events as OpenAI's answers: one JSON object, or with
 * "stream" server-sent chunks ending in "data: [DONE]". Errors take OpenAI's form,
 * {"error":{"message","type","param","code"}}.
 *
 * Owns nothing between calls. Must never touch the cluster state from an API thread: the
 * model list is read on the loop.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/serve_internal.h"
#include "platform/platform.h"
#include "sampling/sampling.h"

static void openai_error(const cairn_api_call *call, int status, const char *type,
                         const char *message) {
    cJSON *o = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddStringToObject(e, "type", type);
    cJSON_AddNullToObject(e, "param");
    cJSON_AddNullToObject(e, "code");
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    cairn_api_reply_json(call->reply, status, text ? text : "{\"error\":{}}");
    free(text);
}

/* ---- GET /v1/models ---- */

typedef struct model_list {
    cJSON *data;
} model_list;

static void list_models(cairn_local_node *n, void *arg) {
    model_list *ml = arg;
    const cairn_instance *placed[CAIRN_STATE_MAX_INSTANCES];
    size_t count = placed_models(n, placed, CAIRN_STATE_MAX_INSTANCES);
    for (size_t i = 0; i < count; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", placed[i]->model);
        cJSON_AddStringToObject(o, "object", "model");
        cJSON_AddNumberToObject(o, "created", 0);
        cJSON_AddStringToObject(o, "owned_by", "cairn");
        cJSON_AddItemToArray(ml->data, o);
    }
}

static void serve_models(cairn_local_node *n, const cairn_api_call *call, const char *one) {
    model_list ml = {cJSON_CreateArray()};
    if (!ml.data || run_on_loop(n, list_models, &ml) != 0) {
        cJSON_Delete(ml.data);
        openai_error(call, 503, "server_error", "the node is shutting down");
        return;
    }
    cJSON *answer = NULL;
    if (one) {
        const cJSON *m;
        cJSON_ArrayForEach(m, ml.data) {
            if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(m, "id")), one) == 0) {
                answer = cJSON_Duplicate(m, true);
            }
        }
        if (!answer) {
            cJSON_Delete(ml.data);
            openai_error(call, 404, "invalid_request_error", "no such model on this cluster");
            return;
        }
        cJSON_Delete(ml.data);
    } else {
        answer = cJSON_CreateObject();
        cJSON_AddStringToObject(answer, "object", "list");
        cJSON_AddItemToObject(answer, "data", ml.data);
    }
    char *text = cJSON_PrintUnformatted(answer);
    cJSON_Delete(answer);
    cairn_api_reply_json(call->reply, 200, text ? text : "{}");
    free(text);
}

/* ---- completions ---- */

typedef struct completion {
    const cairn_api_call *call;
    bool chat, stream, include_usage;
    char id[48]; /* as the relay's */
    char model[CAIRN_STATE_NAME_SIZE];
    int64_t created; /* Unix seconds */
    cairn_buf text;  /* the whole answer (not streaming) */
    relay_outcome out;
    bool sent_role;
    bool logprobs;    /* the request asked for them */
    cJSON *whole_lp;  /* the whole answer's, gathered token by token */
    size_t lp_offset; /* characters of the tokens so far, for legacy text_offset */
} completion;

static cJSON *chunk_base(const completion *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", c->id);
    cJSON_AddStringToObject(o, "object",
                            c->chat ? (c->stream ? "chat.completion.chunk" : "chat.completion")
                                    : "text_completion");
    cJSON_AddNumberToObject(o, "created", (double)c->created);
    cJSON_AddStringToObject(o, "model", c->model);
    return o;
}

/* One choice: a delta (chat stream), a message (chat), or text (completions). */
/* OpenAI knows no "cancelled": a request stopped by /v1/cancel ends as "stop". */
static const char *openai_finish(const char *finish) {
    return finish && strcmp(finish, "cancelled") == 0 ? "stop" : finish;
}

/* Chat's {content:[entry...], refusal} or legacy completions' columns, with no token yet. */
static cJSON *logprobs_new(const completion *c) {
    if (!c->chat) {
        return logprobs_legacy_new();
    }
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddArrayToObject(o, "content") || !cJSON_AddNullToObject(o, "refusal")) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Adds one token's report; a malformed one is left out. */
static void logprobs_add(completion *c, cJSON *lp, const cJSON *report) {
    if (!lp) {
        return;
    }
    if (!c->chat) {
        logprobs_legacy_append(lp, report, &c->lp_offset);
        return;
    }
    cJSON *entry = logprobs_entry(report);
    if (entry && !cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(lp, "content"), entry)) {
        cJSON_Delete(entry);
    }
}

/* logprobs: the choice's "logprobs" (taken), or NULL for null. */
static cJSON *choice(const completion *c, const char *text, bool role, const char *finish,
                     cJSON *logprobs) {
    finish = openai_finish(finish);
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddNumberToObject(ch, "index", 0);
    if (c->chat) {
        cJSON *m = cJSON_AddObjectToObject(ch, c->stream ? "delta" : "message");
        if (role || !c->stream) {
            cJSON_AddStringToObject(m, "role", "assistant");
        }
        if (text) {
            cJSON_AddStringToObject(m, "content", text);
        }
    } else {
        cJSON_AddStringToObject(ch, "text", text ? text : "");
    }
    if (logprobs) {
        cJSON_AddItemToObject(ch, "logprobs", logprobs);
    } else {
        cJSON_AddNullToObject(ch, "logprobs");
    }
    if (finish) {
        cJSON_AddStringToObject(ch, "finish_reason", finish);
    } else {
        cJSON_AddNullToObject(ch, "finish_reason");
    }
    return ch;
}

static cJSON *usage(const completion *c) {
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", c->out.prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", c->out.completion_tokens);
    cJSON_AddNumberToObject(u, "total_tokens", c->out.prompt_tokens + c->out.completion_tokens);
    return u;
}

static int send_chunk(completion *c, cJSON *o) {
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    int rc = -1;
    cairn_buf line = {0};
    if (text && cairn_buf_printf(&line, "data: %s\n\n", text) == 0) {
        rc = cairn_api_stream_write(c->call->reply, line.data, line.len);
    }
    cairn_buf_free(&line);
    free(text);
    return rc;
}

/* report: the token's log-probabilities, or NULL */
static int stream_piece(completion *c, const char *text, const char *finish, const cJSON *report) {
    cJSON *lp = NULL;
    if (report) {
        lp = logprobs_new(c);
        logprobs_add(c, lp, report);
    }
    cJSON *o = chunk_base(c);
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    cJSON_AddItemToArray(choices, choice(c, text, c->chat && !c->sent_role, finish, lp));
    c->sent_role = true;
    if (c->include_usage) {
        cJSON_AddNullToObject(o, "usage");
    }
    return send_chunk(c, o);
}

static int on_completion_event(void *user, const cJSON *event) {
    completion *c = user;
    const char *text = relay_outcome_take(&c->out, event);
    if (!text) {
        return 0;
    }
    /* a token whose text is held back (a character or a stop string still incomplete)
     * still has its log-probabilities, in a chunk of no text */
    const cJSON *report = c->logprobs ? cJSON_GetObjectItemCaseSensitive(event, "logprobs") : NULL;
    if (!c->stream) {
        if (report) {
            logprobs_add(c, c->whole_lp, report);
        }
        return cairn_buf_puts(&c->text, text) != 0 ? -1 : 0;
    }
    if ((*text || report) && stream_piece(c, text, NULL, report) != 0) {
        return -1;
    }
    return c->out.done ? stream_piece(c, c->chat ? NULL : "", c->out.finish, NULL) : 0;
}

static void finish_stream(completion *c) {
    if (c->out.failed) {
        cJSON *o = cJSON_CreateObject();
        cJSON *e = cJSON_AddObjectToObject(o, "error");
        cJSON_AddStringToObject(e, "message", c->out.error);
        cJSON_AddStringToObject(e, "type", "server_error");
        send_chunk(c, o);
    } else if (c->include_usage) {
        cJSON *o = chunk_base(c);
        cJSON_AddArrayToObject(o, "choices");
        cJSON_AddItemToObject(o, "usage", usage(c));
        send_chunk(c, o);
    }
    cairn_api_stream_write(c->call->reply, "data: [DONE]\n\n", 14);
}

static void finish_whole(completion *c) {
    if (c->out.failed || !c->out.done) {
        bool bad = c->out.failed && c->out.refused;
        openai_error(c->call, bad ? 400 : 503, bad ? "invalid_request_error" : "server_error",
                     c->out.failed ? c->out.error : "the stream ended early");
        return;
    }
    cJSON *o = chunk_base(c);
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    char *text = cairn_buf_take(&c->text);
    cJSON_AddItemToArray(choices, choice(c, text ? text : "", false, c->out.finish, c->whole_lp));
    c->whole_lp = NULL;
    free(text);
    cJSON_AddItemToObject(o, "usage", usage(c));
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    cairn_api_reply_json(c->call->reply, 200, json ? json : "{}");
    free(json);
}

static const char *prepare_completion(void *user, relay *r) {
    completion *c = user;
    c->stream = r->req.stream;
    c->include_usage = r->req.include_usage;
    c->logprobs = r->req.gen.logprobs;
    c->whole_lp = c->logprobs && !c->stream ? logprobs_new(c) : NULL;
    snprintf(c->model, sizeof c->model, "%s", r->req.model);
    snprintf(c->id, sizeof c->id, "%s", r->id);
    return c->stream ? "text/event-stream" : NULL;
}

static void refuse_completion(void *user, int status, const char *message) {
    completion *c = user;
    openai_error(c->call, status,
                 status == 400 || status == 404 ? "invalid_request_error" : "server_error",
                 message);
}

static void serve_completion(cairn_local_node *n, const cairn_api_call *call, bool chat) {
    completion c = {.call = call, .chat = chat, .created = cairn_wall_clock_ms() / 1000};
    relay_api api = {chat ? CAIRN_API_OPENAI_CHAT : CAIRN_API_OPENAI_COMPLETION,
                     chat ? "chatcmpl-" : "cmpl-", prepare_completion, on_completion_event,
                     refuse_completion};
    if (serve_relay(n, call, &api, &c) == 0) {
        if (c.stream) {
            finish_stream(&c);
        } else {
            finish_whole(&c);
        }
    }
    cJSON_Delete(c.whole_lp);
    cairn_buf_free(&c.text);
}

int serve_openai(cairn_local_node *n, const cairn_api_call *call) {
    bool post = strcmp(call->method, "POST") == 0, get = strcmp(call->method, "GET") == 0;
    const char *models = "/v1/models/";
    if (post && strcmp(call->path, "/v1/chat/completions") == 0) {
        serve_completion(n, call, true);
    } else if (post && strcmp(call->path, "/v1/completions") == 0) {
        serve_completion(n, call, false);
    } else if (post && strncmp(call->path, "/v1/cancel/", 11) == 0) {
        if (relay_cancel(n, call->path + 11)) {
            cairn_api_reply_json(call->reply, 200, "{\"cancelled\":true}");
        } else {
            openai_error(call, 404, "invalid_request_error",
                         "no such request in progress in the cluster");
        }
    } else if (get && strcmp(call->path, "/v1/models") == 0) {
        serve_models(n, call, NULL);
    } else if (get && strncmp(call->path, models, strlen(models)) == 0) {
        serve_models(n, call, call->path + strlen(models));
    } else if (strncmp(call->path, "/v1/", 4) == 0) {
        openai_error(call,
                     strcmp(call->path, "/v1/models") == 0 ||
                             strcmp(call->path, "/v1/completions") == 0 ||
                             strcmp(call->path, "/v1/chat/completions") == 0
                         ? 405
                         : 404,
                     "invalid_request_error", "no such path or method");
    } else {
        return 1;
    }
    return 0;
}
