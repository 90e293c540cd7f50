/* Test helper shared by the wire and secure-link tests: a raw wire frame header, for frames
 * the encoder refuses to make (bad magic, version, type, flags or length). Include after
 * cmocka.h, string.h and cluster/wire.h. */
#ifndef CAIRN_TEST_WIRE_HEADER_H
#define CAIRN_TEST_WIRE_HEADER_H

static void append_header(cairn_buf *out, const char *magic, uint8_t version, uint8_t type,
                          uint16_t flags, uint32_t len) {
    uint8_t h[CAIRN_WIRE_HEADER_SIZE];
    memcpy(h, magic, 4);
    h[4] = version;
    h[5] = type;
    h[6] = (uint8_t)flags;
    h[7] = (uint8_t)(flags >> 8);
    for (int i = 0; i < 4; i++) {
        h[8 + i] = (uint8_t)(len >> (8 * i));
    }
    assert_int_equal(cairn_buf_append(out, h, sizeof(h)), 0);
}

#endif
