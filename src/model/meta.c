/* model: type-checked reads of GGUF metadata. ggml's gguf_get_val_* abort on a type
 * mismatch, and a file's metadata is untrusted input, so every read goes through here. */
#include <math.h>

#include "gguf.h"
#include "model/model.h"

static int find_key(const struct gguf_context *g, const char *key, int64_t *id) {
    *id = gguf_find_key(g, key);
    return *id >= 0;
}

static int wrong_type(const struct gguf_context *g, int64_t id, const char *key, const char *wanted,
                      cairn_err *err) {
    return cairn_fail(err, "metadata key %s has type %s, expected %s", key,
                      gguf_type_name(gguf_get_kv_type(g, id)), wanted);
}

/* Reads an integer-typed value, or returns 0 if the value is not an integer type. */
static int read_integer(const struct gguf_context *g, int64_t id, int64_t *out) {
    switch (gguf_get_kv_type(g, id)) {
    case GGUF_TYPE_UINT8: *out = gguf_get_val_u8(g, id); return 1;
    case GGUF_TYPE_INT8: *out = (int)gguf_get_val_i8(g, id); return 1; /* sign-extends */
    case GGUF_TYPE_UINT16: *out = gguf_get_val_u16(g, id); return 1;
    case GGUF_TYPE_INT16: *out = gguf_get_val_i16(g, id); return 1;
    case GGUF_TYPE_UINT32: *out = gguf_get_val_u32(g, id); return 1;
    case GGUF_TYPE_INT32: *out = gguf_get_val_i32(g, id); return 1;
    case GGUF_TYPE_INT64: *out = gguf_get_val_i64(g, id); return 1;
    case GGUF_TYPE_BOOL: *out = gguf_get_val_bool(g, id); return 1;
    case GGUF_TYPE_UINT64: {
        uint64_t v = gguf_get_val_u64(g, id);
        if (v > INT64_MAX) {
            return 0;
        }
        *out = (int64_t)v;
        return 1;
    }
    default: return 0;
    }
}

int cairn_meta_int(const struct gguf_context *g, const char *key, int64_t *out, cairn_err *err) {
    int64_t id;
    if (!find_key(g, key, &id)) {
        return 0;
    }
    if (!read_integer(g, id, out)) {
        if (gguf_get_kv_type(g, id) == GGUF_TYPE_UINT64) {
            return cairn_fail(err, "metadata key %s is %llu, too large", key,
                              (unsigned long long)gguf_get_val_u64(g, id));
        }
        return wrong_type(g, id, key, "an integer", err);
    }
    return 1;
}

int cairn_meta_float(const struct gguf_context *g, const char *key, double *out, cairn_err *err) {
    int64_t id;
    if (!find_key(g, key, &id)) {
        return 0;
    }
    enum gguf_type t = gguf_get_kv_type(g, id);
    int64_t i;
    if (t == GGUF_TYPE_FLOAT32) {
        *out = gguf_get_val_f32(g, id);
    } else if (t == GGUF_TYPE_FLOAT64) {
        *out = gguf_get_val_f64(g, id);
    } else if (read_integer(g, id, &i)) {
        *out = (double)i;
    } else {
        return wrong_type(g, id, key, "a number", err);
    }
    if (!isfinite(*out)) {
        return cairn_fail(err, "metadata key %s is not a finite number", key);
    }
    return 1;
}

int cairn_meta_str(const struct gguf_context *g, const char *key, const char **out,
                   cairn_err *err) {
    int64_t id;
    if (!find_key(g, key, &id)) {
        return 0;
    }
    if (gguf_get_kv_type(g, id) != GGUF_TYPE_STRING) {
        return wrong_type(g, id, key, "a string", err);
    }
    *out = gguf_get_val_str(g, id);
    return 1;
}

int cairn_meta_bool(const struct gguf_context *g, const char *key, bool *out, cairn_err *err) {
    int64_t id;
    if (!find_key(g, key, &id)) {
        return 0;
    }
    if (gguf_get_kv_type(g, id) != GGUF_TYPE_BOOL) {
        return wrong_type(g, id, key, "a bool", err);
    }
    *out = gguf_get_val_bool(g, id);
    return 1;
}

int cairn_meta_array(const struct gguf_context *g, const char *key, int elem_type, size_t *n,
                     cairn_err *err) {
    int64_t id;
    if (!find_key(g, key, &id)) {
        return 0;
    }
    if (gguf_get_kv_type(g, id) != GGUF_TYPE_ARRAY) {
        return wrong_type(g, id, key, "an array", err);
    }
    if ((int)gguf_get_arr_type(g, id) != elem_type) {
        return cairn_fail(err, "metadata key %s is an array of %s, expected %s", key,
                          gguf_type_name(gguf_get_arr_type(g, id)),
                          gguf_type_name((enum gguf_type)elem_type));
    }
    *n = gguf_get_arr_n(g, id);
    return 1;
}
