/* One fuzz input through the cluster wire decoder, shared by the libFuzzer target
 * (fuzz_wire.c) and the deterministic mini fuzz run in test_wire.c.
 *
 * Input layout: byte 0 picks the link's payload limit, byte 1 how the rest is cut into
 * feeds, the rest is the byte stream a peer sent. Every frame decoded is parsed by its
 * payload kind and encoded again; the checks below are the codec's invariants, and a
 * violation is reported (the fuzz target then traps) while protocol errors are expected. */
#ifndef CAIRN_WIRE_FUZZ_ENTRY_H
#define CAIRN_WIRE_FUZZ_ENTRY_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/wire.h"

#define WIRE_FUZZ_CONFIG_BYTES 2

static inline uint32_t wire_fuzz_limit(uint8_t selector) {
    static const uint32_t limits[4] = {0, 64, 4096, CAIRN_WIRE_MAX_SMALL};
    return limits[selector & 3];
}

/* Feed sizes: 0 feeds everything at once, otherwise a byte-sized LCG walks sizes up to
 * 2^(seed & 7), times 32 when bit 3 is set, so both byte-by-byte and bulk feeding occur. */
static inline size_t wire_fuzz_next_chunk(uint8_t seed, uint32_t *state, size_t left) {
    if (seed == 0) {
        return left;
    }
    *state = *state * 1103515245u + 12345u;
    size_t range = (size_t)1 << (seed & 7);
    if (seed & 8) {
        range *= 32;
    }
    size_t n = 1 + (size_t)((*state >> 16) % range);
    return n < left ? n : left;
}

/* Decodes encoded (one frame) with a fresh decoder into *f; the decoder is returned for the
 * caller to free, since f points into it. */
static inline cairn_wire_decoder *wire_fuzz_redecode(const cairn_buf *encoded, cairn_wire_frame *f,
                                                     cairn_err *why) {
    cairn_wire_decoder *d = cairn_wire_decoder_new(0, why);
    if (!d) {
        return NULL;
    }
    if (cairn_wire_decoder_feed(d, encoded->data, encoded->len, why) != 0 ||
        cairn_wire_decoder_next(d, f, why) != 1) {
        cairn_wire_decoder_free(d);
        cairn_fail_prefix(why, "re-encoded frame does not decode");
        return NULL;
    }
    return d;
}

static inline int wire_fuzz_check_json(const cairn_wire_frame *f, cairn_err *why) {
    cJSON *obj = NULL;
    if (cairn_wire_parse_json(f, &obj, NULL) != 0) {
        return 0;
    }
    cairn_buf enc = {0};
    int rc = 0;
    /* Printing may lengthen the text (1e5 -> 100000) past the limit: then it may refuse. */
    if (cairn_wire_encode_json(f->type, obj, &enc, NULL) == 0) {
        cairn_wire_frame again;
        cairn_wire_decoder *d = wire_fuzz_redecode(&enc, &again, why);
        cJSON *obj2 = NULL;
        if (!d) {
            rc = -1;
        } else if (cairn_wire_parse_json(&again, &obj2, why) != 0) {
            rc = cairn_fail_prefix(why, "re-encoded %s does not parse",
                                   cairn_wire_type_name(f->type));
        }
        cJSON_Delete(obj2);
        cairn_wire_decoder_free(d);
    }
    cairn_buf_free(&enc);
    cJSON_Delete(obj);
    return rc;
}

static inline int wire_fuzz_check_hello(const cairn_wire_frame *f, cairn_err *why) {
    cairn_wire_hello hello, again;
    if (cairn_wire_parse_hello(f, &hello, NULL) != 0) {
        return 0;
    }
    cairn_buf enc = {0};
    int rc = 0;
    if (cairn_wire_encode_hello(f->type, &hello, &enc, why) != 0) {
        rc = cairn_fail_prefix(why, "parsed hello does not encode");
    } else {
        cairn_wire_frame f2;
        cairn_wire_decoder *d = wire_fuzz_redecode(&enc, &f2, why);
        if (!d || cairn_wire_parse_hello(&f2, &again, why) != 0 ||
            memcmp(&hello, &again, sizeof(hello)) != 0) {
            rc = cairn_fail(why, "hello does not survive a round trip");
        }
        cairn_wire_decoder_free(d);
    }
    cairn_buf_free(&enc);
    return rc;
}

/* A parsed data frame re-encodes to exactly its original payload. */
static inline int wire_fuzz_check_data(const cairn_wire_frame *f, cairn_err *why) {
    cairn_wire_data data;
    if (cairn_wire_parse_data(f, &data, NULL) != 0) {
        return 0;
    }
    if (data.n_values > f->len / 4) {
        return cairn_fail(why, "data frame claims %zu values in %u bytes", data.n_values, f->len);
    }
    void *values = malloc(data.n_values * 4 + 1);
    if (!values) {
        return cairn_fail(why, "out of memory");
    }
    cairn_buf enc = {0};
    int rc;
    if (f->type == CAIRN_WIRE_DATA_TOKENS) {
        cairn_wire_data_tokens(&data, values);
        rc = cairn_wire_encode_tokens(&data.h, values, &enc, why);
    } else {
        cairn_wire_data_floats(&data, values);
        rc = cairn_wire_encode_activations(&data.h, values, &enc, why);
    }
    if (rc != 0) {
        cairn_fail_prefix(why, "parsed data frame does not encode");
    } else if (enc.len != CAIRN_WIRE_HEADER_SIZE + (size_t)f->len ||
               memcmp(enc.data + CAIRN_WIRE_HEADER_SIZE, f->payload, f->len) != 0) {
        rc = cairn_fail(why, "data frame re-encodes differently");
    }
    cairn_buf_free(&enc);
    free(values);
    return rc;
}

static inline int wire_fuzz_check_frame(const cairn_wire_frame *f, const uint8_t *original,
                                        size_t original_len, uint32_t limit, cairn_err *why) {
    if (!cairn_wire_type_known(f->type) || f->flags != 0 || f->len > limit ||
        f->len > cairn_wire_type_max_payload(f->type)) {
        return cairn_fail(why, "decoder returned a frame it should have refused");
    }
    /* The frame's bytes in the stream are exactly what the encoder makes of it. */
    cairn_buf enc = {0};
    int rc = cairn_wire_encode(f->type, f->payload, f->len, &enc, why);
    if (rc == 0 && (enc.len > original_len || memcmp(enc.data, original, enc.len) != 0)) {
        rc = cairn_fail(why, "%s frame re-encodes differently", cairn_wire_type_name(f->type));
    }
    cairn_buf_free(&enc);
    if (rc != 0) {
        return -1;
    }
    switch (cairn_wire_type_payload(f->type)) {
    case CAIRN_WIRE_PAYLOAD_JSON:
        if (wire_fuzz_check_json(f, why) != 0) {
            return -1;
        }
        if (f->type == CAIRN_WIRE_HELLO || f->type == CAIRN_WIRE_HELLO_ACK) {
            return wire_fuzz_check_hello(f, why);
        }
        return 0;
    case CAIRN_WIRE_PAYLOAD_DATA: return wire_fuzz_check_data(f, why);
    case CAIRN_WIRE_PAYLOAD_BINARY: return 0;
    }
    return 0;
}

/* A failed decoder refuses everything from then on. */
static inline int wire_fuzz_check_failed(cairn_wire_decoder *d, cairn_err *why) {
    cairn_wire_frame f;
    const uint8_t byte = 'C';
    if (!cairn_wire_decoder_failed(d) || cairn_wire_decoder_feed(d, &byte, 1, NULL) != -1 ||
        cairn_wire_decoder_next(d, &f, NULL) != -1) {
        return cairn_fail(why, "decoder did not stay failed after an error");
    }
    return 0;
}

/* Returns 0, or -1 with why set when the codec broke one of its invariants. */
static inline int wire_fuzz_one(const uint8_t *data, size_t size, cairn_err *why) {
    if (size < WIRE_FUZZ_CONFIG_BYTES) {
        return 0;
    }
    uint32_t limit = wire_fuzz_limit(data[0]);
    uint8_t chunk_seed = data[1];
    const uint8_t *stream = data + WIRE_FUZZ_CONFIG_BYTES;
    size_t stream_len = size - WIRE_FUZZ_CONFIG_BYTES;
    uint32_t effective_limit = limit ? limit : CAIRN_WIRE_MAX_PAYLOAD;

    cairn_wire_decoder *d = cairn_wire_decoder_new(limit, why);
    if (!d) {
        return -1;
    }
    uint32_t state = chunk_seed;
    size_t fed = 0, taken = 0; /* taken: stream bytes of the frames handed out */
    int rc = 0, status = 0;
    while (fed < stream_len && status == 0 && rc == 0) {
        size_t n = wire_fuzz_next_chunk(chunk_seed, &state, stream_len - fed);
        int fr = cairn_wire_decoder_feed(d, stream + fed, n, NULL);
        fed += n;
        cairn_wire_frame f;
        while (rc == 0 && (status = cairn_wire_decoder_next(d, &f, NULL)) == 1) {
            rc = wire_fuzz_check_frame(&f, stream + taken, fed - taken, effective_limit, why);
            taken += CAIRN_WIRE_HEADER_SIZE + (size_t)f.len;
        }
        if (rc == 0 && fr != 0 && status != -1) {
            rc = cairn_fail(why, "feed failed but next did not");
        }
    }
    if (rc == 0 && status == -1) {
        rc = wire_fuzz_check_failed(d, why);
    } else if (rc == 0 && cairn_wire_decoder_buffered(d) != fed - taken) {
        rc = cairn_fail(why, "decoder holds %zu bytes, expected %zu",
                        cairn_wire_decoder_buffered(d), fed - taken);
    }
    cairn_wire_decoder_free(d);
    return rc;
}

#endif
