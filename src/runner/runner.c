/*
 * runner: the process of one shard (see runner.h): its arguments, its control channel with
 * the worker, its data-plane listener and links, and its lifecycle up to serving. What
 * happens to requests once it serves is in flow.c.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "chat/chat.h"
#include "cluster/json_fields.h"
#include "platform/platform.h"
#include "runner/runner.h"
#include "runner/runner_internal.h"
#include "util/defaults.h"

#define DIAL_RETRY_MS 250
#define DIAL_ATTEMPTS 40
#define TIMER_MS 250
#define NEXT_LOSS_GRACE_MS 1000
/* An instance's runners need a handful of links (the previous shard, a node's clients);
 * strangers holding more than this many unproven links are refused at once. */
#define MAX_PROVING_LINKS 16

typedef enum peer_role { PEER_UNKNOWN, PEER_CLIENT, PEER_PIPELINE, PEER_NEXT } peer_role;

typedef struct data_peer {
    runner *r;
    peer_role role;
    bool proving; /* accepted and not up yet: counted in n_proving */
} data_peer;

/* ---- control channel ---- */

static void on_ctl_written(uv_write_t *req, int status) {
    (void)status; /* a worker that stopped reading is gone; stdin's end of file follows */
    free(req);
}

static void send_ctl(runner *r, cJSON *obj) {
    cairn_buf frame = {0};
    cairn_err err = {{0}};
    if (obj && cairn_wire_encode_json(CAIRN_WIRE_CONTROL, obj, &frame, &err) == 0) {
        uv_write_t *req = malloc(sizeof *req + frame.len);
        if (req) {
            char *bytes = (char *)(req + 1);
            memcpy(bytes, frame.data, frame.len);
            uv_buf_t buf = uv_buf_init(bytes, (unsigned)frame.len);
            if (uv_write(req, (uv_stream_t *)&r->ctl_out, &buf, 1, on_ctl_written) != 0) {
                free(req);
            }
        }
    }
    cairn_buf_free(&frame);
    cJSON_Delete(obj);
}

void runner_report(runner *r, const char *op) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "op", op);
    send_ctl(r, o);
}

static void report_number(runner *r, const char *op, const char *key, double value) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "op", op);
    cJSON_AddNumberToObject(o, key, value);
    send_ctl(r, o);
}

/* A runner that cannot go on says why and exits: its worker reports it failed, the master
 * places the instance again, and the process's memory is given back at once. */
void runner_fail(runner *r, const char *fmt, ...) {
    char reason[256]; /* a runner state's reason holds 255 bytes */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    cairn_log(&r->log, CAIRN_LOG_ERROR, "failed: %s", reason);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "op", "failed");
    cJSON_AddStringToObject(o, "reason", reason);
    send_ctl(r, o);
    r->exit_status = 1;
    r->phase = PHASE_SHUTTING_DOWN;
    uv_stop(r->loop);
}

/* RUNNING while any KV slot holds a request (on every shard, so the worker's progress
 * deadline watches each of them), READY otherwise. */
void runner_activity(runner *r) {
    bool running = false;
    for (int i = 0; r->slot_table && i < r->slots; i++) {
        running = running || r->slot_table[i].used;
    }
    if (r->phase == PHASE_READY && running != r->running_reported) {
        r->running_reported = running;
        runner_report(r, running ? "running" : "ready");
    }
}

static int on_start(runner *r, const cJSON *msg, cairn_err *err) {
    const char *hex = cJSON_GetStringValue(cairn_json_field(msg, "key"));
    if (r->phase != PHASE_STARTING || !hex) {
        return cairn_fail(err, "unexpected \"start\"");
    }
    if (cairn_instance_secret_from_hex(cJSON_GetStringValue(cairn_json_field(msg, "secret")),
                                       r->secret, err) != 0) {
        return cairn_fail_prefix(err, "\"start\"");
    }
    if (*hex) {
        size_t len = 0;
        if (sodium_hex2bin(r->key.bytes, sizeof r->key.bytes, hex, strlen(hex), NULL, &len, NULL) !=
                0 ||
            len != sizeof r->key.bytes) {
            return cairn_fail(err, "the cluster key is not %zu hex bytes", sizeof r->key.bytes);
        }
        r->keyed = true;
    }
    r->phase = PHASE_CONNECTING;
    report_number(r, "listening", "port", r->port);
    return 0;
}

static void start_loading(runner *r);
static void dial_next(runner *r);

static int on_next(runner *r, const cJSON *msg, cairn_err *err) {
    uint64_t port = 0;
    const char *host = cJSON_GetStringValue(cairn_json_field(msg, "host"));
    if (r->phase != PHASE_CONNECTING || r->next_port != 0 || !host ||
        strlen(host) >= sizeof r->next_host ||
        cairn_json_get_uint(msg, "port", 65535, &port, err) != 0 || port == 0) {
        return cairn_fail(err, "unexpected or malformed \"next\"");
    }
    snprintf(r->next_host, sizeof r->next_host, "%s", host);
    r->next_port = (uint16_t)port;
    if (r->is_first && r->is_last) {
        /* a single shard is its own ring */
        runner_report(r, "connected");
        start_loading(r);
        return 0;
    }
    dial_next(r);
    return 0;
}

static void begin_shutdown(runner *r) {
    if (r->phase == PHASE_SHUTTING_DOWN) {
        return;
    }
    r->phase = PHASE_SHUTTING_DOWN;
    runner_report(r, "shutting_down");
    uv_stop(r->loop);
}

static int on_ctl_frame(runner *r, const cairn_wire_frame *f, cairn_err *err) {
    cJSON *msg = NULL;
    if (f->type != CAIRN_WIRE_CONTROL || cairn_wire_parse_json(f, &msg, err) != 0) {
        return cairn_fail(err, "the worker sent a %s frame", cairn_wire_type_name(f->type));
    }
    const char *op = cJSON_GetStringValue(cairn_json_field(msg, "op"));
    int rc = 0;
    if (op && strcmp(op, "start") == 0) {
        rc = on_start(r, msg, err);
    } else if (op && strcmp(op, "next") == 0) {
        rc = on_next(r, msg, err);
    } else if (op && strcmp(op, "shutdown") == 0) {
        begin_shutdown(r);
    } else {
        rc = cairn_fail(err, "unknown control message \"%s\"", op ? op : "?");
    }
    cJSON_Delete(msg);
    return rc;
}

static void on_ctl_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    runner *r = h->data;
    *buf = uv_buf_init(r->ctl_buf, sizeof r->ctl_buf);
}

static void on_ctl_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    (void)buf;
    runner *r = s->data;
    if (nread < 0) {
        /* the node is gone (or closed our channel): a runner never outlives it, and there is
         * nothing to save, so leave at once without waiting for work in progress */
        if (nread != UV_EOF) {
            cairn_log(&r->log, CAIRN_LOG_WARN, "control channel: %s", uv_strerror((int)nread));
        } else {
            cairn_log(&r->log, CAIRN_LOG_DEBUG, "the node closed the control channel");
        }
        _Exit(r->phase == PHASE_SHUTTING_DOWN ? r->exit_status : 0);
    }
    cairn_err err = {{0}};
    if (nread > 0 &&
        cairn_wire_decoder_feed(r->ctl_decoder, r->ctl_buf, (size_t)nread, &err) != 0 &&
        !cairn_wire_decoder_failed(r->ctl_decoder)) {
        runner_fail(r, "control channel: %s", err.msg);
        return;
    }
    cairn_wire_frame f;
    int rc;
    while (r->phase != PHASE_SHUTTING_DOWN &&
           (rc = cairn_wire_decoder_next(r->ctl_decoder, &f, &err)) != 0) {
        if (rc < 0 || on_ctl_frame(r, &f, &err) != 0) {
            runner_fail(r, "control channel: %s", err.msg);
            return;
        }
    }
}

/* ---- data plane ---- */

static int on_hello(data_peer *p, dlink *l, const cJSON *msg, cairn_err *err) {
    runner *r = p->r;
    const char *op = cJSON_GetStringValue(cairn_json_field(msg, "op"));
    const char *role = cJSON_GetStringValue(cairn_json_field(msg, "role"));
    const char *instance = cJSON_GetStringValue(cairn_json_field(msg, "instance"));
    if (!op || strcmp(op, "hello") != 0 || !role || !instance) {
        return cairn_fail(err, "a data link must start with hello");
    }
    if (strcmp(instance, r->instance) != 0) {
        return cairn_fail(err, "this runner serves instance %s, not %s", r->instance, instance);
    }
    if (strcmp(role, "client") == 0 && r->is_first) {
        p->role = PEER_CLIENT;
    } else if (strcmp(role, "pipeline") == 0) {
        p->role = PEER_PIPELINE;
    } else {
        return cairn_fail(err, "this runner takes no %s links", role);
    }
    cairn_log(&r->log, CAIRN_LOG_DEBUG, "%s link from %s", role, dlink_name(l));
    return 0;
}

static int on_data_frame(dlink *l, const cairn_wire_frame *f, cairn_err *err) {
    data_peer *p = dlink_user(l);
    runner *r = p->r;
    if (p->role == PEER_PIPELINE) {
        return flow_on_pipeline_frame(r, l, f, err);
    }
    cJSON *msg = NULL;
    if (f->type != CAIRN_WIRE_CONTROL || cairn_wire_parse_json(f, &msg, err) != 0) {
        return cairn_fail(err, "unexpected %s frame", cairn_wire_type_name(f->type));
    }
    int rc;
    if (p->role == PEER_UNKNOWN) {
        rc = on_hello(p, l, msg, err);
    } else if (p->role == PEER_CLIENT) {
        rc = flow_on_client_frame(r, l, msg, err);
    } else {
        rc = cairn_fail(err, "the next shard sends nothing back");
    }
    cJSON_Delete(msg);
    return rc;
}

static void on_data_close(dlink *l, const char *reason) {
    data_peer *p = dlink_user(l);
    runner *r = p->r;
    if (p->proving) {
        r->n_proving--;
    }
    if (p->role == PEER_CLIENT) {
        flow_client_gone(r, l);
    }
    if (p->role == PEER_NEXT && r->next == l) {
        r->next = NULL;
        if (r->phase != PHASE_SHUTTING_DOWN) {
            if (r->phase == PHASE_CONNECTING && r->dial_attempts < DIAL_ATTEMPTS) {
                cairn_log(&r->log, CAIRN_LOG_DEBUG, "%s; trying again", reason);
            } else if (!r->next_lost_at) {
                /* when an instance goes, its runners are told to shut down at once and
                 * their links close in any order: wait a moment for our own "shutdown"
                 * before calling this a failure */
                r->next_lost_at = uv_now(r->loop);
                snprintf(r->next_lost_reason, sizeof r->next_lost_reason, "%s", reason);
            }
        }
    } else if (p->role == PEER_UNKNOWN) {
        cairn_log(&r->log, CAIRN_LOG_WARN, "a data link closed before its hello: %s", reason);
    } else if (p->role != PEER_CLIENT && r->phase != PHASE_SHUTTING_DOWN) {
        cairn_log(&r->log, CAIRN_LOG_WARN, "the previous shard's link closed: %s", reason);
    } else if (p->role != PEER_NEXT) {
        cairn_log(&r->log, CAIRN_LOG_DEBUG, "data link closed: %s", reason);
    }
    free(p);
}

static void on_next_up(dlink *l) {
    data_peer *p = dlink_user(l);
    runner *r = p->r;
    cJSON *hello = cJSON_CreateObject();
    cJSON_AddStringToObject(hello, "op", "hello");
    cJSON_AddStringToObject(hello, "role", "pipeline");
    cJSON_AddStringToObject(hello, "instance", r->instance);
    dlink_send_control(l, hello);
    cJSON_Delete(hello);
    if (r->phase == PHASE_CONNECTING) {
        cairn_log(&r->log, CAIRN_LOG_INFO, "linked to the next shard at %s", dlink_name(l));
        runner_report(r, "connected");
        start_loading(r);
    }
}

static const dlink_callbacks next_callbacks = {on_next_up, on_data_frame, on_data_close};
static void on_accepted_up(dlink *l) {
    data_peer *p = dlink_user(l);
    p->proving = false;
    p->r->n_proving--;
}

static const dlink_callbacks accepted_callbacks = {on_accepted_up, on_data_frame, on_data_close};

static void refuse_connection(uv_stream_t *server, uv_loop_t *loop) {
    uv_tcp_t *drop = malloc(sizeof *drop);
    if (drop && uv_tcp_init(loop, drop) == 0) {
        uv_accept(server, (uv_stream_t *)drop);
        uv_close((uv_handle_t *)drop, (uv_close_cb)free);
    } else {
        free(drop);
    }
}

static void dial_next(runner *r) {
    data_peer *p = calloc(1, sizeof *p);
    if (!p) {
        runner_fail(r, "out of memory");
        return;
    }
    p->r = r;
    p->role = PEER_NEXT;
    r->dial_attempts++;
    cairn_err err = {{0}};
    r->next = dlink_dial(r->loop, r->next_host, r->next_port, r->keyed ? &r->key : NULL, r->secret,
                         &next_callbacks, p, &err);
    if (!r->next) {
        free(p);
        runner_fail(r, "cannot link to the next shard: %s", err.msg);
    }
}

static void on_connection(uv_stream_t *server, int status) {
    runner *r = server->data;
    if (status < 0 || r->phase == PHASE_STARTING || r->phase == PHASE_SHUTTING_DOWN) {
        refuse_connection(server, r->loop);
        return;
    }
    if (r->n_proving >= MAX_PROVING_LINKS) {
        cairn_log(&r->log, CAIRN_LOG_DEBUG,
                  "refused a data link: %d links are still proving the instance's secret",
                  r->n_proving);
        refuse_connection(server, r->loop);
        return;
    }
    data_peer *p = calloc(1, sizeof *p);
    if (!p) {
        refuse_connection(server, r->loop);
        return;
    }
    p->r = r;
    p->proving = true;
    r->n_proving++;
    cairn_err err = {{0}};
    if (!dlink_accept(server, r->keyed ? &r->key : NULL, r->secret, &accepted_callbacks, p, &err)) {
        cairn_log(&r->log, CAIRN_LOG_WARN, "%s", err.msg);
        r->n_proving--;
        free(p);
    }
}

static int start_listening(runner *r, cairn_err *err) {
    struct sockaddr_storage addr;
    if (uv_ip4_addr(r->listen_host, 0, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(r->listen_host, 0, (struct sockaddr_in6 *)&addr) != 0) {
        return cairn_fail(err, "--listen needs a numeric address, not %s", r->listen_host);
    }
    int rc = uv_tcp_init(r->loop, &r->listener);
    r->listener.data = r;
    if (rc == 0) {
        rc = uv_tcp_bind(&r->listener, (const struct sockaddr *)&addr, 0);
    }
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&r->listener, 64, on_connection);
    }
    struct sockaddr_storage bound;
    int len = sizeof bound;
    if (rc == 0) {
        rc = uv_tcp_getsockname(&r->listener, (struct sockaddr *)&bound, &len);
    }
    if (rc != 0) {
        return cairn_fail(err, "cannot listen on %s: %s", r->listen_host, uv_strerror(rc));
    }
    r->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
    return 0;
}

/* ---- loading ---- */

static void on_load_progress(void *user, int done, int total) {
    runner *r = user;
    uv_mutex_lock(&r->progress_lock);
    int layers = r->last - r->first;
    r->load_total = layers;
    r->load_done = total > 0 ? (int)((long long)done * layers / total) : 0;
    uv_mutex_unlock(&r->progress_lock);
    uv_async_send(&r->progress_async);
}

static void hang_forever(void) {
    for (;;) {
        cairn_sleep_ms(1000);
    }
}

static void load_work(uv_work_t *req) {
    runner *r = req->data;
    if (r->hang && strcmp(r->hang, "load") == 0) {
        on_load_progress(r, 0, 1);
        hang_forever();
    }
    cairn_shard_config cfg = {.model_path = r->model_path,
                              .first_layer = r->first,
                              .last_layer = r->last,
                              .n_ctx = r->ctx,
                              .n_seq = r->slots,
                              .n_threads = r->threads,
                              .progress = on_load_progress,
                              .progress_user = r};
    r->load_rc = cairn_shard_load_ggml(&cfg, &r->shard_obj, &r->load_err);
    if (r->load_rc == 0 && (r->is_first || r->is_last)) {
        r->load_rc = cairn_tokenizer_load_file(r->model_path, &r->tok, &r->load_err);
    }
    if (r->load_rc == 0 && r->is_first) {
        r->load_rc = cairn_chat_template_load(r->model_path, &r->chat_template, &r->load_err);
    }
}

static void send_progress(runner *r) {
    uv_mutex_lock(&r->progress_lock);
    int done = r->load_done, total = r->load_total;
    uv_mutex_unlock(&r->progress_lock);
    if (r->phase == PHASE_LOADING && total > 0 && done != r->load_done_sent) {
        r->load_done_sent = done;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "op", "loading");
        cJSON_AddNumberToObject(o, "done", done);
        cJSON_AddNumberToObject(o, "total", total);
        send_ctl(r, o);
    }
}

static void on_progress_async(uv_async_t *a) {
    send_progress(a->data);
}

static void after_load(uv_work_t *req, int status) {
    runner *r = req->data;
    if (r->phase == PHASE_SHUTTING_DOWN) {
        return;
    }
    if (status != 0 || r->load_rc != 0) {
        runner_fail(r, "cannot load the shard: %s", r->load_err.msg[0] ? r->load_err.msg : "?");
        return;
    }
    send_progress(r);
    const cairn_shard_info *info = &r->shard_obj->info;
    r->n_embd = info->n_embd;
    r->n_vocab = info->n_vocab;
    r->n_ctx = info->n_ctx;
    r->n_batch = info->n_batch;
    cairn_err err = {{0}};
    if (flow_init(r, &err) != 0) {
        runner_fail(r, "%s", err.msg);
        return;
    }
    cairn_log(&r->log, CAIRN_LOG_INFO, "loaded layers %d..%d (%.1f MiB of weights)", r->first,
              r->last, (double)info->weight_bytes / (1024.0 * 1024.0));
    runner_report(r, "loaded");
    r->phase = PHASE_WARMING_UP;
    runner_report(r, "warming_up");
    flow_warm_up(r);
}

static void start_loading(runner *r) {
    r->phase = PHASE_LOADING;
    r->load_work.data = r;
    int rc = uv_queue_work(r->loop, &r->load_work, load_work, after_load);
    if (rc != 0) {
        runner_fail(r, "cannot start loading: %s", uv_strerror(rc));
    }
}

/* ---- timer: dial retries and token progress ---- */

static void on_timer(uv_timer_t *t) {
    runner *r = t->data;
    if (r->next_lost_at && uv_now(r->loop) - r->next_lost_at >= NEXT_LOSS_GRACE_MS) {
        runner_fail(r, "lost the link to the next shard: %s", r->next_lost_reason);
        return;
    }
    if (r->phase == PHASE_CONNECTING && r->next_port && !r->next && !(r->is_first && r->is_last)) {
        dial_next(r);
    }
    if (r->phase == PHASE_READY && r->steps != r->steps_reported) {
        r->steps_reported = r->steps;
        report_number(r, "progress", "steps", (double)r->steps);
    }
}

/* ---- arguments and main ---- */

static int parse_int(const char *text, int lo, int hi, int *out) {
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (!*text || *end || v < lo || v > hi) {
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int parse_args(runner *r, int argc, char **argv, cairn_log_level *level, cairn_err *err) {
    const char *node = "runner";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            return cairn_fail(err, "%s needs a value", a);
        }
        i++;
        int bad = 0;
        if (strcmp(a, "--model") == 0) {
            r->model_path = v;
        } else if (strcmp(a, "--instance") == 0) {
            r->instance = v;
        } else if (strcmp(a, "--listen") == 0) {
            r->listen_host = v;
        } else if (strcmp(a, "--node") == 0) {
            node = v;
        } else if (strcmp(a, "--log-level") == 0) {
            bad = cairn_log_level_parse(v, level, err);
        } else if (strcmp(a, "--shard") == 0) {
            bad = parse_int(v, 0, 1 << 16, &r->shard);
        } else if (strcmp(a, "--first") == 0) {
            bad = parse_int(v, 0, 1 << 20, &r->first);
        } else if (strcmp(a, "--last") == 0) {
            bad = parse_int(v, 1, 1 << 20, &r->last);
        } else if (strcmp(a, "--n-layers") == 0) {
            bad = parse_int(v, 1, 1 << 20, &r->n_layers);
        } else if (strcmp(a, "--slots") == 0) {
            bad = parse_int(v, 1, 256, &r->slots);
        } else if (strcmp(a, "--ctx") == 0) {
            bad = parse_int(v, 0, 1 << 20, &r->ctx);
        } else if (strcmp(a, "--threads") == 0) {
            bad = parse_int(v, 0, 1024, &r->threads);
        } else {
            return cairn_fail(err, "unknown argument %s", a);
        }
        if (bad) {
            return err->msg[0] ? -1 : cairn_fail(err, "bad value for %s: %s", a, v);
        }
    }
    if (!r->model_path || !r->instance || r->last <= r->first || r->last > r->n_layers) {
        return cairn_fail(err, "usage: cairn runner --model PATH --instance ID --shard K "
                               "--first A --last B --n-layers N [--listen ADDR] [--slots N] "
                               "[--ctx N] [--threads N] [--node ID] [--log-level L]");
    }
    if (!r->listen_host) {
        r->listen_host = "127.0.0.1";
    }
    r->is_first = r->first == 0;
    r->is_last = r->last == r->n_layers;
    char id[160];
    snprintf(id, sizeof id, "%s/%s.%d", node, r->instance, r->shard);
    cairn_log_set_node_id(&r->log, id);
    return 0;
}

static int open_control(runner *r, cairn_err *err) {
    int rc = uv_pipe_init(r->loop, &r->ctl_in, 0);
    if (rc == 0) {
        rc = uv_pipe_open(&r->ctl_in, 0);
    }
    if (rc == 0) {
        rc = uv_pipe_init(r->loop, &r->ctl_out, 0);
    }
    if (rc == 0) {
        rc = uv_pipe_open(&r->ctl_out, 1);
    }
    r->ctl_in.data = r;
    r->ctl_out.data = r;
    if (rc == 0) {
        rc = uv_read_start((uv_stream_t *)&r->ctl_in, on_ctl_alloc, on_ctl_read);
    }
    if (rc != 0) {
        return cairn_fail(err,
                          "no control channel on stdin/stdout (%s): runners are started "
                          "by a node",
                          uv_strerror(rc));
    }
    r->ctl_decoder = cairn_wire_decoder_new(CAIRN_WIRE_MAX_EVENT, err);
    return r->ctl_decoder ? 0 : -1;
}

static int setup(runner *r, cairn_err *err) {
    if (uv_mutex_init(&r->progress_lock) != 0 ||
        uv_async_init(r->loop, &r->progress_async, on_progress_async) != 0 ||
        uv_timer_init(r->loop, &r->timer) != 0) {
        return cairn_fail(err, "cannot set up the event loop");
    }
    r->progress_async.data = r;
    r->timer.data = r;
    if (start_listening(r, err) != 0 || open_control(r, err) != 0) {
        return -1;
    }
    return uv_timer_start(&r->timer, on_timer, TIMER_MS, TIMER_MS) == 0
               ? 0
               : cairn_fail(err, "cannot start the timer");
}

static void close_walk(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

int cairn_runner_main(int argc, char **argv) {
    runner *r = calloc(1, sizeof *r);
    if (!r) {
        fprintf(stderr, "cairn runner: out of memory\n");
        return 1;
    }
    cairn_log_level level = CAIRN_LOG_INFO;
    cairn_logger_init(&r->log, level, "runner", stderr);
    r->hang = getenv("CAIRN_RUNNER_TEST_HANG");
    const char *step_ms = getenv("CAIRN_RUNNER_TEST_STEP_MS");
    if (step_ms) {
        r->step_delay_ms = atoi(step_ms);
    }
    const char *max_waiting = getenv("CAIRN_RUNNER_TEST_MAX_WAITING");
    r->max_waiting = max_waiting && atoi(max_waiting) > 0 ? atoi(max_waiting) : RUNNER_MAX_WAITING;
    r->slots = CAIRN_DEFAULT_SLOTS;
    cairn_err err = {{0}};
    uv_loop_t loop;
    int status = 1;
    if (parse_args(r, argc, argv, &level, &err) != 0) {
        fprintf(stderr, "cairn runner: %s\n", err.msg);
        free(r);
        return 2;
    }
    cairn_log_set_level(&r->log, level);
    if (uv_loop_init(&loop) != 0) {
        free(r);
        return 1;
    }
    r->loop = &loop;
    if (setup(r, &err) != 0) {
        cairn_log(&r->log, CAIRN_LOG_ERROR, "%s", err.msg);
    } else {
        uv_run(&loop, UV_RUN_DEFAULT);
        status = r->exit_status;
    }
    /* whatever is still in flight (a hung load, a compute step) is abandoned: the process
     * ends here, and its worker sees it exit */
    uv_walk(&loop, close_walk, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    fflush(stderr);
    _Exit(status);
}
