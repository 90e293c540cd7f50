/* cluster wire protocol: frame codec, JSON and data payloads (see wire.h). */
#include "cluster/wire.h"

#include "cluster/state.h"
#include "util/json.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- little-endian fields ---- */

static uint16_t get_u16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t get_u64(const uint8_t *p) {
    return (uint64_t)get_u32(p) | ((uint64_t)get_u32(p + 4) << 32);
}

static void put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void put_u64(uint8_t *p, uint64_t v) {
    put_u32(p, (uint32_t)v);
    put_u32(p + 4, (uint32_t)(v >> 32));
}

static const uint8_t WIRE_MAGIC[4] = {'C', 'R', 'N', 'W'};

/* ---- message types ---- */

typedef struct type_info {
    const char *name;
    cairn_wire_payload_kind kind;
    bool needs_payload;
    uint32_t max_payload;
} type_info;

static const type_info TYPES[] = {
    [CAIRN_WIRE_HELLO] = {"HELLO", CAIRN_WIRE_PAYLOAD_JSON, true, CAIRN_WIRE_MAX_SMALL},
    [CAIRN_WIRE_HELLO_ACK] = {"HELLO_ACK", CAIRN_WIRE_PAYLOAD_JSON, true, CAIRN_WIRE_MAX_SMALL},
    [CAIRN_WIRE_HEARTBEAT] = {"HEARTBEAT", CAIRN_WIRE_PAYLOAD_JSON, false, CAIRN_WIRE_MAX_SMALL},
    [CAIRN_WIRE_AUTH_CHALLENGE] = {"AUTH_CHALLENGE", CAIRN_WIRE_PAYLOAD_BINARY, true,
                                   CAIRN_WIRE_MAX_AUTH},
    [CAIRN_WIRE_AUTH_RESPONSE] = {"AUTH_RESPONSE", CAIRN_WIRE_PAYLOAD_BINARY, true,
                                  CAIRN_WIRE_MAX_AUTH},
    [CAIRN_WIRE_EVENT] = {"EVENT", CAIRN_WIRE_PAYLOAD_JSON, true, CAIRN_WIRE_MAX_EVENT},
    [CAIRN_WIRE_EVENT_ACK] = {"EVENT_ACK", CAIRN_WIRE_PAYLOAD_JSON, true, CAIRN_WIRE_MAX_SMALL},
    [CAIRN_WIRE_EVENT_REQUEST] = {"EVENT_REQUEST", CAIRN_WIRE_PAYLOAD_JSON, true,
                                  CAIRN_WIRE_MAX_SMALL},
    [CAIRN_WIRE_SNAPSHOT] = {"SNAPSHOT", CAIRN_WIRE_PAYLOAD_JSON, true, CAIRN_WIRE_MAX_SNAPSHOT},
    [CAIRN_WIRE_DATA_ACTIVATIONS] = {"DATA_ACTIVATIONS", CAIRN_WIRE_PAYLOAD_DATA, true,
                                     CAIRN_WIRE_MAX_PAYLOAD},
    [CAIRN_WIRE_DATA_TOKENS] = {"DATA_TOKENS", CAIRN_WIRE_PAYLOAD_DATA, true,
                                CAIRN_WIRE_MAX_PAYLOAD},
    [CAIRN_WIRE_GOODBYE] = {"GOODBYE", CAIRN_WIRE_PAYLOAD_JSON, false, CAIRN_WIRE_MAX_SMALL},
    [CAIRN_WIRE_ERROR] = {"ERROR", CAIRN_WIRE_PAYLOAD_JSON, true, CAIRN_WIRE_MAX_SMALL},
    [CAIRN_WIRE_PROPOSE] = {"PROPOSE", CAIRN_WIRE_PAYLOAD_JSON, true, CAIRN_WIRE_MAX_EVENT},
    [CAIRN_WIRE_CONTROL] = {"CONTROL", CAIRN_WIRE_PAYLOAD_JSON, true, CAIRN_WIRE_MAX_EVENT},
};

bool cairn_wire_type_known(unsigned type) {
    return type >= CAIRN_WIRE_TYPE_FIRST && type <= CAIRN_WIRE_TYPE_LAST;
}

const char *cairn_wire_type_name(unsigned type) {
    return cairn_wire_type_known(type) ? TYPES[type].name : "unknown";
}

cairn_wire_payload_kind cairn_wire_type_payload(cairn_wire_type type) {
    return cairn_wire_type_known(type) ? TYPES[type].kind : CAIRN_WIRE_PAYLOAD_BINARY;
}

bool cairn_wire_type_needs_payload(cairn_wire_type type) {
    return cairn_wire_type_known(type) && TYPES[type].needs_payload;
}

uint32_t cairn_wire_type_max_payload(cairn_wire_type type) {
    return cairn_wire_type_known(type) ? TYPES[type].max_payload : 0;
}

/* ---- encoding ---- */

/* The checks a decoder makes on a header, for the encoder to refuse the same frames. */
static int check_payload_len(cairn_wire_type type, uint64_t len, uint32_t link_limit,
                             cairn_err *err) {
    if (!cairn_wire_type_known((unsigned)type)) {
        return cairn_fail(err, "wire: unknown message type %u", (unsigned)type);
    }
    uint32_t type_limit = TYPES[type].max_payload;
    uint32_t limit = link_limit < type_limit ? link_limit : type_limit;
    if (len > limit) {
        return cairn_fail(err, "wire: %s payload of %llu bytes is over %s limit of %u bytes",
                          TYPES[type].name, (unsigned long long)len,
                          limit == type_limit ? "its type's" : "this link's", (unsigned)limit);
    }
    if (len == 0 && TYPES[type].needs_payload) {
        return cairn_fail(err, "wire: %s frame has an empty payload", TYPES[type].name);
    }
    return 0;
}

/* Appends a header for a payload of len bytes and returns where the payload goes. */
static uint8_t *begin_frame(cairn_wire_type type, size_t len, cairn_buf *out, cairn_err *err) {
    if (check_payload_len(type, len, CAIRN_WIRE_MAX_PAYLOAD, err) != 0) {
        return NULL;
    }
    if (cairn_buf_reserve(out, CAIRN_WIRE_HEADER_SIZE + len) != 0) {
        cairn_fail(err, "wire: out of memory for a %zu-byte %s frame", len, TYPES[type].name);
        return NULL;
    }
    uint8_t *h = (uint8_t *)out->data + out->len;
    memcpy(h, WIRE_MAGIC, sizeof(WIRE_MAGIC));
    h[4] = CAIRN_WIRE_VERSION;
    h[5] = (uint8_t)type;
    put_u16(h + 6, 0);
    put_u32(h + 8, (uint32_t)len);
    out->len += CAIRN_WIRE_HEADER_SIZE + len;
    out->data[out->len] = '\0';
    return h + CAIRN_WIRE_HEADER_SIZE;
}

int cairn_wire_encode(cairn_wire_type type, const void *payload, size_t len, cairn_buf *out,
                      cairn_err *err) {
    uint8_t *p = begin_frame(type, len, out, err);
    if (!p) {
        return -1;
    }
    if (len) {
        memcpy(p, payload, len);
    }
    return 0;
}

/* ---- decoding ---- */

struct cairn_wire_decoder {
    uint8_t *buf;
    size_t len, cap;
    size_t pos;          /* start of the next frame to hand out */
    size_t scan;         /* end of the complete frames whose headers were checked */
    uint64_t stream_pos; /* stream offset of buf[0], for messages */
    uint32_t max_payload;
    uint32_t first_max_payload; /* the stream's first frame's, at most max_payload */
    bool failed;
    cairn_err error;
};

/* Buffers above this are given back once they hold little, so a link that once carried a
 * large frame does not keep its memory. */
#define DECODER_KEEP_CAP ((size_t)256 * 1024)

cairn_wire_decoder *cairn_wire_decoder_new(uint32_t max_payload, cairn_err *err) {
    if (max_payload > CAIRN_WIRE_MAX_PAYLOAD) {
        cairn_fail(err, "wire: link payload limit %u is over the protocol's %u", max_payload,
                   CAIRN_WIRE_MAX_PAYLOAD);
        return NULL;
    }
    cairn_wire_decoder *d = calloc(1, sizeof(*d));
    if (!d) {
        cairn_fail(err, "wire: out of memory for a decoder");
        return NULL;
    }
    d->max_payload = max_payload ? max_payload : CAIRN_WIRE_MAX_PAYLOAD;
    d->first_max_payload = d->max_payload;
    return d;
}

void cairn_wire_decoder_limit_first(cairn_wire_decoder *d, uint32_t max_payload) {
    if (max_payload < d->max_payload) {
        d->first_max_payload = max_payload;
    }
}

void cairn_wire_decoder_free(cairn_wire_decoder *d) {
    if (d) {
        free(d->buf);
        free(d);
    }
}

bool cairn_wire_decoder_failed(const cairn_wire_decoder *d) {
    return d->failed;
}

size_t cairn_wire_decoder_buffered(const cairn_wire_decoder *d) {
    return d->len - d->pos;
}

static int decoder_fail(cairn_wire_decoder *d, cairn_err *err, const char *fmt, ...)
    CAIRN_PRINTF(3, 4);

static int decoder_fail(cairn_wire_decoder *d, cairn_err *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    cairn_failv(&d->error, fmt, ap);
    va_end(ap);
    d->failed = true;
    return cairn_fail(err, "%s", d->error.msg);
}

static int decoder_failed_again(const cairn_wire_decoder *d, cairn_err *err) {
    return cairn_fail(err, "%s", d->error.msg);
}

static void hex_bytes(const uint8_t *p, size_t n, char *out, size_t out_len) {
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && used + 4 <= out_len; i++) {
        static const char digits[] = "0123456789ABCDEF";
        if (i) {
            out[used++] = ' ';
        }
        out[used++] = digits[p[i] >> 4];
        out[used++] = digits[p[i] & 15];
        out[used] = '\0';
    }
}

/* Checks as much of the header at h as has arrived (avail bytes), so a peer that speaks
 * something else entirely is refused at its first wrong byte. Returns 1 with the whole
 * frame's size once the header is complete and valid, 0 while it is incomplete. */
static int check_header(cairn_wire_decoder *d, const uint8_t *h, size_t avail, uint64_t at,
                        size_t *frame_size, cairn_err *err) {
    size_t magic_seen = avail < 4 ? avail : 4;
    if (memcmp(h, WIRE_MAGIC, magic_seen) != 0) {
        char got[16];
        hex_bytes(h, magic_seen, got, sizeof(got));
        return decoder_fail(d, err,
                            "wire: bad magic at stream byte %llu: got %s, expected 43 52 4E 57 "
                            "(\"CRNW\")",
                            (unsigned long long)at, got);
    }
    if (avail > 4 && h[4] != CAIRN_WIRE_VERSION) {
        return decoder_fail(d, err,
                            "wire: frame at stream byte %llu has protocol version %u, this node "
                            "speaks %u",
                            (unsigned long long)at, h[4], CAIRN_WIRE_VERSION);
    }
    if (avail > 5 && !cairn_wire_type_known(h[5])) {
        return decoder_fail(d, err, "wire: frame at stream byte %llu has unknown message type %u",
                            (unsigned long long)at, h[5]);
    }
    if (avail > 7 && get_u16(h + 6) != 0) {
        return decoder_fail(d, err, "wire: %s frame at stream byte %llu sets reserved flags 0x%04X",
                            TYPES[h[5]].name, (unsigned long long)at, get_u16(h + 6));
    }
    if (avail < CAIRN_WIRE_HEADER_SIZE) {
        return 0;
    }
    uint32_t len = get_u32(h + 8);
    cairn_err why;
    uint32_t link_limit = at == 0 ? d->first_max_payload : d->max_payload;
    if (check_payload_len((cairn_wire_type)h[5], len, link_limit, &why) != 0) {
        return decoder_fail(d, err, "%s (frame at stream byte %llu)", why.msg,
                            (unsigned long long)at);
    }
    *frame_size = CAIRN_WIRE_HEADER_SIZE + (size_t)len;
    return 1;
}

/* Advances scan over every frame the buffer now holds completely. */
static int scan_frames(cairn_wire_decoder *d, cairn_err *err) {
    for (;;) {
        size_t frame_size = 0;
        size_t avail = d->len - d->scan;
        if (avail == 0) {
            return 0;
        }
        int r = check_header(d, d->buf + d->scan, avail, d->stream_pos + d->scan, &frame_size, err);
        if (r <= 0 || avail < frame_size) {
            return r < 0 ? -1 : 0;
        }
        d->scan += frame_size;
    }
}

/* Drops the frames already handed out; they were valid only until this feed. */
static void compact(cairn_wire_decoder *d) {
    if (d->pos == 0) {
        return;
    }
    memmove(d->buf, d->buf + d->pos, d->len - d->pos);
    d->len -= d->pos;
    d->scan -= d->pos;
    d->stream_pos += d->pos;
    d->pos = 0;
    if (d->cap > DECODER_KEEP_CAP && d->len < d->cap / 4) {
        size_t cap = d->len > DECODER_KEEP_CAP ? d->len : DECODER_KEEP_CAP;
        uint8_t *smaller = realloc(d->buf, cap);
        if (smaller) {
            d->buf = smaller;
            d->cap = cap;
        }
    }
}

static int grow(cairn_wire_decoder *d, size_t n, cairn_err *err) {
    if (n > SIZE_MAX - d->len) {
        return decoder_fail(d, err, "wire: feed of %zu bytes overflows the buffer", n);
    }
    size_t need = d->len + n;
    if (need <= d->cap) {
        return 0;
    }
    /* Doubling, but not past one largest frame unless a single feed brings more. */
    size_t frame_max = CAIRN_WIRE_HEADER_SIZE + (size_t)d->max_payload;
    size_t cap = d->cap ? d->cap : 4096;
    cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
    if (cap > frame_max) {
        cap = frame_max;
    }
    if (cap < need) {
        cap = need;
    }
    uint8_t *bigger = realloc(d->buf, cap);
    if (!bigger) {
        return decoder_fail(d, err, "wire: out of memory buffering %zu bytes", need);
    }
    d->buf = bigger;
    d->cap = cap;
    return 0;
}

int cairn_wire_decoder_feed(cairn_wire_decoder *d, const void *bytes, size_t n, cairn_err *err) {
    if (d->failed) {
        return decoder_failed_again(d, err);
    }
    if (n == 0) {
        return 0;
    }
    compact(d);
    if (grow(d, n, err) != 0) {
        return -1;
    }
    memcpy(d->buf + d->len, bytes, n);
    d->len += n;
    return scan_frames(d, err);
}

int cairn_wire_decoder_next(cairn_wire_decoder *d, cairn_wire_frame *out, cairn_err *err) {
    if (d->pos == d->scan) {
        return d->failed ? decoder_failed_again(d, err) : 0;
    }
    const uint8_t *h = d->buf + d->pos;
    out->type = (cairn_wire_type)h[5];
    out->flags = get_u16(h + 6);
    out->len = get_u32(h + 8);
    out->payload = h + CAIRN_WIRE_HEADER_SIZE;
    d->pos += CAIRN_WIRE_HEADER_SIZE + (size_t)out->len;
    return 1;
}

/* ---- JSON payloads ---- */

/* Refuses a NUL byte, and nesting and value counts that would make cJSON recurse deeply or
 * allocate far more than the text's size (the walk is util's, with the link's limits). */
static int check_json_shape(const char *s, size_t n, cairn_err *err) {
    const char *nul = memchr(s, '\0', n);
    if (nul) {
        return cairn_fail(err, "JSON payload has a NUL byte at %zu", (size_t)(nul - s));
    }
    return cairn_json_check_shape(s, n, CAIRN_WIRE_JSON_MAX_DEPTH, CAIRN_WIRE_JSON_MAX_VALUES,
                                  "JSON payload", err);
}

int cairn_wire_encode_json(cairn_wire_type type, const cJSON *obj, cairn_buf *out, cairn_err *err) {
    if (cairn_wire_type_payload(type) != CAIRN_WIRE_PAYLOAD_JSON) {
        return cairn_fail(err, "wire: %s frames do not carry JSON", cairn_wire_type_name(type));
    }
    if (!cJSON_IsObject(obj)) {
        return cairn_fail(err, "wire: %s payload must be a JSON object", TYPES[type].name);
    }
    char *text = cJSON_PrintUnformatted(obj);
    if (!text) {
        return cairn_fail(err, "wire: out of memory printing a %s payload", TYPES[type].name);
    }
    size_t len = strlen(text);
    int rc = check_json_shape(text, len, err);
    if (rc != 0) {
        cairn_fail_prefix(err, "wire: %s", TYPES[type].name);
    } else {
        rc = cairn_wire_encode(type, text, len, out, err);
    }
    free(text);
    return rc;
}

int cairn_wire_parse_json(const cairn_wire_frame *f, cJSON **out, cairn_err *err) {
    *out = NULL;
    const char *name = cairn_wire_type_name(f->type);
    if (cairn_wire_type_payload(f->type) != CAIRN_WIRE_PAYLOAD_JSON) {
        return cairn_fail(err, "wire: %s frames do not carry JSON", name);
    }
    if (f->len == 0) {
        if (cairn_wire_type_needs_payload(f->type)) {
            return cairn_fail(err, "wire: %s frame has an empty payload", name);
        }
        *out = cJSON_CreateObject();
        return *out ? 0 : cairn_fail(err, "wire: out of memory");
    }
    if (check_json_shape((const char *)f->payload, f->len, err) != 0) {
        return cairn_fail_prefix(err, "wire: %s", name);
    }
    /* A NUL-terminated copy: cJSON then needs no length bookkeeping to stay in bounds, and
     * require_null_terminated rejects trailing bytes after the object. */
    char *text = cairn_strndup((const char *)f->payload, f->len);
    if (!text) {
        return cairn_fail(err, "wire: out of memory for a %u-byte %s payload", f->len, name);
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    size_t where = end ? (size_t)(end - text) : 0;
    free(text);
    if (!root) {
        return cairn_fail(err, "wire: %s payload is not valid JSON (error at byte %zu)", name,
                          where);
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return cairn_fail(err, "wire: %s payload is JSON but not an object", name);
    }
    *out = root;
    return 0;
}

/* ---- HELLO ---- */

/* Node ids are the cluster state's ids, so they must pass its rules too. */
_Static_assert(CAIRN_WIRE_NODE_ID_MAX + 1 == CAIRN_STATE_ID_SIZE, "node id size");
_Static_assert(CAIRN_WIRE_CLUSTER_MAX + 1 == CAIRN_STATE_NAME_SIZE, "cluster name size");

bool cairn_wire_node_id_valid(const char *s, size_t len) {
    if (len == 0 || len > CAIRN_WIRE_NODE_ID_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

static bool valid_cluster_name(const char *s) {
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (c < 0x20 || c == 0x7F || n >= CAIRN_WIRE_CLUSTER_MAX) {
            return false;
        }
    }
    return n > 0;
}

static int check_hello(const cairn_wire_hello *h, cairn_err *err) {
    const char *id_end = memchr(h->node_id, '\0', sizeof h->node_id);
    if (!id_end || !cairn_wire_node_id_valid(h->node_id, (size_t)(id_end - h->node_id))) {
        return cairn_fail(err, "node_id must be 1..%d characters of A-Z a-z 0-9 . _ : -",
                          CAIRN_WIRE_NODE_ID_MAX);
    }
    if (!valid_cluster_name(h->cluster)) {
        return cairn_fail(err, "cluster must be 1..%d bytes without control characters",
                          CAIRN_WIRE_CLUSTER_MAX);
    }
    if (h->protocol < 1 || h->protocol > 255) {
        return cairn_fail(err, "protocol %u is not 1..255", (unsigned)h->protocol);
    }
    if (h->cluster_port == 0) {
        return cairn_fail(err, "cluster_port must be 1..65535");
    }
    return 0;
}

static bool is_hello_type(cairn_wire_type type) {
    return type == CAIRN_WIRE_HELLO || type == CAIRN_WIRE_HELLO_ACK;
}

int cairn_wire_encode_hello(cairn_wire_type type, const cairn_wire_hello *hello, cairn_buf *out,
                            cairn_err *err) {
    if (!is_hello_type(type)) {
        return cairn_fail(err, "wire: %s is not HELLO or HELLO_ACK", cairn_wire_type_name(type));
    }
    if (check_hello(hello, err) != 0) {
        return cairn_fail_prefix(err, "wire: %s", TYPES[type].name);
    }
    cJSON *obj = cJSON_CreateObject();
    bool ok = obj && cJSON_AddStringToObject(obj, "node_id", hello->node_id) &&
              cJSON_AddStringToObject(obj, "cluster", hello->cluster) &&
              cJSON_AddNumberToObject(obj, "protocol", hello->protocol) &&
              cJSON_AddNumberToObject(obj, "cluster_port", hello->cluster_port) &&
              cJSON_AddNumberToObject(obj, "api_port", hello->api_port);
    char incarnation[17];
    snprintf(incarnation, sizeof incarnation, "%016" PRIx64, hello->incarnation);
    ok = ok && (!hello->incarnation || cJSON_AddStringToObject(obj, "incarnation", incarnation));
    int rc = ok ? cairn_wire_encode_json(type, obj, out, err)
                : cairn_fail(err, "wire: out of memory building %s", TYPES[type].name);
    cJSON_Delete(obj);
    return rc;
}

static int get_name(const cJSON *obj, const char *key, char *out, size_t max, cairn_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsString(v)) {
        return cairn_fail(err, "%s must be a string", key);
    }
    size_t n = strlen(v->valuestring);
    if (n == 0 || n > max) {
        return cairn_fail(err, "%s must be 1..%zu bytes", key, max);
    }
    memcpy(out, v->valuestring, n + 1);
    return 0;
}

static int get_uint(const cJSON *obj, const char *key, double max, uint32_t *out, cairn_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v)) {
        return cairn_fail(err, "%s must be a number", key);
    }
    double x = v->valuedouble;
    if (!(x >= 0 && x <= max) || x != (double)(uint32_t)x) {
        return cairn_fail(err, "%s must be an integer 0..%.0f", key, max);
    }
    *out = (uint32_t)x;
    return 0;
}

static int hello_from_json(const cJSON *obj, cairn_wire_hello *out, cairn_err *err) {
    uint32_t protocol = 0, cluster_port = 0, api_port = 0;
    if (get_name(obj, "node_id", out->node_id, CAIRN_WIRE_NODE_ID_MAX, err) != 0 ||
        get_name(obj, "cluster", out->cluster, CAIRN_WIRE_CLUSTER_MAX, err) != 0 ||
        get_uint(obj, "protocol", 255, &protocol, err) != 0 ||
        get_uint(obj, "cluster_port", 65535, &cluster_port, err) != 0 ||
        get_uint(obj, "api_port", 65535, &api_port, err) != 0) {
        return -1;
    }
    /* optional: nodes before it sent none */
    const cJSON *inc = cJSON_GetObjectItemCaseSensitive(obj, "incarnation");
    char *end = NULL;
    if (inc && (!cJSON_IsString(inc) || strlen(inc->valuestring) != 16 ||
                (out->incarnation = strtoull(inc->valuestring, &end, 16), *end != '\0'))) {
        return cairn_fail(err, "incarnation must be 16 hex digits");
    }
    out->protocol = protocol;
    out->cluster_port = (uint16_t)cluster_port;
    out->api_port = (uint16_t)api_port;
    return check_hello(out, err);
}

int cairn_wire_parse_hello(const cairn_wire_frame *f, cairn_wire_hello *out, cairn_err *err) {
    memset(out, 0, sizeof(*out));
    if (!is_hello_type(f->type)) {
        return cairn_fail(err, "wire: %s is not HELLO or HELLO_ACK", cairn_wire_type_name(f->type));
    }
    cJSON *obj = NULL;
    if (cairn_wire_parse_json(f, &obj, err) != 0) {
        return -1;
    }
    int rc = hello_from_json(obj, out, err);
    cJSON_Delete(obj);
    if (rc != 0) {
        memset(out, 0, sizeof(*out));
        return cairn_fail_prefix(err, "wire: %s", TYPES[f->type].name);
    }
    return 0;
}

/* ---- data frames ---- */

static bool is_data_type(cairn_wire_type type) {
    return type == CAIRN_WIRE_DATA_ACTIVATIONS || type == CAIRN_WIRE_DATA_TOKENS;
}

/* Checks a data header's counts and returns the values' byte size. */
static int data_values_size(cairn_wire_type type, const cairn_wire_data_header *h, uint64_t *bytes,
                            cairn_err *err) {
    const char *name = TYPES[type].name;
    if (h->n_tokens == 0 || h->n_tokens > INT32_MAX) {
        return cairn_fail(err, "wire: %s n_tokens %u is not 1..%d", name, (unsigned)h->n_tokens,
                          INT32_MAX);
    }
    if (h->width == 0 || h->width > INT32_MAX) {
        return cairn_fail(err, "wire: %s width %u is not 1..%d", name, (unsigned)h->width,
                          INT32_MAX);
    }
    if (type == CAIRN_WIRE_DATA_TOKENS && h->width != 1) {
        return cairn_fail(err, "wire: DATA_TOKENS width is %u, must be 1", (unsigned)h->width);
    }
    if (h->flags & ~CAIRN_WIRE_DATA_FLAGS_KNOWN) {
        return cairn_fail(err, "wire: %s sets reserved data flags 0x%08X", name,
                          (unsigned)(h->flags & ~CAIRN_WIRE_DATA_FLAGS_KNOWN));
    }
    uint64_t n_values = 0;
    if (cairn_mul_overflows(h->n_tokens, h->width, &n_values) ||
        cairn_mul_overflows(n_values, 4, bytes)) {
        return cairn_fail(err, "wire: %s of %u x %u values overflows", name, (unsigned)h->n_tokens,
                          (unsigned)h->width);
    }
    return 0;
}

/* The checks an encoder makes before it reads the caller's values: counts, then size. */
static int check_data_to_encode(cairn_wire_type type, const cairn_wire_data_header *h,
                                cairn_err *err) {
    uint64_t bytes = 0;
    if (data_values_size(type, h, &bytes, err) != 0) {
        return -1;
    }
    if (bytes > CAIRN_WIRE_MAX_PAYLOAD - CAIRN_WIRE_DATA_HEADER_SIZE) {
        return cairn_fail(err, "wire: %s of %u x %u values is over the %u-byte payload limit",
                          TYPES[type].name, (unsigned)h->n_tokens, (unsigned)h->width,
                          CAIRN_WIRE_MAX_PAYLOAD);
    }
    return 0;
}

static uint8_t *begin_data(cairn_wire_type type, const cairn_wire_data_header *h, cairn_buf *out,
                           cairn_err *err) {
    if (check_data_to_encode(type, h, err) != 0) {
        return NULL;
    }
    size_t bytes = (size_t)h->n_tokens * h->width * 4;
    uint8_t *p = begin_frame(type, CAIRN_WIRE_DATA_HEADER_SIZE + bytes, out, err);
    if (!p) {
        return NULL;
    }
    put_u64(p, h->request_id);
    put_u32(p + 8, h->sequence);
    put_u32(p + 12, h->pos);
    put_u32(p + 16, h->n_tokens);
    put_u32(p + 20, h->width);
    put_u32(p + 24, h->flags);
    put_u32(p + 28, 0);
    return p + CAIRN_WIRE_DATA_HEADER_SIZE;
}

int cairn_wire_encode_activations(const cairn_wire_data_header *h, const float *values,
                                  cairn_buf *out, cairn_err *err) {
    uint8_t *p = begin_data(CAIRN_WIRE_DATA_ACTIVATIONS, h, out, err);
    if (!p) {
        return -1;
    }
    size_t n = (size_t)h->n_tokens * h->width;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &values[i], 4);
        put_u32(p + 4 * i, bits);
    }
    return 0;
}

int cairn_wire_encode_tokens(const cairn_wire_data_header *h, const int32_t *tokens, cairn_buf *out,
                             cairn_err *err) {
    if (check_data_to_encode(CAIRN_WIRE_DATA_TOKENS, h, err) != 0) {
        return -1;
    }
    size_t n = h->n_tokens;
    for (size_t i = 0; i < n; i++) {
        if (tokens[i] < 0) {
            return cairn_fail(err, "wire: DATA_TOKENS token %zu is negative (%d)", i,
                              (int)tokens[i]);
        }
    }
    uint8_t *p = begin_data(CAIRN_WIRE_DATA_TOKENS, h, out, err);
    if (!p) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        put_u32(p + 4 * i, (uint32_t)tokens[i]);
    }
    return 0;
}

int cairn_wire_parse_data(const cairn_wire_frame *f, cairn_wire_data *out, cairn_err *err) {
    memset(out, 0, sizeof(*out));
    if (!is_data_type(f->type)) {
        return cairn_fail(err, "wire: %s is not a data frame", cairn_wire_type_name(f->type));
    }
    const char *name = TYPES[f->type].name;
    if (f->len < CAIRN_WIRE_DATA_HEADER_SIZE) {
        return cairn_fail(err, "wire: %s payload of %u bytes is shorter than its %d-byte header",
                          name, f->len, CAIRN_WIRE_DATA_HEADER_SIZE);
    }
    const uint8_t *p = f->payload;
    cairn_wire_data d = {.h = {.request_id = get_u64(p),
                               .sequence = get_u32(p + 8),
                               .pos = get_u32(p + 12),
                               .n_tokens = get_u32(p + 16),
                               .width = get_u32(p + 20),
                               .flags = get_u32(p + 24)}};
    if (get_u32(p + 28) != 0) {
        return cairn_fail(err, "wire: %s reserved header field is 0x%08X, must be 0", name,
                          (unsigned)get_u32(p + 28));
    }
    uint64_t bytes = 0;
    if (data_values_size(f->type, &d.h, &bytes, err) != 0) {
        return -1;
    }
    uint64_t have = f->len - CAIRN_WIRE_DATA_HEADER_SIZE;
    if (bytes != have) {
        return cairn_fail(err, "wire: %s declares %u x %u values (%llu bytes) but carries %llu",
                          name, (unsigned)d.h.n_tokens, (unsigned)d.h.width,
                          (unsigned long long)bytes, (unsigned long long)have);
    }
    d.values = p + CAIRN_WIRE_DATA_HEADER_SIZE;
    d.n_values = (size_t)(bytes / 4);
    if (f->type == CAIRN_WIRE_DATA_TOKENS) {
        for (size_t i = 0; i < d.n_values; i++) {
            if (get_u32(d.values + 4 * i) > INT32_MAX) {
                return cairn_fail(err, "wire: DATA_TOKENS token %zu is negative", i);
            }
        }
    }
    *out = d;
    return 0;
}

void cairn_wire_data_floats(const cairn_wire_data *d, float *out) {
    for (size_t i = 0; i < d->n_values; i++) {
        uint32_t bits = get_u32(d->values + 4 * i);
        memcpy(&out[i], &bits, 4);
    }
}

void cairn_wire_data_tokens(const cairn_wire_data *d, int32_t *out) {
    for (size_t i = 0; i < d->n_values; i++) {
        out[i] = (int32_t)get_u32(d->values + 4 * i);
    }
}
