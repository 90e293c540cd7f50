/*
 * params: a request's generation parameters and token lists as JSON, the form they take on
 * the data plane (requester to first runner, first runner to the last one, which samples).
 * Decoding is strict because the bytes come from the network: every field is required and
 * checked; the sampler validates the ranges of its own parameters when the session starts.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/json_fields.h"
#include "runner/runner_internal.h"

cJSON *request_params_to_json(const cairn_generation_params *p) {
    cJSON *o = cJSON_CreateObject();
    cJSON *stops = cJSON_CreateArray();
    char seed[32];
    snprintf(seed, sizeof seed, "%" PRIu64, p->sampling.seed);
    bool ok = o && stops;
    for (size_t i = 0; ok && i < p->n_stop; i++) {
        ok = cJSON_AddItemToArray(stops, cJSON_CreateString(p->stop[i]));
    }
    const cairn_sampling_params *s = &p->sampling;
    ok = ok && cJSON_AddNumberToObject(o, "temperature", s->temperature) &&
         cJSON_AddNumberToObject(o, "top_k", s->top_k) &&
         cJSON_AddNumberToObject(o, "top_p", s->top_p) &&
         cJSON_AddNumberToObject(o, "min_p", s->min_p) &&
         cJSON_AddNumberToObject(o, "repeat_penalty", s->repeat_penalty) &&
         cJSON_AddNumberToObject(o, "repeat_last_n", s->repeat_last_n) &&
         cJSON_AddNumberToObject(o, "frequency_penalty", s->frequency_penalty) &&
         cJSON_AddNumberToObject(o, "presence_penalty", s->presence_penalty) &&
         cJSON_AddStringToObject(o, "seed", seed) &&
         cJSON_AddNumberToObject(o, "max_tokens", p->max_tokens) &&
         cJSON_AddBoolToObject(o, "ignore_eog", p->ignore_eog) &&
         cJSON_AddBoolToObject(o, "logprobs", p->logprobs) &&
         cJSON_AddNumberToObject(o, "top_logprobs", p->top_logprobs);
    if (!ok || !cairn_json_add_child(o, "stop", stops)) {
        if (!ok) {
            cJSON_Delete(stops);
        }
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static int get_float(const cJSON *o, const char *key, float *out, cairn_err *err) {
    const cJSON *v = cairn_json_field(o, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || fabs(v->valuedouble) > 1e9) {
        return cairn_fail(err, "\"%s\" must be a finite number", key);
    }
    *out = (float)v->valuedouble;
    return 0;
}

static int get_int(const cJSON *o, const char *key, int max, int *out, cairn_err *err) {
    uint64_t v;
    if (cairn_json_get_uint(o, key, (uint64_t)max, &v, err) != 0) {
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int get_seed(const cJSON *o, uint64_t *out, cairn_err *err) {
    const char *text = cJSON_GetStringValue(cairn_json_field(o, "seed"));
    char *end = NULL;
    if (!text || !*text || strlen(text) > 20 || text[0] == '-' || text[0] == '+') {
        return cairn_fail(err, "\"seed\" must be a decimal string");
    }
    unsigned long long v = strtoull(text, &end, 10);
    if (*end != '\0') {
        return cairn_fail(err, "\"seed\" must be a decimal string");
    }
    *out = v;
    return 0;
}

static int get_stops(const cJSON *o, request_params *out, cairn_err *err) {
    uint32_t n = 0;
    const cJSON *arr = cairn_json_get_array(o, "stop", REQUEST_MAX_STOPS, &n, err);
    if (!arr) {
        return -1;
    }
    const cJSON *item;
    size_t i = 0;
    cJSON_ArrayForEach(item, arr) {
        const char *text = cJSON_GetStringValue(item);
        if (!text || !*text || strlen(text) > REQUEST_MAX_STOP_BYTES) {
            return cairn_fail(err, "a stop string must be text of 1..%d bytes",
                              REQUEST_MAX_STOP_BYTES);
        }
        out->stop_text[i] = cairn_strdup(text);
        if (!out->stop_text[i]) {
            return cairn_fail(err, "out of memory");
        }
        out->stop_ptrs[i] = out->stop_text[i];
        i++;
    }
    out->gen.stop = out->stop_ptrs;
    out->gen.n_stop = i;
    return 0;
}

int request_params_from_json(const cJSON *o, request_params *out, cairn_err *err) {
    memset(out, 0, sizeof *out);
    cairn_sampling_params *s = &out->gen.sampling;
    if (CAIRN_JSON_EXPECT_FIELDS(o, err, "temperature", "top_k", "top_p", "min_p", "repeat_penalty",
                                 "repeat_last_n", "frequency_penalty", "presence_penalty", "seed",
                                 "max_tokens", "ignore_eog", "logprobs", "top_logprobs",
                                 "stop") != 0 ||
        get_float(o, "temperature", &s->temperature, err) != 0 ||
        get_int(o, "top_k", INT32_MAX, &s->top_k, err) != 0 ||
        get_float(o, "top_p", &s->top_p, err) != 0 || get_float(o, "min_p", &s->min_p, err) != 0 ||
        get_float(o, "repeat_penalty", &s->repeat_penalty, err) != 0 ||
        get_int(o, "repeat_last_n", INT32_MAX, &s->repeat_last_n, err) != 0 ||
        get_float(o, "frequency_penalty", &s->frequency_penalty, err) != 0 ||
        get_float(o, "presence_penalty", &s->presence_penalty, err) != 0 ||
        get_seed(o, &s->seed, err) != 0 ||
        get_int(o, "max_tokens", INT32_MAX, &out->gen.max_tokens, err) ||
        cairn_json_get_bool(o, "ignore_eog", &out->gen.ignore_eog, err) != 0 ||
        cairn_json_get_bool(o, "logprobs", &out->gen.logprobs, err) != 0 ||
        get_int(o, "top_logprobs", CAIRN_MAX_TOP_LOGPROBS, &out->gen.top_logprobs, err) != 0 ||
        get_stops(o, out, err) != 0) {
        request_params_free(out);
        return cairn_fail_prefix(err, "request parameters");
    }
    return 0;
}

void request_params_free(request_params *p) {
    for (size_t i = 0; i < REQUEST_MAX_STOPS; i++) {
        free(p->stop_text[i]);
        p->stop_text[i] = NULL;
    }
}

cJSON *tokens_to_json(const int32_t *tokens, size_t n) {
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < n; i++) {
        if (!cJSON_AddItemToArray(arr, cJSON_CreateNumber(tokens[i]))) {
            cJSON_Delete(arr);
            return NULL;
        }
    }
    return arr;
}

int tokens_from_json(const cJSON *arr, size_t max, int32_t **out, size_t *n, cairn_err *err) {
    *out = NULL;
    *n = 0;
    if (!cJSON_IsArray(arr)) {
        return cairn_fail(err, "token ids must be an array");
    }
    size_t count = (size_t)cJSON_GetArraySize(arr);
    if (count > max) {
        return cairn_fail(err, "%zu token ids, more than the %zu allowed", count, max);
    }
    int32_t *ids = malloc((count ? count : 1) * sizeof *ids);
    if (!ids) {
        return cairn_fail(err, "out of memory");
    }
    const cJSON *item;
    size_t i = 0;
    cJSON_ArrayForEach(item, arr) {
        double v = cJSON_IsNumber(item) ? item->valuedouble : -1;
        if (v < 0 || v > INT32_MAX || v != floor(v)) {
            free(ids);
            return cairn_fail(err, "token id %zu is not a valid id", i);
        }
        ids[i++] = (int32_t)v;
    }
    *out = ids;
    *n = count;
    return 0;
}
