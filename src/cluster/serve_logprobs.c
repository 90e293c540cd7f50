/*
 * serve_logprobs: a generated token's log-probabilities, as the last runner reports them
 * ({id, logprob, bytes, top:[{id, logprob, bytes}]}), in the forms the APIs answer with:
 * the entry of OpenAI's chat (and Ollama's) {token, logprob, bytes, top_logprobs}, and the
 * columns of OpenAI's legacy completions {tokens, token_logprobs, top_logprobs,
 * text_offset}.
 *
 * Pure. The report crossed the network, so every field is checked; one that does not hold
 * is left out of the answer rather than trusted.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>

#include "cluster/serve_internal.h"

/* The token's text from its bytes (JSON text must be valid UTF-8; the bytes stay exact in
 * "bytes"). NULL when the bytes are not a list of bytes. */
static char *token_text(const cJSON *bytes) {
    if (!cJSON_IsArray(bytes) || cJSON_GetArraySize(bytes) > 4096) {
        return NULL;
    }
    cairn_buf raw = {0}, text = {0};
    const cJSON *b;
    bool ok = true;
    cJSON_ArrayForEach(b, bytes) {
        ok = ok && cJSON_IsNumber(b) && b->valuedouble >= 0 && b->valuedouble <= 255 &&
             cairn_buf_putc(&raw, (char)(unsigned char)b->valuedouble) == 0;
    }
    ok = ok && cairn_utf8_append_lossy(&text, raw.data ? raw.data : "", raw.len) == 0 &&
         cairn_buf_putc(&text, '\0') == 0;
    cairn_buf_free(&raw);
    if (!ok) {
        cairn_buf_free(&text);
        return NULL;
    }
    return cairn_buf_take(&text);
}

/* {token, logprob, bytes} of one reported token, or NULL. */
static cJSON *one_token(const cJSON *report) {
    const cJSON *logprob = cJSON_GetObjectItemCaseSensitive(report, "logprob");
    const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(report, "bytes");
    if (!cJSON_IsNumber(logprob) || !isfinite(logprob->valuedouble) || logprob->valuedouble > 0) {
        return NULL;
    }
    char *text = token_text(bytes);
    cJSON *e = text ? cJSON_CreateObject() : NULL;
    bool ok = e && cJSON_AddStringToObject(e, "token", text) &&
              cJSON_AddNumberToObject(e, "logprob", logprob->valuedouble) &&
              cJSON_AddItemToObject(e, "bytes", cJSON_Duplicate(bytes, true));
    free(text);
    if (!ok) {
        cJSON_Delete(e);
        return NULL;
    }
    return e;
}

cJSON *logprobs_entry(const cJSON *report) {
    const cJSON *top = cJSON_GetObjectItemCaseSensitive(report, "top");
    if (!cJSON_IsArray(top) || cJSON_GetArraySize(top) > CAIRN_MAX_TOP_LOGPROBS) {
        return NULL;
    }
    cJSON *e = one_token(report);
    cJSON *alternatives = cJSON_CreateArray();
    bool ok = e && alternatives;
    const cJSON *alt;
    cJSON_ArrayForEach(alt, top) {
        ok = ok && cJSON_AddItemToArray(alternatives, one_token(alt));
    }
    if (!ok || !cJSON_AddItemToObject(e, "top_logprobs", alternatives)) {
        cJSON_Delete(alternatives);
        cJSON_Delete(e);
        return NULL;
    }
    return e;
}

cJSON *logprobs_legacy_new(void) {
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddArrayToObject(o, "tokens") ||
        !cJSON_AddArrayToObject(o, "token_logprobs") ||
        !cJSON_AddArrayToObject(o, "top_logprobs") || !cJSON_AddArrayToObject(o, "text_offset")) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Legacy completions list the alternatives as {text: logprob} and always include the
 * chosen token among them. */
static cJSON *legacy_top(const cJSON *entry) {
    cJSON *top = cJSON_CreateObject();
    const cJSON *alt;
    cJSON_ArrayForEach(alt, cJSON_GetObjectItemCaseSensitive(entry, "top_logprobs")) {
        const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(alt, "token"));
        if (top && !cJSON_GetObjectItemCaseSensitive(top, text)) {
            cJSON_AddNumberToObject(
                top, text, cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(alt, "logprob")));
        }
    }
    const char *token = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(entry, "token"));
    if (top && !cJSON_GetObjectItemCaseSensitive(top, token)) {
        cJSON_AddNumberToObject(
            top, token, cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(entry, "logprob")));
    }
    return top;
}

int logprobs_legacy_append(cJSON *legacy, const cJSON *report, size_t *offset) {
    cJSON *entry = logprobs_entry(report);
    if (!entry) {
        return -1;
    }
    const char *token = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(entry, "token"));
    double logprob = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(entry, "logprob"));
    bool ok = cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(legacy, "tokens"),
                                   cJSON_CreateString(token)) &&
              cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(legacy, "token_logprobs"),
                                   cJSON_CreateNumber(logprob)) &&
              cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(legacy, "top_logprobs"),
                                   legacy_top(entry)) &&
              cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(legacy, "text_offset"),
                                   cJSON_CreateNumber((double)*offset));
    *offset += cairn_utf8_count(token);
    cJSON_Delete(entry);
    return ok ? 0 : -1;
}
