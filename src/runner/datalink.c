/*
 * datalink: a data-plane TCP link (runner to runner, requester to runner). Frames are the
 * cluster's wire frames; on keyed clusters the link first proves the key both ways and then
 * seals every byte, exactly like the node's cluster links, so activations and tokens never
 * cross the LAN in the clear. Nagle is off: a decode step is one small frame per hop and
 * must not wait for more.
 *
 * Then the dialer proves it holds the instance's secret (secure.h): the acceptor's first
 * frame is {"op":"challenge","challenge":HEX}, the dialer's first {"op":"proof","proof":HEX},
 * and a link whose first frame is anything else, or a wrong proof, is closed. Only then is
 * the link up for its owner, so a runner never acts on a frame from a stranger. Until then a
 * link buffers at most one small frame and lives at most DLINK_PROVE_DEADLINE_MS: a
 * stranger that connects and trickles bytes, or says nothing, costs little and not for long.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cluster/json_fields.h"
#include "runner/runner_internal.h"

#define DLINK_READ_CHUNK 65536
#define DLINK_PROVE_DEADLINE_MS 5000

struct dlink {
    uv_tcp_t tcp;
    uv_timer_t prove_timer; /* closes a link that is not up in time */
    int open_handles;       /* the link is freed when both handles have closed */
    uv_connect_t connect_req;
    const dlink_callbacks *cb;
    void *user;
    cairn_wire_decoder *decoder;
    cairn_secure_link *secure; /* keyed links only */
    cairn_buf plain;
    bool dialer;
    uint8_t secret[CAIRN_INSTANCE_SECRET_SIZE];
    uint8_t challenge[CAIRN_RUNNER_CHALLENGE_SIZE]; /* acceptor: what the dialer must answer */
    bool up, closing;
    bool silent; /* failed while being created: the creator hears it from the return value */
    size_t queued;
    char name[96];
    char reason[512];
    char read_buf[DLINK_READ_CHUNK];
};

typedef struct write_req {
    uv_write_t req;
    dlink *link;
    size_t len;
    char bytes[];
} write_req;

void *dlink_user(const dlink *l) {
    return l->user;
}
void dlink_set_user(dlink *l, void *user) {
    l->user = user;
}
bool dlink_is_up(const dlink *l) {
    return l->up && !l->closing;
}
const char *dlink_name(const dlink *l) {
    return l->name;
}
size_t dlink_queued(const dlink *l) {
    return l->queued;
}

static void on_closed(uv_handle_t *h) {
    dlink *l = h->data;
    if (--l->open_handles > 0) {
        return;
    }
    if (l->cb->on_close && !l->silent) {
        l->cb->on_close(l, l->reason);
    }
    cairn_wire_decoder_free(l->decoder);
    cairn_secure_link_free(l->secure);
    cairn_buf_free(&l->plain);
    sodium_memzero(l->secret, sizeof l->secret);
    free(l);
}

void dlink_close(dlink *l, const char *reason) {
    if (l->closing) {
        return;
    }
    l->closing = true;
    snprintf(l->reason, sizeof l->reason, "%s", reason ? reason : "closed");
    uv_close((uv_handle_t *)&l->tcp, on_closed);
    uv_close((uv_handle_t *)&l->prove_timer, on_closed);
}

static void on_written(uv_write_t *req, int status) {
    write_req *w = (write_req *)req;
    w->link->queued -= w->len;
    if (status < 0 && status != UV_ECANCELED) {
        char msg[160];
        snprintf(msg, sizeof msg, "cannot send to %s: %s", w->link->name, uv_strerror(status));
        dlink_close(w->link, msg);
    }
    free(w);
}

static void write_raw(dlink *l, const void *bytes, size_t len) {
    if (l->closing || len == 0) {
        return;
    }
    write_req *w = malloc(sizeof *w + len);
    if (!w) {
        dlink_close(l, "out of memory");
        return;
    }
    w->link = l;
    w->len = len;
    memcpy(w->bytes, bytes, len);
    uv_buf_t buf = uv_buf_init(w->bytes, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&l->tcp, &buf, 1, on_written);
    if (rc != 0) {
        free(w);
        char msg[160];
        snprintf(msg, sizeof msg, "cannot send to %s: %s", l->name, uv_strerror(rc));
        dlink_close(l, msg);
        return;
    }
    l->queued += len;
}

static void send_frame(dlink *l, const cairn_buf *frame) {
    if (!l->secure) {
        write_raw(l, frame->data, frame->len);
        return;
    }
    cairn_buf sealed = {0};
    cairn_err err = {{0}};
    if (cairn_secure_link_seal(l->secure, frame->data, frame->len, &sealed, &err) != 0) {
        dlink_close(l, err.msg);
    } else {
        write_raw(l, sealed.data, sealed.len);
    }
    cairn_buf_free(&sealed);
}

void dlink_send_control(dlink *l, const cJSON *obj) {
    cairn_buf frame = {0};
    cairn_err err = {{0}};
    if (cairn_wire_encode_json(CAIRN_WIRE_CONTROL, obj, &frame, &err) != 0) {
        dlink_close(l, err.msg);
    } else {
        send_frame(l, &frame);
    }
    cairn_buf_free(&frame);
}

void dlink_send_activations(dlink *l, const cairn_wire_data_header *h, const float *values) {
    cairn_buf frame = {0};
    cairn_err err = {{0}};
    if (cairn_wire_encode_activations(h, values, &frame, &err) != 0) {
        dlink_close(l, err.msg);
    } else {
        send_frame(l, &frame);
    }
    cairn_buf_free(&frame);
}

static void become_up(dlink *l) {
    l->up = true;
    uv_timer_stop(&l->prove_timer);
    if (l->cb->on_up) {
        l->cb->on_up(l);
    }
}

_Static_assert(CAIRN_RUNNER_CHALLENGE_SIZE == CAIRN_RUNNER_PROOF_SIZE, "one hex size");

/* {"op":OP, NAME: the 32 bytes in hex}. */
static void send_hex(dlink *l, const char *op, const char *name,
                     const uint8_t bytes[CAIRN_RUNNER_PROOF_SIZE]) {
    char hex[2 * CAIRN_RUNNER_PROOF_SIZE + 1];
    sodium_bin2hex(hex, sizeof hex, bytes, CAIRN_RUNNER_PROOF_SIZE);
    cJSON *o = cJSON_CreateObject();
    if (o && cJSON_AddStringToObject(o, "op", op) && cJSON_AddStringToObject(o, name, hex)) {
        dlink_send_control(l, o);
    } else {
        dlink_close(l, "out of memory");
    }
    cJSON_Delete(o);
}

/* The socket is connected and, on keyed links, the key proven: the acceptor challenges. */
static void on_transport_up(dlink *l) {
    if (l->dialer) {
        return; /* it waits for the challenge */
    }
    cairn_err err = {{0}};
    if (cairn_runner_challenge_new(l->challenge, &err) != 0) {
        dlink_close(l, err.msg);
        return;
    }
    send_hex(l, "challenge", "challenge", l->challenge);
}

/* The first frame each way: the challenge (to the dialer) or the proof (to the acceptor). */
static int on_proving_frame(dlink *l, const cairn_wire_frame *f, cairn_err *err) {
    cJSON *msg = NULL;
    if (f->type != CAIRN_WIRE_CONTROL || cairn_wire_parse_json(f, &msg, err) != 0) {
        return cairn_fail(err, "%s did not %s", l->name,
                          l->dialer ? "send a challenge" : "prove the instance's secret");
    }
    const char *op = cJSON_GetStringValue(cairn_json_field(msg, "op"));
    const char *hex =
        cJSON_GetStringValue(cairn_json_field(msg, l->dialer ? "challenge" : "proof"));
    int rc = 0;
    if (l->dialer) {
        uint8_t proof[CAIRN_RUNNER_PROOF_SIZE];
        if (!op || strcmp(op, "challenge") != 0 ||
            cairn_runner_answer(l->secret, hex, proof) != 0) {
            rc = cairn_fail(err, "%s sent no valid challenge", l->name);
        } else {
            send_hex(l, "proof", "proof", proof);
            sodium_memzero(proof, sizeof proof);
        }
    } else if (!op || strcmp(op, "proof") != 0 ||
               !cairn_runner_proof_matches(l->secret, l->challenge, hex)) {
        rc = cairn_fail(err, "%s did not prove the instance's secret", l->name);
    }
    cJSON_Delete(msg);
    if (rc == 0 && !l->closing) {
        become_up(l);
    }
    return rc;
}

/* Hands decoded frames to the owner until the decoder needs bytes or the link closes. */
static void drain(dlink *l, const void *bytes, size_t len) {
    cairn_err err = {{0}};
    if (len > 0 && cairn_wire_decoder_feed(l->decoder, bytes, len, &err) != 0 &&
        !cairn_wire_decoder_failed(l->decoder)) {
        dlink_close(l, err.msg);
        return;
    }
    cairn_wire_frame f;
    int rc;
    while (!l->closing && (rc = cairn_wire_decoder_next(l->decoder, &f, &err)) != 0) {
        if (rc < 0 || (l->up ? l->cb->on_frame(l, &f, &err) : on_proving_frame(l, &f, &err)) != 0) {
            dlink_close(l, err.msg[0] ? err.msg : "protocol error");
            return;
        }
    }
}

static void on_secure_bytes(dlink *l, const char *bytes, size_t len) {
    cairn_buf reply = {0};
    cairn_err err = {{0}};
    bool was_up = cairn_secure_link_established(l->secure);
    int rc = cairn_secure_link_feed(l->secure, bytes, len, &l->plain, &reply, &err);
    write_raw(l, reply.data, reply.len);
    cairn_buf_free(&reply);
    if (rc != 0) {
        dlink_close(l, err.msg);
        return;
    }
    if (!was_up && cairn_secure_link_established(l->secure)) {
        on_transport_up(l);
    }
    if (!l->closing && l->plain.len > 0) {
        size_t n = l->plain.len;
        l->plain.len = 0;
        drain(l, l->plain.data, n);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    dlink *l = h->data;
    *buf = uv_buf_init(l->read_buf, sizeof l->read_buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    (void)buf;
    dlink *l = s->data;
    if (nread == 0 || l->closing) {
        return;
    }
    if (nread < 0) {
        char msg[160];
        if (nread == UV_EOF) {
            snprintf(msg, sizeof msg, "%s closed the link", l->name);
        } else {
            snprintf(msg, sizeof msg, "link to %s failed: %s", l->name, uv_strerror((int)nread));
        }
        dlink_close(l, msg);
        return;
    }
    if (l->secure) {
        on_secure_bytes(l, l->read_buf, (size_t)nread);
    } else {
        drain(l, l->read_buf, (size_t)nread);
    }
}

static void on_prove_deadline(uv_timer_t *t) {
    dlink *l = t->data;
    char msg[160];
    snprintf(msg, sizeof msg, "%s was not linked within %d s", l->name,
             DLINK_PROVE_DEADLINE_MS / 1000);
    dlink_close(l, msg);
}

static dlink *link_new(uv_loop_t *loop, const cairn_cluster_key *key,
                       const uint8_t secret[CAIRN_INSTANCE_SECRET_SIZE], bool dialer,
                       const dlink_callbacks *cb, void *user, cairn_err *err) {
    dlink *l = calloc(1, sizeof *l);
    if (!l) {
        cairn_fail(err, "out of memory");
        return NULL;
    }
    l->cb = cb;
    l->user = user;
    l->dialer = dialer;
    memcpy(l->secret, secret, sizeof l->secret);
    l->decoder = cairn_wire_decoder_new(0, err);
    if (key) {
        l->secure = cairn_secure_link_new(key, dialer, err);
    }
    if (!l->decoder || (key && !l->secure) || uv_timer_init(loop, &l->prove_timer) != 0) {
        cairn_wire_decoder_free(l->decoder);
        cairn_secure_link_free(l->secure);
        sodium_memzero(l->secret, sizeof l->secret);
        free(l);
        if (!err->msg[0]) {
            cairn_fail(err, "cannot create a socket");
        }
        return NULL;
    }
    l->prove_timer.data = l;
    l->open_handles = 2;
    if (uv_tcp_init(loop, &l->tcp) != 0) {
        /* the timer is a live handle now: it must close before the link is freed */
        l->open_handles = 1;
        l->silent = true;
        l->closing = true;
        uv_close((uv_handle_t *)&l->prove_timer, on_closed);
        cairn_fail(err, "cannot create a socket");
        return NULL;
    }
    l->tcp.data = l;
    cairn_wire_decoder_limit_first(l->decoder, CAIRN_WIRE_MAX_HANDSHAKE);
    uv_timer_start(&l->prove_timer, on_prove_deadline, DLINK_PROVE_DEADLINE_MS, 0);
    snprintf(l->name, sizeof l->name, "?");
    return l;
}

static void peer_name(dlink *l) {
    struct sockaddr_storage addr;
    int len = sizeof addr;
    char host[64] = "?";
    if (uv_tcp_getpeername(&l->tcp, (struct sockaddr *)&addr, &len) == 0) {
        int port = 0;
        if (addr.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&addr, host, sizeof host);
            port = ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&addr, host, sizeof host);
            port = ntohs(((struct sockaddr_in *)&addr)->sin_port);
        }
        snprintf(l->name, sizeof l->name, "%s:%d", host, port);
    }
}

static int start_reading(dlink *l, cairn_err *err) {
    uv_tcp_nodelay(&l->tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read);
    if (rc != 0) {
        return cairn_fail(err, "cannot read from %s: %s", l->name, uv_strerror(rc));
    }
    return 0;
}

dlink *dlink_accept(uv_stream_t *server, const cairn_cluster_key *key,
                    const uint8_t secret[CAIRN_INSTANCE_SECRET_SIZE], const dlink_callbacks *cb,
                    void *user, cairn_err *err) {
    dlink *l = link_new(server->loop, key, secret, false, cb, user, err);
    if (!l) {
        return NULL;
    }
    int rc = uv_accept(server, (uv_stream_t *)&l->tcp);
    if (rc != 0) {
        cairn_fail(err, "cannot accept a link: %s", uv_strerror(rc));
        l->silent = true;
        dlink_close(l, err->msg);
        return NULL;
    }
    peer_name(l);
    if (start_reading(l, err) != 0) {
        l->silent = true;
        dlink_close(l, err->msg);
        return NULL;
    }
    if (!l->secure) {
        on_transport_up(l);
    }
    return l;
}

static void on_connected(uv_connect_t *req, int status) {
    dlink *l = req->data;
    if (l->closing) {
        return;
    }
    if (status < 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "cannot connect to %s: %s", l->name, uv_strerror(status));
        dlink_close(l, msg);
        return;
    }
    cairn_err err = {{0}};
    if (start_reading(l, &err) != 0) {
        dlink_close(l, err.msg);
        return;
    }
    if (!l->secure) {
        on_transport_up(l);
        return;
    }
    cairn_buf first = {0};
    if (cairn_secure_link_begin(l->secure, &first, &err) != 0) {
        dlink_close(l, err.msg);
    } else {
        write_raw(l, first.data, first.len);
    }
    cairn_buf_free(&first);
}

dlink *dlink_dial(uv_loop_t *loop, const char *host, uint16_t port, const cairn_cluster_key *key,
                  const uint8_t secret[CAIRN_INSTANCE_SECRET_SIZE], const dlink_callbacks *cb,
                  void *user, cairn_err *err) {
    struct sockaddr_storage addr;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr) != 0) {
        cairn_fail(err, "not a numeric address: %s", host);
        return NULL;
    }
    dlink *l = link_new(loop, key, secret, true, cb, user, err);
    if (!l) {
        return NULL;
    }
    snprintf(l->name, sizeof l->name, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host,
             (unsigned)port);
    l->connect_req.data = l;
    int rc = uv_tcp_connect(&l->connect_req, &l->tcp, (const struct sockaddr *)&addr, on_connected);
    if (rc != 0) {
        cairn_fail(err, "cannot connect to %s: %s", l->name, uv_strerror(rc));
        l->silent = true;
        dlink_close(l, err->msg);
        return NULL;
    }
    return l;
}
