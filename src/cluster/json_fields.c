/*
 * json_fields: strict readers of fields in JSON objects that come from peers (events,
 * snapshots, control messages): exact field sets, integer ranges, string lengths. They never
 * trust a type or a size they have not checked, and never allocate.
 */
#include <string.h>

#include <cjson/cJSON.h>

#include "cluster/json_fields.h"
#include "cluster/state.h"

/* Checks that o is an object holding exactly the named fields, each once. */
int cairn_json_expect_fields(const cJSON *o, const char *const *names, size_t n, cairn_err *err) {
    if (!cJSON_IsObject(o)) {
        return cairn_fail(err, "expected an object");
    }
    uint32_t seen = 0;
    const cJSON *item = NULL;
    cJSON_ArrayForEach(item, o) {
        if (!item->string) { /* only a hand-built tree lacks keys */
            return cairn_fail(err, "an object member without a key");
        }
        size_t i = 0;
        while (i < n && strcmp(names[i], item->string) != 0) {
            i++;
        }
        if (i == n) {
            return cairn_fail(err, "unknown field \"%.64s\"", item->string);
        }
        if (seen & (UINT32_C(1) << i)) {
            return cairn_fail(err, "field \"%s\" appears twice", names[i]);
        }
        seen |= UINT32_C(1) << i;
    }
    for (size_t i = 0; i < n; i++) {
        if (!(seen & (UINT32_C(1) << i))) {
            return cairn_fail(err, "missing field \"%s\"", names[i]);
        }
    }
    return 0;
}

const cJSON *cairn_json_field(const cJSON *o, const char *key) {
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

int cairn_json_get_uint(const cJSON *o, const char *key, uint64_t max, uint64_t *out,
                        cairn_err *err) {
    const cJSON *v = cairn_json_field(o, key);
    double d = cJSON_IsNumber(v) ? v->valuedouble : -1.0;
    /* The comparisons are false for NaN, which cJSON never produces but a tree may hold. */
    if (!(d >= 0.0 && d <= (double)max) || (double)(uint64_t)d != d) {
        return cairn_fail(err, "\"%s\" must be an integer in 0..%llu", key,
                          (unsigned long long)max);
    }
    *out = (uint64_t)d;
    return 0;
}

int cairn_json_get_u32(const cJSON *o, const char *key, uint32_t max, uint32_t *out,
                       cairn_err *err) {
    uint64_t v = 0;
    if (cairn_json_get_uint(o, key, max, &v, err) != 0) {
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

int cairn_json_get_number(const cJSON *o, const char *key, uint64_t *out, cairn_err *err) {
    return cairn_json_get_uint(o, key, CAIRN_STATE_MAX_NUMBER, out, err);
}

int cairn_json_get_text(const cJSON *o, const char *key, char *buf, size_t size, cairn_err *err) {
    const char *s = cJSON_GetStringValue(cairn_json_field(o, key));
    if (!s) {
        return cairn_fail(err, "\"%s\" must be a string", key);
    }
    size_t len = strlen(s);
    if (len >= size) {
        return cairn_fail(err, "\"%s\" is longer than %zu bytes", key, size - 1);
    }
    memcpy(buf, s, len + 1);
    return 0;
}

int cairn_json_get_bool(const cJSON *o, const char *key, bool *out, cairn_err *err) {
    const cJSON *v = cairn_json_field(o, key);
    if (!cJSON_IsBool(v)) {
        return cairn_fail(err, "\"%s\" must be true or false", key);
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

/* The array under key, with at most max elements, counted into *n. */
const cJSON *cairn_json_get_array(const cJSON *o, const char *key, uint32_t max, uint32_t *n,
                                  cairn_err *err) {
    const cJSON *arr = cairn_json_field(o, key);
    if (!cJSON_IsArray(arr)) {
        cairn_fail(err, "\"%s\" must be an array", key);
        return NULL;
    }
    int size = cJSON_GetArraySize(arr);
    if (size < 0 || (uint32_t)size > max) {
        cairn_fail(err, "\"%s\" has %d elements (at most %u)", key, size, max);
        return NULL;
    }
    *n = (uint32_t)size;
    return arr;
}

bool cairn_json_add_child(cJSON *o, const char *key, cJSON *child) {
    if (!child) {
        return false;
    }
    if (!cJSON_AddItemToObject(o, key, child)) {
        cJSON_Delete(child);
        return false;
    }
    return true;
}
