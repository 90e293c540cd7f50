/* Multicast discovery: the announcement codec, and the sockets and timers that send and hear
 * announcements on a libuv loop. See discovery.h for the packet layout. A family whose
 * socket cannot be set up (no interface yet, the port taken) or stops sending is retried
 * quietly until it works: the node runs without discovery meanwhile. */
/* uv.h needs POSIX's thread types, which strict C11 headers hide without this. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include "cluster/discovery.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the announcement codec ---- */

static void put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xFF);
    p[1] = (uint8_t)(v >> 8);
}

static uint16_t get_u16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}

/* The rules both sides apply, on counted strings so a packet's bytes can be checked before
 * they are copied anywhere. */
static int check_fields(const char *id, size_t id_len, const char *cluster, size_t cluster_len,
                        uint32_t protocol, uint32_t cluster_port, cairn_err *err) {
    if (!cairn_wire_node_id_valid(id, id_len)) {
        return cairn_fail(err, "discovery: node id must be 1..%d characters of A-Z a-z 0-9 . _ : -",
                          CAIRN_WIRE_NODE_ID_MAX);
    }
    if (cluster_len == 0 || cluster_len > CAIRN_WIRE_CLUSTER_MAX ||
        !cairn_utf8_is_printable(cluster, cluster_len)) {
        return cairn_fail(err, "discovery: cluster name must be 1..%d bytes of printable UTF-8",
                          CAIRN_WIRE_CLUSTER_MAX);
    }
    if (protocol < 1 || protocol > 255) {
        return cairn_fail(err, "discovery: protocol %u is not 1..255", (unsigned)protocol);
    }
    if (cluster_port < 1 || cluster_port > 65535) {
        return cairn_fail(err, "discovery: cluster port must be 1..65535");
    }
    return 0;
}

/* Length of a string in a fixed array, stopping at the array's end if it has no NUL. */
static size_t field_len(const char *s, size_t cap) {
    const char *nul = memchr(s, '\0', cap);
    return nul ? (size_t)(nul - s) : cap;
}

int cairn_announcement_encode(const cairn_announcement *a, cairn_buf *out, cairn_err *err) {
    size_t id_len = field_len(a->node_id, sizeof(a->node_id));
    size_t cluster_len = field_len(a->cluster, sizeof(a->cluster));
    if (check_fields(a->node_id, id_len, a->cluster, cluster_len, a->protocol, a->cluster_port,
                     err) != 0) {
        return -1;
    }
    uint8_t h[CAIRN_DISCOVERY_HEADER_SIZE];
    memcpy(h, CAIRN_DISCOVERY_MAGIC, 4);
    h[4] = CAIRN_DISCOVERY_FORMAT;
    h[5] = (uint8_t)a->protocol;
    put_u16(h + 6, a->cluster_port);
    put_u16(h + 8, a->api_port);
    h[10] = (uint8_t)id_len;
    h[11] = (uint8_t)cluster_len;
    if (cairn_buf_append(out, h, sizeof(h)) != 0 ||
        cairn_buf_append(out, a->node_id, id_len) != 0 ||
        cairn_buf_append(out, a->cluster, cluster_len) != 0) {
        return cairn_fail(err, "discovery: out of memory encoding an announcement");
    }
    return 0;
}

int cairn_announcement_parse(const void *bytes, size_t n, cairn_announcement *out, cairn_err *err) {
    memset(out, 0, sizeof(*out));
    const uint8_t *p = bytes;
    if (n < CAIRN_DISCOVERY_HEADER_SIZE) {
        return cairn_fail(err, "discovery: %zu-byte packet is shorter than the %d-byte header", n,
                          CAIRN_DISCOVERY_HEADER_SIZE);
    }
    if (n > CAIRN_DISCOVERY_MAX_PACKET) {
        return cairn_fail(err, "discovery: %zu-byte packet is longer than %d bytes", n,
                          CAIRN_DISCOVERY_MAX_PACKET);
    }
    if (memcmp(p, CAIRN_DISCOVERY_MAGIC, 4) != 0) {
        return cairn_fail(err, "discovery: packet does not start with \"%s\"",
                          CAIRN_DISCOVERY_MAGIC);
    }
    if (p[4] != CAIRN_DISCOVERY_FORMAT) {
        return cairn_fail(err, "discovery: packet format %u is not %d", p[4],
                          CAIRN_DISCOVERY_FORMAT);
    }
    size_t id_len = p[10], cluster_len = p[11];
    if (n != CAIRN_DISCOVERY_HEADER_SIZE + id_len + cluster_len) {
        return cairn_fail(err, "discovery: packet is %zu bytes, its lengths say %zu", n,
                          CAIRN_DISCOVERY_HEADER_SIZE + id_len + cluster_len);
    }
    const char *id = (const char *)p + CAIRN_DISCOVERY_HEADER_SIZE;
    const char *cluster = id + id_len;
    if (check_fields(id, id_len, cluster, cluster_len, p[5], get_u16(p + 6), err) != 0) {
        return -1;
    }
    out->protocol = p[5];
    memcpy(out->node_id, id, id_len);
    memcpy(out->cluster, cluster, cluster_len);
    out->cluster_port = get_u16(p + 6);
    out->api_port = get_u16(p + 8);
    return 0;
}

/* ---- the sockets ---- */

/* Why a datagram was not reported. Each kind has its own rate limit, so a node's own
 * announcements (every interval) never hide a rarer kind from the log. */
typedef enum drop_kind {
    DROP_SELF,
    DROP_DUPLICATE_ID,
    DROP_OTHER_CLUSTER,
    DROP_OTHER_PROTOCOL,
    DROP_MALFORMED,
    DROP_RECV_ERROR,
    DROP_KINDS
} drop_kind;

/* At most one log line per kind in this many milliseconds. */
#define DROP_NOTE_MS 30000

typedef struct drop_note {
    uint64_t last_ms;
    uint32_t unreported; /* drops since the last line */
    bool noted;
} drop_note;

typedef struct disc_socket {
    uv_udp_t udp;
    const char *family; /* "IPv4" or "IPv6", for messages */
    int af;             /* AF_INET or AF_INET6 */
    struct sockaddr_storage group;
    char group_name[CAIRN_DISCOVERY_HOST_MAX];
    char iface[CAIRN_DISCOVERY_HOST_MAX]; /* "" for the system's choice */
    bool wanted;       /* enabled with valid addresses: tried again while it is not open */
    bool open;         /* udp is initialised, so it must be closed */
    bool closing;      /* closed, but its close callback has not run: udp is not reusable yet */
    bool send_failing; /* a send error was logged; the next success clears it */
    /* Room for more than the largest valid packet, so an oversized one shows as such. */
    char rbuf[2 * CAIRN_DISCOVERY_MAX_PACKET];
} disc_socket;

struct cairn_discovery {
    uv_loop_t *loop;
    cairn_logger *log;
    cairn_discovery_found_fn found;
    void *user;
    cairn_announcement self;
    uint8_t packet[CAIRN_DISCOVERY_MAX_PACKET];
    size_t packet_len;
    uint16_t port;
    uint32_t interval_ms;
    disc_socket v4, v6;
    uv_timer_t announce_timer, blocked_timer, retry_timer;
    int open_handles; /* the memory is freed when the last one's close callback runs */
    bool closing;
    bool blocked_check_started; /* once a family first works */
    bool warned_not_started;
    bool heard_any; /* any datagram at all, valid or not */
    bool heard_self;
    bool warned_blocked;
    drop_note drops[DROP_KINDS];
};

static void note_drop(cairn_discovery *d, drop_kind kind, cairn_log_level level, const char *host,
                      const char *why) {
    if (!cairn_log_enabled(d->log, level)) {
        return;
    }
    drop_note *note = &d->drops[kind];
    uint64_t now = uv_now(d->loop);
    if (note->noted && now - note->last_ms < DROP_NOTE_MS) {
        note->unreported++;
        return;
    }
    if (note->unreported > 0) {
        cairn_log(d->log, level,
                  "discovery: ignored a packet from %s: %s (and %u such since the last note)", host,
                  why, (unsigned)note->unreported);
    } else {
        cairn_log(d->log, level, "discovery: ignored a packet from %s: %s", host, why);
    }
    note->noted = true;
    note->last_ms = now;
    note->unreported = 0;
}

static void warn_blocked(cairn_discovery *d, const char *why) {
    if (d->warned_blocked) {
        return;
    }
    d->warned_blocked = true;
    unsigned port = d->port;
    cairn_log(d->log, CAIRN_LOG_WARN,
              "discovery seems blocked (%s): a firewall may block UDP port %u. On Windows, allow "
              "it with: New-NetFirewallRule -DisplayName \"cairn discovery\" -Direction Inbound "
              "-Protocol UDP -LocalPort %u -Action Allow. Nodes can still be joined without "
              "discovery with --peer HOST:PORT.",
              why, port, port);
}

static bool is_link_local_v6(const struct sockaddr_in6 *a) {
    return a->sin6_addr.s6_addr[0] == 0xFE && (a->sin6_addr.s6_addr[1] & 0xC0) == 0x80;
}

/* The sender's numeric address; a link-local IPv6 one gets its %zone, without which it
 * cannot be dialled. */
static int format_host(const struct sockaddr *addr, char *out, size_t size) {
    if (addr->sa_family == AF_INET) {
        return uv_ip4_name((const struct sockaddr_in *)addr, out, size);
    }
    if (addr->sa_family != AF_INET6) {
        return UV_EAFNOSUPPORT;
    }
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)addr;
    int rc = uv_ip6_name(a6, out, size);
    if (rc != 0 || a6->sin6_scope_id == 0 || !is_link_local_v6(a6)) {
        return rc;
    }
    char zone[UV_IF_NAMESIZE];
    size_t zone_size = sizeof(zone);
    rc = uv_if_indextoiid(a6->sin6_scope_id, zone, &zone_size);
    if (rc != 0) {
        return rc;
    }
    size_t len = strlen(out);
    if (len + 1 + strlen(zone) + 1 > size) {
        return UV_ENOBUFS;
    }
    out[len] = '%';
    memcpy(out + len + 1, zone, strlen(zone) + 1);
    return 0;
}

static disc_socket *socket_of(cairn_discovery *d, const uv_handle_t *h) {
    return h == (const uv_handle_t *)&d->v4.udp ? &d->v4 : &d->v6;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    disc_socket *s = socket_of(h->data, h);
    *buf = uv_buf_init(s->rbuf, sizeof(s->rbuf));
}

static void handle_announcement(cairn_discovery *d, const uint8_t *bytes, size_t n,
                                const char *host) {
    cairn_announcement a;
    cairn_err err = {{0}};
    if (cairn_announcement_parse(bytes, n, &a, &err) != 0) {
        note_drop(d, DROP_MALFORMED, CAIRN_LOG_DEBUG, host, err.msg);
        return;
    }
    char why[CAIRN_WIRE_NODE_ID_MAX + CAIRN_WIRE_CLUSTER_MAX + 64];
    if (strcmp(a.node_id, d->self.node_id) == 0) {
        if (n == d->packet_len && memcmp(bytes, d->packet, n) == 0) {
            d->heard_self = true;
            note_drop(d, DROP_SELF, CAIRN_LOG_DEBUG, host, "this node's own announcement");
        } else {
            /* Two nodes with one id would take each other's place in the cluster state. */
            snprintf(why, sizeof(why), "another node (cluster port %u) announces this node's id",
                     (unsigned)a.cluster_port);
            note_drop(d, DROP_DUPLICATE_ID, CAIRN_LOG_WARN, host, why);
        }
    } else if (strcmp(a.cluster, d->self.cluster) != 0) {
        snprintf(why, sizeof(why), "node %s is in cluster \"%s\"", a.node_id, a.cluster);
        note_drop(d, DROP_OTHER_CLUSTER, CAIRN_LOG_DEBUG, host, why);
    } else if (a.protocol != d->self.protocol) {
        snprintf(why, sizeof(why), "node %s speaks protocol %u, this node %u", a.node_id,
                 (unsigned)a.protocol, (unsigned)d->self.protocol);
        note_drop(d, DROP_OTHER_PROTOCOL, CAIRN_LOG_DEBUG, host, why);
    } else {
        d->found(d->user, &a, host);
    }
}

static void on_recv(uv_udp_t *udp, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags) {
    cairn_discovery *d = udp->data;
    if (d->closing) {
        return;
    }
    if (nread < 0) {
        note_drop(d, DROP_RECV_ERROR, CAIRN_LOG_DEBUG, "?", uv_strerror((int)nread));
        return;
    }
    if (addr == NULL) {
        return; /* nothing (more) to read */
    }
    d->heard_any = true;
    char host[CAIRN_DISCOVERY_HOST_MAX];
    if (format_host(addr, host, sizeof(host)) != 0) {
        note_drop(d, DROP_MALFORMED, CAIRN_LOG_DEBUG, "?", "the sender's address has no name");
        return;
    }
    if ((flags & UV_UDP_PARTIAL) || (size_t)nread > CAIRN_DISCOVERY_MAX_PACKET) {
        note_drop(d, DROP_MALFORMED, CAIRN_LOG_DEBUG, host, "longer than a discovery packet");
        return;
    }
    handle_announcement(d, (const uint8_t *)buf->base, (size_t)nread, host);
}

static void close_socket(disc_socket *s);

static void send_on(cairn_discovery *d, disc_socket *s) {
    if (!s->open) {
        return;
    }
    uv_buf_t b = uv_buf_init((char *)d->packet, (unsigned)d->packet_len);
    int rc = uv_udp_try_send(&s->udp, &b, 1, (const struct sockaddr *)&s->group);
    if (rc >= 0) {
        if (s->send_failing) {
            cairn_log(d->log, CAIRN_LOG_INFO, "discovery: the %s announcement goes out again",
                      s->family);
        }
        s->send_failing = false;
        return;
    }
    if (rc == UV_EAGAIN) {
        return; /* the socket buffer is full: the next interval sends again */
    }
    if (rc == UV_EPERM || rc == UV_EACCES) {
        char why[128];
        snprintf(why, sizeof(why), "sending on %s: %s", s->family, uv_strerror(rc));
        warn_blocked(d, why);
        s->send_failing = true;
        return;
    }
    if (!s->send_failing) {
        cairn_log(d->log, CAIRN_LOG_WARN,
                  "discovery: sending the %s announcement failed: %s (set up again until it "
                  "works; logged again only after a send succeeded)",
                  s->family, uv_strerror(rc));
    }
    s->send_failing = true;
    /* The interface it joined the group on may be gone: the retry joins on the one there is
     * now. */
    close_socket(s);
}

static void on_announce(uv_timer_t *t) {
    cairn_discovery *d = t->data;
    send_on(d, &d->v4);
    send_on(d, &d->v6);
}

static void on_blocked_check(uv_timer_t *t) {
    cairn_discovery *d = t->data;
    if (!d->heard_any) {
        char why[128];
        snprintf(why, sizeof(why), "not one packet arrived within %d s, not even this node's own",
                 CAIRN_DISCOVERY_BLOCKED_MS / 1000);
        warn_blocked(d, why);
    }
}

static void on_closed(uv_handle_t *h) {
    cairn_discovery *d = h->data;
    if (--d->open_handles == 0) {
        free(d);
    }
}

static void on_socket_closed(uv_handle_t *h) {
    cairn_discovery *d = h->data;
    socket_of(d, h)->closing = false; /* before on_closed, which may free d */
    on_closed(h);
}

static void close_socket(disc_socket *s) {
    if (s->open) {
        s->open = false;
        s->closing = true;
        uv_close((uv_handle_t *)&s->udp, on_socket_closed);
    }
}

/* Parses the group (which must be multicast) and the interface, and fills the wildcard
 * address to bind. */
static int family_addresses(cairn_discovery *d, disc_socket *s, int family, const char *group,
                            const char *iface, struct sockaddr_storage *any, cairn_err *err) {
    if (family == AF_INET) {
        struct sockaddr_in *g = (struct sockaddr_in *)&s->group;
        struct sockaddr_in tmp;
        if (uv_ip4_addr(group, d->port, g) != 0) {
            return cairn_fail(err, "group \"%s\" is not an IPv4 address", group);
        }
        const uint8_t *b = (const uint8_t *)&g->sin_addr;
        if (b[0] < 224 || b[0] > 239) {
            return cairn_fail(err, "group %s is not a multicast address", group);
        }
        if (iface && uv_ip4_addr(iface, 0, &tmp) != 0) {
            return cairn_fail(err, "interface \"%s\" is not an IPv4 address", iface);
        }
        uv_ip4_addr("0.0.0.0", d->port, (struct sockaddr_in *)any);
        return 0;
    }
    struct sockaddr_in6 *g = (struct sockaddr_in6 *)&s->group;
    if (uv_ip6_addr(group, d->port, g) != 0) {
        return cairn_fail(err, "group \"%s\" is not an IPv6 address", group);
    }
    if (g->sin6_addr.s6_addr[0] != 0xFF) {
        return cairn_fail(err, "group %s is not a multicast address", group);
    }
    uv_ip6_addr("::", d->port, (struct sockaddr_in6 *)any);
    return 0;
}

/* Opens, binds and joins one family's socket. On failure the socket may be open: the caller
 * closes it. */
static int open_socket(cairn_discovery *d, disc_socket *s, cairn_err *err) {
    struct sockaddr_storage any;
    const char *group = s->group_name, *iface = s->iface[0] ? s->iface : NULL;
    if (family_addresses(d, s, s->af, group, iface, &any, err) != 0) {
        return -1;
    }
    int rc = uv_udp_init_ex(d->loop, &s->udp, (unsigned)s->af);
    if (rc != 0) {
        return cairn_fail(err, "cannot open a UDP socket: %s", uv_strerror(rc));
    }
    s->open = true;
    s->udp.data = d;
    d->open_handles++;
    /* Several nodes on one host (tests, or a second node started by hand) share the port. */
    unsigned flags = UV_UDP_REUSEADDR | (s->af == AF_INET6 ? UV_UDP_IPV6ONLY : 0u);
    if ((rc = uv_udp_bind(&s->udp, (const struct sockaddr *)&any, flags)) != 0) {
        return cairn_fail(err, "cannot bind UDP port %u: %s", (unsigned)d->port, uv_strerror(rc));
    }
    if ((rc = uv_udp_set_membership(&s->udp, group, iface, UV_JOIN_GROUP)) != 0) {
        return cairn_fail(err, "cannot join group %s%s%s: %s", group, iface ? " on " : "",
                          iface ? iface : "", uv_strerror(rc));
    }
    if (iface && (rc = uv_udp_set_multicast_interface(&s->udp, iface)) != 0) {
        return cairn_fail(err, "cannot send on interface %s: %s", iface, uv_strerror(rc));
    }
    /* Loopback lets a node hear itself (the blocked check) and nodes on one host hear each
     * other; TTL / hop limit 1 keeps announcements on the link. */
    if ((rc = uv_udp_set_multicast_loop(&s->udp, 1)) != 0 ||
        (rc = uv_udp_set_multicast_ttl(&s->udp, 1)) != 0) {
        return cairn_fail(err, "cannot set multicast loopback and TTL: %s", uv_strerror(rc));
    }
    if ((rc = uv_udp_recv_start(&s->udp, on_alloc, on_recv)) != 0) {
        return cairn_fail(err, "cannot receive: %s", uv_strerror(rc));
    }
    return 0;
}

/* Checks an enabled family's addresses and keeps them for its tries; a family whose
 * addresses are wrong is off for good. */
static bool prepare_family(cairn_discovery *d, disc_socket *s, bool enabled, int af,
                           const char *group, const char *iface, cairn_err *err) {
    struct sockaddr_storage any;
    if (!enabled) {
        cairn_fail(err, "not enabled");
        return false;
    }
    if (family_addresses(d, s, af, group, iface, &any, err) != 0) {
        return false;
    }
    s->af = af;
    snprintf(s->group_name, sizeof(s->group_name), "%s", group);
    snprintf(s->iface, sizeof(s->iface), "%s", iface ? iface : "");
    s->wanted = true;
    return true;
}

/* One try at a family's socket; on failure it is closed again, for a later try. */
static bool try_family(cairn_discovery *d, disc_socket *s, cairn_err *err) {
    if (open_socket(d, s, err) != 0) {
        close_socket(s);
        return false;
    }
    return true;
}

static void log_announcing(cairn_discovery *d, const char *how) {
    const disc_socket *a = &d->v4, *b = &d->v6;
    cairn_log(d->log, CAIRN_LOG_INFO,
              "discovery%s: announcing node %s of cluster \"%s\" on UDP port %u (%s%s%s%s%s)", how,
              d->self.node_id, d->self.cluster, (unsigned)d->port, a->open ? a->group_name : "",
              a->open && a->iface[0] ? " via " : "", a->open ? a->iface : "",
              a->open && b->open ? ", " : "", b->open ? b->group_name : "");
}

/* A family works (the first, or one more): announce from the next turn of the loop on, and
 * start watching for packets that never come. */
static void family_up(cairn_discovery *d) {
    if (!d->blocked_check_started) {
        d->blocked_check_started = true;
        uv_timer_start(&d->blocked_timer, on_blocked_check, CAIRN_DISCOVERY_BLOCKED_MS, 0);
    }
    uv_timer_start(&d->announce_timer, on_announce, 0, d->interval_ms);
}

static void on_retry(uv_timer_t *t) {
    cairn_discovery *d = t->data;
    disc_socket *sockets[] = {&d->v4, &d->v6};
    for (size_t i = 0; i < 2; i++) {
        disc_socket *s = sockets[i];
        if (!s->wanted || s->open || s->closing) {
            continue;
        }
        cairn_err err = {{0}};
        if (!try_family(d, s, &err)) {
            cairn_log(d->log, CAIRN_LOG_DEBUG, "discovery: %s does not work yet: %s", s->family,
                      err.msg);
            continue;
        }
        if (s->send_failing) { /* set up again after a send failed: the next send tells */
            cairn_log(d->log, CAIRN_LOG_DEBUG, "discovery: %s is set up again", s->family);
        } else {
            log_announcing(d, " works now");
        }
        family_up(d);
    }
}

static cairn_discovery *discovery_new(uv_loop_t *loop, const cairn_discovery_config *cfg,
                                      const cairn_announcement *self, const cairn_buf *packet) {
    cairn_discovery *d = calloc(1, sizeof(*d));
    if (!d) {
        return NULL;
    }
    d->loop = loop;
    d->log = cfg->log;
    d->self = *self;
    memcpy(d->packet, packet->data, packet->len);
    d->packet_len = packet->len;
    d->port = cfg->port ? cfg->port : CAIRN_DISCOVERY_PORT;
    d->interval_ms = cfg->interval_ms ? cfg->interval_ms : CAIRN_DISCOVERY_DEFAULT_INTERVAL_MS;
    d->v4.family = "IPv4";
    d->v6.family = "IPv6";
    uv_timer_t *timers[] = {&d->announce_timer, &d->blocked_timer, &d->retry_timer};
    for (size_t i = 0; i < 3; i++) {
        uv_timer_init(loop, timers[i]);
        timers[i]->data = d;
    }
    d->open_handles = 3;
    return d;
}

/* Sets up the families with valid addresses; the ones that do not work yet are tried again
 * from the retry timer. */
static void start_families(cairn_discovery *d, const cairn_discovery_config *cfg, cairn_err *e4,
                           cairn_err *e6) {
    bool ok4 = d->v4.wanted && try_family(d, &d->v4, e4);
    bool ok6 = d->v6.wanted && try_family(d, &d->v6, e6);
    if (!ok4 && !ok6) {
        cairn_log(d->log, CAIRN_LOG_WARN,
                  "discovery cannot start yet (IPv4: %s; IPv6: %s): the node runs without it "
                  "and tries again every %d s; nodes can join it with --peer HOST:PORT "
                  "meanwhile",
                  e4->msg, e6->msg, CAIRN_DISCOVERY_RETRY_MS / 1000);
        return;
    }
    const char *again = " (tried again until it works)";
    if (cfg->ipv4 && !ok4) {
        cairn_log(d->log, CAIRN_LOG_WARN, "discovery: IPv4 is off, IPv6 only: %s%s", e4->msg,
                  d->v4.wanted ? again : "");
    }
    if (cfg->ipv6 && !ok6) {
        cairn_log(d->log, CAIRN_LOG_WARN, "discovery: IPv6 is off, IPv4 only: %s%s", e6->msg,
                  d->v6.wanted ? again : "");
    }
    log_announcing(d, "");
    family_up(d);
}

int cairn_discovery_start(uv_loop_t *loop, const cairn_discovery_config *cfg,
                          const cairn_announcement *self, cairn_discovery_found_fn found,
                          void *user, cairn_discovery **out, cairn_err *err) {
    *out = NULL;
    if (!found) {
        return cairn_fail(err, "discovery: no callback for found nodes");
    }
    cairn_buf packet = {0};
    if (cairn_announcement_encode(self, &packet, err) != 0) {
        cairn_buf_free(&packet);
        return cairn_fail_prefix(err, "discovery: this node's announcement");
    }
    if (!cfg->ipv4 && !cfg->ipv6) {
        cairn_buf_free(&packet);
        return cairn_fail(err, "discovery: neither IPv4 nor IPv6 is enabled");
    }
    cairn_discovery *d = discovery_new(loop, cfg, self, &packet);
    cairn_buf_free(&packet);
    if (!d) {
        return cairn_fail(err, "discovery: out of memory");
    }
    d->found = found;
    d->user = user;
    const char *g4 = cfg->group_v4 ? cfg->group_v4 : CAIRN_DISCOVERY_GROUP_V4;
    const char *g6 = cfg->group_v6 ? cfg->group_v6 : CAIRN_DISCOVERY_GROUP_V6;
    cairn_err e4 = {{0}}, e6 = {{0}};
    bool valid4 = prepare_family(d, &d->v4, cfg->ipv4, AF_INET, g4, cfg->interface_v4, &e4);
    bool valid6 = prepare_family(d, &d->v6, cfg->ipv6, AF_INET6, g6, NULL, &e6);
    if (!valid4 && !valid6) {
        cairn_discovery_close(d);
        return cairn_fail(err, "discovery: no address family works (IPv4: %s; IPv6: %s)", e4.msg,
                          e6.msg);
    }
    start_families(d, cfg, &e4, &e6);
    uv_timer_start(&d->retry_timer, on_retry, CAIRN_DISCOVERY_RETRY_MS, CAIRN_DISCOVERY_RETRY_MS);
    *out = d;
    return 0;
}

void cairn_discovery_close(cairn_discovery *d) {
    if (!d || d->closing) {
        return;
    }
    d->closing = true;
    close_socket(&d->v4);
    close_socket(&d->v6);
    uv_close((uv_handle_t *)&d->announce_timer, on_closed);
    uv_close((uv_handle_t *)&d->blocked_timer, on_closed);
    uv_close((uv_handle_t *)&d->retry_timer, on_closed);
}

bool cairn_discovery_heard_self(const cairn_discovery *d) {
    return d->heard_self;
}
