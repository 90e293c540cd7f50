/*
 * cluster json_fields: the strict field readers the cluster's JSON codecs share (events and
 * snapshots in event.c, the node's control messages), and the one builder helper that keeps
 * their construction leak-free. Every reader checks the type, range or length of what it
 * reads and fails with a message naming the field.
 */
#ifndef CAIRN_CLUSTER_JSON_FIELDS_H
#define CAIRN_CLUSTER_JSON_FIELDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "util/util.h"

/* Checks that o is an object holding exactly the named fields (at most 32), each once. */
int cairn_json_expect_fields(const cJSON *o, const char *const *names, size_t n, cairn_err *err);
#define CAIRN_JSON_EXPECT_FIELDS(o, err, ...)                                                      \
    cairn_json_expect_fields((o), (const char *const[]){__VA_ARGS__},                              \
                             sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *),    \
                             (err))

const cJSON *cairn_json_field(const cJSON *o, const char *key);
/* An integer in 0..max (a JSON number with no fraction). */
int cairn_json_get_uint(const cJSON *o, const char *key, uint64_t max, uint64_t *out,
                        cairn_err *err);
int cairn_json_get_u32(const cJSON *o, const char *key, uint32_t max, uint32_t *out,
                       cairn_err *err);
/* An integer in 0..CAIRN_STATE_MAX_NUMBER. */
int cairn_json_get_number(const cJSON *o, const char *key, uint64_t *out, cairn_err *err);
/* A string shorter than size bytes, copied with its NUL into buf. */
int cairn_json_get_text(const cJSON *o, const char *key, char *buf, size_t size, cairn_err *err);
int cairn_json_get_bool(const cJSON *o, const char *key, bool *out, cairn_err *err);
/* The array under key, with at most max elements, counted into *n; NULL on failure. */
const cJSON *cairn_json_get_array(const cJSON *o, const char *key, uint32_t max, uint32_t *n,
                                  cairn_err *err);

/* Adds child to o under key and returns true; on failure (child NULL, o NULL, no memory)
 * deletes child, so a builder can chain calls without leaking what it made. */
bool cairn_json_add_child(cJSON *o, const char *key, cJSON *child);

#endif
