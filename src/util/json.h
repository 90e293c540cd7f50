/*
 * util json: parsing JSON text that cairn did not write itself (HTTP bodies, downloaded
 * listings, answers of other nodes, frames of peers) without trusting its shape.
 *
 * cJSON parses recursively and spends ~64 bytes per value, so a small hostile text can
 * overflow a thread's stack (a few hundred nested brackets on an API thread) or make it
 * allocate far more than its own size. Every such parse goes through cairn_json_parse,
 * which first walks the text without recursion and refuses it when it nests deeper or
 * holds more values than the limits below.
 */
#ifndef CAIRN_UTIL_JSON_H
#define CAIRN_UTIL_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "util/util.h"

/* The deepest nesting of arrays and objects cairn accepts in JSON from outside: far more than
 * any request, state or listing needs, far less than what exhausts a thread's stack. */
#define CAIRN_JSON_MAX_DEPTH 64
/* The most values (counted as separators and containers) one JSON text may hold: 64 MiB of
 * cJSON's nodes at most, whatever the text. */
#define CAIRN_JSON_MAX_VALUES (1u << 20)

/* Walks s[0..n) without parsing it and fails with "WHAT nests deeper than N levels" or
 * "WHAT has more than N values" when it goes past max_depth or max_values. Strings (with
 * their escapes) are skipped, so brackets and commas inside them do not count. It does not
 * check that the text is valid JSON: the parser that follows does. */
int cairn_json_check_shape(const char *s, size_t n, size_t max_depth, uint64_t max_values,
                           const char *what, cairn_err *err);

/* Parses s[0..n) as exactly one JSON value (whitespace around it allowed) within
 * CAIRN_JSON_MAX_DEPTH and CAIRN_JSON_MAX_VALUES. Returns a new value the caller frees with
 * cJSON_Delete, or NULL with a message that starts with what (e.g. "the body"): too deep,
 * too many values, or "WHAT is not valid JSON (error at byte N)". */
cJSON *cairn_json_parse(const char *s, size_t n, const char *what, cairn_err *err);
/* The same for NUL-terminated text (NULL fails as missing). */
cJSON *cairn_json_parse_str(const char *s, const char *what, cairn_err *err);

#endif
