/*
 * cluster secure links: the cluster key (from a --key secret or a key file) and the layer
 * that makes one TCP link between two nodes of a keyed cluster mutually authenticated and
 * encrypted. The node puts one cairn_secure_link on each link, between its socket and the
 * wire frame codec (wire.h): every received byte goes in through feed(), which hands back
 * the plaintext bytes for the frame decoder; every byte the node sends goes through seal().
 *
 * The layer is pure bytes in, bytes out, like the wire codec: it never touches a socket,
 * blocks, logs or keeps global state, and it uses only libsodium's primitives (nothing here
 * is home-made cryptography). It owns the link's key material and wipes it (sodium_memzero)
 * when the link fails or is freed. Every byte it is given may come from a hostile peer: the
 * worst such a peer may cause is an error, after which the link is dead and the caller
 * closes it. A link is not thread-safe; it belongs to the loop that owns the socket.
 *
 * Cluster key K (32 bytes): Argon2id (crypto_pwhash, interactive limits) of the secret, with
 * a fixed salt (the first 16 bytes of BLAKE2b of CLUSTER_KEY_CONTEXT in secure.c), so every
 * node derives the same K from the same secret, and each guess of an eavesdropper who tries
 * secrets offline against a recorded handshake costs one Argon2id run.
 *
 * Handshake, in plain wire frames (12-byte header, wire.h), payload sizes exact:
 *
 *   dialer   -> acceptor  AUTH_CHALLENGE  nonce_a (32 random bytes)
 *   acceptor -> dialer    AUTH_CHALLENGE  nonce_b (32 random bytes) || proof_b (32)
 *   dialer   -> acceptor  AUTH_RESPONSE   proof_a (32)
 *
 *   proof_b = BLAKE2b-256 keyed with K of "cairn auth acceptor v1" || nonce_a || nonce_b
 *   proof_a = BLAKE2b-256 keyed with K of "cairn auth dialer v1"   || nonce_a || nonce_b
 *
 * The dialer checks proof_b (constant time) before it proves anything, sends proof_a and is
 * established; the acceptor is established once proof_a checks out. Each side contributes a
 * fresh nonce, so no proof can be replayed on another link, and the two labels differ, so
 * neither side's proof can be reflected back as the other's. A frame of any other type, a
 * second challenge, a response before the challenge, or a wrong size is an error. The
 * handshake parser takes exactly the bytes of each frame, never any after the frame that
 * completes the handshake: those are already records.
 *
 * Session keys, one per direction, fresh on every link:
 *
 *   key dialer->acceptor = BLAKE2b-256 keyed with K of "cairn link dialer to acceptor v1"
 *                          || nonce_a || nonce_b
 *   key acceptor->dialer = the same with "cairn link acceptor to dialer v1"
 *
 * Records, after the handshake (all integers little-endian):
 *
 *   offset  size  field
 *   0       4     n: ciphertext length, CAIRN_SECURE_MIN_RECORD..CAIRN_SECURE_MAX_RECORD
 *   4       n     ChaCha20-Poly1305 (IETF) of 1..CAIRN_SECURE_MAX_PLAIN plaintext bytes,
 *                 with its 16-byte tag; additional data: the 4 length bytes; nonce: the
 *                 record's number in its direction (64-bit LE counter from 0, then 4 zero
 *                 bytes), unique since each link and direction has its own key
 *
 * The receiver expects the numbers in order (TCP keeps it), so a replayed, dropped,
 * reordered, truncated or altered record fails authentication. The length is checked as
 * soon as its 4 bytes arrive, and at most one record is buffered. Records do not follow wire
 * frame boundaries: seal() may pack several frames into one record or split one frame over
 * many.
 *
 * There is no forward secrecy: whoever learns the secret later can decrypt recorded links.
 *
 * Instance secrets: each model instance has one (32 random bytes, made by the master when
 * it places the instance, carried to members in the cluster state). Every connection to
 * one of the instance's runners must prove it holds the secret before the runner serves
 * it: the runner sends a fresh 32-byte challenge, and the first frame back must carry
 *
 *   runner proof = BLAKE2b-256 keyed with the secret of "cairn runner hello v1" || challenge
 *
 * so a proof seen once opens no other connection. On a keyed cluster the secret never
 * leaves sealed links; on an open cluster it crosses the LAN in the clear inside events and
 * snapshots, so there it keeps out only those who cannot watch the cluster's traffic.
 */
#ifndef CAIRN_CLUSTER_SECURE_H
#define CAIRN_CLUSTER_SECURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

#define CAIRN_CLUSTER_KEY_SIZE 32
/* A key file's text may be at most this long (before trailing whitespace is cut). */
#define CAIRN_CLUSTER_KEY_FILE_MAX 4096

/* Record limits: 64 KiB of plaintext per record plus the 16-byte Poly1305 tag. */
#define CAIRN_SECURE_MAX_PLAIN 65536u /* 64 KiB */
#define CAIRN_SECURE_TAG_SIZE 16u
#define CAIRN_SECURE_MIN_RECORD (CAIRN_SECURE_TAG_SIZE + 1u)
#define CAIRN_SECURE_MAX_RECORD (CAIRN_SECURE_MAX_PLAIN + CAIRN_SECURE_TAG_SIZE)
#define CAIRN_SECURE_RECORD_HEADER 4u

typedef struct cairn_cluster_key {
    uint8_t bytes[CAIRN_CLUSTER_KEY_SIZE];
} cairn_cluster_key;

/* Derives the key from a secret text (the --key value; any bytes, len of them). Takes
 * about 0.1-0.5 s and 64 MiB of memory (Argon2id, interactive limits): derive once per
 * process, not per link. An empty secret is an error. */
int cairn_cluster_key_from_secret(const char *secret, size_t len, cairn_cluster_key *out,
                                  cairn_err *err);
/* Reads a key file: its text minus trailing whitespace (spaces, tabs, CR, LF) is the
 * secret, so `echo SECRET > file` and the same line saved by a Windows editor both give the
 * key of --key SECRET. An unreadable file, one over CAIRN_CLUSTER_KEY_FILE_MAX bytes, or one
 * that is empty after the cut is an error naming the path. */
int cairn_cluster_key_from_file(const char *path, cairn_cluster_key *out, cairn_err *err);
/* A new random secret (`cairn key new`): CAIRN_CLUSTER_KEY_SIZE bytes from the system's
 * random source as lowercase hex and a NUL. A passphrase can be guessed offline from one
 * recorded handshake at one Argon2id run per guess; 256 random bits cannot. */
#define CAIRN_CLUSTER_SECRET_SIZE (2 * CAIRN_CLUSTER_KEY_SIZE + 1)
int cairn_cluster_key_new_secret(char out[CAIRN_CLUSTER_SECRET_SIZE], cairn_err *err);
/* Wipes a key the caller no longer needs (sodium_memzero). */
void cairn_cluster_key_wipe(cairn_cluster_key *key);

#define CAIRN_INSTANCE_SECRET_SIZE 32
#define CAIRN_RUNNER_CHALLENGE_SIZE 32
#define CAIRN_RUNNER_PROOF_SIZE 32
/* A new instance secret as 64 lowercase hex digits and a NUL into hex (size at least 65). */
int cairn_instance_secret_new(char *hex, size_t size, cairn_err *err);
/* An instance secret from its 64 hex digits; -1 with err for anything else. */
int cairn_instance_secret_from_hex(const char *hex, uint8_t secret[CAIRN_INSTANCE_SECRET_SIZE],
                                   cairn_err *err);
/* Fresh random bytes for a runner's challenge. */
int cairn_runner_challenge_new(uint8_t challenge[CAIRN_RUNNER_CHALLENGE_SIZE], cairn_err *err);
/* The proof of the secret for one challenge (above). */
void cairn_runner_proof(const uint8_t secret[CAIRN_INSTANCE_SECRET_SIZE],
                        const uint8_t challenge[CAIRN_RUNNER_CHALLENGE_SIZE],
                        uint8_t proof[CAIRN_RUNNER_PROOF_SIZE]);
/* The dialer's side: the proof for a challenge as the runner sends it (hex); -1 when it is
 * not CAIRN_RUNNER_CHALLENGE_SIZE bytes in hex. */
int cairn_runner_answer(const uint8_t secret[CAIRN_INSTANCE_SECRET_SIZE], const char *challenge_hex,
                        uint8_t proof[CAIRN_RUNNER_PROOF_SIZE]);
/* Whether proof (hex, as a hello carries it) proves the secret for the challenge; in
 * constant time. */
bool cairn_runner_proof_matches(const uint8_t secret[CAIRN_INSTANCE_SECRET_SIZE],
                                const uint8_t challenge[CAIRN_RUNNER_CHALLENGE_SIZE],
                                const char *proof_hex);

/* One per TCP link; owns its key material and buffers. */
typedef struct cairn_secure_link cairn_secure_link;

/* dialer: this node opened the link (it speaks first, with cairn_secure_link_begin); the
 * accepting side passes false. The key is copied. */
cairn_secure_link *cairn_secure_link_new(const cairn_cluster_key *key, bool dialer, cairn_err *err);
/* Wipes the key material and frees everything; NULL is fine. */
void cairn_secure_link_free(cairn_secure_link *s);

/* Dialer only, once, before any feed: appends the first handshake frame (AUTH_CHALLENGE) to
 * out, which the caller writes to the socket. */
int cairn_secure_link_begin(cairn_secure_link *s, cairn_buf *out, cairn_err *err);

/* Every received byte goes here, in stream order, in chunks of any size. Handshake frames
 * are consumed here; reply frames are appended to `send` (plaintext bytes the caller writes
 * to the socket BEFORE anything it seals afterwards). Once established, records are
 * decrypted and their plaintext appended to `plain` (bytes for the wire frame decoder).
 * Handshake and records may arrive in the same chunk. Returns 0, or -1 with a message (wrong
 * key, a peer without --key, a forged, replayed, reordered or truncated record, a bad
 * length...). On -1 neither buffer has gained anything from this call, the link is dead
 * (its keys are wiped) and every later call returns -1 with the same message: close it. */
int cairn_secure_link_feed(cairn_secure_link *s, const void *bytes, size_t n, cairn_buf *plain,
                           cairn_buf *send, cairn_err *err);

/* True once this side may seal and receives records: for the dialer right after the feed
 * that verified the acceptor's proof (its response frame is then in `send`), for the
 * acceptor after the feed that verified the dialer's proof. */
bool cairn_secure_link_established(const cairn_secure_link *s);
/* True once a feed failed; the message is what that feed returned. */
bool cairn_secure_link_failed(const cairn_secure_link *s);

/* After establishment: encrypts n plaintext bytes (any length; 0 appends nothing) into
 * records appended to out. Sealing before establishment is an error that leaves the link as
 * it was; on -1 out is unchanged. */
int cairn_secure_link_seal(cairn_secure_link *s, const void *plain, size_t n, cairn_buf *out,
                           cairn_err *err);

/* The peer closed the stream: returns 0 if that was a clean end (established, no partial
 * record buffered), else -1 with why: the handshake was not finished (e.g. a dialer with
 * another key closes instead of answering), or a record or its length was cut short. */
int cairn_secure_link_eof(const cairn_secure_link *s, cairn_err *err);

#endif
