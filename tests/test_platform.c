/* Tests of the platform layer: the same expectations on every OS (run natively on Linux and
 * under Wine for the Windows build). */
/* libuv's headers use POSIX types (pthread_rwlock_t) that strict C11 hides. */
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
#include <uv.h>

#include "platform/platform.h"

/* Non-ASCII on purpose: paths must round-trip as UTF-8 (Windows' ANSI calls would fail). */
#define UTF8_PATH CAIRN_BINARY_DIR "/test_platform_\xc3\xa9t\xc3\xa9_\xe6\xa8\xa1\xe5\x9e\x8b.bin"
#define UTF8_PATH_2 CAIRN_BINARY_DIR "/test_platform_\xce\xb1\xce\xb2\xce\xb3.bin"
#define ASCII_PATH CAIRN_BINARY_DIR "/test_platform_plain.bin"
#define EMPTY_PATH CAIRN_BINARY_DIR "/test_platform_empty.bin"

static bool is_windows(void) {
    return strcmp(cairn_platform_name(), "windows") == 0;
}

static void write_file(const char *path, const void *data, size_t len) {
    FILE *f = cairn_fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void test_platform_name(void **state) {
    const char *name = cairn_platform_name();
    assert_true(strcmp(name, "linux") == 0 || strcmp(name, "windows") == 0 ||
                strcmp(name, "macos") == 0 || strcmp(name, "unix") == 0);
}

static void test_clock_and_sleep(void **state) {
    double a = cairn_now_seconds();
    cairn_sleep_ms(30);
    double b = cairn_now_seconds();
    /* Windows' sleeps are accurate to a timer tick; the clock itself is exact. */
    assert_true(b - a >= 0.025);
    assert_true(b - a < 5.0);
    cairn_sleep_ms(0);
    cairn_sleep_ms(-5);
    assert_true(cairn_now_seconds() >= b);
}

static void test_machine_facts(void **state) {
    assert_true(cairn_cpu_count() >= 1);
    uint64_t total = cairn_memory_total();
    assert_true(total > 0);
    assert_true(cairn_memory_available() <= total);
    char *block = malloc(4 << 20);
    assert_non_null(block);
    memset(block, 1, 4 << 20);
    assert_true(cairn_peak_rss() >= (4u << 20));
    free(block);

    char model[128];
    cairn_cpu_model(model, sizeof(model));
    size_t n = strlen(model);
    assert_true(n < sizeof(model));
    assert_null(strchr(model, '\n'));
    assert_true(n == 0 || (model[0] != ' ' && model[n - 1] != ' '));
    char tiny[5];
    cairn_cpu_model(tiny, sizeof(tiny));
    assert_true(strlen(tiny) < sizeof(tiny));
}

static void test_map_utf8_path(void **state) {
    const char text[] = "cairn maps files by UTF-8 name";
    write_file(UTF8_PATH, text, sizeof(text));
    cairn_mapped_file map;
    cairn_err err = {{0}};
    int rc = cairn_map_file(UTF8_PATH, &map, &err);
    if (rc != 0) {
        print_error("%s\n", err.msg);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(map.size, sizeof(text));
    assert_memory_equal(map.data, text, sizeof(text));
    int64_t resident = cairn_mapped_resident_bytes(&map, 0, map.size);
    assert_true(resident == -1 || resident > 0); /* the page was just read */
    assert_true(cairn_mapped_resident_bytes(&map, map.size + 1, 1) == -1);
    cairn_unmap_file(&map);
    assert_null(map.data);

    /* Replacing an existing file works on every OS; then clean up by plain names. */
    write_file(UTF8_PATH_2, "x", 1);
    assert_int_equal(cairn_replace_file(UTF8_PATH, UTF8_PATH_2, &err), 0);
    assert_null(cairn_fopen(UTF8_PATH, "rb"));
    FILE *f = cairn_fopen(UTF8_PATH_2, "rb");
    assert_non_null(f);
    char back[sizeof(text)];
    assert_int_equal(fread(back, 1, sizeof(back), f), sizeof(text));
    fclose(f);
    assert_memory_equal(back, text, sizeof(text));
    assert_int_equal(cairn_replace_file(UTF8_PATH_2, ASCII_PATH, &err), 0);
    assert_int_equal(remove(ASCII_PATH), 0);
}

static void test_map_errors(void **state) {
    cairn_mapped_file map;
    cairn_err err = {{0}};
    assert_int_equal(cairn_map_file(CAIRN_BINARY_DIR "/no-such-file.bin", &map, &err), -1);
    assert_non_null(strstr(err.msg, "no-such-file.bin"));
    assert_null(map.data);
    assert_int_equal(cairn_map_file(CAIRN_BINARY_DIR, &map, &err), -1);
    assert_non_null(strstr(err.msg, "not a regular file"));
    write_file(EMPTY_PATH, "", 0);
    assert_int_equal(cairn_map_file(EMPTY_PATH, &map, &err), -1);
    assert_non_null(strstr(err.msg, "is empty"));
    assert_int_equal(remove(EMPTY_PATH), 0);
    assert_int_equal(cairn_replace_file(EMPTY_PATH, ASCII_PATH, &err), -1);
    assert_non_null(strstr(err.msg, "cannot rename"));
}

static void test_terminal(void **state) {
    write_file(ASCII_PATH, "x", 1);
    FILE *f = cairn_fopen(ASCII_PATH, "rb");
    assert_non_null(f);
    assert_false(cairn_is_terminal(f));
    fclose(f);
    assert_int_equal(remove(ASCII_PATH), 0);
}

/* A node creates its models directory with every missing parent (on a fresh account even
 * ~/.local/share may be missing). */
static void test_make_dirs(void **state) {
    (void)state;
    cairn_err err = {{0}};
    const char *deep = CAIRN_BINARY_DIR "/test_platform_dirs/a/b/c";
    assert_int_equal(cairn_make_dirs(deep, &err), 0);
    assert_int_equal(cairn_make_dirs(deep, &err), 0); /* exists already: fine */
    assert_int_equal(cairn_make_dir(deep, &err), 0);
    FILE *f = cairn_fopen(CAIRN_BINARY_DIR "/test_platform_dirs/file", "wb");
    assert_non_null(f);
    fclose(f);
    /* A file in the way is an error. */
    assert_int_equal(cairn_make_dirs(CAIRN_BINARY_DIR "/test_platform_dirs/file/sub", &err), -1);
    assert_true(err.msg[0] != '\0');
}

static void test_models_dir(void **state) {
    cairn_err err = {{0}};
    char *dir = cairn_default_models_dir(&err);
    if (!dir) {
        print_error("%s\n", err.msg);
    }
    assert_non_null(dir);
    const char *base = NULL;
    const char *suffix = NULL;
    if (is_windows()) {
        base = getenv("LOCALAPPDATA");
        suffix = "\\cairn\\models";
    } else if (strcmp(cairn_platform_name(), "macos") == 0) {
        base = getenv("HOME");
        suffix = "/Library/Application Support/cairn/models";
    } else {
        const char *xdg = getenv("XDG_DATA_HOME");
        base = xdg && xdg[0] == '/' ? xdg : getenv("HOME");
        suffix = base == xdg ? "/cairn/models" : "/.local/share/cairn/models";
    }
    assert_non_null(base);
    assert_true(cairn_str_starts_with(dir, base));
    assert_string_equal(dir + strlen(base), suffix);
    free(dir);
}

static void test_args_utf8(void **state) {
    char **argv = *state;
    assert_non_null(argv[0]);
    assert_non_null(strstr(argv[0], "test_platform"));
    assert_null(argv[1]);
}

static void test_service(void **state) {
    cairn_err err = {{0}};
    char name[64];
    snprintf(name, sizeof(name), "cairn-test-%u", (unsigned)(cairn_now_seconds() * 1000.0));
    int rc = cairn_service_install(name, "cairn test service", "run", &err);
    if (!is_windows()) {
        assert_int_equal(rc, -1);
        assert_non_null(strstr(err.msg, "not supported on this OS"));
        assert_false(cairn_service_exists(name));
        assert_int_equal(cairn_service_uninstall(name, &err), -1);
        return;
    }
    if (rc != 0 && strstr(err.msg, "Administrator")) {
        skip(); /* a real Windows account without administrator rights */
    }
    if (rc != 0) {
        print_error("%s\n", err.msg);
    }
    assert_int_equal(rc, 0);
    assert_true(cairn_service_exists(name));
    assert_int_equal(cairn_service_install(name, NULL, "run", &err), -1);
    assert_non_null(strstr(err.msg, "already installed"));
    assert_int_equal(cairn_service_uninstall(name, &err), 0);
    assert_false(cairn_service_exists(name));
    assert_int_equal(cairn_service_uninstall(name, &err), -1);
    assert_non_null(strstr(err.msg, "not installed"));
}

/* A loopback connection through libuv: a server, its client and the accepted end. */
typedef struct tcp_pair {
    uv_tcp_t server, client, accepted;
    uv_connect_t connect;
    bool connected, accepted_ok;
} tcp_pair;

static void on_pair_connection(uv_stream_t *server, int status) {
    tcp_pair *p = server->data;
    assert_int_equal(status, 0);
    assert_int_equal(uv_tcp_init(server->loop, &p->accepted), 0);
    assert_int_equal(uv_accept(server, (uv_stream_t *)&p->accepted), 0);
    p->accepted_ok = true;
}

static void on_pair_connect(uv_connect_t *req, int status) {
    tcp_pair *p = req->data;
    assert_int_equal(status, 0);
    p->connected = true;
}

static uint16_t local_port(const uv_tcp_t *tcp) {
    struct sockaddr_storage addr;
    int len = sizeof addr;
    assert_int_equal(uv_tcp_getsockname(tcp, (struct sockaddr *)&addr, &len), 0);
    return ntohs(((const struct sockaddr_in *)&addr)->sin_port);
}

static void open_pair(uv_loop_t *loop, tcp_pair *p) {
    struct sockaddr_in addr;
    assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &addr), 0);
    assert_int_equal(uv_tcp_init(loop, &p->server), 0);
    p->server.data = p;
    assert_int_equal(uv_tcp_bind(&p->server, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&p->server, 4, on_pair_connection), 0);
    assert_int_equal(uv_ip4_addr("127.0.0.1", local_port(&p->server), &addr), 0);
    assert_int_equal(uv_tcp_init(loop, &p->client), 0);
    p->connect.data = p;
    assert_int_equal(
        uv_tcp_connect(&p->connect, &p->client, (const struct sockaddr *)&addr, on_pair_connect),
        0);
    while (!p->connected || !p->accepted_ok) {
        uv_run(loop, UV_RUN_ONCE);
    }
}

/* The server end's socket is listed by its local port, with its client's address, unread
 * bytes show, and shutting it down works. */
static void test_socket_peers(void **state) {
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    tcp_pair p = {0};
    open_pair(&loop, &p);
    uint16_t port = local_port(&p.server);
    cairn_socket_peer peers[4];
    assert_int_equal(cairn_socket_peers(port, peers, CAIRN_ARRAY_LEN(peers)), 1);
    assert_string_equal(peers[0].host, "127.0.0.1");
    assert_int_equal(peers[0].port, local_port(&p.client));
    assert_false(peers[0].unread);
    assert_int_equal(cairn_socket_peers(port, peers, 0), 1); /* counted, none written */
    uv_buf_t byte = uv_buf_init("x", 1);
    assert_int_equal(uv_try_write((uv_stream_t *)&p.client, &byte, 1), 1);
    for (int i = 0; i < 200 && !peers[0].unread; i++) { /* loopback delivers at once, or soon */
        cairn_sleep_ms(10);
        assert_int_equal(cairn_socket_peers(port, peers, CAIRN_ARRAY_LEN(peers)), 1);
    }
    assert_true(peers[0].unread);
    assert_int_equal(cairn_socket_shutdown(peers[0].handle), 0);
    uv_close((uv_handle_t *)&p.client, NULL);
    uv_close((uv_handle_t *)&p.accepted, NULL);
    uv_close((uv_handle_t *)&p.server, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(int argc, char **argv) {
    cairn_err err = {{0}};
    if (cairn_args_utf8(&argc, &argv, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    if (argc != 1) {
        fprintf(stderr, "test_platform takes no arguments\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_platform_name),
        cmocka_unit_test(test_clock_and_sleep),
        cmocka_unit_test(test_machine_facts),
        cmocka_unit_test(test_map_utf8_path),
        cmocka_unit_test(test_map_errors),
        cmocka_unit_test(test_terminal),
        cmocka_unit_test(test_models_dir),
        cmocka_unit_test(test_make_dirs),
        cmocka_unit_test_prestate(test_args_utf8, argv),
        cmocka_unit_test(test_service),
        cmocka_unit_test(test_socket_peers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
