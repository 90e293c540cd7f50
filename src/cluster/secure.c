/* cluster secure links: cluster key derivation, handshake and records (see secure.h). */
#include "cluster/secure.h"

#include "cluster/wire.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

/* The salt of the key derivation is fixed (every node must derive the same key) and comes
 * from this text, so cairn's keys differ from those of any other program using Argon2id on
 * the same secret. */
#define CLUSTER_KEY_CONTEXT "cairn cluster key v1"

#define LABEL_PROOF_ACCEPTOR "cairn auth acceptor v1"
#define LABEL_PROOF_DIALER "cairn auth dialer v1"
#define LABEL_KEY_DIALER_TX "cairn link dialer to acceptor v1"
#define LABEL_KEY_ACCEPTOR_TX "cairn link acceptor to dialer v1"
#define LABEL_RUNNER_PROOF "cairn runner hello v1"

#define NONCE_SIZE 32
#define PROOF_SIZE 32
#define SESSION_KEY_SIZE crypto_aead_chacha20poly1305_ietf_KEYBYTES
/* The largest handshake frame: the acceptor's challenge. */
#define HANDSHAKE_MAX (CAIRN_WIRE_HEADER_SIZE + NONCE_SIZE + PROOF_SIZE)
#define RECORD_BUF_SIZE (CAIRN_SECURE_RECORD_HEADER + CAIRN_SECURE_MAX_RECORD)

_Static_assert(CAIRN_CLUSTER_KEY_SIZE == crypto_generichash_KEYBYTES, "K keys BLAKE2b");
_Static_assert(SESSION_KEY_SIZE == crypto_generichash_BYTES, "session keys are BLAKE2b-256");
_Static_assert(CAIRN_SECURE_TAG_SIZE == crypto_aead_chacha20poly1305_ietf_ABYTES, "tag size");
_Static_assert(NONCE_SIZE + PROOF_SIZE <= CAIRN_WIRE_MAX_AUTH, "auth payloads fit the wire");

static void put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static int sodium_ready(cairn_err *err) {
    /* Idempotent and thread-safe; needed before randombytes and crypto_pwhash. */
    if (sodium_init() < 0) {
        return cairn_fail(err, "libsodium failed to initialize");
    }
    return 0;
}

/* ---- the cluster key ---- */

/* n random bytes (at most RANDOM_HEX_MAX) as 2n hex digits into hex[size]. */
#define RANDOM_HEX_MAX 64
static int random_hex(char *hex, size_t size, size_t n, cairn_err *err) {
    if (n > RANDOM_HEX_MAX || size < 2 * n + 1) {
        return cairn_fail(err, "no room for %zu random bytes in hex", n);
    }
    if (sodium_ready(err) != 0) {
        return -1;
    }
    uint8_t random[RANDOM_HEX_MAX];
    randombytes_buf(random, n);
    sodium_bin2hex(hex, size, random, n);
    sodium_memzero(random, n);
    return 0;
}

int cairn_cluster_key_new_secret(char out[CAIRN_CLUSTER_SECRET_SIZE], cairn_err *err) {
    return random_hex(out, CAIRN_CLUSTER_SECRET_SIZE, CAIRN_CLUSTER_KEY_SIZE, err);
}

/* ---- instance secrets ---- */

_Static_assert(CAIRN_INSTANCE_SECRET_SIZE == crypto_generichash_KEYBYTES, "secrets key BLAKE2b");
_Static_assert(CAIRN_RUNNER_PROOF_SIZE == crypto_generichash_BYTES, "proofs are BLAKE2b-256");

int cairn_instance_secret_new(char *hex, size_t size, cairn_err *err) {
    return random_hex(hex, size, CAIRN_INSTANCE_SECRET_SIZE, err);
}

/* Exactly n bytes as 2n hex digits, nothing else. */
static bool bytes_from_hex(const char *hex, uint8_t *out, size_t n) {
    size_t len = 0;
    return hex && strlen(hex) == n * 2 &&
           sodium_hex2bin(out, n, hex, n * 2, NULL, &len, NULL) == 0 && len == n;
}

int cairn_instance_secret_from_hex(const char *hex, uint8_t secret[CAIRN_INSTANCE_SECRET_SIZE],
                                   cairn_err *err) {
    if (!bytes_from_hex(hex, secret, CAIRN_INSTANCE_SECRET_SIZE)) {
        return cairn_fail(err, "an instance secret is %d hex digits",
                          2 * CAIRN_INSTANCE_SECRET_SIZE);
    }
    return 0;
}

int cairn_runner_challenge_new(uint8_t challenge[CAIRN_RUNNER_CHALLENGE_SIZE], cairn_err *err) {
    if (sodium_ready(err) != 0) {
        return -1;
    }
    randombytes_buf(challenge, CAIRN_RUNNER_CHALLENGE_SIZE);
    return 0;
}

void cairn_runner_proof(const uint8_t secret[CAIRN_INSTANCE_SECRET_SIZE],
                        const uint8_t challenge[CAIRN_RUNNER_CHALLENGE_SIZE],
                        uint8_t proof[CAIRN_RUNNER_PROOF_SIZE]) {
    crypto_generichash_state st;
    crypto_generichash_init(&st, secret, CAIRN_INSTANCE_SECRET_SIZE, CAIRN_RUNNER_PROOF_SIZE);
    crypto_generichash_update(&st, (const unsigned char *)LABEL_RUNNER_PROOF,
                              strlen(LABEL_RUNNER_PROOF));
    crypto_generichash_update(&st, challenge, CAIRN_RUNNER_CHALLENGE_SIZE);
    crypto_generichash_final(&st, proof, CAIRN_RUNNER_PROOF_SIZE);
    sodium_memzero(&st, sizeof st);
}

int cairn_runner_answer(const uint8_t secret[CAIRN_INSTANCE_SECRET_SIZE], const char *challenge_hex,
                        uint8_t proof[CAIRN_RUNNER_PROOF_SIZE]) {
    uint8_t challenge[CAIRN_RUNNER_CHALLENGE_SIZE];
    if (!bytes_from_hex(challenge_hex, challenge, sizeof challenge)) {
        return -1;
    }
    cairn_runner_proof(secret, challenge, proof);
    return 0;
}

bool cairn_runner_proof_matches(const uint8_t secret[CAIRN_INSTANCE_SECRET_SIZE],
                                const uint8_t challenge[CAIRN_RUNNER_CHALLENGE_SIZE],
                                const char *proof_hex) {
    uint8_t given[CAIRN_RUNNER_PROOF_SIZE], want[CAIRN_RUNNER_PROOF_SIZE];
    if (!bytes_from_hex(proof_hex, given, sizeof given)) {
        return false;
    }
    cairn_runner_proof(secret, challenge, want);
    bool ok = sodium_memcmp(given, want, sizeof want) == 0;
    sodium_memzero(want, sizeof want);
    return ok;
}

int cairn_cluster_key_from_secret(const char *secret, size_t len, cairn_cluster_key *out,
                                  cairn_err *err) {
    if (!secret || len == 0) {
        return cairn_fail(err, "cluster key: the secret is empty");
    }
    if (len > crypto_pwhash_PASSWD_MAX) {
        return cairn_fail(err, "cluster key: the secret of %zu bytes is too long", len);
    }
    if (sodium_ready(err) != 0) {
        return -1;
    }
    uint8_t salt_full[crypto_generichash_BYTES];
    crypto_generichash(salt_full, sizeof(salt_full), (const unsigned char *)CLUSTER_KEY_CONTEXT,
                       strlen(CLUSTER_KEY_CONTEXT), NULL, 0);
    _Static_assert(crypto_pwhash_SALTBYTES <= crypto_generichash_BYTES, "salt fits");
    if (crypto_pwhash(out->bytes, sizeof(out->bytes), secret, len, salt_full,
                      crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE,
                      crypto_pwhash_ALG_ARGON2ID13) != 0) {
        sodium_memzero(out->bytes, sizeof(out->bytes));
        return cairn_fail(err, "cluster key: Argon2id failed (out of memory? it needs %zu MiB)",
                          (size_t)crypto_pwhash_MEMLIMIT_INTERACTIVE / ((size_t)1024 * 1024));
    }
    return 0;
}

static bool is_trailing_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int cairn_cluster_key_from_file(const char *path, cairn_cluster_key *out, cairn_err *err) {
    size_t len = 0;
    char *text = cairn_read_file(path, &len, err);
    if (!text) {
        return cairn_fail_prefix(err, "cluster key file");
    }
    int rc = 0;
    if (len > CAIRN_CLUSTER_KEY_FILE_MAX) {
        rc = cairn_fail(err,
                        "cluster key file %s: %zu bytes is over the limit of %u: is it the "
                        "right file?",
                        path, len, (unsigned)CAIRN_CLUSTER_KEY_FILE_MAX);
    } else {
        size_t n = len;
        while (n > 0 && is_trailing_space(text[n - 1])) {
            n--;
        }
        if (n == 0) {
            rc = cairn_fail(err, "cluster key file %s is empty", path);
        } else if (cairn_cluster_key_from_secret(text, n, out, err) != 0) {
            rc = cairn_fail_prefix(err, "cluster key file %s", path);
        }
    }
    sodium_memzero(text, len);
    free(text);
    return rc;
}

void cairn_cluster_key_wipe(cairn_cluster_key *key) {
    if (key) {
        sodium_memzero(key->bytes, sizeof(key->bytes));
    }
}

/* ---- link state ---- */

typedef enum link_phase {
    PHASE_DIALER_NEW,          /* dialer before begin() */
    PHASE_DIALER_WAIT_PROOF,   /* dialer: waiting for nonce_b || proof_b */
    PHASE_ACCEPTOR_WAIT_NONCE, /* acceptor: waiting for nonce_a */
    PHASE_ACCEPTOR_WAIT_PROOF, /* acceptor: waiting for proof_a */
    PHASE_ESTABLISHED,
    PHASE_FAILED,
} link_phase;

struct cairn_secure_link {
    link_phase phase;
    bool dialer;
    uint8_t key[CAIRN_CLUSTER_KEY_SIZE]; /* K: wiped once the session keys exist */
    uint8_t nonce_a[NONCE_SIZE];
    uint8_t nonce_b[NONCE_SIZE];
    uint8_t hs[HANDSHAKE_MAX]; /* the handshake frame being received */
    size_t hs_len;
    uint8_t tx_key[SESSION_KEY_SIZE];
    uint8_t rx_key[SESSION_KEY_SIZE];
    uint64_t tx_count; /* number of the next record sent */
    uint64_t rx_count; /* number of the next record expected */
    uint8_t *rx;       /* RECORD_BUF_SIZE bytes once established: the record being received */
    size_t rx_len;
    cairn_err error; /* why the link failed */
};

static void wipe_secrets(cairn_secure_link *s) {
    sodium_memzero(s->key, sizeof(s->key));
    sodium_memzero(s->nonce_a, sizeof(s->nonce_a));
    sodium_memzero(s->nonce_b, sizeof(s->nonce_b));
    sodium_memzero(s->tx_key, sizeof(s->tx_key));
    sodium_memzero(s->rx_key, sizeof(s->rx_key));
    if (s->rx) {
        sodium_memzero(s->rx, RECORD_BUF_SIZE);
    }
}

static int link_fail(cairn_secure_link *s, cairn_err *err, const char *fmt, ...) CAIRN_PRINTF(3, 4);

/* Kills the link: the message is kept for every later call, the keys are wiped. */
static int link_fail(cairn_secure_link *s, cairn_err *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    cairn_failv(&s->error, fmt, ap);
    va_end(ap);
    s->phase = PHASE_FAILED;
    wipe_secrets(s);
    return cairn_fail(err, "%s", s->error.msg);
}

cairn_secure_link *cairn_secure_link_new(const cairn_cluster_key *key, bool dialer,
                                         cairn_err *err) {
    if (sodium_ready(err) != 0) {
        return NULL;
    }
    cairn_secure_link *s = calloc(1, sizeof(*s));
    if (!s) {
        cairn_fail(err, "secure link: out of memory");
        return NULL;
    }
    memcpy(s->key, key->bytes, sizeof(s->key));
    s->dialer = dialer;
    s->phase = dialer ? PHASE_DIALER_NEW : PHASE_ACCEPTOR_WAIT_NONCE;
    return s;
}

void cairn_secure_link_free(cairn_secure_link *s) {
    if (s) {
        wipe_secrets(s);
        free(s->rx);
        sodium_memzero(s, sizeof(*s));
        free(s);
    }
}

bool cairn_secure_link_established(const cairn_secure_link *s) {
    return s->phase == PHASE_ESTABLISHED;
}

bool cairn_secure_link_failed(const cairn_secure_link *s) {
    return s->phase == PHASE_FAILED;
}

/* ---- handshake ---- */

/* BLAKE2b-256 keyed with K of label || nonce_a || nonce_b: the proofs and session keys. */
static void link_mac(const cairn_secure_link *s, const char *label,
                     uint8_t out[crypto_generichash_BYTES]) {
    crypto_generichash_state st;
    crypto_generichash_init(&st, s->key, sizeof(s->key), crypto_generichash_BYTES);
    crypto_generichash_update(&st, (const unsigned char *)label, strlen(label));
    crypto_generichash_update(&st, s->nonce_a, sizeof(s->nonce_a));
    crypto_generichash_update(&st, s->nonce_b, sizeof(s->nonce_b));
    crypto_generichash_final(&st, out, crypto_generichash_BYTES);
    sodium_memzero(&st, sizeof(st));
}

/* Checks a proof in constant time; the expected value never leaves this function. */
static bool proof_matches(const cairn_secure_link *s, const char *label, const uint8_t *proof) {
    uint8_t expected[PROOF_SIZE];
    link_mac(s, label, expected);
    bool ok = crypto_verify_32(expected, proof) == 0;
    sodium_memzero(expected, sizeof(expected));
    return ok;
}

/* Both nonces are known and the peer proved K: derive the direction keys, drop K. */
static int establish(cairn_secure_link *s, cairn_err *err) {
    s->rx = malloc(RECORD_BUF_SIZE);
    if (!s->rx) {
        return link_fail(s, err, "secure link: out of memory for the record buffer");
    }
    link_mac(s, s->dialer ? LABEL_KEY_DIALER_TX : LABEL_KEY_ACCEPTOR_TX, s->tx_key);
    link_mac(s, s->dialer ? LABEL_KEY_ACCEPTOR_TX : LABEL_KEY_DIALER_TX, s->rx_key);
    sodium_memzero(s->key, sizeof(s->key));
    s->phase = PHASE_ESTABLISHED;
    return 0;
}

int cairn_secure_link_begin(cairn_secure_link *s, cairn_buf *out, cairn_err *err) {
    if (s->phase == PHASE_FAILED) {
        return cairn_fail(err, "%s", s->error.msg);
    }
    if (!s->dialer) {
        return cairn_fail(err, "secure link: only the dialing side begins the handshake");
    }
    if (s->phase != PHASE_DIALER_NEW) {
        return cairn_fail(err, "secure link: the handshake has already begun");
    }
    randombytes_buf(s->nonce_a, sizeof(s->nonce_a));
    if (cairn_wire_encode(CAIRN_WIRE_AUTH_CHALLENGE, s->nonce_a, sizeof(s->nonce_a), out, err) !=
        0) {
        return cairn_fail_prefix(err, "secure link");
    }
    s->phase = PHASE_DIALER_WAIT_PROOF;
    return 0;
}

/* The frame this phase waits for, and its exact payload size. */
static cairn_wire_type expected_type(link_phase phase) {
    return phase == PHASE_ACCEPTOR_WAIT_PROOF ? CAIRN_WIRE_AUTH_RESPONSE
                                              : CAIRN_WIRE_AUTH_CHALLENGE;
}

static uint32_t expected_len(link_phase phase) {
    static const uint32_t LEN[] = {
        [PHASE_DIALER_WAIT_PROOF] = NONCE_SIZE + PROOF_SIZE,
        [PHASE_ACCEPTOR_WAIT_NONCE] = NONCE_SIZE,
        [PHASE_ACCEPTOR_WAIT_PROOF] = PROOF_SIZE,
    };
    return (size_t)phase < CAIRN_ARRAY_LEN(LEN) ? LEN[phase] : 0;
}

/* Checks a complete handshake frame header against what this phase waits for. */
static int check_header(cairn_secure_link *s, cairn_err *err) {
    const uint8_t *h = s->hs;
    if (memcmp(h, CAIRN_WIRE_MAGIC, 4) != 0) {
        return link_fail(s, err,
                         "secure link: the peer's handshake bytes are no cairn wire frame "
                         "(another program, or not a cairn cluster port?)");
    }
    if (h[4] != CAIRN_WIRE_VERSION) {
        return link_fail(s, err,
                         "secure link: the peer speaks wire protocol version %u, this node %u",
                         (unsigned)h[4], (unsigned)CAIRN_WIRE_VERSION);
    }
    unsigned type = h[5];
    cairn_wire_type want = expected_type(s->phase);
    if (!cairn_wire_type_known(type)) {
        return link_fail(
            s, err, "secure link: the peer sent a frame of unknown type %u in the handshake", type);
    }
    if (type != CAIRN_WIRE_AUTH_CHALLENGE && type != CAIRN_WIRE_AUTH_RESPONSE) {
        return link_fail(s, err,
                         "secure link: the peer sent %s before proving the cluster key: it "
                         "runs without --key",
                         cairn_wire_type_name(type));
    }
    if (type != (unsigned)want) {
        return link_fail(s, err, "secure link: the peer sent %s where the handshake expects %s",
                         cairn_wire_type_name(type), cairn_wire_type_name((unsigned)want));
    }
    unsigned flags = (unsigned)h[6] | ((unsigned)h[7] << 8);
    if (flags != 0) {
        return link_fail(s, err, "secure link: the peer's %s sets reserved flags 0x%04x",
                         cairn_wire_type_name(type), flags);
    }
    uint32_t len = get_u32(h + 8);
    if (len != expected_len(s->phase)) {
        return link_fail(s, err, "secure link: the peer's %s has %u payload bytes, not %u",
                         cairn_wire_type_name(type), (unsigned)len,
                         (unsigned)expected_len(s->phase));
    }
    return 0;
}

/* Acceptor got nonce_a: answer with nonce_b and its proof of K. */
static int on_dialer_challenge(cairn_secure_link *s, const uint8_t *payload, cairn_buf *send,
                               cairn_err *err) {
    memcpy(s->nonce_a, payload, NONCE_SIZE);
    randombytes_buf(s->nonce_b, sizeof(s->nonce_b));
    uint8_t reply[NONCE_SIZE + PROOF_SIZE];
    cairn_err enc_err = {{0}};
    memcpy(reply, s->nonce_b, NONCE_SIZE);
    link_mac(s, LABEL_PROOF_ACCEPTOR, reply + NONCE_SIZE);
    if (cairn_wire_encode(CAIRN_WIRE_AUTH_CHALLENGE, reply, sizeof(reply), send, &enc_err) != 0) {
        return link_fail(s, err, "secure link: %s", enc_err.msg);
    }
    s->phase = PHASE_ACCEPTOR_WAIT_PROOF;
    return 0;
}

/* Dialer got nonce_b || proof_b: check it, then prove K in turn. */
static int on_acceptor_challenge(cairn_secure_link *s, const uint8_t *payload, cairn_buf *send,
                                 cairn_err *err) {
    memcpy(s->nonce_b, payload, NONCE_SIZE);
    if (!proof_matches(s, LABEL_PROOF_ACCEPTOR, payload + NONCE_SIZE)) {
        return link_fail(s, err,
                         "secure link: the peer proves another key: its --key (or key file) "
                         "differs from this node's");
    }
    uint8_t proof[PROOF_SIZE];
    cairn_err enc_err = {{0}};
    link_mac(s, LABEL_PROOF_DIALER, proof);
    if (cairn_wire_encode(CAIRN_WIRE_AUTH_RESPONSE, proof, sizeof(proof), send, &enc_err) != 0) {
        return link_fail(s, err, "secure link: %s", enc_err.msg);
    }
    return establish(s, err);
}

/* Acceptor got proof_a. */
static int on_dialer_response(cairn_secure_link *s, const uint8_t *payload, cairn_err *err) {
    if (!proof_matches(s, LABEL_PROOF_DIALER, payload)) {
        return link_fail(s, err,
                         "secure link: the peer does not know this cluster's key: its --key (or "
                         "key file) differs from this node's");
    }
    return establish(s, err);
}

/* Takes at most the rest of the current handshake frame from bytes; *used says how many. */
static int feed_handshake(cairn_secure_link *s, const uint8_t *bytes, size_t n, size_t *used,
                          cairn_buf *send, cairn_err *err) {
    size_t frame = CAIRN_WIRE_HEADER_SIZE;
    if (s->hs_len >= CAIRN_WIRE_HEADER_SIZE) {
        frame += expected_len(s->phase);
    }
    size_t take = frame - s->hs_len < n ? frame - s->hs_len : n;
    memcpy(s->hs + s->hs_len, bytes, take);
    s->hs_len += take;
    *used = take;
    if (s->hs_len == CAIRN_WIRE_HEADER_SIZE && check_header(s, err) != 0) {
        return -1;
    }
    if (s->hs_len < CAIRN_WIRE_HEADER_SIZE + expected_len(s->phase)) {
        return 0;
    }
    const uint8_t *payload = s->hs + CAIRN_WIRE_HEADER_SIZE;
    s->hs_len = 0;
    switch (s->phase) {
    case PHASE_ACCEPTOR_WAIT_NONCE: return on_dialer_challenge(s, payload, send, err);
    case PHASE_DIALER_WAIT_PROOF: return on_acceptor_challenge(s, payload, send, err);
    case PHASE_ACCEPTOR_WAIT_PROOF: return on_dialer_response(s, payload, err);
    default: return link_fail(s, err, "secure link: handshake frame in a wrong state");
    }
}

/* ---- records ---- */

static void record_nonce(uint64_t count,
                         uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES]) {
    memset(nonce, 0, crypto_aead_chacha20poly1305_ietf_NPUBBYTES);
    put_u32(nonce, (uint32_t)count);
    put_u32(nonce + 4, (uint32_t)(count >> 32));
}

/* Decrypts the complete record in s->rx into plain. */
static int open_record(cairn_secure_link *s, cairn_buf *plain, cairn_err *err) {
    size_t ct_len = s->rx_len - CAIRN_SECURE_RECORD_HEADER;
    size_t pt_len = ct_len - CAIRN_SECURE_TAG_SIZE;
    if (s->rx_count == UINT64_MAX) {
        return link_fail(s, err, "secure link: the peer sent more records than a link may carry");
    }
    if (cairn_buf_reserve(plain, pt_len) != 0) {
        return link_fail(s, err, "secure link: out of memory for a record's %zu bytes", pt_len);
    }
    uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];
    record_nonce(s->rx_count, nonce);
    unsigned long long out_len = 0;
    if (crypto_aead_chacha20poly1305_ietf_decrypt(
            (unsigned char *)plain->data + plain->len, &out_len, NULL,
            s->rx + CAIRN_SECURE_RECORD_HEADER, ct_len, s->rx, CAIRN_SECURE_RECORD_HEADER, nonce,
            s->rx_key) != 0) {
        return link_fail(s, err,
                         "secure link: record %llu from the peer fails authentication (forged, "
                         "altered, replayed, reordered or cut short)",
                         (unsigned long long)s->rx_count);
    }
    plain->len += (size_t)out_len;
    plain->data[plain->len] = '\0';
    s->rx_count++;
    s->rx_len = 0;
    return 0;
}

/* Takes at most the rest of the current record from bytes; *used says how many. */
static int feed_record(cairn_secure_link *s, const uint8_t *bytes, size_t n, size_t *used,
                       cairn_buf *plain, cairn_err *err) {
    size_t total = CAIRN_SECURE_RECORD_HEADER;
    if (s->rx_len >= CAIRN_SECURE_RECORD_HEADER) {
        total += get_u32(s->rx);
    }
    size_t take = total - s->rx_len < n ? total - s->rx_len : n;
    memcpy(s->rx + s->rx_len, bytes, take);
    s->rx_len += take;
    *used = take;
    if (s->rx_len == CAIRN_SECURE_RECORD_HEADER) {
        uint32_t ct_len = get_u32(s->rx);
        if (ct_len < CAIRN_SECURE_MIN_RECORD || ct_len > CAIRN_SECURE_MAX_RECORD) {
            return link_fail(s, err,
                             "secure link: the peer's record %llu declares %u bytes, outside "
                             "%u..%u (a forged or broken stream)",
                             (unsigned long long)s->rx_count, (unsigned)ct_len,
                             (unsigned)CAIRN_SECURE_MIN_RECORD, (unsigned)CAIRN_SECURE_MAX_RECORD);
        }
        return 0;
    }
    if (s->rx_len < CAIRN_SECURE_RECORD_HEADER + (size_t)get_u32(s->rx)) {
        return 0;
    }
    return open_record(s, plain, err);
}

/* Undoes what a failed feed appended, so nothing of it reaches the caller. */
static void roll_back(cairn_buf *b, size_t len) {
    if (b->len > len) {
        sodium_memzero(b->data + len, b->len - len);
        b->len = len;
        b->data[len] = '\0';
    }
}

int cairn_secure_link_feed(cairn_secure_link *s, const void *bytes, size_t n, cairn_buf *plain,
                           cairn_buf *send, cairn_err *err) {
    if (s->phase == PHASE_FAILED) {
        return cairn_fail(err, "%s", s->error.msg);
    }
    if (s->phase == PHASE_DIALER_NEW) {
        return link_fail(s, err,
                         "secure link: the dialing side received bytes before it began "
                         "the handshake");
    }
    size_t plain_len = plain->len;
    size_t send_len = send->len;
    const uint8_t *p = bytes;
    while (n > 0) {
        size_t used = 0;
        int rc = s->phase == PHASE_ESTABLISHED ? feed_record(s, p, n, &used, plain, err)
                                               : feed_handshake(s, p, n, &used, send, err);
        if (rc != 0) {
            roll_back(plain, plain_len);
            roll_back(send, send_len);
            return -1;
        }
        p += used;
        n -= used;
    }
    return 0;
}

int cairn_secure_link_seal(cairn_secure_link *s, const void *plain, size_t n, cairn_buf *out,
                           cairn_err *err) {
    if (s->phase == PHASE_FAILED) {
        return cairn_fail(err, "%s", s->error.msg);
    }
    if (s->phase != PHASE_ESTABLISHED) {
        return cairn_fail(err, "secure link: cannot send data before the handshake completed");
    }
    size_t out_len = out->len;
    uint64_t count = s->tx_count;
    const uint8_t *p = plain;
    while (n > 0) {
        size_t chunk = n < CAIRN_SECURE_MAX_PLAIN ? n : CAIRN_SECURE_MAX_PLAIN;
        size_t ct_len = chunk + CAIRN_SECURE_TAG_SIZE;
        const char *problem = NULL;
        if (s->tx_count == UINT64_MAX) {
            problem = "this link has sent all the records it may";
        } else if (cairn_buf_reserve(out, CAIRN_SECURE_RECORD_HEADER + ct_len) != 0) {
            problem = "out of memory for outgoing records";
        }
        if (problem) {
            roll_back(out, out_len);
            s->tx_count = count;
            return cairn_fail(err, "secure link: %s", problem);
        }
        uint8_t *rec = (uint8_t *)out->data + out->len;
        put_u32(rec, (uint32_t)ct_len);
        uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];
        record_nonce(s->tx_count, nonce);
        crypto_aead_chacha20poly1305_ietf_encrypt(rec + CAIRN_SECURE_RECORD_HEADER, NULL, p, chunk,
                                                  rec, CAIRN_SECURE_RECORD_HEADER, NULL, nonce,
                                                  s->tx_key);
        out->len += CAIRN_SECURE_RECORD_HEADER + ct_len;
        out->data[out->len] = '\0';
        s->tx_count++;
        p += chunk;
        n -= chunk;
    }
    return 0;
}

int cairn_secure_link_eof(const cairn_secure_link *s, cairn_err *err) {
    switch (s->phase) {
    case PHASE_FAILED: return cairn_fail(err, "%s", s->error.msg);
    case PHASE_ESTABLISHED:
        if (s->rx_len > 0) {
            return cairn_fail(err,
                              "secure link: the peer closed the link in the middle of record "
                              "%llu (%zu bytes of it arrived): the stream was cut short",
                              (unsigned long long)s->rx_count, s->rx_len);
        }
        return 0;
    case PHASE_ACCEPTOR_WAIT_PROOF:
        return cairn_fail(err, "secure link: the peer closed the link before proving the cluster "
                               "key (a node with another --key does so)");
    case PHASE_DIALER_NEW:
    case PHASE_DIALER_WAIT_PROOF:
    case PHASE_ACCEPTOR_WAIT_NONCE: break;
    }
    return cairn_fail(err, "secure link: the peer closed the link during the handshake, before "
                           "proving the cluster key (a node without --key does so)");
}
