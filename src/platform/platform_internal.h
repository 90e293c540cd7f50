/* platform internals: what platform_posix.c and platform_win32.c share (socket_peers.c).
 * Only the platform module includes this. */
#ifndef CAIRN_PLATFORM_INTERNAL_H
#define CAIRN_PLATFORM_INTERNAL_H

#include <uv.h>

#include "platform/platform.h"

/* The port of an IPv4 or IPv6 address; -1 for another family. */
int platform_address_port(const struct sockaddr_storage *a);
/* Fills out with the client at peer of socket handle; false when peer is no IP address. */
bool platform_peer_named(const struct sockaddr_storage *peer, intptr_t handle, bool unread,
                         cairn_socket_peer *out);
/* Adds peer to out[max]; n counts every peer added, also past max. */
void platform_peer_add(const cairn_socket_peer *peer, cairn_socket_peer *out, size_t max,
                       size_t *n);

#endif
