/* Multicast discovery: the announcement codec (round trips, the exact bytes, every
 * truncation, wrong fields, random mutations) and live instances on one loop that must hear
 * each other over multicast.
 *
 * CTest runs this file through tests/netns-run.sh, in a network namespace of its own: lo
 * with the MULTICAST flag for the IPv4 tests (which multicast on 127.0.0.1), a veth link for
 * the IPv6 ones, and no packet on a real network. The IPv4 live tests fail, saying why, where
 * multicast on loopback does not work; the IPv6 and blocked-multicast tests need what only
 * that namespace provides and are skipped, with a message, outside it. */
/* uv.h needs POSIX's thread types, which strict C11 headers hide without this. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/discovery.h"
#include "util/log.h"

/* Not the default port, so a test run never mixes with a real node on the same host. */
#define TEST_PORT 52517
#define MUTATION_RUNS 10000

static void must(int rc, const cairn_err *err) {
    if (rc != 0) {
        fail_msg("unexpected failure: %s", err->msg);
    }
}

static cairn_announcement make_announcement(const char *id, const char *cluster) {
    cairn_announcement a;
    memset(&a, 0, sizeof(a));
    a.protocol = CAIRN_WIRE_VERSION;
    snprintf(a.node_id, sizeof(a.node_id), "%s", id);
    snprintf(a.cluster, sizeof(a.cluster), "%s", cluster);
    a.cluster_port = 52416;
    a.api_port = 8080;
    return a;
}

static void encode(const cairn_announcement *a, cairn_buf *out) {
    cairn_err err = {{0}};
    must(cairn_announcement_encode(a, out, &err), &err);
}

static void assert_same_announcement(const cairn_announcement *a, const cairn_announcement *b) {
    assert_int_equal(a->protocol, b->protocol);
    assert_string_equal(a->node_id, b->node_id);
    assert_string_equal(a->cluster, b->cluster);
    assert_int_equal(a->cluster_port, b->cluster_port);
    assert_int_equal(a->api_port, b->api_port);
}

static bool parses(const void *bytes, size_t n) {
    cairn_announcement a;
    cairn_err err = {{0}};
    int rc = cairn_announcement_parse(bytes, n, &a, &err);
    if (rc != 0) {
        /* A refused packet leaves nothing behind and says why. */
        const cairn_announcement zero = {0};
        assert_memory_equal(&a, &zero, sizeof(a));
        assert_true(err.msg[0] != '\0');
    }
    return rc == 0;
}

/* ---- the codec ---- */

static void test_exact_bytes(void **state) {
    (void)state;
    cairn_announcement a = make_announcement("n1", "home");
    a.protocol = 1;
    a.cluster_port = 0x1234;
    a.api_port = 0xABCD;
    cairn_buf b = {0};
    encode(&a, &b);
    static const uint8_t want[] = {'C',  'R', 'N', 'D', 1,   1,   0x34, 0x12, 0xCD,
                                   0xAB, 2,   4,   'n', '1', 'h', 'o',  'm',  'e'};
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));
    cairn_buf_free(&b);
}

static void test_round_trip(void **state) {
    (void)state;
    char long_id[CAIRN_WIRE_NODE_ID_MAX + 1];
    memset(long_id, 'z', CAIRN_WIRE_NODE_ID_MAX);
    long_id[CAIRN_WIRE_NODE_ID_MAX] = '\0';
    char long_cluster[CAIRN_WIRE_CLUSTER_MAX + 1];
    memset(long_cluster, 'c', CAIRN_WIRE_CLUSTER_MAX);
    long_cluster[CAIRN_WIRE_CLUSTER_MAX] = '\0';
    cairn_announcement cases[] = {
        make_announcement("a", "x"),
        make_announcement("node-1.lan:2_B", "home cluster"),
        make_announcement(long_id, long_cluster),
        make_announcement("n", "caf\xC3\xA9 \xE2\x9C\x93 \xF0\x9F\x98\x80"),
    };
    cases[1].protocol = 255;
    cases[1].cluster_port = 65535;
    cases[1].api_port = 65535;
    cases[2].api_port = 0;
    cases[3].cluster_port = 1;
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(cases); i++) {
        cairn_buf b = {0};
        encode(&cases[i], &b);
        assert_true(b.len <= CAIRN_DISCOVERY_MAX_PACKET);
        cairn_announcement back;
        cairn_err err = {{0}};
        must(cairn_announcement_parse(b.data, b.len, &back, &err), &err);
        assert_same_announcement(&cases[i], &back);
        cairn_buf_free(&b);
    }
}

static void expect_encode_refused(const cairn_announcement *a) {
    cairn_buf b = {0};
    cairn_err err = {{0}};
    assert_int_equal(cairn_announcement_encode(a, &b, &err), -1);
    assert_true(err.msg[0] != '\0');
    assert_int_equal(b.len, 0);
    cairn_buf_free(&b);
}

static void test_encode_refuses(void **state) {
    (void)state;
    static const char *const bad_ids[] = {"", "a b", "n/1", "caf\xC3\xA9", "n\x01"};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(bad_ids); i++) {
        cairn_announcement a = make_announcement(bad_ids[i], "c");
        expect_encode_refused(&a);
    }
    static const char *const bad_clusters[] = {"",         "tab\there",    "del\x7F", "\xFF",
                                               "\xC0\x80", "\xED\xA0\x80", "cut\xC3", "c1\xC2\x85"};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(bad_clusters); i++) {
        cairn_announcement a = make_announcement("n", bad_clusters[i]);
        expect_encode_refused(&a);
    }
    /* Fields that fill their whole array have no NUL: one byte too long. */
    cairn_announcement a = make_announcement("n", "c");
    memset(a.node_id, 'x', sizeof(a.node_id));
    expect_encode_refused(&a);
    a = make_announcement("n", "c");
    memset(a.cluster, 'x', sizeof(a.cluster));
    expect_encode_refused(&a);
    uint32_t bad_protocols[] = {0, 256, UINT32_MAX};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(bad_protocols); i++) {
        a = make_announcement("n", "c");
        a.protocol = bad_protocols[i];
        expect_encode_refused(&a);
    }
    a = make_announcement("n", "c");
    a.cluster_port = 0;
    expect_encode_refused(&a);
}

static void test_every_truncation(void **state) {
    (void)state;
    cairn_announcement a = make_announcement("node-7", "lab");
    cairn_buf b = {0};
    encode(&a, &b);
    for (size_t n = 0; n < b.len; n++) {
        /* A copy of exactly n bytes, so ASan sees any read past them. */
        uint8_t *cut = malloc(n ? n : 1);
        assert_non_null(cut);
        memcpy(cut, b.data, n);
        assert_false(parses(cut, n));
        free(cut);
    }
    assert_true(parses(b.data, b.len));
    /* Any trailing byte makes the lengths disagree. */
    cairn_buf_putc(&b, 0);
    assert_false(parses(b.data, b.len));
    cairn_buf_free(&b);
}

/* A valid packet of "node-7" / "lab" with one byte changed. */
static bool parses_with(size_t at, uint8_t value) {
    cairn_announcement a = make_announcement("node-7", "lab");
    cairn_buf b = {0};
    encode(&a, &b);
    assert_true(at < b.len);
    b.data[at] = (char)value;
    bool ok = parses(b.data, b.len);
    cairn_buf_free(&b);
    return ok;
}

/* Header fields followed by raw id and cluster bytes. */
static bool parses_raw(const char *id, size_t id_len, const char *cluster, size_t cluster_len) {
    uint8_t p[2 * CAIRN_DISCOVERY_MAX_PACKET] = {'C', 'R', 'N', 'D', 1, 1, 0x40, 0xCD, 0, 0};
    p[10] = (uint8_t)id_len;
    p[11] = (uint8_t)cluster_len;
    memcpy(p + 12, id, id_len);
    memcpy(p + 12 + id_len, cluster, cluster_len);
    return parses(p, 12 + id_len + cluster_len);
}

static void test_wrong_fields(void **state) {
    (void)state;
    assert_false(parses_with(0, 'X'));  /* magic */
    assert_false(parses_with(3, 'W'));  /* magic */
    assert_false(parses_with(4, 0));    /* format version */
    assert_false(parses_with(4, 2));    /* format version */
    assert_false(parses_with(5, 0));    /* protocol */
    assert_true(parses_with(5, 255));   /* protocol */
    assert_false(parses_with(10, 5));   /* id length vs packet length */
    assert_false(parses_with(10, 255)); /* id length */
    assert_false(parses_with(11, 0));   /* cluster length */
    assert_false(parses_with(11, 255)); /* cluster length */
    assert_false(parses_with(12, '/')); /* id character */
    assert_false(parses_with(12, 0));   /* NUL in the id */
    assert_false(parses_with(18, 0));   /* NUL in the cluster name */
    assert_false(parses_with(18, '\n'));
    assert_false(parses_with(18, 0xFF)); /* not UTF-8 */
    assert_false(parses_with(20, 0xC3)); /* a cut sequence at the end */
    assert_true(parses_with(8, 0));      /* API port 0: no API */

    /* Cluster port 0. */
    uint8_t zero_port[] = {'C', 'R', 'N', 'D', 1, 1, 0, 0, 0, 0, 1, 1, 'n', 'c'};
    assert_false(parses(zero_port, sizeof(zero_port)));
    zero_port[6] = 1;
    assert_true(parses(zero_port, sizeof(zero_port)));

    assert_true(parses_raw("n", 1, "c", 1));
    assert_false(parses_raw("", 0, "c", 1));
    assert_false(parses_raw("n", 1, "", 0));
    char big[256];
    memset(big, 'a', sizeof(big));
    assert_true(parses_raw(big, CAIRN_WIRE_NODE_ID_MAX, big, CAIRN_WIRE_CLUSTER_MAX));
    assert_false(parses_raw(big, CAIRN_WIRE_NODE_ID_MAX + 1, "c", 1));
    assert_false(parses_raw("n", 1, big, CAIRN_WIRE_CLUSTER_MAX + 1));
    assert_false(parses_raw(big, 255, big, 255)); /* 522 bytes: oversized */
    static const char *const non_utf8[] = {
        "\x80",         "\xC0\xAF",         "\xE0\x80\xAF",
        "\xED\xBF\xBF", "\xF4\x90\x80\x80", "\xF8\x88\x80\x80\x80",
        "\xC2"};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(non_utf8); i++) {
        assert_false(parses_raw("n", 1, non_utf8[i], strlen(non_utf8[i])));
    }
    assert_false(parses_raw("n", 1, "\xC2\x9F", 2)); /* a C1 control character */
    assert_true(parses_raw("n", 1, "\xC2\xA0", 2));
}

static void test_oversized(void **state) {
    (void)state;
    /* A valid start with anything after it, up to a jumbo datagram. */
    size_t sizes[] = {CAIRN_DISCOVERY_MAX_PACKET, CAIRN_DISCOVERY_MAX_PACKET + 1, 65507};
    cairn_announcement a = make_announcement("n", "c");
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(sizes); i++) {
        cairn_buf b = {0};
        encode(&a, &b);
        while (b.len < sizes[i]) {
            cairn_buf_putc(&b, 'x');
        }
        assert_false(parses(b.data, b.len));
        cairn_buf_free(&b);
    }
}

/* Random edits of valid packets: flips, overwrites, insertions, deletions, truncations and
 * extensions. Nothing may crash or read out of bounds, and the format has exactly one
 * encoding per announcement, so whatever parses must encode back to the same bytes. */
static void mutate(cairn_rng *rng, cairn_buf *b) {
    int edits = 1 + (int)(cairn_rng_next(rng) % 4);
    for (int e = 0; e < edits; e++) {
        size_t at = b->len ? (size_t)(cairn_rng_next(rng) % b->len) : 0;
        uint8_t byte = (uint8_t)cairn_rng_next(rng);
        switch (cairn_rng_next(rng) % 6) {
        case 0:
            if (b->len) {
                b->data[at] = (char)(b->data[at] ^ (1 << (byte % 8)));
            }
            break;
        case 1:
            if (b->len) {
                b->data[at] = (char)byte;
            }
            break;
        case 2:
            cairn_buf_putc(b, 0);
            memmove(b->data + at + 1, b->data + at, b->len - at - 1);
            b->data[at] = (char)byte;
            break;
        case 3:
            if (b->len) {
                memmove(b->data + at, b->data + at + 1, b->len - at - 1);
                b->len--;
            }
            break;
        case 4: b->len = at; break;
        default:
            for (int k = 0; k < byte; k++) {
                cairn_buf_putc(b, (char)cairn_rng_next(rng));
            }
        }
    }
}

static void test_random_mutations(void **state) {
    (void)state;
    cairn_rng rng;
    cairn_rng_seed(&rng, 0xD15C0);
    cairn_announcement seeds[] = {make_announcement("node-7", "lab"),
                                  make_announcement("a", "caf\xC3\xA9"),
                                  make_announcement("x.y:z_1-2", "home cluster")};
    int parsed = 0;
    for (int run = 0; run < MUTATION_RUNS; run++) {
        cairn_buf b = {0};
        encode(&seeds[run % (int)CAIRN_ARRAY_LEN(seeds)], &b);
        mutate(&rng, &b);
        /* An exact-size copy, so ASan catches any read past the datagram. */
        uint8_t *copy = malloc(b.len ? b.len : 1);
        assert_non_null(copy);
        memcpy(copy, b.data, b.len);
        cairn_announcement a;
        cairn_err err = {{0}};
        if (cairn_announcement_parse(copy, b.len, &a, &err) == 0) {
            parsed++;
            cairn_buf again = {0};
            encode(&a, &again);
            assert_int_equal(again.len, b.len);
            assert_memory_equal(again.data, copy, b.len);
            cairn_buf_free(&again);
        }
        free(copy);
        cairn_buf_free(&b);
    }
    /* Some edits (ports, letters of names) keep a packet valid: the check above ran. */
    assert_true(parsed > 0);
    assert_true(parsed < MUTATION_RUNS);
}

/* ---- live instances ---- */

#define MAX_LINES 64

/* What one instance reported: the found callbacks and its log lines. */
typedef struct listener {
    const char *name;
    cairn_logger log;
    cairn_discovery *d;
    int found;
    char heard[8][CAIRN_WIRE_NODE_ID_MAX + 1];
    int n_heard;
    cairn_announcement last;
    char last_host[CAIRN_DISCOVERY_HOST_MAX];
    char v6_host[CAIRN_DISCOVERY_HOST_MAX]; /* the last IPv6 sender */
    char lines[MAX_LINES][512];
    int n_lines;
} listener;

static void capture_line(void *user, cairn_log_level level, const char *line, size_t len) {
    (void)level;
    listener *l = user;
    if (l->n_lines < MAX_LINES) {
        snprintf(l->lines[l->n_lines++], sizeof(l->lines[0]), "%.*s", (int)len, line);
    }
}

static bool logged(const listener *l, const char *needle) {
    for (int i = 0; i < l->n_lines; i++) {
        if (strstr(l->lines[i], needle)) {
            return true;
        }
    }
    return false;
}

static void dump_log(const listener *l) {
    for (int i = 0; i < l->n_lines; i++) {
        print_message("  %s: %s\n", l->name, l->lines[i]);
    }
}

static bool heard(const listener *l, const char *id) {
    for (int i = 0; i < l->n_heard; i++) {
        if (strcmp(l->heard[i], id) == 0) {
            return true;
        }
    }
    return false;
}

static void on_found(void *user, const cairn_announcement *a, const char *host) {
    listener *l = user;
    l->found++;
    l->last = *a;
    snprintf(l->last_host, sizeof(l->last_host), "%s", host);
    if (strchr(host, ':')) {
        snprintf(l->v6_host, sizeof(l->v6_host), "%s", host);
    }
    if (!heard(l, a->node_id) && l->n_heard < (int)CAIRN_ARRAY_LEN(l->heard)) {
        snprintf(l->heard[l->n_heard++], sizeof(l->heard[0]), "%s", a->node_id);
    }
}

static void listener_init(listener *l, const char *name) {
    memset(l, 0, sizeof(*l));
    l->name = name;
    cairn_logger_init(&l->log, CAIRN_LOG_DEBUG, name, NULL);
    cairn_log_set_sink(&l->log, capture_line, l);
}

static cairn_discovery_config loopback_config(listener *l) {
    cairn_discovery_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.port = TEST_PORT;
    cfg.interface_v4 = "127.0.0.1";
    cfg.ipv4 = true;
    cfg.interval_ms = 200;
    cfg.log = &l->log;
    return cfg;
}

static void start_listener(uv_loop_t *loop, listener *l, const cairn_discovery_config *cfg,
                           const char *cluster, uint16_t cluster_port) {
    cairn_announcement self = make_announcement(l->name, cluster);
    self.cluster_port = cluster_port;
    cairn_err err = {{0}};
    if (cairn_discovery_start(loop, cfg, &self, on_found, l, &l->d, &err) != 0) {
        fail_msg("%s: %s (the live tests need multicast on 127.0.0.1: ctest runs them through "
                 "tests/netns-run.sh, which sets that up in a network namespace)",
                 l->name, err.msg);
    }
}

/* Runs the loop until ms have passed (timers keep it busy meanwhile). */
static void run_for(uv_loop_t *loop, uint64_t ms) {
    uint64_t end = uv_now(loop) + ms;
    while (uv_now(loop) < end) {
        uv_run(loop, UV_RUN_ONCE);
    }
}

static void close_all(uv_loop_t *loop, listener *ls, size_t n) {
    for (size_t i = 0; i < n; i++) {
        cairn_discovery_close(ls[i].d);
        ls[i].d = NULL;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

static void fail_without_multicast(listener *ls, size_t n) {
    for (size_t i = 0; i < n; i++) {
        dump_log(&ls[i]);
    }
    for (size_t i = 0; i < n; i++) {
        if (!cairn_discovery_heard_self(ls[i].d)) {
            fail_msg("multicast on loopback does not work here: %s did not even hear its own "
                     "announcements. Run this test through tests/netns-run.sh (ctest does), "
                     "which gives it a network namespace whose lo has the MULTICAST flag.",
                     ls[i].name);
        }
    }
}

static void test_live_loopback(void **state) {
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    listener ls[3];
    listener_init(&ls[0], "node-a");
    listener_init(&ls[1], "node-b");
    listener_init(&ls[2], "node-c");
    for (int i = 0; i < 3; i++) {
        cairn_discovery_config cfg = loopback_config(&ls[i]);
        start_listener(&loop, &ls[i], &cfg, i < 2 ? "alpha" : "beta", (uint16_t)(6000 + i));
    }

    /* Each of a and b must hear the other within a few seconds. */
    uint64_t start = uv_now(&loop);
    while (!(heard(&ls[0], "node-b") && heard(&ls[1], "node-a")) && uv_now(&loop) - start < 4000) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    if (!heard(&ls[0], "node-b") || !heard(&ls[1], "node-a")) {
        fail_without_multicast(ls, 3);
        fail_msg("node-a and node-b did not hear each other within 4 s");
    }
    /* Past the blocked check, with announcements going both ways all along. */
    run_for(&loop, CAIRN_DISCOVERY_BLOCKED_MS + 500 - (uv_now(&loop) - start));

    for (int i = 0; i < 3; i++) {
        assert_true(cairn_discovery_heard_self(ls[i].d));
        assert_false(heard(&ls[i], ls[i].name));
        assert_false(logged(&ls[i], "seems blocked"));
        assert_true(logged(&ls[i], "this node's own announcement"));
    }
    /* a and b heard each other over and over, and nobody else. */
    assert_int_equal(ls[0].n_heard, 1);
    assert_int_equal(ls[1].n_heard, 1);
    assert_true(ls[0].found >= 5);
    assert_true(ls[1].found >= 5);
    assert_string_equal(ls[0].last_host, "127.0.0.1");
    assert_string_equal(ls[0].last.cluster, "alpha");
    assert_int_equal(ls[0].last.cluster_port, 6001);
    assert_int_equal(ls[0].last.api_port, 8080);
    assert_int_equal(ls[0].last.protocol, CAIRN_WIRE_VERSION);
    /* c is in another cluster: it hears a and b, and neither side reports the other. */
    assert_int_equal(ls[2].found, 0);
    assert_true(logged(&ls[2], "is in cluster \"alpha\""));
    assert_true(logged(&ls[0], "node node-c is in cluster \"beta\""));
    /* Rate-limited: a few lines, not one per packet. */
    assert_true(ls[0].n_lines < 12);
    close_all(&loop, ls, 3);
}

/* Announcements from a node of the same cluster but another protocol version, and a node
 * that claims this node's id, are not reported. */
static void test_live_protocol_and_duplicate_id(void **state) {
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    listener ls[3];
    listener_init(&ls[0], "node-a");
    listener_init(&ls[1], "node-a"); /* same id, another cluster port */
    listener_init(&ls[2], "node-v2");
    cairn_announcement v2 = make_announcement("node-v2", "alpha");
    v2.protocol = CAIRN_WIRE_VERSION + 1;
    for (int i = 0; i < 3; i++) {
        cairn_discovery_config cfg = loopback_config(&ls[i]);
        if (i < 2) {
            start_listener(&loop, &ls[i], &cfg, "alpha", (uint16_t)(6000 + i));
        } else {
            cairn_err err = {{0}};
            must(cairn_discovery_start(&loop, &cfg, &v2, on_found, &ls[i], &ls[i].d, &err), &err);
        }
    }
    run_for(&loop, 1500);
    for (int i = 0; i < 3; i++) {
        if (!cairn_discovery_heard_self(ls[i].d)) {
            fail_without_multicast(ls, 3);
        }
        assert_int_equal(ls[i].found, 0);
    }
    assert_true(logged(&ls[0], "another node (cluster port 6001) announces this node's id"));
    assert_true(logged(&ls[0], "node node-v2 speaks protocol 2, this node 1"));
    close_all(&loop, ls, 3);
}

/* A found callback may close its instance. */
static void close_on_found(void *user, const cairn_announcement *a, const char *host) {
    listener *l = user;
    on_found(user, a, host);
    cairn_discovery_close(l->d);
}

static void test_close_from_callback(void **state) {
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    listener ls[2];
    listener_init(&ls[0], "node-a");
    listener_init(&ls[1], "node-b");
    cairn_discovery_config cfg = loopback_config(&ls[0]);
    cairn_announcement self = make_announcement("node-a", "alpha");
    cairn_err err = {{0}};
    must(cairn_discovery_start(&loop, &cfg, &self, close_on_found, &ls[0], &ls[0].d, &err), &err);
    cfg = loopback_config(&ls[1]);
    start_listener(&loop, &ls[1], &cfg, "alpha", 6001);
    run_for(&loop, 1000);
    assert_int_equal(ls[0].found, 1);
    if (ls[1].found == 0) {
        fail_without_multicast(&ls[1], 1);
        fail_msg("node-b did not hear node-a");
    }
    ls[0].d = NULL; /* already closed */
    close_all(&loop, ls, 2);
}

/* The parts that need the namespace of tests/netns-run.sh (a link for IPv6, a group that
 * is lost) run only inside it: elsewhere they would multicast on a real network. */
static const char *netns_feature(const char *name) {
    const char *v = getenv(name);
    if (!v || !*v) {
        print_message("skipped: %s is not set; this part runs inside tests/netns-run.sh only\n",
                      name);
    }
    return v && *v ? v : NULL;
}

/* Both families at once, as a node runs: every announcement arrives over IPv4 and IPv6, and
 * the IPv6 sender is link-local with a %zone that makes it dialable. */
static void test_live_dual_stack(void **state) {
    (void)state;
    if (!netns_feature("CAIRN_NETNS_IPV6")) {
        skip();
    }
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    listener ls[2];
    listener_init(&ls[0], "node-a");
    listener_init(&ls[1], "node-b");
    for (int i = 0; i < 2; i++) {
        cairn_discovery_config cfg = loopback_config(&ls[i]);
        cfg.ipv6 = true;
        start_listener(&loop, &ls[i], &cfg, "alpha", (uint16_t)(6000 + i));
    }
    uint64_t start = uv_now(&loop);
    while (!(ls[0].v6_host[0] && ls[1].v6_host[0]) && uv_now(&loop) - start < 4000) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    for (int i = 0; i < 2; i++) {
        if (!ls[i].v6_host[0]) {
            dump_log(&ls[i]);
            fail_msg("%s heard nothing over IPv6 within 4 s", ls[i].name);
        }
        assert_false(logged(&ls[i], "WARN"));
        assert_true(cairn_discovery_heard_self(ls[i].d));
        assert_int_equal(ls[i].n_heard, 1);
        /* fe80::1%cairn0 (a numeric zone on Windows). */
        const char *host = ls[i].v6_host;
        assert_true(strncmp(host, "fe80::", 6) == 0 && strchr(host, '%') != NULL);
        struct sockaddr_in6 sa;
        assert_int_equal(uv_ip6_addr(host, 6000, &sa), 0);
        assert_true(sa.sin6_scope_id != 0);
    }
    assert_true(logged(&ls[0], "(239.255.77.77 via 127.0.0.1, ff02::cafe:4d4d)"));
    close_all(&loop, ls, 2);
}

/* A node whose packets never come back warns, once, that discovery seems blocked. */
static void test_blocked_warning(void **state) {
    (void)state;
    const char *lost = netns_feature("CAIRN_NETNS_LOST_GROUP_V6");
    if (!lost) {
        skip();
    }
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    listener l;
    listener_init(&l, "node-a");
    cairn_discovery_config cfg = loopback_config(&l);
    cfg.ipv4 = false;
    cfg.ipv6 = true;
    cfg.group_v6 = lost;
    start_listener(&loop, &l, &cfg, "alpha", 6000);
    run_for(&loop, CAIRN_DISCOVERY_BLOCKED_MS - 500);
    assert_false(logged(&l, "seems blocked"));
    run_for(&loop, 1500);
    assert_false(cairn_discovery_heard_self(l.d));
    int warnings = 0;
    for (int i = 0; i < l.n_lines; i++) {
        warnings += strstr(l.lines[i], "WARN") != NULL;
    }
    assert_int_equal(warnings, 1);
    assert_true(logged(&l, "discovery seems blocked (not one packet arrived within 5 s"));
    assert_true(logged(&l, "a firewall may block UDP port 52517"));
    assert_true(logged(&l, "New-NetFirewallRule -DisplayName \"cairn discovery\" -Direction "
                           "Inbound -Protocol UDP -LocalPort 52517 -Action Allow"));
    assert_true(logged(&l, "--peer HOST:PORT"));
    close_all(&loop, &l, 1);
}

/* Counts the warnings a listener logged. */
static int warnings_of(const listener *l) {
    int n = 0;
    for (int i = 0; i < l->n_lines; i++) {
        n += strstr(l->lines[i], "WARN") != NULL;
    }
    return n;
}

static void on_holder_closed(uv_handle_t *h) {
    (void)h;
}

/* The port is taken by a socket that does not share it: discovery starts anyway, warns
 * once, tries again quietly, and works (heard by another node) once the port is free. */
static void test_retry_until_port_free(void **state) {
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    uv_udp_t holder;
    struct sockaddr_in any;
    assert_int_equal(uv_ip4_addr("0.0.0.0", TEST_PORT, &any), 0);
    assert_int_equal(uv_udp_init(&loop, &holder), 0);
    assert_int_equal(uv_udp_bind(&holder, (const struct sockaddr *)&any, 0), 0);
    listener ls[2];
    listener_init(&ls[0], "node-a");
    listener_init(&ls[1], "node-b");
    cairn_discovery_config cfg = loopback_config(&ls[0]);
    start_listener(&loop, &ls[0], &cfg, "alpha", 6000);
    assert_true(logged(&ls[0], "discovery cannot start yet (IPv4: cannot bind UDP port 52517"));
    assert_true(logged(&ls[0], "--peer HOST:PORT"));
    run_for(&loop, 2 * CAIRN_DISCOVERY_RETRY_MS + 500);
    assert_int_equal(warnings_of(&ls[0]), 1); /* the tries since were quiet */
    assert_false(logged(&ls[0], "works now"));
    uv_close((uv_handle_t *)&holder, on_holder_closed);
    cfg = loopback_config(&ls[1]);
    start_listener(&loop, &ls[1], &cfg, "alpha", 6001);
    for (int waited = 0; waited < 3 * CAIRN_DISCOVERY_RETRY_MS && !heard(&ls[1], "node-a");
         waited += 100) {
        run_for(&loop, 100);
    }
    if (!heard(&ls[1], "node-a")) {
        fail_without_multicast(&ls[1], 1);
        fail_msg("node-b did not hear node-a once the port was free");
    }
    assert_true(logged(&ls[0], "discovery works now: announcing node node-a"));
    assert_int_equal(warnings_of(&ls[0]), 1);
    close_all(&loop, ls, 2);
}

/* Start refuses what cannot work, and a family that fails is a warning, not an error. */
static void test_start_failures(void **state) {
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    listener l;
    listener_init(&l, "node-a");
    cairn_announcement self = make_announcement("node-a", "alpha");
    cairn_discovery_config cfg = loopback_config(&l);
    cairn_err err = {{0}};
    cairn_discovery *d = NULL;

    cfg.ipv4 = false;
    assert_int_equal(cairn_discovery_start(&loop, &cfg, &self, on_found, &l, &d, &err), -1);
    assert_non_null(strstr(err.msg, "neither IPv4 nor IPv6"));
    assert_null(d);

    cfg.ipv4 = true;
    cairn_announcement bad = make_announcement("bad id", "alpha");
    assert_int_equal(cairn_discovery_start(&loop, &cfg, &bad, on_found, &l, &d, &err), -1);
    assert_non_null(strstr(err.msg, "node id"));

    /* Both families fail: an error that names both reasons. */
    cfg.group_v4 = "10.0.0.1";
    cfg.ipv6 = true;
    cfg.group_v6 = "not-an-address";
    assert_int_equal(cairn_discovery_start(&loop, &cfg, &self, on_found, &l, &d, &err), -1);
    assert_non_null(strstr(err.msg, "group 10.0.0.1 is not a multicast address"));
    assert_non_null(strstr(err.msg, "\"not-an-address\" is not an IPv6 address"));
    assert_null(d);
    cfg.group_v4 = NULL;
    cfg.interface_v4 = "loopback";
    cfg.ipv6 = false;
    assert_int_equal(cairn_discovery_start(&loop, &cfg, &self, on_found, &l, &d, &err), -1);
    assert_non_null(strstr(err.msg, "interface \"loopback\" is not an IPv4 address"));
    assert_non_null(strstr(err.msg, "IPv6: not enabled"));

    /* IPv6 fails, IPv4 works: a warning, and discovery runs on IPv4. */
    cfg.interface_v4 = "127.0.0.1";
    cfg.ipv6 = true;
    cfg.group_v6 = "fe80::1";
    must(cairn_discovery_start(&loop, &cfg, &self, on_found, &l, &d, &err), &err);
    assert_true(logged(&l, "WARN"));
    assert_true(logged(&l, "IPv6 is off, IPv4 only: group fe80::1 is not a multicast address"));
    cairn_discovery_close(d);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_bytes),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_encode_refuses),
        cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_wrong_fields),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_random_mutations),
        cmocka_unit_test(test_start_failures),
        cmocka_unit_test(test_retry_until_port_free),
        cmocka_unit_test(test_live_loopback),
        cmocka_unit_test(test_live_protocol_and_duplicate_id),
        cmocka_unit_test(test_close_from_callback),
        cmocka_unit_test(test_live_dual_stack),
        cmocka_unit_test(test_blocked_warning),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
