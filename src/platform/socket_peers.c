/* platform socket peers: the part of cairn_socket_peers that is the same on every system
 * (see platform_internal.h); finding the sockets and reading their addresses is the OS
 * files' part. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* libuv's headers use POSIX types */
#endif
#include "platform/platform_internal.h"

int platform_address_port(const struct sockaddr_storage *a) {
    if (a->ss_family == AF_INET) {
        return ntohs(((const struct sockaddr_in *)a)->sin_port);
    }
    if (a->ss_family == AF_INET6) {
        return ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
    }
    return -1;
}

bool platform_peer_named(const struct sockaddr_storage *peer, intptr_t handle, bool unread,
                         cairn_socket_peer *out) {
    int port = platform_address_port(peer);
    if (port < 0) {
        return false;
    }
    int named = peer->ss_family == AF_INET
                    ? uv_ip4_name((const struct sockaddr_in *)peer, out->host, sizeof out->host)
                    : uv_ip6_name((const struct sockaddr_in6 *)peer, out->host, sizeof out->host);
    out->port = (uint16_t)port;
    out->handle = handle;
    out->unread = unread;
    return named == 0;
}

void platform_peer_add(const cairn_socket_peer *peer, cairn_socket_peer *out, size_t max,
                       size_t *n) {
    if (*n < max) {
        out[*n] = *peer;
    }
    (*n)++;
}
