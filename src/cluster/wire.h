/*
 * cluster: the nodes of one LAN cluster, their links, master election and replicated state.
 * This header is the wire protocol piece of it: how messages are framed on a link, and the
 * payload formats the codec itself understands (JSON control objects, binary data frames).
 *
 * The codec is pure bytes in, bytes out. It owns its decoder buffers; it must never touch a
 * socket, block, log, or trust a length it has not checked against a limit: every byte it is
 * given may come from a hostile or broken peer, and the worst such a peer may cause is a
 * protocol error (the caller then closes that link with the message).
 *
 * Frame layout (all integers little-endian):
 *
 *   offset  size  field
 *   0       4     magic "CRNW"
 *   4       1     protocol version (CAIRN_WIRE_VERSION)
 *   5       1     message type (cairn_wire_type)
 *   6       2     flags: none are defined in version 1, so every bit is reserved and must be 0
 *   8       4     payload length in bytes
 *   12      len   payload
 *
 * Every type has a payload kind and its own size limit, checked as soon as the header
 * arrives, before any payload byte is buffered; a link may lower the limit further. A wrong
 * magic, another version, an unknown type, a reserved flag, a length over the limit or an
 * empty payload where the type needs one is a protocol error.
 */
#ifndef CAIRN_WIRE_H
#define CAIRN_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "util/json.h"
#include "util/util.h"

#define CAIRN_WIRE_MAGIC "CRNW"
#define CAIRN_WIRE_VERSION 1
#define CAIRN_WIRE_HEADER_SIZE 12

/* Hard limit of any payload: a prefill batch's activations (n_tokens * n_embd floats, e.g.
 * 512 * 8192 * 4 = 16 MiB) must fit, with room for larger models and batches. */
#define CAIRN_WIRE_MAX_PAYLOAD (64u * 1024u * 1024u)
/* Per-type limits (see cairn_wire_type_max_payload): a heartbeat has no business being
 * megabytes long, and a smaller limit closes such a link before it buffers much. */
#define CAIRN_WIRE_MAX_SMALL (64u * 1024u)
#define CAIRN_WIRE_MAX_EVENT (1024u * 1024u)
#define CAIRN_WIRE_MAX_SNAPSHOT (16u * 1024u * 1024u)
#define CAIRN_WIRE_MAX_AUTH 1024u
/* The first frame of a link's stream, its handshake (HELLO, HELLO_ACK or an ERROR saying why
 * not), has no business being larger: a HELLO takes a few hundred bytes and an ERROR's
 * message at most a cairn_err's, escaped. A peer that has not said who it is may make the
 * node buffer no more than this. */
#define CAIRN_WIRE_MAX_HANDSHAKE 4096u

/* A JSON payload may nest at most this deep and hold at most this many values: cJSON parses
 * recursively and spends ~64 bytes per value, so both bound what one frame can cost. */
#define CAIRN_WIRE_JSON_MAX_DEPTH 32
#define CAIRN_WIRE_JSON_MAX_VALUES CAIRN_JSON_MAX_VALUES

typedef enum cairn_wire_type {
    CAIRN_WIRE_HELLO = 1,             /* JSON cairn_wire_hello: first frame of the dialing side */
    CAIRN_WIRE_HELLO_ACK = 2,         /* JSON cairn_wire_hello: the accepting side's answer */
    CAIRN_WIRE_HEARTBEAT = 3,         /* JSON, may be empty: liveness, term, commit index */
    CAIRN_WIRE_AUTH_CHALLENGE = 4,    /* binary, 1..CAIRN_WIRE_MAX_AUTH: keyed mode's nonce */
    CAIRN_WIRE_AUTH_RESPONSE = 5,     /* binary, 1..CAIRN_WIRE_MAX_AUTH: keyed mode's proof */
    CAIRN_WIRE_EVENT = 6,             /* JSON: one replicated state event */
    CAIRN_WIRE_EVENT_ACK = 7,         /* JSON: events stored up to an index */
    CAIRN_WIRE_EVENT_REQUEST = 8,     /* JSON: send the event log's tail from index N */
    CAIRN_WIRE_SNAPSHOT = 9,          /* JSON: the whole replicated state at an index */
    CAIRN_WIRE_DATA_ACTIVATIONS = 10, /* data frame of float32 (hidden states or logits) */
    CAIRN_WIRE_DATA_TOKENS = 11,      /* data frame of int32 token ids */
    CAIRN_WIRE_GOODBYE = 12,          /* JSON, may be empty: orderly close, with a reason */
    CAIRN_WIRE_ERROR = 13,            /* JSON: the peer found a problem, with a message */
    CAIRN_WIRE_PROPOSE = 14,          /* JSON: a follower asks the master to order an event */
    /* JSON {"op": ..., ...}: the worker<->runner control channel, the data plane's
     * requests, outputs and per-request control, and on cluster links the API's cancels
     * asked of peers (limit CAIRN_WIRE_MAX_EVENT) */
    CAIRN_WIRE_CONTROL = 15,
} cairn_wire_type;

#define CAIRN_WIRE_TYPE_FIRST CAIRN_WIRE_HELLO
#define CAIRN_WIRE_TYPE_LAST CAIRN_WIRE_CONTROL

typedef enum cairn_wire_payload_kind {
    CAIRN_WIRE_PAYLOAD_JSON,   /* a JSON object (cairn_wire_parse_json) */
    CAIRN_WIRE_PAYLOAD_DATA,   /* a data frame (cairn_wire_parse_data) */
    CAIRN_WIRE_PAYLOAD_BINARY, /* opaque bytes for a higher layer */
} cairn_wire_payload_kind;

bool cairn_wire_type_known(unsigned type);
/* "HELLO", "DATA_ACTIVATIONS", ...; "unknown" for a value that is no type. */
const char *cairn_wire_type_name(unsigned type);
cairn_wire_payload_kind cairn_wire_type_payload(cairn_wire_type type);
/* Whether an empty payload is a protocol error for this type. */
bool cairn_wire_type_needs_payload(cairn_wire_type type);
uint32_t cairn_wire_type_max_payload(cairn_wire_type type);

/* One decoded frame. payload points into the decoder's buffer (never NULL, even when len is
 * 0) and stays valid until the next feed or free of that decoder. */
typedef struct cairn_wire_frame {
    cairn_wire_type type;
    uint16_t flags;
    uint32_t len;
    const uint8_t *payload;
} cairn_wire_frame;

/* ---- encoding: each function appends one whole frame to out ---- */

/* Checks the type, its payload limit and that a needed payload is there. */
int cairn_wire_encode(cairn_wire_type type, const void *payload, size_t len, cairn_buf *out,
                      cairn_err *err);

/* ---- incremental decoding ---- */

/* Owns the bytes of at most the frames fed but not yet taken plus one incomplete frame,
 * whose header is checked as soon as it is complete; memory grows with bytes actually
 * received, never with a declared length. */
typedef struct cairn_wire_decoder cairn_wire_decoder;

/* max_payload lowers every type's limit for this link; 0 means CAIRN_WIRE_MAX_PAYLOAD. */
cairn_wire_decoder *cairn_wire_decoder_new(uint32_t max_payload, cairn_err *err);
/* Lowers the limit of the stream's first frame only (a link's handshake, e.g. to
 * CAIRN_WIRE_MAX_HANDSHAKE), so the frames after it, which may arrive in the same feed,
 * keep the link's limit. Call before the first feed. */
void cairn_wire_decoder_limit_first(cairn_wire_decoder *d, uint32_t max_payload);
void cairn_wire_decoder_free(cairn_wire_decoder *d);

/* Appends n received bytes and checks every header they complete. Returns -1 when the
 * stream already shows a protocol error (or memory ran out): frames completed before the
 * bad bytes can still be taken with next(), after which next() returns -1. Callers take
 * all frames with next() before feeding more, so the buffer holds at most one partial
 * frame besides what one feed brings. */
int cairn_wire_decoder_feed(cairn_wire_decoder *d, const void *bytes, size_t n, cairn_err *err);
/* 1: *out is the next frame in stream order; 0: need more bytes; -1: protocol error. Once
 * failed, a decoder stays failed: feed and next return -1 with the same message. */
int cairn_wire_decoder_next(cairn_wire_decoder *d, cairn_wire_frame *out, cairn_err *err);
bool cairn_wire_decoder_failed(const cairn_wire_decoder *d);
/* Bytes fed but not yet returned as frames: nonzero when a peer closes means it closed in
 * the middle of a frame. */
size_t cairn_wire_decoder_buffered(const cairn_wire_decoder *d);

/* ---- JSON control payloads ---- */

/* Encodes obj (which must be an object) unformatted as a frame of a JSON type. Refuses what
 * the receiving side would reject (too long, too deep, too many values). */
int cairn_wire_encode_json(cairn_wire_type type, const cJSON *obj, cairn_buf *out, cairn_err *err);
/* Parses the payload of a JSON-type frame into a new object the caller frees with
 * cJSON_Delete. The payload must be one JSON object (surrounding whitespace allowed), with
 * no NUL byte, within the depth and value limits. An empty payload of a type that may be
 * empty gives an empty object. */
int cairn_wire_parse_json(const cairn_wire_frame *f, cJSON **out, cairn_err *err);

/* HELLO and HELLO_ACK: who is on the other end of a link. Unknown keys are ignored, so a
 * later version may add some. */
#define CAIRN_WIRE_NODE_ID_MAX 63  /* as the cluster state's ids (CAIRN_STATE_ID_SIZE) */
#define CAIRN_WIRE_CLUSTER_MAX 127 /* as its cluster name (CAIRN_STATE_NAME_SIZE) */
typedef struct cairn_wire_hello {
    char node_id[CAIRN_WIRE_NODE_ID_MAX + 1]; /* 1..63 of [A-Za-z0-9._:-] */
    /* The cluster's name: 1..127 bytes, no control characters. Compared byte for byte with
     * the receiver's own; UTF-8 validity is not checked here. */
    char cluster[CAIRN_WIRE_CLUSTER_MAX + 1];
    uint32_t protocol;     /* highest protocol version the sender speaks (1..255) */
    uint16_t cluster_port; /* where the sender accepts cluster links (1..65535) */
    uint16_t api_port;     /* the sender's HTTP API, 0 when it serves none */
    /* A random number the sender's process drew at start ("incarnation", 16 hex digits;
     * 0 when absent): two links that name one node id with different ones come from two
     * nodes that share the id. */
    uint64_t incarnation;
} cairn_wire_hello;

/* A node id: 1..CAIRN_WIRE_NODE_ID_MAX bytes of [A-Za-z0-9._:-] (len counts them). */
bool cairn_wire_node_id_valid(const char *s, size_t len);

int cairn_wire_encode_hello(cairn_wire_type type, const cairn_wire_hello *hello, cairn_buf *out,
                            cairn_err *err);
int cairn_wire_parse_hello(const cairn_wire_frame *f, cairn_wire_hello *out, cairn_err *err);

/* ---- data frames (DATA_ACTIVATIONS, DATA_TOKENS) ----
 *
 *   offset  size  field
 *   0       8     request id
 *   8       4     sequence: the frame's number within the request, so loss shows
 *   12      4     position of the first token in its sequence
 *   16      4     n_tokens (>= 1)
 *   20      4     width: values per token (n_embd for hidden states, n_vocab for logits;
 *                 1 for token ids)
 *   24      4     flags (CAIRN_WIRE_DATA_*; other bits reserved, must be 0)
 *   28      4     reserved, must be 0
 *   32      ...   n_tokens * width values of 4 bytes: float32 or int32
 *
 * n_tokens * width * 4 must equal the bytes after the header exactly; n_tokens and width
 * are at most INT32_MAX so they fit the engine's int counts. Float values are not checked
 * (NaN and infinities pass); token ids must be >= 0. */
#define CAIRN_WIRE_DATA_HEADER_SIZE 32
#define CAIRN_WIRE_DATA_ALL_LOGITS 0x1u /* the last shard returns every token's logits */
#define CAIRN_WIRE_DATA_FLAGS_KNOWN CAIRN_WIRE_DATA_ALL_LOGITS

typedef struct cairn_wire_data_header {
    uint64_t request_id;
    uint32_t sequence;
    uint32_t pos;
    uint32_t n_tokens;
    uint32_t width;
    uint32_t flags;
} cairn_wire_data_header;

/* A parsed data frame: values points into the frame's payload (little-endian, unaligned);
 * use the copy functions below to read them. */
typedef struct cairn_wire_data {
    cairn_wire_data_header h;
    const uint8_t *values;
    size_t n_values; /* n_tokens * width */
} cairn_wire_data;

int cairn_wire_encode_activations(const cairn_wire_data_header *h, const float *values,
                                  cairn_buf *out, cairn_err *err);
/* h->width must be 1. */
int cairn_wire_encode_tokens(const cairn_wire_data_header *h, const int32_t *tokens, cairn_buf *out,
                             cairn_err *err);
int cairn_wire_parse_data(const cairn_wire_frame *f, cairn_wire_data *out, cairn_err *err);
/* Copy the n_values values into out in host order. */
void cairn_wire_data_floats(const cairn_wire_data *d, float *out);
void cairn_wire_data_tokens(const cairn_wire_data *d, int32_t *out);

#endif
