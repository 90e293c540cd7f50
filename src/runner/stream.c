/*
 * stream: the requester's end of the data plane. One link per request to the instance's
 * first runner: the proof of the instance's secret, hello, the request, then tokens until
 * done. Knows nothing of the cluster:
 * the caller finds the runner and decides what to do when a stream is lost.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cluster/json_fields.h"
#include "runner/runner.h"
#include "runner/runner_internal.h"
#include "util/json.h"

struct cairn_stream {
    dlink *link;
    cJSON *hello, *request;
    cairn_stream_callbacks cb;
    void *user;
    bool finished; /* a final callback ran, or the owner closed it: report nothing more */
};

static void stream_finish(cairn_stream *s) {
    s->finished = true;
    dlink_close(s->link, "done");
}

static void on_up(dlink *l) {
    cairn_stream *s = dlink_user(l);
    dlink_send_control(l, s->hello);
    dlink_send_control(l, s->request);
}

static int on_token(cairn_stream *s, const cJSON *msg, cairn_err *err) {
    const cJSON *token = cairn_json_field(msg, "token");
    const char *text = cJSON_GetStringValue(cairn_json_field(msg, "text"));
    if (!cJSON_IsNumber(token) || !text) {
        return cairn_fail(err, "malformed token message");
    }
    if (s->cb.on_token) {
        const cJSON *logprobs = cairn_json_field(msg, "logprobs");
        s->cb.on_token(s->user, (int32_t)token->valuedouble, text, strlen(text),
                       cJSON_IsObject(logprobs) ? logprobs : NULL);
    }
    return 0;
}

static int on_start(cairn_stream *s, const cJSON *msg, cairn_err *err) {
    uint64_t n_prompt = 0;
    if (cairn_json_get_number(msg, "prompt_tokens", &n_prompt, err) != 0) {
        return cairn_fail(err, "malformed start message");
    }
    if (s->cb.on_start) {
        s->cb.on_start(s->user, (int)n_prompt);
    }
    return 0;
}

static int on_done(cairn_stream *s, const cJSON *msg, cairn_err *err) {
    const char *finish = cJSON_GetStringValue(cairn_json_field(msg, "finish"));
    const char *text = cJSON_GetStringValue(cairn_json_field(msg, "text"));
    uint64_t n_prompt = 0, n_done = 0;
    if (!finish || !text || cairn_json_get_number(msg, "prompt_tokens", &n_prompt, err) != 0 ||
        cairn_json_get_number(msg, "completion_tokens", &n_done, err) != 0) {
        return cairn_fail(err, "malformed done message");
    }
    const cJSON *stop = cairn_json_field(msg, "stop_index");
    int stop_index = -1;
    if (cJSON_IsNumber(stop) && stop->valuedouble >= 0 && stop->valuedouble < REQUEST_MAX_STOPS) {
        stop_index = (int)stop->valuedouble;
    }
    if (s->cb.on_done) {
        s->cb.on_done(s->user, finish, text, strlen(text), (int)n_prompt, (int)n_done, stop_index);
    }
    stream_finish(s);
    return 0;
}

static int on_frame(dlink *l, const cairn_wire_frame *f, cairn_err *err) {
    cairn_stream *s = dlink_user(l);
    cJSON *msg = NULL;
    if (s->finished) {
        return 0;
    }
    if (f->type != CAIRN_WIRE_CONTROL || cairn_wire_parse_json(f, &msg, err) != 0) {
        return cairn_fail(err, "unexpected %s frame from the runner",
                          cairn_wire_type_name(f->type));
    }
    const char *op = cJSON_GetStringValue(cairn_json_field(msg, "op"));
    int rc = 0;
    if (op && strcmp(op, "start") == 0) {
        rc = on_start(s, msg, err);
    } else if (op && strcmp(op, "token") == 0) {
        rc = on_token(s, msg, err);
    } else if (op && strcmp(op, "done") == 0) {
        rc = on_done(s, msg, err);
    } else if (op && strcmp(op, "error") == 0) {
        const char *message = cJSON_GetStringValue(cairn_json_field(msg, "message"));
        bool busy = cJSON_IsTrue(cairn_json_field(msg, "busy"));
        s->finished = true;
        if (s->cb.on_error) {
            s->cb.on_error(s->user, busy ? CAIRN_STREAM_BUSY : CAIRN_STREAM_REFUSED,
                           message ? message : "the request was refused");
        }
        dlink_close(l, "refused");
    } else {
        rc = cairn_fail(err, "unknown message \"%s\" from the runner", op ? op : "?");
    }
    cJSON_Delete(msg);
    return rc;
}

static void on_close(dlink *l, const char *reason) {
    cairn_stream *s = dlink_user(l);
    if (!s->finished && s->cb.on_error) {
        s->cb.on_error(s->user, CAIRN_STREAM_LOST, reason);
    }
    cJSON_Delete(s->hello);
    cJSON_Delete(s->request);
    free(s);
}

static const dlink_callbacks stream_callbacks = {on_up, on_frame, on_close};

static cJSON *request_json(const cairn_stream_request *req) {
    cJSON *o = cJSON_CreateObject();
    bool ok =
        o && cJSON_AddStringToObject(o, "op", "request") && cJSON_AddNumberToObject(o, "id", 1);
    if (ok && req->prompt) {
        ok = cJSON_AddStringToObject(o, "prompt", req->prompt) != NULL;
    } else if (ok && req->messages) {
        ok = cairn_json_add_child(o, "messages", cJSON_Duplicate(req->messages, true));
    } else if (ok) {
        ok = cairn_json_add_child(o, "tokens", tokens_to_json(req->tokens, req->n_tokens));
    }
    ok = ok && cairn_json_add_child(o, "resume", tokens_to_json(req->resume, req->n_resume)) &&
         cairn_json_add_child(o, "params", request_params_to_json(req->params));
    if (ok && req->count) {
        ok = cJSON_AddBoolToObject(o, "count", true) != NULL;
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

int cairn_stream_request_check(const cairn_stream_request *req, cairn_err *err) {
    cJSON *o = request_json(req);
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!text) {
        return cairn_fail(err, "out of memory");
    }
    size_t len = strlen(text);
    uint32_t max = cairn_wire_type_max_payload(CAIRN_WIRE_CONTROL);
    int rc = 0;
    if (len > max) {
        rc = cairn_fail(err,
                        "the request takes %zu bytes on the link to the model's runners, more "
                        "than its limit of %u: shorten the prompt, messages or stop strings",
                        len, (unsigned)max);
    } else {
        rc =
            cairn_json_check_shape(text, len, CAIRN_WIRE_JSON_MAX_DEPTH, CAIRN_WIRE_JSON_MAX_VALUES,
                                   "on the link to the model's runners, the request", err);
    }
    free(text);
    return rc;
}

int cairn_stream_open(uv_loop_t *loop, const char *host, uint16_t port,
                      const cairn_cluster_key *key, const cairn_stream_request *req,
                      const cairn_stream_callbacks *cb, void *user, cairn_stream **out,
                      cairn_err *err) {
    uint8_t secret[CAIRN_INSTANCE_SECRET_SIZE];
    if (cairn_instance_secret_from_hex(req->secret, secret, err) != 0) {
        return -1;
    }
    cairn_stream *s = calloc(1, sizeof *s);
    if (!s) {
        sodium_memzero(secret, sizeof secret);
        return cairn_fail(err, "out of memory");
    }
    s->cb = *cb;
    s->user = user;
    s->hello = cJSON_CreateObject();
    s->request = request_json(req);
    if (!s->hello || !cJSON_AddStringToObject(s->hello, "op", "hello") ||
        !cJSON_AddStringToObject(s->hello, "role", "client") ||
        !cJSON_AddStringToObject(s->hello, "instance", req->instance) || !s->request) {
        cJSON_Delete(s->hello);
        cJSON_Delete(s->request);
        free(s);
        sodium_memzero(secret, sizeof secret);
        return cairn_fail(err, "out of memory");
    }
    s->link = dlink_dial(loop, host, port, key, secret, &stream_callbacks, s, err);
    sodium_memzero(secret, sizeof secret);
    if (!s->link) {
        cJSON_Delete(s->hello);
        cJSON_Delete(s->request);
        free(s);
        return -1;
    }
    *out = s;
    return 0;
}

void cairn_stream_close(cairn_stream *s) {
    if (s && !s->finished) {
        s->finished = true;
        dlink_close(s->link, "closed by the requester");
    }
}
