/* Cluster key and secure links: handshakes between links with the same and with different
 * keys, data both ways in chunks of every size, a peer without a key, every kind of broken,
 * forged, replayed or cut stream, a second implementation of the protocol text in secure.h
 * (so the documentation and the code agree), and the key derivation from secrets and files.
 *
 * Link tests use fixed raw keys; only the derivation tests run Argon2id (a few times). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "cluster/secure.h"
#include "cluster/wire.h"

#define KEY_FILE CAIRN_BINARY_DIR "/test_secure.key"
#define MISSING_FILE CAIRN_BINARY_DIR "/test_secure.no-such-file.key"

/* ---- helpers ---- */

static void must(int rc, const cairn_err *err) {
    if (rc != 0) {
        fail_msg("unexpected failure: %s", err->msg);
    }
}

static void assert_mentions(const cairn_err *err, const char *want) {
    if (!strstr(err->msg, want)) {
        fail_msg("error \"%s\" does not mention \"%s\"", err->msg, want);
    }
}

static bool contains(const char *hay, size_t n, const char *needle) {
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++) {
        if (memcmp(hay + i, needle, m) == 0) {
            return true;
        }
    }
    return false;
}

static cairn_cluster_key raw_key(uint8_t seed) {
    cairn_cluster_key k;
    for (size_t i = 0; i < sizeof(k.bytes); i++) {
        k.bytes[i] = (uint8_t)(seed * 31u + (unsigned)i * 7u + 1u);
    }
    return k;
}

static cairn_secure_link *new_link(const cairn_cluster_key *k, bool dialer) {
    cairn_err err = {{0}};
    cairn_secure_link *s = cairn_secure_link_new(k, dialer, &err);
    if (!s) {
        fail_msg("secure_link_new: %s", err.msg);
    }
    return s;
}

static void fill_random(cairn_rng *rng, uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)cairn_rng_next(rng);
    }
}

typedef enum chunking { WHOLE, ONE_BYTE, RANDOM_CHUNKS } chunking;

/* Feeds bytes in the given chunk sizes; returns the first failing feed's -1, else 0. */
static int feed_in(cairn_secure_link *s, const void *bytes, size_t n, chunking how, cairn_rng *rng,
                   cairn_buf *plain, cairn_buf *send, cairn_err *err) {
    const uint8_t *p = bytes;
    do {
        size_t c = n;
        if (how == ONE_BYTE) {
            c = 1;
        } else if (how == RANDOM_CHUNKS) {
            /* mostly small pieces, sometimes more than a whole record */
            c = cairn_rng_next(rng) % 8 == 0 ? 1 + cairn_rng_next(rng) % 150000
                                             : 1 + cairn_rng_next(rng) % 700;
        }
        if (c > n) {
            c = n;
        }
        if (cairn_secure_link_feed(s, p, c, plain, send, err) != 0) {
            return -1;
        }
        p += c;
        n -= c;
    } while (n > 0);
    return 0;
}

typedef struct pair {
    cairn_secure_link *d; /* dialer */
    cairn_secure_link *a; /* acceptor */
} pair;

static void pair_free(pair *p) {
    cairn_secure_link_free(p->d);
    cairn_secure_link_free(p->a);
}

/* Runs the three handshake frames between a new pair of links with the same key. */
static pair established_pair(const cairn_cluster_key *k) {
    cairn_err err = {{0}};
    pair p = {new_link(k, true), new_link(k, false)};
    cairn_buf to_a = {0}, to_d = {0}, plain = {0};
    must(cairn_secure_link_begin(p.d, &to_a, &err), &err);
    must(cairn_secure_link_feed(p.a, to_a.data, to_a.len, &plain, &to_d, &err), &err);
    to_a.len = 0;
    must(cairn_secure_link_feed(p.d, to_d.data, to_d.len, &plain, &to_a, &err), &err);
    must(cairn_secure_link_feed(p.a, to_a.data, to_a.len, &plain, &to_d, &err), &err);
    assert_true(cairn_secure_link_established(p.d));
    assert_true(cairn_secure_link_established(p.a));
    assert_int_equal(plain.len, 0);
    cairn_buf_free(&to_a);
    cairn_buf_free(&to_d);
    cairn_buf_free(&plain);
    return p;
}

static void seal(cairn_secure_link *s, const void *plain, size_t n, cairn_buf *out) {
    cairn_err err = {{0}};
    must(cairn_secure_link_seal(s, plain, n, out, &err), &err);
}

/* Feeds a stream in one go and expects the feed to fail with want, producing nothing. */
static void expect_feed_error(cairn_secure_link *s, const void *bytes, size_t n, const char *want) {
    cairn_err err = {{0}};
    cairn_buf plain = {0}, send = {0};
    assert_int_equal(cairn_secure_link_feed(s, bytes, n, &plain, &send, &err), -1);
    assert_mentions(&err, want);
    assert_int_equal(plain.len, 0);
    assert_int_equal(send.len, 0);
    assert_true(cairn_secure_link_failed(s));
    assert_false(cairn_secure_link_established(s));
    /* dead from now on, with the same message */
    cairn_err again = {{0}};
    assert_int_equal(cairn_secure_link_feed(s, "x", 1, &plain, &send, &again), -1);
    assert_string_equal(again.msg, err.msg);
    assert_int_equal(cairn_secure_link_eof(s, &again), -1);
    assert_string_equal(again.msg, err.msg);
    assert_int_equal(cairn_secure_link_seal(s, "x", 1, &send, &again), -1);
    assert_int_equal(plain.len + send.len, 0);
    cairn_buf_free(&plain);
    cairn_buf_free(&send);
}

#include "wire_header.h"

static void append_frame(cairn_buf *out, cairn_wire_type type, const uint8_t *payload, size_t len) {
    cairn_err err = {{0}};
    must(cairn_wire_encode(type, payload, len, out, &err), &err);
}

static void append_le32(cairn_buf *out, uint32_t v) {
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    assert_int_equal(cairn_buf_append(out, b, 4), 0);
}

/* ---- handshake and data ---- */

static void test_handshake_both_directions(void **state) {
    (void)state;
    cairn_cluster_key k = raw_key(1);
    cairn_err err = {{0}};
    cairn_secure_link *d = new_link(&k, true);
    cairn_secure_link *a = new_link(&k, false);
    cairn_buf to_a = {0}, to_d = {0}, plain = {0};

    assert_int_equal(cairn_secure_link_eof(d, &err), -1); /* nothing happened yet */
    must(cairn_secure_link_begin(d, &to_a, &err), &err);
    assert_int_equal(to_a.len, CAIRN_WIRE_HEADER_SIZE + 32);
    assert_int_equal((uint8_t)to_a.data[5], CAIRN_WIRE_AUTH_CHALLENGE);
    must(cairn_secure_link_feed(a, to_a.data, to_a.len, &plain, &to_d, &err), &err);
    assert_int_equal(to_d.len, CAIRN_WIRE_HEADER_SIZE + 64);
    assert_int_equal((uint8_t)to_d.data[5], CAIRN_WIRE_AUTH_CHALLENGE);
    assert_false(cairn_secure_link_established(a));
    assert_false(cairn_secure_link_established(d));

    to_a.len = 0;
    must(cairn_secure_link_feed(d, to_d.data, to_d.len, &plain, &to_a, &err), &err);
    assert_int_equal(to_a.len, CAIRN_WIRE_HEADER_SIZE + 32);
    assert_int_equal((uint8_t)to_a.data[5], CAIRN_WIRE_AUTH_RESPONSE);
    assert_true(cairn_secure_link_established(d));
    assert_false(cairn_secure_link_established(a));

    to_d.len = 0;
    must(cairn_secure_link_feed(a, to_a.data, to_a.len, &plain, &to_d, &err), &err);
    assert_true(cairn_secure_link_established(a));
    assert_int_equal(to_d.len, 0);
    assert_int_equal(plain.len, 0);
    must(cairn_secure_link_eof(a, &err), &err);

    /* dialer -> acceptor */
    to_a.len = 0;
    seal(d, "ping", 4, &to_a);
    assert_int_equal(to_a.len, 4 + 4 + 16);
    assert_false(contains(to_a.data, to_a.len, "ping"));
    must(cairn_secure_link_feed(a, to_a.data, to_a.len, &plain, &to_d, &err), &err);
    assert_int_equal(plain.len, 4);
    assert_memory_equal(plain.data, "ping", 4);

    /* acceptor -> dialer, several seals in one stream */
    plain.len = 0;
    to_d.len = 0;
    seal(a, "po", 2, &to_d);
    seal(a, "ng", 2, &to_d);
    seal(a, NULL, 0, &to_d); /* nothing */
    assert_int_equal(to_d.len, 2 * (4 + 2 + 16));
    must(cairn_secure_link_feed(d, to_d.data, to_d.len, &plain, &to_a, &err), &err);
    assert_int_equal(plain.len, 4);
    assert_memory_equal(plain.data, "pong", 4);

    cairn_buf_free(&to_a);
    cairn_buf_free(&to_d);
    cairn_buf_free(&plain);
    cairn_secure_link_free(d);
    cairn_secure_link_free(a);
}

/* A whole conversation with the given chunking: the dialer's response and its first data
 * leave in one buffer, so the acceptor gets handshake and records in the same chunks. */
static void run_conversation(chunking how, size_t big, uint64_t seed) {
    cairn_cluster_key k = raw_key(2);
    cairn_err err = {{0}};
    cairn_rng rng;
    cairn_rng_seed(&rng, seed);
    cairn_secure_link *d = new_link(&k, true);
    cairn_secure_link *a = new_link(&k, false);
    cairn_buf to_a = {0}, to_d = {0}, plain_a = {0}, plain_d = {0};

    /* what the dialer sends: a HELLO frame, then a big binary blob */
    cairn_buf msg_d = {0};
    cairn_wire_hello hello = {.node_id = "n1", .cluster = "c", .protocol = 1, .cluster_port = 1};
    must(cairn_wire_encode_hello(CAIRN_WIRE_HELLO, &hello, &msg_d, &err), &err);
    size_t hello_len = msg_d.len;
    must(cairn_buf_reserve(&msg_d, big), &err);
    fill_random(&rng, (uint8_t *)msg_d.data + msg_d.len, big);
    msg_d.len += big;
    uint8_t *msg_a = malloc(big + 3);
    assert_non_null(msg_a);
    fill_random(&rng, msg_a, big + 3);

    must(cairn_secure_link_begin(d, &to_a, &err), &err);
    must(feed_in(a, to_a.data, to_a.len, how, &rng, &plain_a, &to_d, &err), &err);
    to_a.len = 0;
    must(feed_in(d, to_d.data, to_d.len, how, &rng, &plain_d, &to_a, &err), &err);
    assert_true(cairn_secure_link_established(d));
    /* sealed right behind the response, in the same buffer */
    seal(d, msg_d.data, hello_len, &to_a);
    seal(d, msg_d.data + hello_len, big, &to_a);
    must(feed_in(a, to_a.data, to_a.len, how, &rng, &plain_a, &to_d, &err), &err);
    assert_true(cairn_secure_link_established(a));
    assert_int_equal(plain_a.len, msg_d.len);
    assert_memory_equal(plain_a.data, msg_d.data, msg_d.len);
    must(cairn_secure_link_eof(a, &err), &err);

    /* the plaintext is a wire stream again */
    cairn_wire_decoder *dec = cairn_wire_decoder_new(0, &err);
    assert_non_null(dec);
    must(cairn_wire_decoder_feed(dec, plain_a.data, hello_len, &err), &err);
    cairn_wire_frame f;
    assert_int_equal(cairn_wire_decoder_next(dec, &f, &err), 1);
    assert_int_equal(f.type, CAIRN_WIRE_HELLO);
    cairn_wire_decoder_free(dec);

    to_d.len = 0;
    seal(a, msg_a, big + 3, &to_d);
    assert_true(to_d.len > big + 3); /* tags and lengths */
    must(feed_in(d, to_d.data, to_d.len, how, &rng, &plain_d, &to_a, &err), &err);
    assert_int_equal(plain_d.len, big + 3);
    assert_memory_equal(plain_d.data, msg_a, big + 3);
    must(cairn_secure_link_eof(d, &err), &err);

    free(msg_a);
    cairn_buf_free(&msg_d);
    cairn_buf_free(&to_a);
    cairn_buf_free(&to_d);
    cairn_buf_free(&plain_a);
    cairn_buf_free(&plain_d);
    cairn_secure_link_free(d);
    cairn_secure_link_free(a);
}

static void test_conversation_whole(void **state) {
    (void)state;
    run_conversation(WHOLE, (size_t)1 << 20, 1);
}

static void test_conversation_one_byte_at_a_time(void **state) {
    (void)state;
    run_conversation(ONE_BYTE, 200000, 2);
}

static void test_conversation_random_chunks(void **state) {
    (void)state;
    for (uint64_t seed = 10; seed < 16; seed++) {
        run_conversation(RANDOM_CHUNKS, (size_t)(1 << 20) + (size_t)seed * 977, seed);
    }
}

static void test_record_sizes(void **state) {
    (void)state;
    cairn_cluster_key k = raw_key(3);
    pair p = established_pair(&k);
    cairn_err err = {{0}};
    size_t n = 3 * CAIRN_SECURE_MAX_PLAIN + 1;
    uint8_t *data = calloc(1, n);
    assert_non_null(data);
    cairn_buf out = {0}, plain = {0}, send = {0};

    seal(p.d, data, CAIRN_SECURE_MAX_PLAIN, &out); /* exactly one full record */
    assert_int_equal(out.len, 4 + CAIRN_SECURE_MAX_RECORD);
    seal(p.d, data, n, &out); /* three full ones and one of a single byte */
    assert_int_equal(out.len, 4 * (4 + CAIRN_SECURE_MAX_RECORD) + 4 + 1 + 16);
    must(cairn_secure_link_feed(p.a, out.data, out.len, &plain, &send, &err), &err);
    assert_int_equal(plain.len, CAIRN_SECURE_MAX_PLAIN + n);

    free(data);
    cairn_buf_free(&out);
    cairn_buf_free(&plain);
    cairn_buf_free(&send);
    pair_free(&p);
}

/* Two links with the same key seal the same text differently: fresh keys per link. */
static void test_links_have_their_own_keys(void **state) {
    (void)state;
    cairn_cluster_key k = raw_key(4);
    pair p1 = established_pair(&k);
    pair p2 = established_pair(&k);
    cairn_buf r1 = {0}, r2 = {0};
    seal(p1.d, "same text", 9, &r1);
    seal(p2.d, "same text", 9, &r2);
    assert_int_equal(r1.len, r2.len);
    assert_memory_not_equal(r1.data, r2.data, r1.len);
    /* a record of one link is garbage on the other */
    expect_feed_error(p2.a, r1.data, r1.len, "fails authentication");
    /* and a link's own records reflected back fail too (the directions have their own keys) */
    expect_feed_error(p1.d, r1.data, r1.len, "fails authentication");
    cairn_buf_free(&r1);
    cairn_buf_free(&r2);
    pair_free(&p1);
    pair_free(&p2);
}

/* ---- the protocol as documented in secure.h, implemented again here ---- */

static void doc_mac(const cairn_cluster_key *k, const char *label, const uint8_t *nonce_a,
                    const uint8_t *nonce_b, uint8_t out[32]) {
    crypto_generichash_state st;
    crypto_generichash_init(&st, k->bytes, 32, 32);
    crypto_generichash_update(&st, (const unsigned char *)label, strlen(label));
    crypto_generichash_update(&st, nonce_a, 32);
    crypto_generichash_update(&st, nonce_b, 32);
    crypto_generichash_final(&st, out, 32);
}

/* A dialer that follows the documentation and does not check the acceptor's proof: it
 * proves dialer_key (which may be wrong). Returns the acceptor's feed result. */
static int doc_dialer(cairn_secure_link *a, const cairn_cluster_key *dialer_key, cairn_buf *plain,
                      cairn_err *err, uint8_t nonce_a[32], uint8_t nonce_b[32]) {
    cairn_buf to_a = {0}, to_d = {0};
    randombytes_buf(nonce_a, 32);
    append_frame(&to_a, CAIRN_WIRE_AUTH_CHALLENGE, nonce_a, 32);
    must(cairn_secure_link_feed(a, to_a.data, to_a.len, plain, &to_d, err), err);
    assert_int_equal(to_d.len, CAIRN_WIRE_HEADER_SIZE + 64);
    memcpy(nonce_b, to_d.data + CAIRN_WIRE_HEADER_SIZE, 32);
    uint8_t proof[32];
    doc_mac(dialer_key, "cairn auth dialer v1", nonce_a, nonce_b, proof);
    to_a.len = 0;
    append_frame(&to_a, CAIRN_WIRE_AUTH_RESPONSE, proof, 32);
    int rc = cairn_secure_link_feed(a, to_a.data, to_a.len, plain, &to_d, err);
    cairn_buf_free(&to_a);
    cairn_buf_free(&to_d);
    return rc;
}

static void test_documented_protocol(void **state) {
    (void)state;
    cairn_cluster_key k = raw_key(5);
    cairn_err err = {{0}};
    cairn_buf plain = {0}, send = {0}, out = {0};
    uint8_t na[32], nb[32];

    /* the acceptor's proof */
    cairn_secure_link *d = new_link(&k, true);
    must(cairn_secure_link_begin(d, &out, &err), &err);
    memcpy(na, out.data + CAIRN_WIRE_HEADER_SIZE, 32);
    randombytes_buf(nb, 32);
    uint8_t reply[64];
    memcpy(reply, nb, 32);
    doc_mac(&k, "cairn auth acceptor v1", na, nb, reply + 32);
    out.len = 0;
    append_frame(&out, CAIRN_WIRE_AUTH_CHALLENGE, reply, sizeof(reply));
    must(cairn_secure_link_feed(d, out.data, out.len, &plain, &send, &err), &err);
    assert_true(cairn_secure_link_established(d));
    uint8_t proof[32];
    doc_mac(&k, "cairn auth dialer v1", na, nb, proof);
    assert_int_equal(send.len, CAIRN_WIRE_HEADER_SIZE + 32);
    assert_memory_equal(send.data + CAIRN_WIRE_HEADER_SIZE, proof, 32);

    /* the dialer's first record: counter 0, the length as additional data */
    uint8_t key[32];
    doc_mac(&k, "cairn link dialer to acceptor v1", na, nb, key);
    out.len = 0;
    seal(d, "hello", 5, &out);
    uint8_t nonce[12] = {0};
    uint8_t text[5];
    unsigned long long text_len = 0;
    assert_int_equal(crypto_aead_chacha20poly1305_ietf_decrypt(
                         text, &text_len, NULL, (const uint8_t *)out.data + 4, out.len - 4,
                         (const uint8_t *)out.data, 4, nonce, key),
                     0);
    assert_int_equal(text_len, 5);
    assert_memory_equal(text, "hello", 5);

    /* the acceptor's records with the other key, counter 1 for its second record */
    cairn_secure_link *a = new_link(&k, false);
    must(doc_dialer(a, &k, &plain, &err, na, nb), &err);
    assert_true(cairn_secure_link_established(a));
    doc_mac(&k, "cairn link acceptor to dialer v1", na, nb, key);
    out.len = 0;
    seal(a, "one", 3, &out);
    size_t first = out.len;
    seal(a, "two", 3, &out);
    nonce[0] = 1;
    assert_int_equal(crypto_aead_chacha20poly1305_ietf_decrypt(
                         text, &text_len, NULL, (const uint8_t *)out.data + first + 4,
                         out.len - first - 4, (const uint8_t *)out.data + first, 4, nonce, key),
                     0);
    assert_memory_equal(text, "two", 3);

    cairn_buf_free(&plain);
    cairn_buf_free(&send);
    cairn_buf_free(&out);
    cairn_secure_link_free(d);
    cairn_secure_link_free(a);
}

/* ---- wrong keys and peers without a key ---- */

static void test_wrong_key_dialer_side(void **state) {
    (void)state;
    cairn_cluster_key k1 = raw_key(6), k2 = raw_key(7);
    cairn_err err = {{0}};
    cairn_secure_link *d = new_link(&k1, true);
    cairn_secure_link *a = new_link(&k2, false);
    cairn_buf to_a = {0}, to_d = {0}, plain = {0};
    must(cairn_secure_link_begin(d, &to_a, &err), &err);
    must(cairn_secure_link_feed(a, to_a.data, to_a.len, &plain, &to_d, &err), &err);
    /* the dialer checks first and answers nothing */
    expect_feed_error(d, to_d.data, to_d.len, "the peer proves another key");
    /* the acceptor sees the dialer close without proving anything */
    assert_int_equal(cairn_secure_link_eof(a, &err), -1);
    assert_mentions(&err, "closed the link before proving the cluster key");
    assert_false(cairn_secure_link_established(a));
    cairn_buf_free(&to_a);
    cairn_buf_free(&to_d);
    cairn_buf_free(&plain);
    cairn_secure_link_free(d);
    cairn_secure_link_free(a);
}

static void test_wrong_key_acceptor_side(void **state) {
    (void)state;
    cairn_cluster_key k1 = raw_key(8), k2 = raw_key(9);
    cairn_err err = {{0}};
    cairn_buf plain = {0};
    uint8_t na[32], nb[32];
    cairn_secure_link *a = new_link(&k2, false);
    /* a dialer that answers without checking, with another key */
    assert_int_equal(doc_dialer(a, &k1, &plain, &err, na, nb), -1);
    assert_mentions(&err, "the peer does not know this cluster's key");
    assert_int_equal(plain.len, 0);
    assert_true(cairn_secure_link_failed(a));
    cairn_err again = {{0}};
    assert_int_equal(cairn_secure_link_seal(a, "x", 1, &plain, &again), -1);
    assert_string_equal(again.msg, err.msg);
    assert_int_equal(plain.len, 0);
    cairn_buf_free(&plain);
    cairn_secure_link_free(a);
}

/* The acceptor's own proof sent back as a response (reflection) does not prove the key. */
static void test_reflected_proof(void **state) {
    (void)state;
    cairn_cluster_key k = raw_key(10);
    cairn_err err = {{0}};
    cairn_secure_link *a = new_link(&k, false);
    cairn_buf to_a = {0}, to_d = {0}, plain = {0};
    uint8_t na[32] = {1};
    append_frame(&to_a, CAIRN_WIRE_AUTH_CHALLENGE, na, 32);
    must(cairn_secure_link_feed(a, to_a.data, to_a.len, &plain, &to_d, &err), &err);
    to_a.len = 0;
    append_frame(&to_a, CAIRN_WIRE_AUTH_RESPONSE,
                 (const uint8_t *)to_d.data + CAIRN_WIRE_HEADER_SIZE + 32, 32);
    expect_feed_error(a, to_a.data, to_a.len, "does not know this cluster's key");
    cairn_buf_free(&to_a);
    cairn_buf_free(&to_d);
    cairn_buf_free(&plain);
    cairn_secure_link_free(a);
}

static void test_keyless_dialer(void **state) {
    (void)state;
    cairn_cluster_key k = raw_key(11);
    cairn_err err = {{0}};
    cairn_buf hello_frame = {0}, plain = {0}, send = {0};
    cairn_wire_hello hello = {
        .node_id = "plain-node", .cluster = "home", .protocol = 1, .cluster_port = 52415};
    must(cairn_wire_encode_hello(CAIRN_WIRE_HELLO, &hello, &hello_frame, &err), &err);

    cairn_secure_link *a = new_link(&k, false);
    expect_feed_error(a, hello_frame.data, hello_frame.len,
                      "the peer sent HELLO before proving the cluster key: it runs without --key");
    cairn_secure_link_free(a);

    /* byte by byte: refused as soon as the header is complete */
    a = new_link(&k, false);
    for (size_t i = 0; i + 1 < CAIRN_WIRE_HEADER_SIZE; i++) {
        must(cairn_secure_link_feed(a, hello_frame.data + i, 1, &plain, &send, &err), &err);
    }
    assert_int_equal(cairn_secure_link_feed(a, hello_frame.data + CAIRN_WIRE_HEADER_SIZE - 1, 1,
                                            &plain, &send, &err),
                     -1);
    assert_mentions(&err, "it runs without --key");
    assert_int_equal(plain.len + send.len, 0);
    cairn_secure_link_free(a);

    cairn_buf_free(&hello_frame);
    cairn_buf_free(&plain);
    cairn_buf_free(&send);
}

/* A keyless acceptor answers the dialer's challenge with an ERROR frame. */
static void test_keyless_acceptor(void **state) {
    (void)state;
    cairn_cluster_key k = raw_key(12);
    cairn_err err = {{0}};
    cairn_buf out = {0}, reply = {0};
    cairn_secure_link *d = new_link(&k, true);
    must(cairn_secure_link_begin(d, &out, &err), &err);
    cJSON *obj = cJSON_Parse("{\"message\":\"expected HELLO\"}");
    assert_non_null(obj);
    must(cairn_wire_encode_json(CAIRN_WIRE_ERROR, obj, &reply, &err), &err);
    cJSON_Delete(obj);
    expect_feed_error(d, reply.data, reply.len,
                      "the peer sent ERROR before proving the cluster key");
    cairn_secure_link_free(d);

    /* or closes the link */
    d = new_link(&k, true);
    out.len = 0;
    must(cairn_secure_link_begin(d, &out, &err), &err);
    assert_int_equal(cairn_secure_link_eof(d, &err), -1);
    assert_mentions(&err, "closed the link during the handshake");
    cairn_secure_link_free(d);
    cairn_buf_free(&out);
    cairn_buf_free(&reply);
}

/* ---- broken handshakes ---- */

static void test_garbage_instead_of_handshake(void **state) {
    (void)state;
    cairn_cluster_key k = raw_key(13);
    const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    cairn_secure_link *a = new_link(&k, false);
    expect_feed_error(a, http, strlen(http), "no cairn wire frame");
    cairn_secure_link_free(a);

    cairn_rng rng;
    cairn_rng_seed(&rng, 99);
    uint8_t noise[200];
    for (int round = 0; round < 20; round++) {
        fill_random(&rng, noise, sizeof(noise));
        noise[0] = 'X'; /* never the magic */
        a = new_link(&k, false);
        expect_feed_error(a, noise, sizeof(noise), "no cairn wire frame");
        cairn_secure_link_free(a);

        cairn_err err = {{0}};
        cairn_buf out = {0};
        cairn_secure_link *d = new_link(&k, true);
        must(cairn_secure_link_begin(d, &out, &err), &err);
        expect_feed_error(d, noise, sizeof(noise), "no cairn wire frame");
        cairn_secure_link_free(d);
        cairn_buf_free(&out);
    }

    /* garbage after a good challenge */
    cairn_buf b = {0};
    uint8_t na[32] = {0};
    append_frame(&b, CAIRN_WIRE_AUTH_CHALLENGE, na, 32);
    assert_int_equal(cairn_buf_append(&b, noise, sizeof(noise)), 0);
    a = new_link(&k, false);
    expect_feed_error(a, b.data, b.len, "no cairn wire frame"); /* and no reply is given */
    cairn_secure_link_free(a);
    cairn_buf_free(&b);
}

/* Feeds a crafted stream to a fresh acceptor (or to a dialer after begin). */
static void expect_handshake_error(bool dialer, const cairn_buf *b, const char *want) {
    cairn_cluster_key k = raw_key(14);
    cairn_err err = {{0}};
    cairn_buf out = {0};
    cairn_secure_link *s = new_link(&k, dialer);
    if (dialer) {
        must(cairn_secure_link_begin(s, &out, &err), &err);
    }
    expect_feed_error(s, b->data, b->len, want);
    cairn_secure_link_free(s);
    cairn_buf_free(&out);
}

static void test_malformed_handshake_frames(void **state) {
    (void)state;
    cairn_buf b = {0};
    uint8_t zeros[64] = {0};

    append_header(&b, CAIRN_WIRE_MAGIC, 2, CAIRN_WIRE_AUTH_CHALLENGE, 0, 32);
    expect_handshake_error(false, &b, "wire protocol version 2");
    b.len = 0;
    append_header(&b, CAIRN_WIRE_MAGIC, CAIRN_WIRE_VERSION, 99, 0, 32);
    expect_handshake_error(false, &b, "unknown type 99");
    b.len = 0;
    append_header(&b, CAIRN_WIRE_MAGIC, CAIRN_WIRE_VERSION, CAIRN_WIRE_AUTH_CHALLENGE, 0x10, 32);
    expect_handshake_error(false, &b, "reserved flags");
    /* exact sizes, checked on the header before any payload arrives */
    b.len = 0;
    append_header(&b, CAIRN_WIRE_MAGIC, CAIRN_WIRE_VERSION, CAIRN_WIRE_AUTH_CHALLENGE, 0, 33);
    expect_handshake_error(false, &b, "has 33 payload bytes, not 32");
    b.len = 0;
    append_header(&b, CAIRN_WIRE_MAGIC, CAIRN_WIRE_VERSION, CAIRN_WIRE_AUTH_CHALLENGE, 0,
                  0xFFFFFFFFu);
    expect_handshake_error(false, &b, "not 32");
    b.len = 0;
    append_frame(&b, CAIRN_WIRE_AUTH_CHALLENGE, zeros, 32);
    expect_handshake_error(true, &b, "has 32 payload bytes, not 64");
    /* out of order */
    b.len = 0;
    append_frame(&b, CAIRN_WIRE_AUTH_RESPONSE, zeros, 32);
    expect_handshake_error(false, &b,
                           "sent AUTH_RESPONSE where the handshake expects "
                           "AUTH_CHALLENGE");
    expect_handshake_error(true, &b, "sent AUTH_RESPONSE where");
    b.len = 0;
    append_frame(&b, CAIRN_WIRE_AUTH_CHALLENGE, zeros, 32);
    append_frame(&b, CAIRN_WIRE_AUTH_CHALLENGE, zeros, 32);
    expect_handshake_error(false, &b,
                           "sent AUTH_CHALLENGE where the handshake expects "
                           "AUTH_RESPONSE");
    /* a forged acceptor proof */
    b.len = 0;
    append_frame(&b, CAIRN_WIRE_AUTH_CHALLENGE, zeros, 64);
    expect_handshake_error(true, &b, "proves another key");
    cairn_buf_free(&b);
}

static void test_api_misuse(void **state) {
    (void)state;
    cairn_cluster_key k = raw_key(15);
    cairn_err err = {{0}};
    cairn_buf out = {0}, plain = {0};
    cairn_secure_link *a = new_link(&k, false);
    assert_int_equal(cairn_secure_link_begin(a, &out, &err), -1);
    assert_mentions(&err, "only the dialing side");
    assert_int_equal(cairn_secure_link_seal(a, "x", 1, &out, &err), -1);
    assert_mentions(&err, "before the handshake completed");
    assert_false(cairn_secure_link_failed(a)); /* caller mistakes do not kill the link */
    assert_int_equal(out.len, 0);
    cairn_secure_link_free(a);

    cairn_secure_link *d = new_link(&k, true);
    must(cairn_secure_link_begin(d, &out, &err), &err);
    assert_int_equal(cairn_secure_link_begin(d, &out, &err), -1);
    assert_mentions(&err, "already begun");
    assert_int_equal(cairn_secure_link_seal(d, "x", 1, &out, &err), -1);
    assert_int_equal(out.len, CAIRN_WIRE_HEADER_SIZE + 32);
    cairn_secure_link_free(d);

    d = new_link(&k, true);
    expect_feed_error(d, "x", 1, "before it began the handshake");
    cairn_secure_link_free(d);
    cairn_secure_link_free(NULL);
    cairn_buf_free(&out);
    cairn_buf_free(&plain);
}

/* ---- broken record streams ---- */

/* Three records from a to d: "A", 100 x 'b', 40 x 'c'. */
static const size_t REC_LEN[3] = {1, 100, 40};

static void three_records(pair *p, cairn_buf *out, size_t starts[4]) {
    for (int r = 0; r < 3; r++) {
        char text[100];
        memset(text, "Abc"[r], sizeof(text));
        starts[r] = out->len;
        seal(p->a, text, REC_LEN[r], out);
    }
    starts[3] = out->len;
}

static void test_tampered_byte_anywhere(void **state) {
    (void)state;
    cairn_cluster_key k = raw_key(16);
    static const uint8_t flips[] = {0x01, 0x80, 0xFF};
    int waited = 0;
    for (size_t f = 0; f < sizeof(flips); f++) {
        size_t starts[4];
        cairn_buf stream = {0};
        pair p0 = established_pair(&k);
        three_records(&p0, &stream, starts);
        pair_free(&p0);
        for (size_t i = 0; i < stream.len; i++) {
            pair p = established_pair(&k);
            cairn_buf s = {0};
            three_records(&p, &s, starts);
            s.data[i] = (char)(s.data[i] ^ flips[f]);
            int bad = i < starts[1] ? 0 : i < starts[2] ? 1 : 2;
            cairn_err err = {{0}};
            cairn_buf plain = {0}, send = {0};
            int rc = cairn_secure_link_feed(p.d, s.data, s.len, &plain, &send, &err);
            if (rc == -1) {
                assert_int_equal(plain.len, 0);
                assert_mentions(&err, "secure link: ");
                assert_true(cairn_secure_link_failed(p.d));
            } else {
                /* a length made larger (within the limit) waits for bytes that never come;
                 * only the untouched records before it were delivered */
                waited++;
                size_t want = 0;
                for (int r = 0; r < bad; r++) {
                    want += REC_LEN[r];
                }
                assert_int_equal(plain.len, want);
                assert_true(i - starts[bad] < 4);
                assert_int_equal(cairn_secure_link_eof(p.d, &err), -1);
                assert_mentions(&err, "cut short");
            }
            cairn_buf_free(&s);
            cairn_buf_free(&plain);
            cairn_buf_free(&send);
            pair_free(&p);
        }
        cairn_buf_free(&stream);
    }
    assert_true(waited > 0); /* the wait branch was exercised */
}

static void test_replay_drop_reorder(void **state) {
    (void)state;
    cairn_cluster_key k = raw_key(17);
    size_t st[4];
    cairn_err err = {{0}};
    cairn_buf plain = {0}, send = {0}, s = {0}, b = {0};

    /* replayed */
    pair p = established_pair(&k);
    three_records(&p, &s, st);
    must(cairn_secure_link_feed(p.d, s.data, st[1], &plain, &send, &err), &err);
    assert_int_equal(plain.len, 1);
    expect_feed_error(p.d, s.data, st[1], "record 1 from the peer fails authentication");
    pair_free(&p);

    /* dropped */
    p = established_pair(&k);
    s.len = 0;
    three_records(&p, &s, st);
    expect_feed_error(p.d, s.data + st[1], st[3] - st[1], "fails authentication");
    pair_free(&p);

    /* reordered */
    p = established_pair(&k);
    s.len = 0;
    three_records(&p, &s, st);
    assert_int_equal(cairn_buf_append(&b, s.data + st[1], st[2] - st[1]), 0);
    assert_int_equal(cairn_buf_append(&b, s.data, st[1]), 0);
    expect_feed_error(p.d, b.data, b.len, "fails authentication");
    pair_free(&p);

    /* a record cut short, then the next one */
    p = established_pair(&k);
    s.len = 0;
    three_records(&p, &s, st);
    b.len = 0;
    assert_int_equal(cairn_buf_append(&b, s.data + st[0], st[2] - st[0] - 1), 0);
    assert_int_equal(cairn_buf_append(&b, s.data + st[2], st[3] - st[2]), 0);
    expect_feed_error(p.d, b.data, b.len, "fails authentication");
    pair_free(&p);

    cairn_buf_free(&plain);
    cairn_buf_free(&send);
    cairn_buf_free(&s);
    cairn_buf_free(&b);
}

static void test_truncated_stream(void **state) {
    (void)state;
    cairn_cluster_key k = raw_key(18);
    size_t st[4];
    cairn_err err = {{0}};
    cairn_buf plain = {0}, send = {0}, s = {0};
    for (size_t cut = 1; cut < 4 + 1 + 16; cut++) {
        pair p = established_pair(&k);
        s.len = 0;
        plain.len = 0;
        three_records(&p, &s, st);
        must(cairn_secure_link_feed(p.d, s.data, cut, &plain, &send, &err), &err);
        assert_int_equal(plain.len, 0);
        assert_int_equal(cairn_secure_link_eof(p.d, &err), -1);
        assert_mentions(&err, "in the middle of record 0");
        /* the rest completes it */
        must(cairn_secure_link_feed(p.d, s.data + cut, s.len - cut, &plain, &send, &err), &err);
        assert_int_equal(plain.len, 141);
        must(cairn_secure_link_eof(p.d, &err), &err);
        pair_free(&p);
    }
    cairn_buf_free(&plain);
    cairn_buf_free(&send);
    cairn_buf_free(&s);
}

static void test_bad_record_lengths(void **state) {
    (void)state;
    cairn_cluster_key k = raw_key(19);
    static const uint32_t bad[] = {
        0,          1, CAIRN_SECURE_TAG_SIZE, CAIRN_SECURE_MAX_RECORD + 1, CAIRN_WIRE_MAX_PAYLOAD,
        0xFFFFFFFFu};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(bad); i++) {
        pair p = established_pair(&k);
        cairn_buf b = {0};
        append_le32(&b, bad[i]); /* refused on these 4 bytes alone */
        expect_feed_error(p.a, b.data, b.len, "declares");
        pair_free(&p);
        cairn_buf_free(&b);
    }
    /* a plaintext wire frame where records are expected: its magic is a huge length */
    pair p = established_pair(&k);
    cairn_buf b = {0};
    cairn_wire_hello hello = {.node_id = "x", .cluster = "c", .protocol = 1, .cluster_port = 1};
    cairn_err err = {{0}};
    must(cairn_wire_encode_hello(CAIRN_WIRE_HELLO, &hello, &b, &err), &err);
    expect_feed_error(p.a, b.data, b.len, "declares");
    pair_free(&p);
    cairn_buf_free(&b);
    /* the largest length is fine and waits for its bytes */
    p = established_pair(&k);
    append_le32(&b, CAIRN_SECURE_MAX_RECORD);
    cairn_buf plain = {0}, send = {0};
    must(cairn_secure_link_feed(p.a, b.data, b.len, &plain, &send, &err), &err);
    pair_free(&p);
    cairn_buf_free(&b);
}

/* ---- the cluster key ---- */

static void write_file(const char *path, const char *text, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void test_key_from_secret(void **state) {
    (void)state;
    cairn_err err = {{0}};
    cairn_cluster_key a1, a2, b;
    const char *sa = "correct horse battery staple";
    const char *sb = "correct horse battery staplf";
    must(cairn_cluster_key_from_secret(sa, strlen(sa), &a1, &err), &err);
    must(cairn_cluster_key_from_secret(sa, strlen(sa), &a2, &err), &err);
    must(cairn_cluster_key_from_secret(sb, strlen(sb), &b, &err), &err);
    assert_memory_equal(a1.bytes, a2.bytes, sizeof(a1.bytes));
    assert_memory_not_equal(a1.bytes, b.bytes, sizeof(a1.bytes));
    /* not the secret itself, nor a plain hash of it */
    uint8_t plain_hash[32];
    crypto_generichash(plain_hash, 32, (const unsigned char *)sa, strlen(sa), NULL, 0);
    assert_memory_not_equal(a1.bytes, plain_hash, 32);

    /* pinned: a change of salt or parameters would split clusters of mixed versions */
    static const uint8_t pinned[32] = {0x5d, 0xac, 0x4f, 0xa3, 0x53, 0xc1, 0xbb, 0xfd,
                                       0xf6, 0xab, 0xb0, 0xc5, 0x6f, 0xc8, 0x19, 0x2c,
                                       0xf8, 0x14, 0x73, 0x7b, 0xd0, 0x12, 0x37, 0xd6,
                                       0x45, 0x2d, 0x04, 0xde, 0x0d, 0xae, 0x0a, 0x33};
    assert_memory_equal(a1.bytes, pinned, 32);

    assert_int_equal(cairn_cluster_key_from_secret("", 0, &b, &err), -1);
    assert_mentions(&err, "empty");
    assert_int_equal(cairn_cluster_key_from_secret(NULL, 0, &b, &err), -1);

    /* keys derived from the same secret make links that work */
    pair p = established_pair(&a2);
    pair_free(&p);
    cairn_cluster_key_wipe(&a1);
    uint8_t zero[32] = {0};
    assert_memory_equal(a1.bytes, zero, 32);
}

static void test_key_from_file(void **state) {
    (void)state;
    cairn_err err = {{0}};
    const char *secret = "s3cret words";
    cairn_cluster_key want, got;
    must(cairn_cluster_key_from_secret(secret, strlen(secret), &want, &err), &err);

    write_file(KEY_FILE, "s3cret words\n", 13);
    must(cairn_cluster_key_from_file(KEY_FILE, &got, &err), &err);
    assert_memory_equal(got.bytes, want.bytes, 32);

    write_file(KEY_FILE, "s3cret words \t\r\n\r\n", 18);
    memset(&got, 0, sizeof(got));
    must(cairn_cluster_key_from_file(KEY_FILE, &got, &err), &err);
    assert_memory_equal(got.bytes, want.bytes, 32);

    write_file(KEY_FILE, "", 0);
    assert_int_equal(cairn_cluster_key_from_file(KEY_FILE, &got, &err), -1);
    assert_mentions(&err, KEY_FILE);
    assert_mentions(&err, "empty");

    write_file(KEY_FILE, " \r\n\n", 4);
    assert_int_equal(cairn_cluster_key_from_file(KEY_FILE, &got, &err), -1);
    assert_mentions(&err, "empty");

    char big[CAIRN_CLUSTER_KEY_FILE_MAX + 1];
    memset(big, 'k', sizeof(big));
    write_file(KEY_FILE, big, sizeof(big));
    assert_int_equal(cairn_cluster_key_from_file(KEY_FILE, &got, &err), -1);
    assert_mentions(&err, KEY_FILE);
    assert_mentions(&err, "over the limit");

    remove(MISSING_FILE);
    assert_int_equal(cairn_cluster_key_from_file(MISSING_FILE, &got, &err), -1);
    assert_mentions(&err, MISSING_FILE);
    assert_mentions(&err, "cluster key file");
    remove(KEY_FILE);
}

/* An instance secret round-trips through hex; a proof answers its own challenge only, for
 * its own secret only, and malformed hex is no proof or challenge at all. */
static void test_instance_secrets_and_runner_proofs(void **unused) {
    (void)unused;
    cairn_err err = {{0}};
    char hex[2 * CAIRN_INSTANCE_SECRET_SIZE + 1], other_hex[sizeof hex];
    assert_int_equal(cairn_instance_secret_new(hex, sizeof hex, &err), 0);
    assert_int_equal(cairn_instance_secret_new(other_hex, sizeof other_hex, &err), 0);
    assert_string_not_equal(hex, other_hex);
    assert_int_equal(cairn_instance_secret_new(hex, sizeof hex - 1, &err), -1);
    uint8_t secret[CAIRN_INSTANCE_SECRET_SIZE], other[CAIRN_INSTANCE_SECRET_SIZE];
    assert_int_equal(cairn_instance_secret_from_hex(hex, secret, &err), 0);
    assert_int_equal(cairn_instance_secret_from_hex(other_hex, other, &err), 0);
    assert_int_equal(cairn_instance_secret_from_hex("abcd", secret, &err), -1);
    assert_int_equal(cairn_instance_secret_from_hex(NULL, secret, &err), -1);
    uint8_t challenge[CAIRN_RUNNER_CHALLENGE_SIZE], again[CAIRN_RUNNER_CHALLENGE_SIZE];
    assert_int_equal(cairn_runner_challenge_new(challenge, &err), 0);
    assert_int_equal(cairn_runner_challenge_new(again, &err), 0);
    assert_memory_not_equal(challenge, again, sizeof challenge);
    char challenge_hex[2 * CAIRN_RUNNER_CHALLENGE_SIZE + 1];
    sodium_bin2hex(challenge_hex, sizeof challenge_hex, challenge, sizeof challenge);
    uint8_t proof[CAIRN_RUNNER_PROOF_SIZE];
    assert_int_equal(cairn_runner_answer(secret, challenge_hex, proof), 0);
    /* as secure.h documents it */
    uint8_t documented[CAIRN_RUNNER_PROOF_SIZE];
    crypto_generichash_state st;
    crypto_generichash_init(&st, secret, sizeof secret, sizeof documented);
    crypto_generichash_update(&st, (const unsigned char *)"cairn runner hello v1", 21);
    crypto_generichash_update(&st, challenge, sizeof challenge);
    crypto_generichash_final(&st, documented, sizeof documented);
    assert_memory_equal(proof, documented, sizeof proof);
    char proof_hex[2 * CAIRN_RUNNER_PROOF_SIZE + 1];
    sodium_bin2hex(proof_hex, sizeof proof_hex, proof, sizeof proof);
    assert_true(cairn_runner_proof_matches(secret, challenge, proof_hex));
    assert_false(cairn_runner_proof_matches(other, challenge, proof_hex));
    assert_false(cairn_runner_proof_matches(secret, again, proof_hex));
    proof_hex[0] = proof_hex[0] == '0' ? '1' : '0';
    assert_false(cairn_runner_proof_matches(secret, challenge, proof_hex));
    proof_hex[10] = '\0';
    assert_false(cairn_runner_proof_matches(secret, challenge, proof_hex));
    assert_false(cairn_runner_proof_matches(secret, challenge, NULL));
    assert_int_equal(cairn_runner_answer(secret, "zz", proof), -1);
    assert_int_equal(cairn_runner_answer(secret, NULL, proof), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_both_directions),
        cmocka_unit_test(test_conversation_whole),
        cmocka_unit_test(test_conversation_one_byte_at_a_time),
        cmocka_unit_test(test_conversation_random_chunks),
        cmocka_unit_test(test_record_sizes),
        cmocka_unit_test(test_links_have_their_own_keys),
        cmocka_unit_test(test_documented_protocol),
        cmocka_unit_test(test_wrong_key_dialer_side),
        cmocka_unit_test(test_wrong_key_acceptor_side),
        cmocka_unit_test(test_reflected_proof),
        cmocka_unit_test(test_keyless_dialer),
        cmocka_unit_test(test_keyless_acceptor),
        cmocka_unit_test(test_garbage_instead_of_handshake),
        cmocka_unit_test(test_malformed_handshake_frames),
        cmocka_unit_test(test_api_misuse),
        cmocka_unit_test(test_tampered_byte_anywhere),
        cmocka_unit_test(test_replay_drop_reorder),
        cmocka_unit_test(test_truncated_stream),
        cmocka_unit_test(test_bad_record_lengths),
        cmocka_unit_test(test_key_from_secret),
        cmocka_unit_test(test_key_from_file),
        cmocka_unit_test(test_instance_secrets_and_runner_proofs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
