/* util: JSON text from outside, checked before cJSON sees it (see json.h). */
#include <stdbool.h>
#include <string.h>

#include "util/json.h"

int cairn_json_check_shape(const char *s, size_t n, size_t max_depth, uint64_t max_values,
                           const char *what, cairn_err *err) {
    size_t depth = 0;
    uint64_t values = 1;
    bool in_string = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_string = false;
            }
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max_depth) {
                return cairn_fail(err, "%s nests deeper than %zu levels", what, max_depth);
            }
            values++;
        } else if (c == '}' || c == ']') {
            depth = depth ? depth - 1 : 0;
        } else if (c == ',' || c == ':') {
            values++;
        }
        if (values > max_values) {
            return cairn_fail(err, "%s has more than %llu values", what,
                              (unsigned long long)max_values);
        }
    }
    return 0;
}

/* Whether s[0..n) is only JSON whitespace. */
static bool only_space(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (!strchr(" \t\r\n", s[i]) || s[i] == '\0') {
            return false;
        }
    }
    return true;
}

cJSON *cairn_json_parse(const char *s, size_t n, const char *what, cairn_err *err) {
    if (!s) {
        cairn_fail(err, "%s is missing", what);
        return NULL;
    }
    if (cairn_json_check_shape(s, n, CAIRN_JSON_MAX_DEPTH, CAIRN_JSON_MAX_VALUES, what, err) != 0) {
        return NULL;
    }
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(s, n, &end, false);
    size_t at = end && end >= s && end <= s + n ? (size_t)(end - s) : 0;
    if (o && !only_space(s + at, n - at)) {
        cJSON_Delete(o);
        o = NULL;
    }
    if (!o) {
        cairn_fail(err, "%s is not valid JSON (error at byte %zu)", what, at);
    }
    return o;
}

cJSON *cairn_json_parse_str(const char *s, const char *what, cairn_err *err) {
    return cairn_json_parse(s, s ? strlen(s) : 0, what, err);
}
