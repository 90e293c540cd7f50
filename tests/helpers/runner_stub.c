/*
 * runner_stub: a stand-in for `cairn runner` in the worker's tests. It speaks the worker's
 * control protocol (src/runner/runner.h) over stdin and stdout and loads nothing. Started as
 * `runner_stub runner --shard K --first A --last B ...` like the real runner.
 *
 * CAIRN_STUB_MODE picks its behaviour:
 *   normal (default)  listening (port 30000 + K), connected once told "next", loading 1..N
 *                     (N = B - A), loaded, warming_up, ready; then waits for shutdown
 *   hang_load         stops after the first loading message and ignores everything
 *   crash             exits with status 3 right after listening
 *   stall_running     like normal, then reports running and never any progress
 * Every mode but hang_load exits 0 at the end of stdin, and answers "shutdown" with
 * shutting_down and exit status 0. CAIRN_STUB_LOG names a file that gets each control
 * message received, one JSON line each.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cluster/wire.h"
#include "platform/platform.h"

static const char *arg_value(int argc, char **argv, const char *name) {
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            return argv[i + 1];
        }
    }
    return NULL;
}

static int arg_int(int argc, char **argv, const char *name) {
    const char *v = arg_value(argc, argv, name);
    return v ? atoi(v) : 0;
}

static void send_json(const char *text) {
    cJSON *o = cJSON_Parse(text);
    cairn_buf frame = {0};
    if (o && cairn_wire_encode_json(CAIRN_WIRE_CONTROL, o, &frame, NULL) == 0) {
        fwrite(frame.data, 1, frame.len, stdout);
        fflush(stdout);
    }
    cairn_buf_free(&frame);
    cJSON_Delete(o);
}

static void log_message(const char *json) {
    const char *path = getenv("CAIRN_STUB_LOG");
    FILE *f = path ? fopen(path, "a") : NULL;
    if (f) {
        fprintf(f, "%s\n", json);
        fclose(f);
    }
}

/* The op of the next control message ("" at end of file or on a bad frame). */
static void read_op(char *op, size_t size) {
    op[0] = '\0';
    unsigned char header[CAIRN_WIRE_HEADER_SIZE];
    if (fread(header, 1, sizeof header, stdin) != sizeof header) {
        return;
    }
    uint32_t len = (uint32_t)header[8] | (uint32_t)header[9] << 8 | (uint32_t)header[10] << 16 |
                   (uint32_t)header[11] << 24;
    char *payload = len <= CAIRN_WIRE_MAX_SMALL ? calloc(1, (size_t)len + 1) : NULL;
    if (!payload || fread(payload, 1, len, stdin) != len) {
        free(payload);
        return;
    }
    log_message(payload);
    cJSON *o = cJSON_Parse(payload);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "op");
    snprintf(op, size, "%s", cJSON_IsString(v) ? v->valuestring : "?");
    cJSON_Delete(o);
    free(payload);
}

/* Waits for one of the ops in want; answers shutdown and end of file by exiting. */
static void wait_for(const char *want) {
    for (;;) {
        char op[32];
        read_op(op, sizeof op);
        if (op[0] == '\0') {
            exit(0);
        }
        if (strcmp(op, "shutdown") == 0) {
            send_json("{\"op\":\"shutting_down\"}");
            exit(0);
        }
        if (want && strcmp(op, want) == 0) {
            return;
        }
    }
}

int main(int argc, char **argv) {
    cairn_console_init();
    cairn_stdin_binary();
    const char *env_mode = getenv("CAIRN_STUB_MODE");
    const char *mode = env_mode ? env_mode : "normal";
    if (argc < 2 || strcmp(argv[1], "runner") != 0) {
        fprintf(stderr, "runner_stub: the first argument must be \"runner\"\n");
        return 2;
    }
    int shard = arg_int(argc, argv, "--shard");
    int layers = arg_int(argc, argv, "--last") - arg_int(argc, argv, "--first");
    layers = layers < 1 ? 1 : layers;
    wait_for("start");
    char msg[128];
    snprintf(msg, sizeof msg, "{\"op\":\"listening\",\"port\":%d}", 30000 + shard);
    send_json(msg);
    if (strcmp(mode, "crash") == 0) {
        return 3;
    }
    wait_for("next");
    send_json("{\"op\":\"connected\"}");
    for (int i = 1; i <= layers; i++) {
        snprintf(msg, sizeof msg, "{\"op\":\"loading\",\"done\":%d,\"total\":%d}", i, layers);
        send_json(msg);
        if (strcmp(mode, "hang_load") == 0) {
            for (;;) {
                cairn_sleep_ms(1000); /* a hung disk: no progress, no answer */
            }
        }
        cairn_sleep_ms(20);
    }
    send_json("{\"op\":\"loaded\"}");
    send_json("{\"op\":\"warming_up\"}");
    send_json("{\"op\":\"ready\"}");
    if (strcmp(mode, "stall_running") == 0) {
        send_json("{\"op\":\"running\"}");
    }
    wait_for(NULL);
    return 0;
}
