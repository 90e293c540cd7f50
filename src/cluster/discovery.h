/*
 * cluster discovery: how the nodes of a LAN find each other without being told. Every node
 * sends a small announcement (who it is, which cluster, where it accepts cluster links) to a
 * UDP multicast group once a second and listens for the others'; the node dials the cluster
 * port of every node it hears. `--peer HOST:PORT` is the way around it where multicast is
 * blocked.
 *
 * Owns its UDP sockets and timers on the caller's libuv loop, and nothing else. It must never
 * block, dial anyone, or trust a received byte: every datagram may come from anyone on the
 * link, and the worst one may cause is a debug line. It reports what it heard and leaves
 * deciding whom to link with to the node. Platform differences stay inside libuv.
 *
 * Groups: IPv4 239.255.77.77 lies in the IPv4 Local Scope (239.255.0.0/16, RFC 2365), which
 * routers keep inside the site; IPv6 ff02::cafe:4d4d is link-local scope with a group id in
 * the range RFC 3307 leaves to dynamic use (0x80000000..0xFFFFFFFF: the permanent ff02::1:x
 * ids are IANA's to hand out). Packets go out with TTL / hop limit 1, so they never leave the
 * link either way. Port 52417 sits next to the cluster port's default (52416).
 *
 * Packet (one UDP datagram, all integers little-endian, exactly 12 + n + c bytes, at most
 * CAIRN_DISCOVERY_MAX_PACKET):
 *
 *   offset  size  field
 *   0       4     magic "CRND"
 *   4       1     format version (CAIRN_DISCOVERY_FORMAT)
 *   5       1     protocol: the cluster protocol version the sender speaks (1..255)
 *   6       2     cluster port (1..65535)
 *   8       2     API port (0 when the sender serves no API)
 *   10      1     n: node id length (1..63)
 *   11      1     c: cluster name length (1..127)
 *   12      n     node id: [A-Za-z0-9._:-]
 *   12+n    c     cluster name: printable UTF-8 (no control characters), as the cluster
 *                 state requires of names
 *
 * Parsing is strict: any other length, magic, format version or field value drops the whole
 * datagram. A later format takes a new version number (senders may then send both).
 */
#ifndef CAIRN_CLUSTER_DISCOVERY_H
#define CAIRN_CLUSTER_DISCOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "cluster/wire.h"
#include "util/log.h"
#include "util/util.h"

#define CAIRN_DISCOVERY_PORT 52417
#define CAIRN_DISCOVERY_GROUP_V4 "239.255.77.77"
#define CAIRN_DISCOVERY_GROUP_V6 "ff02::cafe:4d4d"

#define CAIRN_DISCOVERY_MAGIC "CRND"
#define CAIRN_DISCOVERY_FORMAT 1
#define CAIRN_DISCOVERY_HEADER_SIZE 12
#define CAIRN_DISCOVERY_MAX_PACKET 512
#define CAIRN_DISCOVERY_DEFAULT_INTERVAL_MS 1000
/* A node that has heard nothing at all this long after start (not even its own packets,
 * which come back through multicast loopback) warns that discovery seems blocked. */
#define CAIRN_DISCOVERY_BLOCKED_MS 5000
/* How often a family that cannot be set up (no interface with multicast yet, the port taken)
 * or that stopped sending is tried again. */
#define CAIRN_DISCOVERY_RETRY_MS 3000
/* Room for a numeric IPv6 address with a %zone. */
#define CAIRN_DISCOVERY_HOST_MAX 80

typedef struct cairn_announcement {
    uint32_t protocol; /* 1..255, as cairn_wire_hello */
    char node_id[CAIRN_WIRE_NODE_ID_MAX + 1];
    char cluster[CAIRN_WIRE_CLUSTER_MAX + 1];
    uint16_t cluster_port; /* 1..65535 */
    uint16_t api_port;     /* 0 when the node serves no API */
} cairn_announcement;

/* Appends one packet to out; refuses an announcement that parse would drop. */
int cairn_announcement_encode(const cairn_announcement *a, cairn_buf *out, cairn_err *err);
/* Parses one received datagram of n bytes. On failure *out is zeroed and err says why. */
int cairn_announcement_parse(const void *bytes, size_t n, cairn_announcement *out, cairn_err *err);

typedef struct cairn_discovery_config {
    uint16_t port;                   /* 0 = CAIRN_DISCOVERY_PORT */
    const char *group_v4, *group_v6; /* NULL = the defaults above */
    /* Address of the interface to send on and join the IPv4 group on; NULL = the system's
     * choice. "127.0.0.1" keeps IPv4 discovery on loopback (tests, and running a node by
     * hand); IPv6 always uses the system's choice of interface, so turn it off as well to
     * stay off the LAN. */
    const char *interface_v4;
    bool ipv4, ipv6;      /* which families to use (both by default in the node) */
    uint32_t interval_ms; /* between announcements; 0 = CAIRN_DISCOVERY_DEFAULT_INTERVAL_MS */
    cairn_logger *log;    /* may be NULL */
} cairn_discovery_config;

/* host: the sender's numeric address (IPv6 with %zone when link-local), at most
 * CAIRN_DISCOVERY_HOST_MAX - 1 bytes. Called on the loop thread for every valid announcement
 * of the same cluster and protocol from another node id, so once per interval per peer and
 * family: the node keeps track of whom it links with. Own announcements, other clusters,
 * other protocol versions and malformed packets are dropped and logged at debug level,
 * rate-limited. The callback may call cairn_discovery_close. */
typedef void (*cairn_discovery_found_fn)(void *user, const cairn_announcement *a, const char *host);

typedef struct cairn_discovery cairn_discovery;

/* Joins the groups of the enabled families and starts announcing self (copied) at once and
 * then every interval. A family whose socket cannot be set up (no IPv6, no multicast route,
 * the port taken without sharing, ...) is a warning in the log and is tried again every
 * CAIRN_DISCOVERY_RETRY_MS, quietly, until it works (logged then); so is one whose sends
 * start to fail (its interface went away). Start fails only when no enabled family has
 * valid addresses. On failure the handles it had opened are already closing: run the loop
 * until idle to free them, as after cairn_discovery_close. */
int cairn_discovery_start(uv_loop_t *loop, const cairn_discovery_config *cfg,
                          const cairn_announcement *self, cairn_discovery_found_fn found,
                          void *user, cairn_discovery **out, cairn_err *err);
/* Closes its handles; memory is freed from the close callbacks, so the caller keeps running
 * the loop until it is idle (uv_run) afterwards. found is not called again. */
void cairn_discovery_close(cairn_discovery *d);

/* Whether one of this node's own announcements came back (multicast loopback works): false
 * well after start means multicast is blocked on this host. */
bool cairn_discovery_heard_self(const cairn_discovery *d);

#endif
