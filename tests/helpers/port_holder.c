/*
 * port_holder: a stand-in for another program that holds a UDP port without sharing it, for
 * the CLI test of discovery that cannot start (tests/cli/cluster_discovery_retry.sh). Started
 * as `port_holder PORT`: binds 0.0.0.0:PORT without address reuse, prints "holding PORT" once
 * it holds it, and keeps it (reading and dropping whatever arrives) until it is killed.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* pthread types in uv.h under strict C11 */
#endif
#include <stdio.h>
#include <stdlib.h>

#include <uv.h>

static char scratch[2048];

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(scratch, sizeof scratch);
}

static void on_recv(uv_udp_t *udp, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags) {
    (void)udp;
    (void)nread;
    (void)buf;
    (void)addr;
    (void)flags;
}

int main(int argc, char **argv) {
    char *end = NULL;
    long port = argc == 2 ? strtol(argv[1], &end, 10) : 0;
    if (!end || *end != '\0' || port < 1 || port > 65535) {
        fprintf(stderr, "usage: port_holder PORT\n");
        return 2;
    }
    uv_loop_t *loop = uv_default_loop();
    uv_udp_t udp;
    struct sockaddr_in any;
    int rc = uv_ip4_addr("0.0.0.0", (int)port, &any);
    if (rc == 0) {
        rc = uv_udp_init(loop, &udp);
    }
    if (rc == 0) {
        rc = uv_udp_bind(&udp, (const struct sockaddr *)&any, 0);
    }
    if (rc == 0) {
        rc = uv_udp_recv_start(&udp, on_alloc, on_recv);
    }
    if (rc != 0) {
        fprintf(stderr, "port_holder: cannot hold UDP port %ld: %s\n", port, uv_strerror(rc));
        return 1;
    }
    printf("holding %ld\n", port);
    fflush(stdout);
    return uv_run(loop, UV_RUN_DEFAULT);
}
