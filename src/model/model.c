/* model: opening a GGUF file, validating its tensor directory, deriving hyperparameters and
 * checking that every tensor the architecture needs is present with the right shape.
 *
 * The file is untrusted input. A cheap walk of our own over the header (walk_header) first
 * makes sure every count and length fits the file and stays within sane limits, because
 * ggml's gguf parser trusts them enough to allocate from them (a corrupt array count could
 * make it build gigabytes of empty strings). ggml's parser then does the real parsing, and
 * afterwards every tensor is checked again here before anything trusts its offset or shape. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-cpu.h"
#include "ggml.h"
#include "gguf.h"
#include "model/model.h"

/* Sizes far beyond any real model: a file claiming more is corrupt, and checking here turns
 * it into an error instead of a giant allocation later. */
#define MAX_EMBD (1 << 17)
#define MAX_LAYERS 4096
#define MAX_HEADS 4096
#define MAX_HEAD_DIM 4096
#define MAX_FF (1 << 20)
#define MAX_EXPERTS 4096
#define MAX_VOCAB (1 << 24)
#define MAX_CTX (1 << 24)
/* Header limits: far above real files (vocabularies have < 1M tokens, chat templates are
 * a few kB), far below what would make the parser allocate dangerously much. */
#define MAX_TENSORS (1 << 20)
#define MAX_KV (1 << 20)
#define MAX_KEY_LEN 65535
#define MAX_STRING_LEN (64u << 20)
#define MAX_ARRAY_LEN (1u << 26)

/* ---- walking the header before ggml parses it ---- */

typedef struct header_walk {
    const uint8_t *data;
    uint64_t size;
    uint64_t pos;
    cairn_err *err;
} header_walk;

static int walk_take(header_walk *w, uint64_t n, const char *what) {
    if (n > w->size - w->pos) {
        return cairn_fail(w->err, "%s at byte %llu runs past the end of the file (%llu bytes)",
                          what, (unsigned long long)w->pos, (unsigned long long)w->size);
    }
    w->pos += n;
    return 0;
}

/* GGUF is little-endian; assembling bytes keeps this independent of the host. */
static int walk_uint(header_walk *w, int bytes, const char *what, uint64_t *out) {
    uint64_t at = w->pos;
    if (walk_take(w, (uint64_t)bytes, what) != 0) {
        return -1;
    }
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) {
        v = (v << 8) | w->data[at + (uint64_t)i];
    }
    *out = v;
    return 0;
}

static int walk_string(header_walk *w, uint64_t max_len, const char *what) {
    uint64_t len;
    uint64_t at = w->pos;
    if (walk_uint(w, 8, what, &len) != 0) {
        return -1;
    }
    if (len > max_len) {
        return cairn_fail(w->err, "%s at byte %llu is %llu bytes long, the limit is %llu", what,
                          (unsigned long long)at, (unsigned long long)len,
                          (unsigned long long)max_len);
    }
    return walk_take(w, len, what);
}

/* Bytes of one value of a fixed-size GGUF type; 0 for strings, arrays and unknown types. */
static uint64_t gguf_fixed_size(uint64_t type) {
    switch (type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64:
    case GGUF_TYPE_INT64:
    case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

static int walk_value(header_walk *w, uint64_t type, const char *what) {
    if (type == GGUF_TYPE_STRING) {
        return walk_string(w, MAX_STRING_LEN, what);
    }
    uint64_t size = gguf_fixed_size(type);
    if (size == 0) {
        return cairn_fail(w->err, "%s has invalid type %llu", what, (unsigned long long)type);
    }
    return walk_take(w, size, what);
}

static int walk_array(header_walk *w, const char *what) {
    uint64_t type, n;
    if (walk_uint(w, 4, what, &type) != 0 || walk_uint(w, 8, what, &n) != 0) {
        return -1;
    }
    if (n > MAX_ARRAY_LEN) {
        return cairn_fail(w->err, "%s has %llu elements, the limit is %u", what,
                          (unsigned long long)n, MAX_ARRAY_LEN);
    }
    uint64_t size = gguf_fixed_size(type);
    if (size != 0) {
        return walk_take(w, n * size, what); /* n * size < 2^29: no overflow */
    }
    if (type != GGUF_TYPE_STRING) {
        return cairn_fail(w->err, "%s has invalid element type %llu", what,
                          (unsigned long long)type);
    }
    for (uint64_t i = 0; i < n; i++) {
        if (walk_string(w, MAX_STRING_LEN, what) != 0) {
            return -1;
        }
    }
    return 0;
}

static int walk_kv(header_walk *w, uint64_t index) {
    char what[160];
    snprintf(what, sizeof what, "metadata key %llu", (unsigned long long)index);
    uint64_t key_at = w->pos + 8;
    if (walk_string(w, MAX_KEY_LEN, what) != 0) {
        return -1;
    }
    /* Name the key in later messages; it may hold any bytes, so only printable ones. */
    size_t key_len = (size_t)(w->pos - key_at), shown = 0;
    size_t used = strlen(what);
    used += (size_t)snprintf(what + used, sizeof what - used, " '");
    for (; shown < key_len && shown < 64 && used + 3 < sizeof what; shown++) {
        unsigned char c = w->data[key_at + shown];
        what[used++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    snprintf(what + used, sizeof what - used, "'");
    if (key_len == 0) {
        return cairn_fail(w->err, "%s has an empty name", what);
    }
    uint64_t type;
    if (walk_uint(w, 4, what, &type) != 0) {
        return -1;
    }
    return type == GGUF_TYPE_ARRAY ? walk_array(w, what) : walk_value(w, type, what);
}

static int walk_tensor_info(header_walk *w, uint64_t index) {
    char what[64];
    snprintf(what, sizeof what, "tensor info %llu", (unsigned long long)index);
    uint64_t name_at = w->pos, n_dims, skip;
    if (walk_string(w, GGML_MAX_NAME - 1, what) != 0 || walk_uint(w, 4, what, &n_dims) != 0) {
        return -1;
    }
    if (w->pos - name_at == 8 + 4) {
        return cairn_fail(w->err, "%s has an empty name", what);
    }
    if (n_dims < 1 || n_dims > GGML_MAX_DIMS) {
        return cairn_fail(w->err, "%s has %llu dimensions, expected 1..%d", what,
                          (unsigned long long)n_dims, GGML_MAX_DIMS);
    }
    /* dims, type and data offset; their values are checked after ggml has parsed them */
    return walk_take(w, n_dims * 8 + 4, what) != 0 || walk_uint(w, 8, what, &skip) != 0 ? -1 : 0;
}

/* Checks that the header's structure fits the file and its counts are sane, and returns
 * where the tensor directory ends. */
static int walk_header(const cairn_mapped_file *map, uint64_t *end, cairn_err *err) {
    header_walk w = {map->data, map->size, 0, err};
    uint64_t magic, version, n_tensors, n_kv;
    if (walk_uint(&w, 4, "the magic number", &magic) != 0) {
        return -1;
    }
    if (memcmp(map->data, GGUF_MAGIC, 4) != 0) {
        return cairn_fail(err, "not a GGUF file (bad magic number)");
    }
    if (walk_uint(&w, 4, "the version", &version) != 0) {
        return -1;
    }
    if (version != 2 && version != 3) {
        return cairn_fail(err, "unsupported GGUF version %llu (cairn reads versions 2 and 3%s)",
                          (unsigned long long)version,
                          (version & 0xFFFF) == 0 ? "; is this a big-endian file?" : "");
    }
    if (walk_uint(&w, 8, "the tensor count", &n_tensors) != 0 ||
        walk_uint(&w, 8, "the metadata count", &n_kv) != 0) {
        return -1;
    }
    if (n_tensors > MAX_TENSORS || n_kv > MAX_KV) {
        return cairn_fail(err,
                          "the header claims %llu tensors and %llu metadata keys, the "
                          "limits are %d and %d",
                          (unsigned long long)n_tensors, (unsigned long long)n_kv, MAX_TENSORS,
                          MAX_KV);
    }
    for (uint64_t i = 0; i < n_kv; i++) {
        if (walk_kv(&w, i) != 0) {
            return -1;
        }
    }
    for (uint64_t i = 0; i < n_tensors; i++) {
        if (walk_tensor_info(&w, i) != 0) {
            return -1;
        }
    }
    *end = w.pos;
    return 0;
}

/* ---- capturing ggml's log while gguf parses ---- */

/* ggml reports gguf parse errors only through its logger; we keep the first error line so
 * the caller gets one message instead of text on stderr. Lives on the caller's stack. */
typedef struct log_capture {
    char first_error[256];
} log_capture;

static void capture_log(enum ggml_log_level level, const char *text, void *user) {
    log_capture *cap = user;
    if (level != GGML_LOG_LEVEL_ERROR || cap->first_error[0] != '\0' || text == NULL) {
        return;
    }
    /* Drop the "function_name: " prefix ggml puts in front of every message. */
    const char *colon = strstr(text, ": ");
    if (colon != NULL && colon - text < 40 && strchr(text, ' ') == colon + 1) {
        text = colon + 2;
    }
    size_t n = strcspn(text, "\n");
    if (n >= sizeof cap->first_error) {
        n = sizeof cap->first_error - 1;
    }
    memcpy(cap->first_error, text, n);
    cap->first_error[n] = '\0';
}

/* The logger is ggml's process-wide state: opening files from two threads at once could mix
 * up their messages (never their results). */
static struct gguf_context *parse_gguf(const cairn_mapped_file *map, cairn_err *err) {
    uint64_t header_end = 0;
    if (walk_header(map, &header_end, err) != 0) {
        cairn_fail_prefix(err, "invalid GGUF");
        return NULL;
    }
    log_capture cap = {{0}};
    ggml_log_callback old_cb = NULL;
    void *old_user = NULL;
    ggml_log_get(&old_cb, &old_user);
    ggml_log_set(capture_log, &cap);
    struct gguf_init_params params = {.no_alloc = true, .ctx = NULL};
    struct gguf_context *g = gguf_init_from_buffer(map->data, (size_t)map->size, params);
    ggml_log_set(old_cb, old_user);
    if (g == NULL) {
        cairn_fail(err, "invalid GGUF: %s",
                   cap.first_error[0] ? cap.first_error : "the header could not be parsed");
    } else if (gguf_get_data_offset(g) < header_end) {
        cairn_fail(err, "invalid GGUF: tensor data starts at %zu, inside the header",
                   gguf_get_data_offset(g));
        gguf_free(g);
        g = NULL;
    }
    return g;
}

/* ---- tensor directory ---- */

/* A type the CPU backend can both multiply (vec_dot) and convert to float (get_rows; f32
 * needs no conversion). Removed and intermediate-only types have no such functions. */
static bool cpu_can_compute(int type) {
    if (type < 0 || type >= GGML_TYPE_COUNT) {
        return false;
    }
    const struct ggml_type_traits *tt = ggml_get_type_traits((enum ggml_type)type);
    const struct ggml_type_traits_cpu *ct = ggml_get_type_traits_cpu((enum ggml_type)type);
    return tt->blck_size > 0 && tt->type_size > 0 &&
           (type == GGML_TYPE_F32 || tt->to_float != NULL) && ct->vec_dot != NULL;
}

static int tensor_bytes(const cairn_tensor_info *t, uint64_t *out, cairn_err *err) {
    const struct ggml_type_traits *tt = ggml_get_type_traits((enum ggml_type)t->type);
    for (int d = 0; d < 4; d++) {
        if (t->ne[d] <= 0) {
            return cairn_fail(err, "tensor '%s' has dimension %d of size %lld", t->name, d,
                              (long long)t->ne[d]);
        }
    }
    if (t->ne[0] % tt->blck_size != 0) {
        return cairn_fail(err,
                          "tensor '%s' of type %s has rows of %lld elements, not a multiple "
                          "of its block size %lld",
                          t->name, tt->type_name, (long long)t->ne[0], (long long)tt->blck_size);
    }
    uint64_t bytes = 0;
    bool overflow =
        cairn_mul_overflows((uint64_t)(t->ne[0] / tt->blck_size), tt->type_size, &bytes);
    for (int d = 1; d < 4 && !overflow; d++) {
        overflow = cairn_mul_overflows(bytes, (uint64_t)t->ne[d], &bytes);
    }
    if (overflow || bytes > SIZE_MAX) {
        return cairn_fail(err, "tensor '%s' is too large to address", t->name);
    }
    *out = bytes;
    return 0;
}

static int read_tensor_info(const struct gguf_context *g, int64_t i, uint64_t data_offset,
                            uint64_t file_size, cairn_tensor_info *t, cairn_err *err) {
    t->name = gguf_get_tensor_name(g, i);
    t->type = (int)gguf_get_tensor_type(g, i);
    if (t->name[0] == '\0') {
        return cairn_fail(err, "tensor %lld has an empty name", (long long)i);
    }
    if (!cpu_can_compute(t->type)) {
        return cairn_fail(
            err, "tensor '%s' has type %d (%s), which cairn cannot compute with", t->name, t->type,
            t->type >= 0 && t->type < GGML_TYPE_COUNT ? ggml_type_name((enum ggml_type)t->type)
                                                      : "invalid");
    }
    const int64_t *ne = gguf_get_tensor_ne(g, i);
    t->n_dims = 1;
    for (int d = 0; d < 4; d++) {
        t->ne[d] = ne[d];
        if (ne[d] != 1) {
            t->n_dims = d + 1;
        }
    }
    if (tensor_bytes(t, &t->size, err) != 0) {
        return -1;
    }
    uint64_t rel = gguf_get_tensor_offset(g, i);
    if (rel % gguf_get_alignment(g) != 0) {
        return cairn_fail(err,
                          "tensor '%s' data offset %llu is not a multiple of the alignment %zu",
                          t->name, (unsigned long long)rel, gguf_get_alignment(g));
    }
    uint64_t room = file_size > data_offset ? file_size - data_offset : 0;
    if (rel > room) {
        return cairn_fail(err, "tensor '%s' data starts at %llu + %llu, beyond the file size %llu",
                          t->name, (unsigned long long)data_offset, (unsigned long long)rel,
                          (unsigned long long)file_size);
    }
    uint64_t end;
    if (t->size > room - rel) {
        if (cairn_add_overflows(data_offset + rel, t->size, &end)) {
            return cairn_fail(err, "tensor '%s' has %llu bytes, beyond the file size %llu", t->name,
                              (unsigned long long)t->size, (unsigned long long)file_size);
        }
        return cairn_fail(err, "tensor '%s' data ends at %llu beyond the file size %llu", t->name,
                          (unsigned long long)end, (unsigned long long)file_size);
    }
    t->offset = data_offset + rel;
    return 0;
}

static int compare_offsets(const void *a, const void *b) {
    const cairn_tensor_info *x = *(const cairn_tensor_info *const *)a;
    const cairn_tensor_info *y = *(const cairn_tensor_info *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int check_no_overlap(const cairn_model_file *m, cairn_err *err) {
    if (m->n_tensors < 2) {
        return 0;
    }
    const cairn_tensor_info **order = malloc((size_t)m->n_tensors * sizeof(cairn_tensor_info *));
    if (order == NULL) {
        return cairn_fail(err, "out of memory");
    }
    for (int64_t i = 0; i < m->n_tensors; i++) {
        order[i] = &m->tensors[i];
    }
    qsort(order, (size_t)m->n_tensors, sizeof(cairn_tensor_info *), compare_offsets);
    int rc = 0;
    for (int64_t i = 1; i < m->n_tensors && rc == 0; i++) {
        if (order[i - 1]->offset + order[i - 1]->size > order[i]->offset) {
            rc = cairn_fail(err, "tensors '%s' and '%s' overlap", order[i - 1]->name,
                            order[i]->name);
        }
    }
    free(order);
    return rc;
}

static int load_tensor_table(cairn_model_file *m, cairn_err *err) {
    int64_t n = gguf_get_n_tensors(m->gguf);
    if (n == 0) {
        return 0;
    }
    m->tensors = calloc((size_t)n, sizeof *m->tensors);
    if (m->tensors == NULL) {
        return cairn_fail(err, "out of memory for %lld tensor entries", (long long)n);
    }
    m->n_tensors = n;
    uint64_t data_offset = gguf_get_data_offset(m->gguf);
    for (int64_t i = 0; i < n; i++) {
        if (read_tensor_info(m->gguf, i, data_offset, m->map.size, &m->tensors[i], err) != 0) {
            return cairn_fail_prefix(err, "invalid GGUF");
        }
    }
    if (check_no_overlap(m, err) != 0) {
        return cairn_fail_prefix(err, "invalid GGUF");
    }
    return 0;
}

const cairn_tensor_info *cairn_model_tensor(const cairn_model_file *m, const char *name) {
    for (int64_t i = 0; i < m->n_tensors; i++) {
        if (strcmp(m->tensors[i].name, name) == 0) {
            return &m->tensors[i];
        }
    }
    return NULL;
}

/* ---- hyperparameters ---- */

typedef struct hp_reader {
    const struct gguf_context *g;
    const char *arch;
    cairn_err *err;
} hp_reader;

/* Reads "<arch>.<suffix>" as an int in [lo, hi]; absent keys take def, or fail if required. */
static int arch_int(const hp_reader *r, const char *suffix, bool required, int64_t def, int64_t lo,
                    int64_t hi, int *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", r->arch, suffix);
    int64_t v = def;
    int found = cairn_meta_int(r->g, key, &v, r->err);
    if (found < 0) {
        return -1;
    }
    if (found == 0 && required) {
        return cairn_fail(r->err, "missing metadata key %s", key);
    }
    if (v < lo || v > hi) {
        return cairn_fail(r->err, "metadata key %s is %lld, expected %lld..%lld", key, (long long)v,
                          (long long)lo, (long long)hi);
    }
    *out = (int)v;
    return 0;
}

static int arch_float(const hp_reader *r, const char *suffix, double def, double lo, double hi,
                      float *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", r->arch, suffix);
    double v = def;
    if (cairn_meta_float(r->g, key, &v, r->err) < 0) {
        return -1;
    }
    if (!(v >= lo && v <= hi)) {
        return cairn_fail(r->err, "metadata key %s is %g, expected %g..%g", key, v, lo, hi);
    }
    *out = (float)v;
    return 0;
}

static int read_arch(const struct gguf_context *g, cairn_hparams *hp, cairn_err *err) {
    const char *name = NULL;
    int found = cairn_meta_str(g, "general.architecture", &name, err);
    if (found < 0) {
        return -1;
    }
    if (found == 0) {
        return cairn_fail(err, "missing metadata key general.architecture");
    }
    if (cairn_arch_from_name(name, &hp->arch) != 0) {
        char known[160];
        size_t used = 0;
        for (int a = 0; a < CAIRN_ARCH_COUNT && used < sizeof known; a++) {
            used += (size_t)snprintf(known + used, sizeof known - used, "%s%s", a ? ", " : "",
                                     cairn_arch_name((cairn_arch)a));
        }
        return cairn_fail(err, "unsupported architecture '%.64s' (cairn runs %s)", name, known);
    }
    snprintf(hp->arch_name, sizeof hp->arch_name, "%s", name);
    return 0;
}

static float yarn_mscale(float factor, float mscale) {
    return factor <= 1.0f ? 1.0f : 0.1f * mscale * logf(factor) + 1.0f;
}

/* What YaRN's attention factor becomes before ggml's rope applies its own magnitude
 * correction (1 + 0.1 ln factor), which this cancels: the reference's arithmetic, so files
 * with a yarn_log_multiplier (DeepSeek) rotate alike. */
static float yarn_attention_factor(const cairn_hparams *hp) {
    float factor = 1.0f / hp->rope_freq_scale, a;
    if (hp->yarn_log_mul != 0.0f) {
        float mscale =
            hp->arch == CAIRN_ARCH_DEEPSEEK2 && hp->yarn_log_mul != 1.0f ? hp->yarn_log_mul : 1.0f;
        a = yarn_mscale(factor, mscale) / yarn_mscale(factor, hp->yarn_log_mul);
    } else {
        a = yarn_mscale(factor, 1.0f);
    }
    return a / (1.0f + 0.1f * logf(factor));
}

static int read_rope_scaling(const hp_reader *r, cairn_hparams *hp) {
    char key[128];
    const char *type = "none";
    snprintf(key, sizeof key, "%s.rope.scaling.type", r->arch);
    if (cairn_meta_str(r->g, key, &type, r->err) < 0) {
        return -1;
    }
    if (strcmp(type, "none") == 0) {
        hp->rope_scaling = CAIRN_ROPE_SCALING_NONE;
    } else if (strcmp(type, "linear") == 0) {
        hp->rope_scaling = CAIRN_ROPE_SCALING_LINEAR;
    } else if (strcmp(type, "yarn") == 0) {
        hp->rope_scaling = CAIRN_ROPE_SCALING_YARN;
    } else {
        return cairn_fail(r->err, "unsupported rope scaling type '%.32s'", type);
    }
    float factor = 0.0f;
    /* Older files only have rope.scale_linear; a factor of 0 means "not scaled". */
    if (arch_float(r, "rope.scale_linear", 0.0, 0.0, 1e6, &factor) != 0 ||
        arch_float(r, "rope.scaling.factor", factor, 0.0, 1e6, &factor) != 0) {
        return -1;
    }
    hp->rope_freq_scale =
        hp->rope_scaling == CAIRN_ROPE_SCALING_NONE || factor == 0.0f ? 1.0f : 1.0f / factor;
    if (arch_int(r, "rope.scaling.original_context_length", false, hp->n_ctx_train, 1, MAX_CTX,
                 &hp->rope_orig_ctx) != 0 ||
        arch_float(r, "rope.scaling.attn_factor", 1.0, 0.0, 1e3, &hp->yarn_attn_factor) != 0 ||
        arch_float(r, "rope.scaling.yarn_beta_fast", 32.0, 0.0, 1e4, &hp->yarn_beta_fast) != 0 ||
        arch_float(r, "rope.scaling.yarn_beta_slow", 1.0, 0.0, 1e4, &hp->yarn_beta_slow) != 0) {
        return -1;
    }
    hp->yarn_ext_factor = hp->rope_scaling == CAIRN_ROPE_SCALING_YARN ? 1.0f : 0.0f;
    if (hp->arch == CAIRN_ARCH_DEEPSEEK2) {
        /* stored as 0.1 times the multiplier */
        if (arch_float(r, "rope.scaling.yarn_log_multiplier", 0.0, 0.0, 100.0, &hp->yarn_log_mul) !=
            0) {
            return -1;
        }
        hp->yarn_log_mul /= 0.1f;
    }
    if (hp->yarn_ext_factor != 0.0f) {
        hp->yarn_attn_factor *= yarn_attention_factor(hp);
    }
    return 0;
}

static int read_attention(const hp_reader *r, cairn_hparams *hp) {
    if (arch_int(r, "attention.head_count", true, 0, 1, MAX_HEADS, &hp->n_head) != 0 ||
        arch_int(r, "attention.head_count_kv", false, hp->n_head, 1, MAX_HEADS, &hp->n_head_kv) !=
            0) {
        return -1;
    }
    if (hp->n_head % hp->n_head_kv != 0) {
        return cairn_fail(r->err, "%d attention heads cannot be shared by %d key/value heads",
                          hp->n_head, hp->n_head_kv);
    }
    char key[128];
    snprintf(key, sizeof key, "%s.attention.key_length", r->arch);
    if (gguf_find_key(r->g, key) < 0 && hp->n_embd % hp->n_head != 0) {
        return cairn_fail(r->err, "embedding length %d is not a multiple of the head count %d",
                          hp->n_embd, hp->n_head);
    }
    int def_dim = hp->n_embd / hp->n_head;
    if (arch_int(r, "attention.key_length", false, def_dim, 1, MAX_HEAD_DIM, &hp->head_dim_k) !=
            0 ||
        arch_int(r, "attention.value_length", false, def_dim, 1, MAX_HEAD_DIM, &hp->head_dim_v) !=
            0 ||
        arch_int(r, "rope.dimension_count", false, hp->head_dim_k, 2, hp->head_dim_k,
                 &hp->rope_dims) != 0) {
        return -1;
    }
    if (hp->rope_dims % 2 != 0) {
        return cairn_fail(r->err, "rope dimension count %d is odd", hp->rope_dims);
    }
    double eps_default = hp->arch == CAIRN_ARCH_LLAMA ? 1e-5 : 1e-6;
    return arch_float(r, "attention.layer_norm_rms_epsilon", eps_default, 1e-12, 0.1,
                      &hp->norm_eps);
}

/* Families whose router is fixed by the reference implementation ignore the file's gating
 * keys; the others (glm4moe) read them, with the family's default. */
static int read_routing(const hp_reader *r, cairn_hparams *hp) {
    hp->gating =
        hp->arch == CAIRN_ARCH_GPT_OSS ? CAIRN_GATING_SOFTMAX_WEIGHT : CAIRN_GATING_SOFTMAX;
    hp->expert_weights_norm = hp->arch != CAIRN_ARCH_GPT_OSS;
    bool glm = hp->arch == CAIRN_ARCH_GLM4MOE;
    if (!glm && hp->arch != CAIRN_ARCH_DEEPSEEK2) {
        return 0;
    }
    int gating = 0;
    char key[128];
    snprintf(key, sizeof key, "%s.expert_weights_norm", r->arch);
    hp->expert_weights_norm = false;
    if (arch_int(r, "expert_gating_func", false, glm ? CAIRN_GATING_SIGMOID : CAIRN_GATING_SOFTMAX,
                 0, CAIRN_GATING_SOFTMAX_WEIGHT, &gating) != 0 ||
        cairn_meta_bool(r->g, key, &hp->expert_weights_norm, r->err) < 0) {
        return -1;
    }
    hp->gating = gating != 0 ? (cairn_gating)gating
                 : glm       ? CAIRN_GATING_SIGMOID
                             : CAIRN_GATING_SOFTMAX;
    return 0;
}

/* The router and expert sizes of a mixture of experts. */
static int read_experts(const hp_reader *r, cairn_hparams *hp) {
    bool always = hp->arch == CAIRN_ARCH_QWEN3MOE || hp->arch == CAIRN_ARCH_GPT_OSS ||
                  hp->arch == CAIRN_ARCH_GLM4MOE || hp->arch == CAIRN_ARCH_DEEPSEEK2;
    if (arch_int(r, "expert_count", always, 0, 0, MAX_EXPERTS, &hp->n_expert) != 0) {
        return -1;
    }
    if (hp->n_expert == 0) {
        return 0;
    }
    if (!always && hp->arch != CAIRN_ARCH_LLAMA) {
        return cairn_fail(r->err, "%s models with experts are not supported", hp->arch_name);
    }
    if (arch_int(r, "expert_used_count", true, 0, 1, hp->n_expert, &hp->n_expert_used) != 0 ||
        arch_int(r, "expert_feed_forward_length", hp->arch == CAIRN_ARCH_GPT_OSS,
                 hp->arch == CAIRN_ARCH_QWEN3MOE ? hp->n_ff / hp->n_expert_used : hp->n_ff, 1,
                 MAX_FF, &hp->n_ff_exp) != 0 ||
        arch_float(r, "expert_weights_scale", 1.0, 0.0, 1e6, &hp->expert_weights_scale) != 0 ||
        arch_int(r, "expert_shared_count", false, 0, 0, MAX_EXPERTS, &hp->n_expert_shared) != 0 ||
        arch_int(r, "leading_dense_block_count", false, 0, 0, hp->n_layer,
                 &hp->n_layer_dense_lead) != 0 ||
        arch_int(r, "expert_group_count", false, 1, 1, hp->n_expert, &hp->n_expert_groups) != 0 ||
        arch_int(r, "expert_group_used_count", false, hp->n_expert_groups, 1, hp->n_expert_groups,
                 &hp->n_group_used) != 0 ||
        read_routing(r, hp) != 0) {
        return -1;
    }
    if (hp->expert_weights_scale == 0.0f) {
        hp->expert_weights_scale = 1.0f;
    }
    if (hp->n_expert % hp->n_expert_groups != 0) {
        return cairn_fail(r->err, "%d experts cannot form %d equal groups", hp->n_expert,
                          hp->n_expert_groups);
    }
    return 0;
}

/* Files of some families carry next-token-prediction blocks after the model's own layers
 * (counted in block_count); they serve speculative decoding, which cairn does not do. */
static int read_nextn(const hp_reader *r, cairn_hparams *hp) {
    if (arch_int(r, "nextn_predict_layers", false, 0, 0, hp->n_layer - 1, &hp->n_layer_nextn) !=
        0) {
        return -1;
    }
    hp->n_layer -= hp->n_layer_nextn;
    return 0;
}

/* Sliding windows: gemma3 and gpt-oss interleave windowed layers with global ones. */
static int read_sliding_window(const hp_reader *r, cairn_hparams *hp) {
    bool gemma3 = hp->arch == CAIRN_ARCH_GEMMA3, gpt_oss = hp->arch == CAIRN_ARCH_GPT_OSS;
    hp->rope_freq_base_swa = hp->rope_freq_base;
    if (!gemma3 && !gpt_oss) {
        return 0;
    }
    if (arch_int(r, "attention.sliding_window", gpt_oss, 0, 0, MAX_CTX, &hp->n_swa) != 0 ||
        arch_int(r, "attention.sliding_window_pattern", false, gemma3 ? 6 : 2, 1, MAX_LAYERS,
                 &hp->swa_period) != 0 ||
        arch_float(r, "rope.freq_base_swa", gemma3 ? 10000.0 : hp->rope_freq_base, 1e-3, 1e12,
                   &hp->rope_freq_base_swa) != 0) {
        return -1;
    }
    return 0;
}

/* deepseek2 files store the latent form of attention: one "head" of kv_lora_rank latent
 * values plus the rotated part, decompressed per head by attn_k_b and attn_v_b. Older
 * conversions without those tensors (attn_kv_b only) are refused. */
static int read_latent_attention(const hp_reader *r, cairn_hparams *hp) {
    if (hp->arch != CAIRN_ARCH_DEEPSEEK2) {
        return 0;
    }
    char key[128];
    snprintf(key, sizeof key, "%s.attention.key_length_mla", r->arch);
    if (gguf_find_key(r->g, key) < 0) {
        return cairn_fail(r->err,
                          "this deepseek2 file has no %s: it was converted without "
                          "latent attention tensors; convert it again",
                          key);
    }
    if (arch_int(r, "attention.q_lora_rank", false, 0, 0, MAX_EMBD, &hp->q_lora_rank) != 0 ||
        arch_int(r, "attention.kv_lora_rank", true, 0, 1, MAX_HEAD_DIM, &hp->kv_lora_rank) != 0 ||
        arch_int(r, "attention.key_length_mla", true, 0, hp->rope_dims + 1, MAX_HEAD_DIM,
                 &hp->mla_head_dim_k) != 0 ||
        arch_int(r, "attention.value_length_mla", true, 0, 1, MAX_HEAD_DIM, &hp->mla_head_dim_v) !=
            0) {
        return -1;
    }
    if (hp->n_head_kv != 1 || hp->head_dim_k != hp->kv_lora_rank + hp->rope_dims ||
        hp->head_dim_v != hp->kv_lora_rank) {
        return cairn_fail(r->err,
                          "latent attention needs 1 key/value head of %d + %d keys and %d "
                          "values; the file says %d heads of %d and %d",
                          hp->kv_lora_rank, hp->rope_dims, hp->kv_lora_rank, hp->n_head_kv,
                          hp->head_dim_k, hp->head_dim_v);
    }
    return 0;
}

/* gemma3 27B scales queries by its embedding width per head rather than its head size;
 * deepseek2 by the decompressed head size, with YaRN's temperature squared. */
static void set_attention_scale(cairn_hparams *hp) {
    if (hp->arch == CAIRN_ARCH_DEEPSEEK2) {
        float stretch = logf(1.0f / hp->rope_freq_scale);
        float unadjusted = hp->yarn_attn_factor * (1.0f + 0.1f * stretch);
        float mscale = unadjusted * (1.0f + 0.1f * hp->yarn_log_mul * stretch);
        hp->attn_scale = mscale * mscale / sqrtf((float)hp->mla_head_dim_k);
        return;
    }
    int dim = hp->head_dim_k;
    if (hp->arch == CAIRN_ARCH_GEMMA3 && hp->n_layer == 62) {
        dim = hp->n_embd / hp->n_head;
    }
    hp->attn_scale = 1.0f / sqrtf((float)dim);
}

static int read_vocab_size(const cairn_model_file *m, cairn_hparams *hp, cairn_err *err) {
    size_t n_tokens = 0;
    int found =
        cairn_meta_array(m->gguf, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &n_tokens, err);
    if (found < 0) {
        return -1;
    }
    const cairn_tensor_info *embd = cairn_model_tensor(m, "token_embd.weight");
    int64_t n = found ? (int64_t)n_tokens : embd != NULL ? embd->ne[1] : 0;
    if (n < 1 || n > MAX_VOCAB) {
        return cairn_fail(err, "vocabulary size %lld is outside 1..%d", (long long)n, MAX_VOCAB);
    }
    hp->n_vocab = (int)n;
    return 0;
}

static int read_hparams(cairn_model_file *m, cairn_err *err) {
    cairn_hparams *hp = &m->hp;
    memset(hp, 0, sizeof *hp);
    if (read_arch(m->gguf, hp, err) != 0) {
        return -1;
    }
    hp_reader r = {m->gguf, hp->arch_name, err};
    if (arch_int(&r, "context_length", true, 0, 1, MAX_CTX, &hp->n_ctx_train) != 0 ||
        arch_int(&r, "embedding_length", true, 0, 1, MAX_EMBD, &hp->n_embd) != 0 ||
        arch_int(&r, "block_count", true, 0, 1, MAX_LAYERS, &hp->n_layer) != 0 ||
        arch_int(&r, "feed_forward_length", true, 0, 1, MAX_FF, &hp->n_ff) != 0 ||
        read_nextn(&r, hp) != 0 || read_attention(&r, hp) != 0 ||
        arch_float(&r, "rope.freq_base", 10000.0, 1e-3, 1e12, &hp->rope_freq_base) != 0 ||
        read_rope_scaling(&r, hp) != 0 || read_vocab_size(m, hp, err) != 0 ||
        read_experts(&r, hp) != 0 || read_sliding_window(&r, hp) != 0 ||
        read_latent_attention(&r, hp) != 0) {
        return -1;
    }
    set_attention_scale(hp);
    hp->has_rope_freqs = cairn_model_tensor(m, "rope_freqs.weight") != NULL;
    hp->tied_embeddings = cairn_model_tensor(m, "output.weight") == NULL;
    return 0;
}

/* ---- required tensors ---- */

typedef enum tensor_kind {
    KIND_MATRIX, /* any type the CPU can multiply */
    KIND_F32,    /* norms, biases, frequency factors: added or multiplied elementwise in F32 */
} tensor_kind;

static void format_shape(char *out, size_t len, int n_dims, const int64_t *ne) {
    size_t used = (size_t)snprintf(out, len, "[");
    for (int d = 0; d < n_dims && used < len; d++) {
        used += (size_t)snprintf(out + used, len - used, "%s%lld", d ? ", " : "", (long long)ne[d]);
    }
    if (used < len) {
        snprintf(out + used, len - used, "]");
    }
}

static int check_tensor(const cairn_model_file *m, const char *name, tensor_kind kind,
                        const int64_t *ne, bool required, cairn_err *err) {
    const cairn_tensor_info *t = cairn_model_tensor(m, name);
    if (t == NULL) {
        return required ? cairn_fail(err, "missing tensor '%s'", name) : 0;
    }
    int64_t want[4] = {ne[0], 1, 1, 1};
    int want_dims = 1;
    for (int d = 1; d < 3; d++) {
        if (ne[d] > 0) {
            want[d] = ne[d];
            want_dims = d + 1;
        }
    }
    /* compared on all four dimensions: a [n, 1] matrix and an [n] vector are the same */
    if (memcmp(t->ne, want, sizeof want) != 0) {
        char have_s[96], want_s[64];
        format_shape(have_s, sizeof have_s, t->n_dims, t->ne);
        format_shape(want_s, sizeof want_s, want_dims, want);
        return cairn_fail(err, "tensor '%s' has shape %s, expected %s", name, have_s, want_s);
    }
    if (kind == KIND_F32 && t->type != GGML_TYPE_F32) {
        return cairn_fail(err, "tensor '%s' has type %s, expected f32", name,
                          ggml_type_name((enum ggml_type)t->type));
    }
    return 0;
}

static int check_tensor_2d(const cairn_model_file *m, const char *name, tensor_kind kind,
                           int64_t ne0, int64_t ne1, bool required, cairn_err *err) {
    const int64_t ne[3] = {ne0, ne1, 0};
    return check_tensor(m, name, kind, ne, required, err);
}

static int check_layer(const cairn_model_file *m, int il, cairn_err *err) {
    cairn_tensor_spec specs[CAIRN_LT_COUNT];
    int n = cairn_layer_specs(&m->hp, il, specs);
    for (int i = 0; i < n; i++) {
        char name[96];
        snprintf(name, sizeof name, "blk.%d.%s", il, cairn_layer_tensor_name(specs[i].role));
        if (check_tensor(m, name, specs[i].matrix ? KIND_MATRIX : KIND_F32, specs[i].ne,
                         specs[i].required, err) != 0) {
            return -1;
        }
    }
    return 0;
}

static int check_required_tensors(const cairn_model_file *m, cairn_err *err) {
    const cairn_hparams *hp = &m->hp;
    if (check_tensor_2d(m, "token_embd.weight", KIND_MATRIX, hp->n_embd, hp->n_vocab, true, err) ||
        check_tensor_2d(m, "output_norm.weight", KIND_F32, hp->n_embd, 0, true, err) ||
        check_tensor_2d(m, "output.weight", KIND_MATRIX, hp->n_embd, hp->n_vocab, false, err) ||
        check_tensor_2d(m, "rope_freqs.weight", KIND_F32, hp->rope_dims / 2, 0, false, err)) {
        return -1;
    }
    for (int il = 0; il < hp->n_layer; il++) {
        if (check_layer(m, il, err) != 0) {
            return -1;
        }
    }
    return 0;
}

/* ---- opening and closing ---- */

/* Messages quote names and keys straight from the file; keep them one printable line of
 * valid UTF-8 whatever bytes the file holds. */
static void sanitize_message(cairn_err *err) {
    if (err == NULL) {
        return;
    }
    size_t len = strlen(err->msg);
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int n = cairn_utf8_decode(err->msg + i, len - i, &cp);
        bool genuine_fffd = n == 3 && memcmp(err->msg + i, "\xEF\xBF\xBD", 3) == 0;
        if ((cp == 0xFFFD && !genuine_fffd) || cp < 0x20 || cp == 0x7F) {
            memset(err->msg + i, '?', (size_t)n);
        }
        i += (size_t)n;
    }
}

static int open_file(const char *path, bool need_weights, cairn_model_file **out, cairn_err *err) {
    *out = NULL;
    cairn_model_file *m = calloc(1, sizeof *m);
    if (m == NULL) {
        return cairn_fail(err, "%s: out of memory", path);
    }
    int rc = -1;
    m->path = cairn_strdup(path);
    if (m->path == NULL) {
        cairn_fail(err, "out of memory");
    } else if (cairn_map_file(path, &m->map, err) != 0) {
        /* the platform layer's message already names the file */
        cairn_model_close(m);
        return -1;
    } else if ((m->gguf = parse_gguf(&m->map, err)) != NULL && load_tensor_table(m, err) == 0) {
        if (!need_weights) {
            rc = 0;
        } else if (m->n_tensors == 0) {
            cairn_fail(err, "the file has no tensors (a vocabulary-only file?)");
        } else if (read_hparams(m, err) == 0 && check_required_tensors(m, err) == 0) {
            m->has_hparams = true;
            rc = 0;
        }
    }
    if (rc != 0) {
        cairn_fail_prefix(err, "%s", path);
        sanitize_message(err);
        cairn_model_close(m);
        return -1;
    }
    *out = m;
    return 0;
}

int cairn_model_open(const char *path, cairn_model_file **out, cairn_err *err) {
    return open_file(path, true, out, err);
}

int cairn_model_open_metadata(const char *path, cairn_model_file **out, cairn_err *err) {
    return open_file(path, false, out, err);
}

void cairn_model_close(cairn_model_file *m) {
    if (m == NULL) {
        return;
    }
    if (m->gguf != NULL) {
        gguf_free(m->gguf);
    }
    if (m->map.data != NULL) {
        cairn_unmap_file(&m->map);
    }
    free(m->tensors);
    free(m->path);
    free(m);
}

/* ---- shard sizes ---- */

/* Layer index of a "blk.N." tensor, or -1. */
static int tensor_layer(const char *name) {
    if (strncmp(name, "blk.", 4) != 0) {
        return -1;
    }
    char *end = NULL;
    long il = strtol(name + 4, &end, 10);
    if (end == name + 4 || *end != '.' || il < 0 || il > MAX_LAYERS) {
        return -1;
    }
    return (int)il;
}

static uint64_t tensor_size_or_zero(const cairn_model_file *m, const char *name) {
    const cairn_tensor_info *t = cairn_model_tensor(m, name);
    return t != NULL ? t->size : 0;
}

uint64_t cairn_model_shard_bytes(const cairn_model_file *m, int first, int last) {
    int n_layer = m->has_hparams ? m->hp.n_layer : 0;
    if (first < 0 || last > n_layer || first >= last) {
        return 0;
    }
    uint64_t total = 0;
    for (int64_t i = 0; i < m->n_tensors; i++) {
        int il = tensor_layer(m->tensors[i].name);
        if (il >= first && il < last) {
            total += m->tensors[i].size;
        }
    }
    /* Every shard rotates with the frequency factors, so each one needs them. */
    total += tensor_size_or_zero(m, "rope_freqs.weight");
    bool is_first = first == 0, is_last = last == n_layer;
    if (is_first) {
        total += tensor_size_or_zero(m, "token_embd.weight");
    }
    if (is_last) {
        total += tensor_size_or_zero(m, "output_norm.weight");
        if (!m->hp.tied_embeddings) {
            total += tensor_size_or_zero(m, "output.weight");
        } else if (!is_first) {
            total += tensor_size_or_zero(m, "token_embd.weight");
        }
    }
    return total;
}
