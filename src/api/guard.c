/* api guard: bounds on the connections of one client and on those still waiting for their
 * request (see guard.h). */
/* libuv's headers use POSIX types (pthread_rwlock_t) that strict C11 hides. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "api/guard.h"
#include "platform/platform.h"

/* How often the watchdog looks for requests past their deadline, at most: the deadline is
 * kept to within this (or a quarter of the timeout, when that is shorter). */
#define GUARD_WATCH_INTERVAL_NS 1000000000u

typedef struct guard_conn {
    cairn_socket_peer peer;
    uint64_t seen_ns; /* when it was first listed, on uv_hrtime's clock */
    bool waiting;     /* its request has not arrived */
    bool closed;      /* shut down by the guard: gone in a moment, so no longer counted */
    bool over_quota;  /* see api_guard_over_quota */
} guard_conn;

struct api_guard {
    uv_mutex_t lock;
    uv_cond_t wake; /* the watchdog's, for a stop */
    uv_thread_t watchdog;
    bool stopping;
    uint64_t timeout_ns;
    guard_conn *conns; /* the server's connections as last listed */
    size_t n_conns;
    size_t per_client_max, waiting_max;
    uint16_t port;
    cairn_logger *log;
};

static guard_conn *find(const api_guard *g, const char *host, uint16_t port) {
    for (size_t i = 0; i < g->n_conns; i++) {
        if (g->conns[i].peer.port == port && strcmp(g->conns[i].peer.host, host) == 0) {
            return &g->conns[i];
        }
    }
    return NULL;
}

/* The server's connections as the OS lists them now, into a new array (*n of them). */
static cairn_socket_peer *list_peers(uint16_t port, size_t *n) {
    size_t cap = 128;
    for (int tries = 0; tries < 4; tries++) {
        cairn_socket_peer *peers = malloc(cap * sizeof *peers);
        int listed = peers ? cairn_socket_peers(port, peers, cap) : -1;
        if (listed >= 0 && (size_t)listed <= cap) {
            *n = (size_t)listed;
            return peers;
        }
        free(peers);
        if (listed < 0) {
            return NULL;
        }
        cap = (size_t)listed + 64; /* more came since: list again, with room to spare */
    }
    return NULL;
}

/* Replaces the record with the OS's list: connections gone are forgotten, new ones wait. */
static int refresh(api_guard *g) {
    size_t n = 0;
    cairn_socket_peer *peers = list_peers(g->port, &n);
    guard_conn *conns = peers ? calloc(n ? n : 1, sizeof *conns) : NULL;
    if (!conns) {
        free(peers);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const guard_conn *known = find(g, peers[i].host, peers[i].port);
        if (known) {
            conns[i] = *known;
        } else {
            conns[i] = (guard_conn){.seen_ns = uv_hrtime(), .waiting = true};
        }
        conns[i].peer = peers[i];
    }
    free(peers);
    free(g->conns);
    g->conns = conns;
    g->n_conns = n;
    return 0;
}

/* The oldest connection still waiting for bytes, of host (NULL: of any address); *count
 * the connections of host (or the waiting ones of all) that still count. */
static guard_conn *oldest_waiting(const api_guard *g, const char *host, size_t *count) {
    guard_conn *oldest = NULL;
    *count = 0;
    for (size_t i = 0; i < g->n_conns; i++) {
        guard_conn *c = &g->conns[i];
        if (c->closed || (host && strcmp(c->peer.host, host) != 0)) {
            continue;
        }
        *count += host ? 1 : c->waiting;
        /* Unread bytes: its request is there, waiting for a thread, not trickling. */
        if (c->waiting && !c->peer.unread && (!oldest || c->seen_ns < oldest->seen_ns)) {
            oldest = c;
        }
    }
    return oldest;
}

/* Shuts c's socket down: its thread (or the next one to take it) then closes it at once. */
static void close_waiting(api_guard *g, guard_conn *c, const char *why) {
    c->waiting = false;
    c->closed = true;
    if (cairn_socket_shutdown(c->peer.handle) == 0) {
        cairn_log(g->log, CAIRN_LOG_DEBUG,
                  "api: client %s:%u closed: its request had not arrived, and %s", c->peer.host,
                  (unsigned)c->peer.port, why);
    } else {
        cairn_log(g->log, CAIRN_LOG_WARN, "api: cannot close the connection of client %s:%u",
                  c->peer.host, (unsigned)c->peer.port);
    }
}

static size_t waiting_of(const api_guard *g, const char *host) {
    size_t n = 0;
    for (size_t i = 0; i < g->n_conns; i++) {
        const guard_conn *c = &g->conns[i];
        n += !c->closed && c->waiting && strcmp(c->peer.host, host) == 0;
    }
    return n;
}

/* Past its address's quota, its oldest waiting connections close; the last one left
 * waiting is answered 503 instead, all the others being served. */
static void enforce_client(api_guard *g, const char *host) {
    size_t count = 0;
    guard_conn *victim = oldest_waiting(g, host, &count);
    while (victim && count > g->per_client_max) {
        if (waiting_of(g, host) == 1) {
            victim->over_quota = true;
            return;
        }
        close_waiting(g, victim,
                      "its address holds the most connections allowed (--api-client-connections)");
        victim = oldest_waiting(g, host, &count);
    }
}

/* Closes the connections whose request has not arrived within the timeout. One waiting
 * for a thread, its bytes unread, is spared: it is the server that is slow. */
static void close_late(api_guard *g) {
    uint64_t now = uv_hrtime();
    for (size_t i = 0; i < g->n_conns; i++) {
        guard_conn *c = &g->conns[i];
        if (c->waiting && !c->closed && !c->peer.unread && now - c->seen_ns > g->timeout_ns) {
            close_waiting(g, c, "its time is up (--api-request-timeout)");
        }
    }
}

static void enforce(api_guard *g) {
    close_late(g);
    for (size_t i = 0; i < g->n_conns; i++) {
        if (!g->conns[i].closed && g->conns[i].waiting) {
            enforce_client(g, g->conns[i].peer.host);
        }
    }
    size_t waiting = 0;
    guard_conn *victim = oldest_waiting(g, NULL, &waiting);
    while (victim && waiting > g->waiting_max) {
        close_waiting(g, victim, "as many others wait as allowed (--api-waiting-requests)");
        victim = oldest_waiting(g, NULL, &waiting);
    }
}

void api_guard_admit(api_guard *g) {
    uv_mutex_lock(&g->lock);
    if (g->port != 0) { /* 0: not listening yet */
        if (refresh(g) == 0) {
            enforce(g);
        } else {
            cairn_log(g->log, CAIRN_LOG_WARN, "api: cannot list the API's connections");
        }
    }
    uv_mutex_unlock(&g->lock);
}

bool api_guard_over_quota(api_guard *g, const char *host, uint16_t port) {
    uv_mutex_lock(&g->lock);
    const guard_conn *c = find(g, host, port);
    bool over = c && c->over_quota;
    uv_mutex_unlock(&g->lock);
    return over;
}

/* A record for a connection not listed yet (it came before the port was known, or a
 * listing failed), so the next listing does not take it for a new, waiting one. */
static guard_conn *add_unlisted(api_guard *g, const char *host, uint16_t port) {
    guard_conn *conns = realloc(g->conns, (g->n_conns + 1) * sizeof *conns);
    if (!conns) {
        return NULL;
    }
    g->conns = conns;
    guard_conn *c = &conns[g->n_conns++];
    *c = (guard_conn){.seen_ns = uv_hrtime(), .peer.port = port, .peer.handle = -1};
    snprintf(c->peer.host, sizeof c->peer.host, "%s", host);
    return c;
}

void api_guard_arrived(api_guard *g, const char *host, uint16_t port) {
    uv_mutex_lock(&g->lock);
    guard_conn *c = find(g, host, port);
    if (!c) {
        c = add_unlisted(g, host, port);
    }
    if (c) {
        c->waiting = false;
    } else {
        cairn_log(g->log, CAIRN_LOG_WARN, "api: out of memory: client %s:%u is not guarded", host,
                  (unsigned)port);
    }
    uv_mutex_unlock(&g->lock);
}

/* The watchdog thread: enforces deadlines while no new connection comes to do it. */
static void watch(void *arg) {
    api_guard *g = arg;
    uint64_t interval =
        g->timeout_ns / 4 < GUARD_WATCH_INTERVAL_NS ? g->timeout_ns / 4 : GUARD_WATCH_INTERVAL_NS;
    uv_mutex_lock(&g->lock);
    while (!g->stopping) {
        (void)uv_cond_timedwait(&g->wake, &g->lock, interval); /* a timeout is the usual wake */
        if (!g->stopping && g->port != 0 && refresh(g) == 0) {
            close_late(g);
        }
    }
    uv_mutex_unlock(&g->lock);
}

int api_guard_new(const api_guard_limits *limits, uint16_t port, cairn_logger *log, api_guard **out,
                  cairn_err *err) {
    api_guard *g = calloc(1, sizeof *g);
    if (!g) {
        return cairn_fail(err, "out of memory");
    }
    if (uv_mutex_init(&g->lock) != 0) {
        free(g);
        return cairn_fail(err, "cannot create a mutex");
    }
    if (uv_cond_init(&g->wake) != 0) {
        uv_mutex_destroy(&g->lock);
        free(g);
        return cairn_fail(err, "cannot create a condition variable");
    }
    g->timeout_ns = (uint64_t)limits->request_timeout_ms * 1000000u;
    g->per_client_max = limits->per_client;
    g->waiting_max = limits->waiting;
    g->port = port;
    g->log = log;
    if (uv_thread_create(&g->watchdog, watch, g) != 0) {
        uv_cond_destroy(&g->wake);
        uv_mutex_destroy(&g->lock);
        free(g);
        return cairn_fail(err, "cannot start the API's watchdog thread");
    }
    *out = g;
    return 0;
}

void api_guard_listening_on(api_guard *g, uint16_t port) {
    uv_mutex_lock(&g->lock);
    g->port = port;
    uv_mutex_unlock(&g->lock);
}

void api_guard_free(api_guard *g) {
    if (!g) {
        return;
    }
    uv_mutex_lock(&g->lock);
    g->stopping = true;
    uv_cond_signal(&g->wake);
    uv_mutex_unlock(&g->lock);
    uv_thread_join(&g->watchdog);
    uv_cond_destroy(&g->wake);
    uv_mutex_destroy(&g->lock);
    free(g->conns);
    free(g);
}
