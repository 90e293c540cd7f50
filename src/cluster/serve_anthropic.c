/*
 * serve_anthropic: Anthropic's Messages API on a node, for Claude Code and the Anthropic
 * SDKs. POST /v1/messages runs a relay (serve.c, as chat completions do: the conversation
 * through the model's chat template) and shapes its events as Anthropic's answers: one
 * message object, or with "stream" the server-sent events message_start, content_block_start,
 * ping, content_block_delta per piece of text, content_block_stop, message_delta and
 * message_stop. POST /v1/messages/count_tokens counts the prompt's tokens on the instance's
 * first runner without generating. Errors, here and from the server itself on these paths,
 * take Anthropic's form {"type":"error","error":{"type","message"}}.
 *
 * Owns nothing between calls. Must never touch the cluster state from an API thread.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/serve_internal.h"

typedef struct anthropic_reply {
    const cairn_api_call *call;
    bool stream;
    char id[48];
    char model[CAIRN_STATE_NAME_SIZE];
    cairn_buf text; /* the whole answer (not streaming) */
    relay_outcome out;
    int input_tokens; /* the prompt's, once the runner told it */
    bool started;     /* message_start and the text block's start are written */
    /* the request's stop sequences, copied: the relay that holds them is the loop's */
    char *stops[CAIRN_API_MAX_STOPS];
    size_t n_stop;
} anthropic_reply;

static void anthropic_error(const cairn_api_call *call, int status, const char *message) {
    char *json = cairn_api_anthropic_error_json(status, message);
    cairn_api_reply_json(call->reply, status, json ? json : "{\"type\":\"error\"}");
    free(json);
}

/* The stop sequence that ended the text, or NULL. */
static const char *matched_stop(const anthropic_reply *a) {
    int i = a->out.stop_index;
    return a->out.done && i >= 0 && (size_t)i < a->n_stop ? a->stops[i] : NULL;
}

/* Anthropic's stop_reason for the relay's finish; a cancelled request ends its turn. */
static const char *stop_reason(const anthropic_reply *a) {
    if (matched_stop(a)) {
        return "stop_sequence";
    }
    return strcmp(a->out.finish, "length") == 0 ? "max_tokens" : "end_turn";
}

static void add_stop_sequence(cJSON *o, const anthropic_reply *a) {
    const char *stop = matched_stop(a);
    if (stop) {
        cJSON_AddStringToObject(o, "stop_sequence", stop);
    } else {
        cJSON_AddNullToObject(o, "stop_sequence");
    }
}

static cJSON *usage(int input_tokens, int output_tokens) {
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "input_tokens", input_tokens);
    cJSON_AddNumberToObject(u, "output_tokens", output_tokens);
    return u;
}

/* The message object: whole (content and stop_reason filled), or message_start's empty one. */
static cJSON *message(const anthropic_reply *a, const char *text) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", a->id);
    cJSON_AddStringToObject(o, "type", "message");
    cJSON_AddStringToObject(o, "role", "assistant");
    cJSON_AddStringToObject(o, "model", a->model);
    cJSON *content = cJSON_AddArrayToObject(o, "content");
    if (text) {
        cJSON *block = cJSON_CreateObject();
        cJSON_AddStringToObject(block, "type", "text");
        cJSON_AddStringToObject(block, "text", text);
        cJSON_AddItemToArray(content, block);
        cJSON_AddStringToObject(o, "stop_reason", stop_reason(a));
        add_stop_sequence(o, a);
        cJSON_AddItemToObject(o, "usage", usage(a->out.prompt_tokens, a->out.completion_tokens));
    } else {
        cJSON_AddNullToObject(o, "stop_reason");
        cJSON_AddNullToObject(o, "stop_sequence");
        cJSON_AddItemToObject(o, "usage", usage(a->input_tokens, 0));
    }
    return o;
}

/* {"type": name}, the start of every event's data. */
static cJSON *event_object(const char *name) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", name);
    return o;
}

/* "event: TYPE" and "data: {...}" for o (taken), whose "type" names the event. */
static int send_event(anthropic_reply *a, cJSON *o) {
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "type"));
    int rc = -1;
    cairn_buf line = {0};
    if (text && name && cairn_buf_printf(&line, "event: %s\ndata: %s\n\n", name, text) == 0) {
        rc = cairn_api_stream_write(a->call->reply, line.data, line.len);
    }
    cairn_buf_free(&line);
    free(text);
    cJSON_Delete(o);
    return rc;
}

/* An event about the message's one content block. */
static cJSON *block_event(const char *name) {
    cJSON *o = event_object(name);
    cJSON_AddNumberToObject(o, "index", 0);
    return o;
}

static int stream_start(anthropic_reply *a) {
    a->started = true;
    cJSON *start = event_object("message_start");
    cJSON_AddItemToObject(start, "message", message(a, NULL));
    cJSON *block = block_event("content_block_start");
    cJSON *content = cJSON_AddObjectToObject(block, "content_block");
    cJSON_AddStringToObject(content, "type", "text");
    cJSON_AddStringToObject(content, "text", "");
    int rc = send_event(a, start);
    rc |= send_event(a, block);
    rc |= send_event(a, event_object("ping"));
    return rc ? -1 : 0;
}

static int stream_text(anthropic_reply *a, const char *text) {
    cJSON *o = block_event("content_block_delta");
    cJSON *delta = cJSON_AddObjectToObject(o, "delta");
    cJSON_AddStringToObject(delta, "type", "text_delta");
    cJSON_AddStringToObject(delta, "text", text);
    return send_event(a, o);
}

static int stream_end(anthropic_reply *a) {
    cJSON *o = event_object("message_delta");
    cJSON *delta = cJSON_AddObjectToObject(o, "delta");
    cJSON_AddStringToObject(delta, "stop_reason", stop_reason(a));
    add_stop_sequence(delta, a);
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "output_tokens", a->out.completion_tokens);
    int rc = send_event(a, block_event("content_block_stop"));
    rc |= send_event(a, o);
    rc |= send_event(a, event_object("message_stop"));
    return rc ? -1 : 0;
}

static int on_message_event(void *user, const cJSON *event) {
    anthropic_reply *a = user;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(event, "start"))) {
        if (!a->started) {
            a->input_tokens =
                (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(event, "prompt_tokens"));
            return a->stream ? stream_start(a) : 0;
        }
        return 0;
    }
    const char *text = relay_outcome_take(&a->out, event);
    if (!text) {
        return 0;
    }
    if (!a->stream) {
        return cairn_buf_puts(&a->text, text) != 0 ? -1 : 0;
    }
    if (*text && stream_text(a, text) != 0) {
        return -1;
    }
    return a->out.done ? stream_end(a) : 0;
}

static const char *prepare_message(void *user, relay *r) {
    anthropic_reply *a = user;
    a->stream = r->req.stream;
    a->n_stop = r->req.gen.n_stop;
    for (size_t i = 0; i < a->n_stop; i++) {
        a->stops[i] = cairn_strdup(r->req.gen.stop[i]); /* out of memory: told as null */
    }
    snprintf(a->model, sizeof a->model, "%s", r->req.model);
    snprintf(a->id, sizeof a->id, "%s", r->id);
    r->starts = true;
    return a->stream ? "text/event-stream" : NULL;
}

static void refuse(void *user, int status, const char *message) {
    anthropic_reply *a = user;
    anthropic_error(a->call, status, message);
}

/* A failed relay: a 4xx when the request itself was wrong, else a 503; in a stream, an
 * error event. */
static void finish_failed(anthropic_reply *a) {
    const char *message = a->out.failed ? a->out.error : "the stream ended early";
    int status = a->out.failed && a->out.refused ? 400 : 503;
    if (!a->stream) {
        anthropic_error(a->call, status, message);
        return;
    }
    char *json = cairn_api_anthropic_error_json(status, message);
    cairn_buf line = {0};
    if (json && cairn_buf_printf(&line, "event: error\ndata: %s\n\n", json) == 0) {
        (void)cairn_api_stream_write(a->call->reply, line.data, line.len); /* the last word */
    }
    cairn_buf_free(&line);
    free(json);
}

static void finish_whole(anthropic_reply *a) {
    char *text = cairn_buf_take(&a->text);
    cJSON *o = message(a, text ? text : "");
    free(text);
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    cairn_api_reply_json(a->call->reply, 200, json ? json : "{}");
    free(json);
}

static void serve_messages(cairn_local_node *n, const cairn_api_call *call) {
    anthropic_reply a = {.call = call, .out.stop_index = -1};
    relay_api api = {CAIRN_API_ANTHROPIC_MESSAGES, "msg_", prepare_message, on_message_event,
                     refuse};
    if (serve_relay(n, call, &api, &a) == 0) {
        if (a.out.failed || !a.out.done) {
            finish_failed(&a);
        } else if (!a.stream) {
            finish_whole(&a);
        }
    }
    for (size_t i = 0; i < CAIRN_API_MAX_STOPS; i++) {
        free(a.stops[i]);
    }
    cairn_buf_free(&a.text);
}

/* ---- count_tokens ---- */

static const char *prepare_count(void *user, relay *r) {
    (void)user;
    r->count = true;
    return NULL;
}

static int on_count_event(void *user, const cJSON *event) {
    anthropic_reply *a = user;
    relay_outcome_take(&a->out, event);
    return 0;
}

static void serve_count(cairn_local_node *n, const cairn_api_call *call) {
    anthropic_reply a = {.call = call};
    relay_api api = {CAIRN_API_ANTHROPIC_COUNT, "count_", prepare_count, on_count_event, refuse};
    if (serve_relay(n, call, &api, &a) != 0) {
        return;
    }
    if (a.out.failed || !a.out.done) {
        finish_failed(&a);
        return;
    }
    char json[64];
    snprintf(json, sizeof json, "{\"input_tokens\":%d}", a.out.prompt_tokens);
    cairn_api_reply_json(call->reply, 200, json);
}

int serve_anthropic(cairn_local_node *n, const cairn_api_call *call) {
    if (!cairn_api_anthropic_path(call->path)) {
        return 1;
    }
    bool post = strcmp(call->method, "POST") == 0;
    bool messages = strcmp(call->path, "/v1/messages") == 0;
    bool count = strcmp(call->path, "/v1/messages/count_tokens") == 0;
    if (post && messages) {
        serve_messages(n, call);
    } else if (post && count) {
        serve_count(n, call);
    } else if (messages || count) {
        anthropic_error(call, 405, "use POST");
    } else {
        anthropic_error(call, 404, "no such path");
    }
    return 0;
}
