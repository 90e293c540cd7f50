/*
 * api guard: the connections the API server's worker threads hold, and which of them still
 * wait for their request to arrive (head and body), so slow or idle clients cannot take
 * every thread (see server.c). It bounds the time a request may take to arrive, the
 * connections of one client address and the connections that wait, closing the oldest
 * waiting one when a new connection passes a bound: a client that sends its request at
 * once (a probe of /node) gets a thread, a client that trickles loses its own. civetweb
 * keeps its sockets to itself, so the guard follows them through the OS's list of the
 * port's connections (cairn_socket_peers). Thread-safe; internal to the api module.
 */
#ifndef CAIRN_API_GUARD_H
#define CAIRN_API_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/log.h"
#include "util/util.h"

typedef struct api_guard api_guard;

typedef struct api_guard_limits {
    int request_timeout_ms; /* a request's head and body must arrive within it */
    size_t per_client;      /* connections one address may hold */
    size_t waiting;         /* connections whose request has not arrived, all together */
} api_guard_limits;

/* Guards the server on port (0: not known yet, see api_guard_listening_on), with a
 * watchdog thread of its own that closes requests past their deadline. */
int api_guard_new(const api_guard_limits *limits, uint16_t port, cairn_logger *log, api_guard **out,
                  cairn_err *err);
/* The port listened on, once known (when port was 0, until then nothing is guarded). */
void api_guard_listening_on(api_guard *g, uint16_t port);
/* Stops the watchdog; only once the server has stopped. */
void api_guard_free(api_guard *g);

/* A worker thread has taken a new connection (civetweb does not say which, nor its
 * client's address, until a request arrives): brings the record of the server's
 * connections up to date from the OS's list, new ones waiting, and closes waiting ones
 * past the bounds, oldest first. */
void api_guard_admit(api_guard *g);
/* Whether host:port's connection came while its address held its quota of connections,
 * all being served: its request is answered 503 then. */
bool api_guard_over_quota(api_guard *g, const char *host, uint16_t port);
/* The request of host:port's connection has arrived, head and body: it no longer waits, nor
 * can it be closed for waiting. */
void api_guard_arrived(api_guard *g, const char *host, uint16_t port);

#endif
