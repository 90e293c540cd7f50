/*
 * link: one TCP link between two nodes. It owns the socket, the decoder of the peer's
 * frames, the optional secure layer and the write queue's accounting, and takes the link
 * through its phases: connecting, proving the cluster key, HELLO, up, closing.
 *
 * Every byte here comes from the network: a frame that is malformed, oversized, or not
 * expected in the link's phase closes this link with a log line and never anything more.
 * Strangers are held to little until they have said who they are: a handshake frame of at
 * most CAIRN_WIRE_MAX_HANDSHAKE bytes, a deadline for the handshake, a few handshakes per
 * address, and link slots kept for known members.
 * Links are freed only from libuv's close callback, after their pending writes completed.
 */
#define _POSIX_C_SOURCE 200809L /* pthread types in uv.h under strict C11 */

#include <stdlib.h>
#include <string.h>

#include "cluster/node_internal.h"
#include "platform/platform.h"
#include "util/log.h"

typedef struct write_req {
    uv_write_t req;
    node_link *link;
    size_t len;
    char data[];
} write_req;

const char *link_name(const node_link *l) {
    return l->hello.node_id[0] ? l->hello.node_id : l->remote;
}

static node_link *link_new(cairn_local_node *n, bool dialer) {
    node_link *l = calloc(1, sizeof *l);
    if (!l) {
        cairn_log(n->log, CAIRN_LOG_ERROR, "out of memory for a new link");
        return NULL;
    }
    cairn_err err = {{0}};
    l->node = n;
    l->dialer = dialer;
    l->serial = ++n->next_serial;
    l->opened_at = l->last_heard = cairn_now_seconds();
    l->decoder = cairn_wire_decoder_new(0, &err);
    if (l->decoder) {
        cairn_wire_decoder_limit_first(l->decoder, CAIRN_WIRE_MAX_HANDSHAKE);
    }
    if (l->decoder && n->keyed) {
        l->secure = cairn_secure_link_new(&n->key, dialer, &err);
    }
    if (!l->decoder || (n->keyed && !l->secure) || uv_tcp_init(n->loop, &l->tcp) != 0) {
        cairn_log(n->log, CAIRN_LOG_ERROR, "cannot set up a link: %s",
                  err.msg[0] ? err.msg : "socket setup failed");
        cairn_wire_decoder_free(l->decoder);
        cairn_secure_link_free(l->secure);
        free(l);
        return NULL;
    }
    l->tcp.data = l;
    l->next = n->links;
    n->links = l;
    n->n_links++;
    return l;
}

static void link_free(node_link *l) {
    cairn_local_node *n = l->node;
    for (node_link **p = &n->links; *p; p = &(*p)->next) {
        if (*p == l) {
            *p = l->next;
            n->n_links--;
            break;
        }
    }
    cairn_wire_decoder_free(l->decoder);
    cairn_secure_link_free(l->secure);
    cairn_buf_free(&l->plain);
    cairn_buf_free(&l->out);
    free(l);
    if (n->closing) {
        node_handle_closed(n);
    }
}

static void on_closed(uv_handle_t *h) {
    link_free(h->data);
}

static void write_done(uv_write_t *req, int status) {
    write_req *w = (write_req *)req;
    node_link *l = w->link;
    l->queued -= w->len;
    free(w);
    if (status < 0 && l->phase != LINK_CLOSING) {
        link_close(l, uv_strerror(status), false);
    }
}

static void send_raw(node_link *l, const void *bytes, size_t len) {
    if (l->phase == LINK_CLOSING || len == 0) {
        return;
    }
    if (l->queued + len > NODE_MAX_QUEUED) {
        link_close(l, "the peer does not read what it is sent", false);
        return;
    }
    write_req *w = malloc(sizeof *w + len);
    if (!w) {
        link_close(l, "out of memory queueing a frame", false);
        return;
    }
    w->link = l;
    w->len = len;
    memcpy(w->data, bytes, len);
    uv_buf_t buf = uv_buf_init(w->data, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&l->tcp, &buf, 1, write_done);
    if (rc != 0) {
        free(w);
        link_close(l, uv_strerror(rc), false);
        return;
    }
    l->queued += len;
}

void link_send_frame(node_link *l, const cairn_buf *frame) {
    if (!l->secure) {
        send_raw(l, frame->data, frame->len);
        return;
    }
    cairn_err err = {{0}};
    cairn_buf sealed = {0};
    if (cairn_secure_link_seal(l->secure, frame->data, frame->len, &sealed, &err) != 0) {
        cairn_buf_free(&sealed);
        link_close(l, err.msg, false);
        return;
    }
    send_raw(l, sealed.data, sealed.len);
    cairn_buf_free(&sealed);
}

void link_send_json(node_link *l, cairn_wire_type type, const cJSON *obj) {
    cairn_err err = {{0}};
    l->out.len = 0;
    if (!obj || cairn_wire_encode_json(type, obj, &l->out, &err) != 0) {
        cairn_log(l->node->log, CAIRN_LOG_ERROR, "cannot encode %s for %s: %s",
                  cairn_wire_type_name(type), link_name(l), obj ? err.msg : "out of memory");
        return;
    }
    link_send_frame(l, &l->out);
}

void link_send_heartbeat(node_link *l) {
    cJSON *hb = heartbeat_json(l->node);
    link_send_json(l, CAIRN_WIRE_HEARTBEAT, hb);
    cJSON_Delete(hb);
    l->last_heartbeat = cairn_now_seconds();
}

/* An ERROR frame goes out in the clear before the key is proven: the peer may lack it, and
 * the message is all it learns. */
static void send_error_frame(node_link *l, const char *message) {
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "message", message)) {
        cJSON_Delete(o);
        return;
    }
    cairn_err err = {{0}};
    cairn_buf frame = {0};
    if (cairn_wire_encode_json(CAIRN_WIRE_ERROR, o, &frame, &err) == 0) {
        if (l->secure && cairn_secure_link_established(l->secure)) {
            link_send_frame(l, &frame);
        } else {
            send_raw(l, frame.data, frame.len);
        }
    }
    cairn_buf_free(&frame);
    cJSON_Delete(o);
}

static void shutdown_done(uv_shutdown_t *req, int status) {
    (void)status;
    uv_handle_t *h = (uv_handle_t *)req->handle;
    free(req);
    if (!uv_is_closing(h)) {
        uv_close(h, on_closed);
    }
}

void link_close(node_link *l, const char *reason, bool send_error) {
    if (l->phase == LINK_CLOSING) {
        return;
    }
    cairn_local_node *n = l->node;
    bool was_up = l->phase == LINK_UP;
    if (send_error) {
        send_error_frame(l, reason);
    }
    cairn_log(n->log, was_up ? CAIRN_LOG_INFO : CAIRN_LOG_DEBUG, "link %s %s: %s",
              was_up ? "with" : "to", link_name(l), reason);
    bool connected = l->phase != LINK_CONNECTING;
    l->phase = LINK_CLOSING;
    l->closing_at = cairn_now_seconds();
    if (l->target) {
        l->target->link = NULL;
        l->target = NULL;
    }
    if (was_up) {
        node_link_lost(n, l);
    }
    uv_read_stop((uv_stream_t *)&l->tcp);
    /* A shutdown lets queued frames (the ERROR or GOODBYE) leave before the socket closes. */
    uv_shutdown_t *req = connected ? malloc(sizeof *req) : NULL;
    if (req && uv_shutdown(req, (uv_stream_t *)&l->tcp, shutdown_done) == 0) {
        return;
    }
    free(req);
    if (!uv_is_closing((uv_handle_t *)&l->tcp)) {
        uv_close((uv_handle_t *)&l->tcp, on_closed);
    }
}

node_link *link_find_up(cairn_local_node *n, const char *node_id) {
    for (node_link *l = n->links; l; l = l->next) {
        if (l->phase == LINK_UP && strcmp(l->hello.node_id, node_id) == 0) {
            return l;
        }
    }
    return NULL;
}

/* ---- HELLO ---- */

static void send_hello(node_link *l, cairn_wire_type type) {
    cairn_local_node *n = l->node;
    cairn_wire_hello h = {
        .protocol = CAIRN_WIRE_VERSION, .cluster_port = n->cluster_port, .api_port = n->api_port};
    snprintf(h.node_id, sizeof h.node_id, "%s", n->id);
    snprintf(h.cluster, sizeof h.cluster, "%s", n->cluster);
    h.incarnation = n->incarnation;
    cairn_err err = {{0}};
    l->out.len = 0;
    if (cairn_wire_encode_hello(type, &h, &l->out, &err) != 0) {
        link_close(l, err.msg, false);
        return;
    }
    link_send_frame(l, &l->out);
}

/* Of two live links between the same pair, both ends keep the one the node with the lower
 * id dialed, so they always drop the same one. */
static bool keep_over(const node_link *a, const node_link *b, const char *self) {
    bool a_by_low = a->dialer == (strcmp(self, a->hello.node_id) < 0);
    bool b_by_low = b->dialer == (strcmp(self, b->hello.node_id) < 0);
    if (a_by_low != b_by_low) {
        return a_by_low;
    }
    return a->serial < b->serial;
}

/* Two live links naming one id from two processes: two nodes were given the same --id. */
static bool same_id_elsewhere(const node_link *l, const node_link *other) {
    return other && l->hello.incarnation && other->hello.incarnation &&
           l->hello.incarnation != other->hello.incarnation;
}

static void link_up(node_link *l) {
    cairn_local_node *n = l->node;
    node_link *other = link_find_up(n, l->hello.node_id);
    if (same_id_elsewhere(l, other)) {
        cairn_log(n->log, CAIRN_LOG_WARN,
                  "two nodes use the id %s (linked at %s, and now at %s): refusing the second "
                  "(give each node its own --id)",
                  l->hello.node_id, other->remote, l->remote);
        link_close(l, "another node with this id is in the cluster (give each node its own --id)",
                   true);
        return;
    }
    if (other && !keep_over(l, other, n->id)) {
        link_close(l, "a link with this node exists already", false);
        return;
    }
    l->phase = LINK_UP;
    l->up_at = cairn_now_seconds();
    if (l->target) {
        snprintf(l->target->id, sizeof l->target->id, "%s", l->hello.node_id);
        l->target->backoff_ms = 0;
    }
    cairn_log(n->log, CAIRN_LOG_INFO, "link up with %s at %s (%s)", l->hello.node_id, l->remote,
              l->dialer ? "dialed" : "accepted");
    if (other) {
        link_close(other, "replaced by a newer link", false);
    }
    link_send_heartbeat(l);
    node_mark_dirty(n);
}

static int on_hello(node_link *l, const cairn_wire_frame *f, cairn_err *err) {
    cairn_local_node *n = l->node;
    cairn_wire_type want = l->dialer ? CAIRN_WIRE_HELLO_ACK : CAIRN_WIRE_HELLO;
    if (f->type == CAIRN_WIRE_AUTH_CHALLENGE && !n->keyed) {
        return cairn_fail(err, "the peer needs a cluster key (--key); this node runs without one");
    }
    if (f->type != want) {
        return cairn_fail(err, "expected %s, got %s", cairn_wire_type_name(want),
                          cairn_wire_type_name(f->type));
    }
    if (cairn_wire_parse_hello(f, &l->hello, err) != 0) {
        l->hello.node_id[0] = '\0';
        return -1;
    }
    if (strcmp(l->hello.cluster, n->cluster) != 0) {
        return cairn_fail(err, "the peer belongs to cluster \"%s\", this node to \"%s\"",
                          l->hello.cluster, n->cluster);
    }
    if (strcmp(l->hello.node_id, n->id) == 0) {
        if (l->hello.incarnation && l->hello.incarnation != n->incarnation) {
            cairn_log(n->log, CAIRN_LOG_WARN,
                      "the node at %s uses this node's id %s: refusing it (give each node its "
                      "own --id)",
                      l->remote, n->id);
            return cairn_fail(err, "the peer uses this node's id %s (give each node its own --id)",
                              n->id);
        }
        return cairn_fail(err, "the peer has this node's own id (a link to itself?)");
    }
    if (!l->dialer) {
        send_hello(l, CAIRN_WIRE_HELLO_ACK);
    }
    link_up(l);
    return 0;
}

/* ---- frames of a live link ---- */

static int with_json(node_link *l, const cairn_wire_frame *f,
                     int (*handle)(node_link *, const cJSON *, cairn_err *), cairn_err *err) {
    cJSON *msg = NULL;
    if (cairn_wire_parse_json(f, &msg, err) != 0) {
        return -1;
    }
    int rc = handle(l, msg, err);
    cJSON_Delete(msg);
    return rc;
}

static int on_heartbeat(node_link *l, const cJSON *msg, cairn_err *err) {
    return heartbeat_apply(l, msg, err);
}

static int on_peer_message(node_link *l, const cJSON *msg, cairn_err *err) {
    (void)err;
    const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(msg, "message"));
    if (!text) {
        text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(msg, "reason"));
    }
    char safe[200];
    cairn_utf8_printable_copy(safe, sizeof safe, text ? text : "");
    cairn_log(l->node->log, CAIRN_LOG_INFO, "%s says goodbye: %s", link_name(l),
              safe[0] ? safe : "no reason given");
    link_close(l, "closed by the peer", false);
    return 0;
}

static int on_peer_error(node_link *l, const cJSON *msg, cairn_err *err) {
    const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(msg, "message"));
    char safe[200];
    cairn_utf8_printable_copy(safe, sizeof safe, text ? text : "(none)");
    return cairn_fail(err, "the peer reports an error: %s", safe);
}

static int on_up_frame(node_link *l, const cairn_wire_frame *f, cairn_err *err) {
    switch (f->type) {
    case CAIRN_WIRE_HEARTBEAT: return with_json(l, f, on_heartbeat, err);
    case CAIRN_WIRE_EVENT_REQUEST: return with_json(l, f, on_event_request, err);
    case CAIRN_WIRE_EVENT_ACK: return with_json(l, f, on_event_ack, err);
    case CAIRN_WIRE_SNAPSHOT: return with_json(l, f, on_snapshot, err);
    case CAIRN_WIRE_EVENT: return on_event(l, f, err);
    case CAIRN_WIRE_PROPOSE: return on_propose(l, f, err);
    case CAIRN_WIRE_GOODBYE: return with_json(l, f, on_peer_message, err);
    case CAIRN_WIRE_ERROR: return with_json(l, f, on_peer_error, err);
    case CAIRN_WIRE_CONTROL: return with_json(l, f, serve_peer_control, err);
    default:
        return cairn_fail(err, "unexpected %s frame on a live link", cairn_wire_type_name(f->type));
    }
}

static int on_frame(node_link *l, const cairn_wire_frame *f, cairn_err *err) {
    if (l->phase == LINK_HELLO) {
        if (f->type == CAIRN_WIRE_ERROR) {
            return with_json(l, f, on_peer_error, err);
        }
        return on_hello(l, f, err);
    }
    return on_up_frame(l, f, err);
}

/* Hands decoded frames to their handlers until the decoder needs bytes or the link closes. */
static void drain_frames(node_link *l, const void *bytes, size_t len) {
    cairn_err err = {{0}};
    if (len > 0 && cairn_wire_decoder_feed(l->decoder, bytes, len, &err) != 0 &&
        !cairn_wire_decoder_failed(l->decoder)) {
        link_close(l, err.msg, false);
        return;
    }
    cairn_wire_frame f;
    int rc;
    while (l->phase != LINK_CLOSING && (rc = cairn_wire_decoder_next(l->decoder, &f, &err)) != 0) {
        if (rc < 0 || on_frame(l, &f, &err) != 0) {
            link_close(l, err.msg, true);
            return;
        }
    }
}

static void on_secure_bytes(node_link *l, const char *bytes, size_t len) {
    cairn_err err = {{0}};
    cairn_buf reply = {0};
    l->plain.len = 0;
    int rc = cairn_secure_link_feed(l->secure, bytes, len, &l->plain, &reply, &err);
    send_raw(l, reply.data, reply.len);
    cairn_buf_free(&reply);
    if (rc != 0) {
        link_close(l, err.msg, l->phase == LINK_AUTH);
        return;
    }
    if (l->phase == LINK_AUTH && cairn_secure_link_established(l->secure)) {
        l->phase = LINK_HELLO;
        if (l->dialer) {
            send_hello(l, CAIRN_WIRE_HELLO);
        }
    }
    if (l->phase != LINK_CLOSING && l->plain.len > 0) {
        drain_frames(l, l->plain.data, l->plain.len);
    }
}

static void alloc_read(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    node_link *l = h->data;
    *buf = uv_buf_init(l->read_buf, sizeof l->read_buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    (void)buf;
    node_link *l = s->data;
    if (l->phase == LINK_CLOSING) {
        return;
    }
    if (nread < 0) {
        cairn_err eof_err = {{0}};
        if (nread == UV_EOF && l->secure && cairn_secure_link_eof(l->secure, &eof_err) != 0) {
            link_close(l, eof_err.msg, false);
            return;
        }
        bool mid_frame = cairn_wire_decoder_buffered(l->decoder) > 0;
        link_close(l,
                   nread == UV_EOF
                       ? (mid_frame ? "the peer closed the link in the middle of a frame"
                                    : "the peer closed the link")
                       : uv_strerror((int)nread),
                   false);
        return;
    }
    l->last_heard = cairn_now_seconds();
    if (l->secure) {
        on_secure_bytes(l, l->read_buf, (size_t)nread);
    } else {
        drain_frames(l, l->read_buf, (size_t)nread);
    }
}

/* Names the socket's other end in remote and remote_host. */
static void read_peer_name(node_link *l) {
    struct sockaddr_storage addr;
    int len = sizeof addr;
    if (uv_tcp_getpeername(&l->tcp, (struct sockaddr *)&addr, &len) == 0) {
        char host[CAIRN_STATE_HOST_SIZE] = "";
        int port = 0;
        if (addr.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&addr;
            uv_ip6_name(a6, host, sizeof host);
            port = ntohs(a6->sin6_port);
            snprintf(l->remote, sizeof l->remote, "[%s]:%d", host, port);
        } else {
            const struct sockaddr_in *a4 = (const struct sockaddr_in *)&addr;
            uv_ip4_name(a4, host, sizeof host);
            port = ntohs(a4->sin_port);
            snprintf(l->remote, sizeof l->remote, "%s:%d", host, port);
        }
        snprintf(l->remote_host, sizeof l->remote_host, "%s", host);
    }
}

/* The socket is connected (either way): start reading and the key or HELLO exchange. */
static void link_start(node_link *l) {
    uv_tcp_nodelay(&l->tcp, 1);
    l->last_heard = cairn_now_seconds();
    int rc = uv_read_start((uv_stream_t *)&l->tcp, alloc_read, on_read);
    if (rc != 0) {
        link_close(l, uv_strerror(rc), false);
        return;
    }
    if (l->secure) {
        l->phase = LINK_AUTH;
        if (l->dialer) {
            cairn_err err = {{0}};
            cairn_buf first = {0};
            if (cairn_secure_link_begin(l->secure, &first, &err) != 0) {
                link_close(l, err.msg, false);
            } else {
                send_raw(l, first.data, first.len);
            }
            cairn_buf_free(&first);
        }
        return;
    }
    l->phase = LINK_HELLO;
    if (l->dialer) {
        send_hello(l, CAIRN_WIRE_HELLO);
    }
}

static void free_handle(uv_handle_t *h) {
    free(h);
}

/* ---- admission of accepted links ---- */

const char *link_refusal(const link_census *c) {
    if (c->open >= NODE_MAX_LINKS) {
        return "every link slot is taken";
    }
    if (c->handshakes_from_host >= NODE_MAX_HANDSHAKES_PER_HOST) {
        return "too many links from this address are in the handshake";
    }
    if (!c->known_host && c->open >= NODE_MAX_LINKS - NODE_LINKS_KEPT_FOR_MEMBERS) {
        return "the link slots left are kept for known members";
    }
    return NULL;
}

/* An IPv4 peer of a dual-stack socket shows as ::ffff:a.b.c.d, the state names it a.b.c.d. */
static const char *plain_host(const char *host) {
    static const char mapped[] = "::ffff:";
    size_t prefix = sizeof mapped - 1;
    bool is_mapped = strncmp(host, mapped, prefix) == 0 && strchr(host + prefix, '.');
    return is_mapped ? host + prefix : host;
}

static bool same_host(const char *a, const char *b) {
    return strcmp(plain_host(a), plain_host(b)) == 0;
}

static bool host_is_member(const cairn_local_node *n, const char *host) {
    for (uint32_t i = 0; i < n->state->n_nodes; i++) {
        const cairn_node *m = &n->state->nodes[i];
        for (uint32_t a = 0; a < m->n_addresses; a++) {
            if (same_host(m->addresses[a].host, host)) {
                return true;
            }
        }
    }
    return false;
}

static bool host_is_known(const cairn_local_node *n, const char *host) {
    for (const dial_target *t = n->targets; t; t = t->next) {
        if (same_host(t->host, host)) {
            return true;
        }
    }
    for (const node_link *l = n->links; l; l = l->next) {
        if (l->phase == LINK_UP && same_host(l->remote_host, host)) {
            return true;
        }
    }
    return host_is_member(n, host);
}

static link_census census_for(const cairn_local_node *n, const node_link *fresh) {
    link_census c = {.open = n->n_links - 1, .known_host = host_is_known(n, fresh->remote_host)};
    for (const node_link *l = n->links; l; l = l->next) {
        if (l != fresh && !l->dialer && l->phase != LINK_UP && l->phase != LINK_CLOSING &&
            same_host(l->remote_host, fresh->remote_host)) {
            c.handshakes_from_host++;
        }
    }
    return c;
}

static void note_refusal(cairn_local_node *n, const char *remote, const char *why) {
    double now = cairn_now_seconds();
    n->links_refused++;
    if (now - n->refusal_warned_at < NODE_REFUSAL_LOG_S) {
        return; /* link_close logs each at debug level */
    }
    cairn_log(n->log, CAIRN_LOG_WARN,
              "refusing a link from %s: %s (%llu refused in the last %.0f s)", remote, why,
              (unsigned long long)n->links_refused, NODE_REFUSAL_LOG_S);
    n->links_refused = 0;
    n->refusal_warned_at = now;
}

int link_accept(cairn_local_node *n, uv_stream_t *server) {
    if (n->n_links >= NODE_MAX_LINKS) {
        uv_tcp_t *drop = malloc(sizeof *drop);
        if (drop && uv_tcp_init(n->loop, drop) == 0) {
            if (uv_accept(server, (uv_stream_t *)drop) == 0) {
                note_refusal(n, "a peer", "every link slot is taken");
            }
            uv_close((uv_handle_t *)drop, free_handle);
        } else {
            free(drop);
        }
        return -1;
    }
    node_link *l = link_new(n, false);
    if (!l) {
        return -1;
    }
    l->phase = LINK_CONNECTING;
    snprintf(l->remote, sizeof l->remote, "link#%llu", (unsigned long long)l->serial);
    if (uv_accept(server, (uv_stream_t *)&l->tcp) != 0) {
        link_close(l, "accept failed", false);
        return -1;
    }
    read_peer_name(l);
    link_census census = census_for(n, l);
    const char *refusal = link_refusal(&census);
    if (refusal) {
        note_refusal(n, l->remote, refusal);
        link_close(l, refusal, false);
        return -1;
    }
    link_start(l);
    return 0;
}

static void on_connected(uv_connect_t *req, int status) {
    node_link *l = req->data;
    if (l->phase == LINK_CLOSING) {
        return;
    }
    if (status < 0) {
        link_close(l, uv_strerror(status), false);
        return;
    }
    read_peer_name(l);
    link_start(l);
}

/* A numeric address for target t, bound to the node's own listen address when that is a
 * specific one, so peers see the address this node announces. */
static int target_address(const dial_target *t, struct sockaddr_storage *out) {
    if (uv_ip4_addr(t->host, t->port, (struct sockaddr_in *)out) == 0) {
        return AF_INET;
    }
    if (uv_ip6_addr(t->host, t->port, (struct sockaddr_in6 *)out) == 0) {
        return AF_INET6;
    }
    return -1;
}

static void bind_source(cairn_local_node *n, node_link *l, int family) {
    struct sockaddr_storage src;
    bool specific = (family == AF_INET && strcmp(n->listen_host, "0.0.0.0") != 0 &&
                     uv_ip4_addr(n->listen_host, 0, (struct sockaddr_in *)&src) == 0) ||
                    (family == AF_INET6 && strcmp(n->listen_host, "::") != 0 &&
                     uv_ip6_addr(n->listen_host, 0, (struct sockaddr_in6 *)&src) == 0);
    if (specific) {
        uv_tcp_bind(&l->tcp, (const struct sockaddr *)&src, 0);
    }
}

void link_dial(cairn_local_node *n, dial_target *t) {
    struct sockaddr_storage addr;
    int family = target_address(t, &addr);
    if (family < 0) {
        cairn_log(n->log, CAIRN_LOG_WARN, "peer address %s:%u is not numeric; skipped", t->host,
                  (unsigned)t->port);
        t->next_attempt = cairn_now_seconds() + 60.0;
        return;
    }
    node_link *l = link_new(n, true);
    if (!l) {
        return;
    }
    l->phase = LINK_CONNECTING;
    l->target = t;
    t->link = l;
    snprintf(l->remote, sizeof l->remote, family == AF_INET6 ? "[%s]:%u" : "%s:%u", t->host,
             (unsigned)t->port);
    snprintf(l->remote_host, sizeof l->remote_host, "%s", t->host);
    bind_source(n, l, family);
    l->connect_req.data = l;
    int rc = uv_tcp_connect(&l->connect_req, &l->tcp, (const struct sockaddr *)&addr, on_connected);
    if (rc != 0) {
        link_close(l, uv_strerror(rc), false);
    }
}

void links_tick(cairn_local_node *n, double now) {
    for (node_link *l = n->links; l; l = l->next) {
        if (l->phase == LINK_CLOSING) {
            /* A peer that stopped reading keeps the shutdown waiting for its writes. */
            if (now - l->closing_at > 2.0 && !uv_is_closing((uv_handle_t *)&l->tcp)) {
                uv_close((uv_handle_t *)&l->tcp, on_closed);
            }
            continue;
        }
        if (l->phase != LINK_UP && now - l->opened_at > NODE_HANDSHAKE_DEADLINE_S) {
            char reason[96];
            snprintf(reason, sizeof reason, "no handshake within %.0f s",
                     NODE_HANDSHAKE_DEADLINE_S);
            link_close(l, reason, false);
            continue;
        }
        double silent = now - l->last_heard;
        if (silent > n->timeout_s) {
            char reason[96];
            snprintf(reason, sizeof reason, "silent for %.1f s", silent);
            link_close(l, reason, false);
            continue;
        }
        if (l->phase == LINK_UP && now - l->last_heartbeat >= n->heartbeat_s) {
            link_send_heartbeat(l);
        }
    }
}
