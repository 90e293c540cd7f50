/*
 * worker process: one runner process on the loop: its spawn in a process tree of its own,
 * the control frames over its stdin and stdout, its kill, and its exit. What the frames
 * mean, and what an exit means for the cluster, is worker.c's business.
 */
#define _POSIX_C_SOURCE 200809L /* pthread types in uv.h under strict C11 */

#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "worker/worker_internal.h"

typedef struct write_req {
    uv_write_t req;
    cairn_buf frame;
} write_req;

static void on_handle_closed(uv_handle_t *h) {
    worker_runner *r = h->data;
    if (--r->open_handles > 0) {
        return;
    }
    cairn_process_tree_free(r->tree);
    r->tree = NULL;
    cairn_wire_decoder_free(r->decoder);
    r->decoder = NULL;
    worker_on_closed(r);
}

static void close_handle(worker_runner *r, uv_handle_t *h, bool *open) {
    if (*open) {
        *open = false;
        uv_close(h, on_handle_closed);
    }
    (void)r;
}

void runner_close_stdin(worker_runner *r) {
    close_handle(r, (uv_handle_t *)&r->in, &r->in_open);
}

void runner_close_handles(worker_runner *r) {
    close_handle(r, (uv_handle_t *)&r->in, &r->in_open);
    close_handle(r, (uv_handle_t *)&r->out, &r->out_open);
    close_handle(r, (uv_handle_t *)&r->proc, &r->spawned);
}

static void on_write(uv_write_t *req, int status) {
    write_req *w = (write_req *)req;
    (void)status; /* a runner that stopped reading is judged by its exit, not by this */
    cairn_buf_free(&w->frame);
    free(w);
}

void runner_send(worker_runner *r, const cJSON *msg) {
    if (!r->in_open) {
        return;
    }
    write_req *req = calloc(1, sizeof *req);
    cairn_err err = {{0}};
    if (!req || cairn_wire_encode_json(CAIRN_WIRE_CONTROL, msg, &req->frame, &err) != 0) {
        cairn_log(r->w->log, CAIRN_LOG_ERROR, "cannot frame a message for runner %s/%u: %s",
                  r->instance_id, r->shard, req ? err.msg : "out of memory");
        if (req) {
            cairn_buf_free(&req->frame);
        }
        free(req);
        return;
    }
    uv_buf_t b = uv_buf_init(req->frame.data, (unsigned int)req->frame.len);
    if (uv_write(&req->req, (uv_stream_t *)&r->in, &b, 1, on_write) != 0) {
        cairn_buf_free(&req->frame);
        free(req);
    }
}

void runner_send_op(worker_runner *r, const char *op) {
    cJSON *o = cJSON_CreateObject();
    if (o && cJSON_AddStringToObject(o, "op", op)) {
        runner_send(r, o);
    }
    cJSON_Delete(o);
}

void runner_kill(worker_runner *r) {
    if (r->tree) {
        cairn_process_tree_kill(r->tree);
    } else if (r->spawned && !r->exited) {
        uv_process_kill(&r->proc, SIGKILL);
    }
}

static void on_exit(uv_process_t *p, int64_t exit_status, int term_signal) {
    worker_runner *r = p->data;
    r->exited = true;
    r->exit_status = exit_status;
    r->term_signal = term_signal;
    r->exited_at = cairn_now_seconds();
    /* Whatever the runner started dies with it. */
    cairn_process_tree_kill(r->tree);
    /* Closing, nothing waits for the runner's last words (and no tick drains them). */
    if ((!r->out_open || r->w->closing) && !r->finished) {
        worker_on_finished(r);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    worker_runner *r = h->data;
    (void)suggested;
    *buf = uv_buf_init(r->read_buf, sizeof r->read_buf);
}

static int take_frames(worker_runner *r, cairn_err *err) {
    cairn_wire_frame f;
    int rc = 0;
    while ((rc = cairn_wire_decoder_next(r->decoder, &f, err)) == 1) {
        if (f.type != CAIRN_WIRE_CONTROL) {
            return cairn_fail(err, "a %s frame on the control channel",
                              cairn_wire_type_name(f.type));
        }
        cJSON *msg = NULL;
        if (cairn_wire_parse_json(&f, &msg, err) != 0) {
            return -1;
        }
        worker_on_control(r, msg);
        cJSON_Delete(msg);
    }
    return rc;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    worker_runner *r = s->data;
    if (nread > 0) {
        cairn_err err = {{0}};
        if (cairn_wire_decoder_feed(r->decoder, buf->base, (size_t)nread, &err) != 0 ||
            take_frames(r, &err) != 0) {
            worker_fail_runner(r, "the runner broke the control protocol: %s", err.msg);
            uv_read_stop(s);
        }
        return;
    }
    if (nread == 0) {
        return;
    }
    /* End of file (or a failed pipe): the runner is exiting, or closed its stdout. */
    close_handle(r, (uv_handle_t *)&r->out, &r->out_open);
    if (r->exited && !r->finished) {
        worker_on_finished(r);
    }
}

static int open_pipes(worker_runner *r, cairn_err *err) {
    r->decoder = cairn_wire_decoder_new(WORKER_MAX_CONTROL, err);
    if (!r->decoder) {
        return -1;
    }
    uv_loop_t *loop = r->w->loop;
    int rc = uv_pipe_init(loop, &r->in, 0);
    if (rc == 0) {
        r->open_handles++;
        r->in_open = true;
        rc = uv_pipe_init(loop, &r->out, 0);
    }
    if (rc == 0) {
        r->open_handles++;
        r->out_open = true;
    }
    r->in.data = r->out.data = r->proc.data = r;
    return rc == 0 ? 0 : cairn_fail(err, "cannot create the runner's pipes: %s", uv_strerror(rc));
}

int runner_spawn(worker_runner *r, char **args, cairn_err *err) {
    if (open_pipes(r, err) != 0) {
        runner_close_handles(r);
        return -1;
    }
    uv_stdio_container_t stdio[3];
    stdio[0].flags = (uv_stdio_flags)(UV_CREATE_PIPE | UV_READABLE_PIPE);
    stdio[0].data.stream = (uv_stream_t *)&r->in;
    stdio[1].flags = (uv_stdio_flags)(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
    stdio[1].data.stream = (uv_stream_t *)&r->out;
    stdio[2].flags = UV_INHERIT_FD; /* the runner's log goes where the node's goes */
    stdio[2].data.fd = 2;
    uv_process_options_t opts;
    memset(&opts, 0, sizeof opts);
    opts.file = args[0];
    opts.args = args;
    opts.exit_cb = on_exit;
    opts.flags = cairn_process_spawn_flags();
    opts.stdio_count = 3;
    opts.stdio = stdio;
    int rc = uv_spawn(r->w->loop, &r->proc, &opts);
    /* The process handle is initialised even when the spawn fails, and must be closed. */
    r->open_handles++;
    r->spawned = true;
    if (rc != 0) {
        runner_close_handles(r);
        return cairn_fail(err, "cannot start %s: %s", args[0], uv_strerror(rc));
    }
    r->pid = r->proc.pid;
    cairn_err tree_err = {{0}};
    if (cairn_process_tree_attach(r->pid, &r->tree, &tree_err) != 0) {
        cairn_log(r->w->log, CAIRN_LOG_WARN, "runner %s/%u: %s; killing it alone if need be",
                  r->instance_id, r->shard, tree_err.msg);
    }
    rc = uv_read_start((uv_stream_t *)&r->out, on_alloc, on_read);
    if (rc != 0) {
        close_handle(r, (uv_handle_t *)&r->out, &r->out_open);
        worker_fail_runner(r, "cannot read from the runner: %s", uv_strerror(rc));
        return 0; /* spawned: its exit is reaped and judged like any other */
    }
    cJSON *start = cJSON_CreateObject();
    if (start && cJSON_AddStringToObject(start, "op", "start") &&
        cJSON_AddStringToObject(start, "key", r->w->key_hex) &&
        cJSON_AddStringToObject(start, "secret", r->secret)) {
        runner_send(r, start);
    }
    cJSON_Delete(start);
    return 0;
}
