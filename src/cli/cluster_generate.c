/* cli: `cairn generate --cluster`: a completion streamed from the running cluster through a
 * node's POST /generate (server-sent events), printed as `cairn generate` prints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api/api.h"
#include "cli/cli.h"
#include "util/json.h"

/* A stream stalls only while the cluster places a lost instance again; the node gives up
 * after its own wait, so this only bounds a node that hangs. */
#define CLUSTER_TIMEOUT_MS (30L * 60L * 1000L)

typedef struct sse_reader {
    cairn_buf pending;
    bool ids;
    int n_printed;
    bool done, failed;
    char finish[32];
    int prompt_tokens, completion_tokens;
} sse_reader;

static void on_event(sse_reader *r, const char *data) {
    cJSON *o = cairn_json_parse_str(data, "the event", NULL);
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(o, "error");
    const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "text"));
    const cJSON *token = cJSON_GetObjectItemCaseSensitive(o, "token");
    if (err) {
        const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(err, "message"));
        fputc('\n', stdout);
        cli_error("%s", msg ? msg : "the cluster reports an error");
        r->failed = true;
    } else if (r->ids) {
        if (cJSON_IsNumber(token) && token->valuedouble >= 0) {
            printf(r->n_printed++ ? " %d" : "%d", (int)token->valuedouble);
        }
    } else if (text) {
        fputs(text, stdout);
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "done"))) {
        r->done = true;
        const char *finish = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "finish"));
        snprintf(r->finish, sizeof r->finish, "%s", finish ? finish : "?");
        r->prompt_tokens =
            (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "prompt_tokens"));
        r->completion_tokens =
            (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "completion_tokens"));
    }
    fflush(stdout);
    cJSON_Delete(o);
}

/* Events are "data: JSON" lines ended by a blank line. */
static int on_data(void *user, const char *data, size_t len) {
    sse_reader *r = user;
    if (cairn_buf_append(&r->pending, data, len) != 0 || cairn_buf_putc(&r->pending, '\0') != 0) {
        return -1;
    }
    r->pending.len--;
    char *start = r->pending.data;
    char *end;
    while ((end = strstr(start, "\n\n")) != NULL) {
        *end = '\0';
        if (strncmp(start, "data: ", 6) == 0) {
            on_event(r, start + 6);
        }
        start = end + 2;
    }
    size_t rest = r->pending.len - (size_t)(start - r->pending.data);
    memmove(r->pending.data, start, rest);
    r->pending.len = rest;
    return 0;
}

static char *request_body(const char *model, const char *prompt, const cli_sampling_options *so) {
    const cairn_sampling_params *s = &so->gen.sampling;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", model);
    cJSON_AddStringToObject(o, "prompt", prompt);
    cJSON_AddNumberToObject(o, "temperature", s->temperature);
    cJSON_AddNumberToObject(o, "top_k", s->top_k);
    cJSON_AddNumberToObject(o, "top_p", s->top_p);
    cJSON_AddNumberToObject(o, "min_p", s->min_p);
    cJSON_AddNumberToObject(o, "repeat_penalty", s->repeat_penalty);
    cJSON_AddNumberToObject(o, "repeat_last_n", s->repeat_last_n);
    cJSON_AddNumberToObject(o, "frequency_penalty", s->frequency_penalty);
    cJSON_AddNumberToObject(o, "presence_penalty", s->presence_penalty);
    cJSON_AddNumberToObject(o, "max_tokens", so->gen.max_tokens);
    if (so->seed != CLI_SEED_FROM_CLOCK) {
        cJSON_AddNumberToObject(o, "seed", (double)(so->seed & ((1ull << 53) - 1)));
    }
    cJSON *stops = cJSON_AddArrayToObject(o, "stop");
    for (size_t i = 0; i < so->stops.n; i++) {
        cJSON_AddItemToArray(stops, cJSON_CreateString(so->stops.items[i]));
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

int cli_generate_on_cluster(const cli_api *api, const char *model, const char *prompt,
                            const cli_sampling_options *so, bool ids, bool verbose) {
    char *body_json = request_body(model, prompt, so);
    if (!body_json) {
        cli_error("out of memory");
        return CLI_ERROR;
    }
    sse_reader r = {.ids = ids};
    char *body = NULL;
    long code = 0;
    cairn_err err = {{0}};
    int rc = cairn_api_send(api->host, api->port, api->key, "POST", "/generate", body_json, 1 << 20,
                            CLUSTER_TIMEOUT_MS, on_data, &r, &body, &code, &err);
    free(body_json);
    cairn_buf_free(&r.pending);
    if (rc == 0 && code != 200) {
        rc = cairn_api_answer_ok(api->host, api->port, "/generate", code, &body, &err);
    }
    free(body);
    fputc('\n', stdout);
    if (rc != 0) {
        cli_error("%s", err.msg);
        return CLI_ERROR;
    }
    if (r.failed || !r.done) {
        if (!r.failed) {
            cli_error("the stream from %s:%u ended early", api->host, (unsigned)api->port);
        }
        return CLI_ERROR;
    }
    if (verbose) {
        fprintf(stderr, "prompt: %d tokens; generated: %d tokens; finish: %s\n", r.prompt_tokens,
                r.completion_tokens, r.finish);
    }
    return CLI_OK;
}
