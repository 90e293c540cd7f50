/* Runner processes end to end, without a cluster: the test plays the worker (spawns
 * `cairn runner` for each shard, speaks the control protocol, tells each runner where the
 * next one listens) and the requester (cairn_stream). Streams through 1, 2 and 3 shards,
 * one at a time and four at once, open and keyed, must give exactly the tokens of one
 * in-process pipeline, with log-probabilities when asked; a bad request is refused without
 * harming the others, and one the link cannot carry is refused before any stream opens; a
 * link that does not prove the instance's secret gets no token. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "cluster/wire.h"
#include "engine/engine.h"
#include "generation/generation.h"
#include "platform/platform.h"
#include "runner/runner.h"
#include "tokenizer/tokenizer.h"

#define MODEL CAIRN_SHARED_DIR "/models/stories260K.gguf"
#define N_LAYER 5
#define MAX_SHARDS 3
#define MAX_TOKENS 40
#define N_PROMPTS 4
/* The instance's secret, as the worker passes it and the state holds it. */
#define SECRET "5ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2"
#define OTHER_SECRET "0badc0de0badc0de0badc0de0badc0de0badc0de0badc0de0badc0de0badc0de"

static const char *const prompts[N_PROMPTS] = {"Once upon a time", "The cat sat", "Lily wanted to",
                                               "One day, a big"};

typedef struct harness harness;

typedef struct proc {
    harness *h;
    uv_process_t process;
    uv_pipe_t to_child, from_child;
    cairn_wire_decoder *decoder;
    char buf[65536];
    int port;
    bool ready, exited;
    int64_t exit_status;
} proc;

struct harness {
    uv_loop_t loop;
    uv_timer_t deadline;
    proc procs[MAX_SHARDS];
    int n;
    int n_ready, n_exited, n_done;
    bool timed_out, failed;
    const cairn_cluster_key *key;
};

typedef struct result {
    int32_t tokens[MAX_TOKENS + 1];
    int n;
    int want_top; /* -1: no log-probabilities asked for; otherwise the alternatives asked */
    int n_logprobs;
    bool done, refused;
    int started_prompt; /* the prompt's tokens as on_start told them; 0 before */
    char text[4096];
    size_t text_len;
    harness *h;
} result;

static void on_written(uv_write_t *req, int status) {
    assert_int_equal(status, 0);
    free(req);
}

/* Queues one control frame to a runner (uv_write: Windows pipes take no uv_try_write). */
static void send_control(proc *p, const char *json) {
    cJSON *o = cJSON_Parse(json);
    cairn_buf frame = {0};
    cairn_err err = {{0}};
    assert_int_equal(cairn_wire_encode_json(CAIRN_WIRE_CONTROL, o, &frame, &err), 0);
    uv_write_t *req = malloc(sizeof *req + frame.len);
    assert_non_null(req);
    memcpy(req + 1, frame.data, frame.len);
    uv_buf_t buf = uv_buf_init((char *)(req + 1), (unsigned)frame.len);
    assert_int_equal(uv_write(req, (uv_stream_t *)&p->to_child, &buf, 1, on_written), 0);
    cairn_buf_free(&frame);
    cJSON_Delete(o);
}

static void all_listening(harness *h) {
    for (int k = 0; k < h->n; k++) {
        if (!h->procs[k].port) {
            return;
        }
    }
    for (int k = 0; k < h->n; k++) {
        char msg[128];
        snprintf(msg, sizeof msg, "{\"op\":\"next\",\"host\":\"127.0.0.1\",\"port\":%d}",
                 h->procs[(k + 1) % h->n].port);
        send_control(&h->procs[k], msg);
    }
}

static void on_control(proc *p, const cJSON *msg) {
    const char *op = cJSON_GetStringValue(cJSON_GetObjectItem(msg, "op"));
    assert_non_null(op);
    if (strcmp(op, "failed") == 0) {
        fprintf(stderr, "runner %d failed: %s\n", (int)(p - p->h->procs),
                cJSON_GetStringValue(cJSON_GetObjectItem(msg, "reason")));
        p->h->failed = true;
    } else if (strcmp(op, "listening") == 0) {
        p->port = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(msg, "port"));
        assert_true(p->port > 0);
        all_listening(p->h);
    } else if (strcmp(op, "ready") == 0 && !p->ready) {
        p->ready = true;
        if (++p->h->n_ready == p->h->n) {
            uv_stop(&p->h->loop);
        }
    }
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    proc *p = handle->data;
    *buf = uv_buf_init(p->buf, sizeof p->buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    (void)buf;
    proc *p = s->data;
    if (nread <= 0) {
        if (nread < 0) {
            uv_read_stop(s);
        }
        return;
    }
    cairn_err err = {{0}};
    assert_int_equal(cairn_wire_decoder_feed(p->decoder, p->buf, (size_t)nread, &err), 0);
    cairn_wire_frame f;
    while (cairn_wire_decoder_next(p->decoder, &f, &err) == 1) {
        cJSON *msg = NULL;
        assert_int_equal(cairn_wire_parse_json(&f, &msg, &err), 0);
        on_control(p, msg);
        cJSON_Delete(msg);
    }
}

static void on_exit(uv_process_t *process, int64_t status, int signal) {
    proc *p = process->data;
    p->exited = true;
    p->exit_status = signal ? -signal : status;
    if (p->exit_status != 0 || getenv("CAIRN_TEST_VERBOSE")) {
        fprintf(stderr, "runner %d exited with %lld\n", (int)(p - p->h->procs),
                (long long)p->exit_status);
    }
    if (++p->h->n_exited == p->h->n || p->exit_status != 0) {
        uv_stop(&p->h->loop);
    }
}

static void spawn(harness *h, int k, int first, int last) {
    proc *p = &h->procs[k];
    p->h = h;
    char shard[16], f[16], l[16];
    snprintf(shard, sizeof shard, "%d", k);
    snprintf(f, sizeof f, "%d", first);
    snprintf(l, sizeof l, "%d", last);
    char *args[] = {(char *)CAIRN_EXE, "runner", "--model",   MODEL,       "--instance", "t-1",
                    "--shard",         shard,    "--first",   f,           "--last",     l,
                    "--n-layers",      "5",      "--listen",  "127.0.0.1", "--slots",    "4",
                    "--ctx",           "256",    "--threads", "1",         "--node",     "test",
                    "--log-level",     "warn",   NULL};
    uv_pipe_init(&h->loop, &p->to_child, 0);
    uv_pipe_init(&h->loop, &p->from_child, 0);
    p->to_child.data = p->from_child.data = p->process.data = p;
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_CREATE_PIPE | UV_READABLE_PIPE, .data.stream = (uv_stream_t *)&p->to_child},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&p->from_child},
        {.flags = UV_INHERIT_FD, .data.fd = 2}};
    uv_process_options_t opt = {
        .file = CAIRN_EXE, .args = args, .exit_cb = on_exit, .stdio = stdio, .stdio_count = 3};
    int rc = uv_spawn(&h->loop, &p->process, &opt);
    if (rc != 0) {
        fail_msg("cannot start %s: %s", CAIRN_EXE, uv_strerror(rc));
    }
    cairn_err err = {{0}};
    p->decoder = cairn_wire_decoder_new(0, &err);
    uv_read_start((uv_stream_t *)&p->from_child, on_alloc, on_read);
    char hex[2 * CAIRN_CLUSTER_KEY_SIZE + 1] = "";
    if (h->key) {
        sodium_bin2hex(hex, sizeof hex, h->key->bytes, sizeof h->key->bytes);
    }
    char start[256];
    snprintf(start, sizeof start, "{\"op\":\"start\",\"key\":\"%s\",\"secret\":\"%s\"}", hex,
             SECRET);
    send_control(p, start);
}

static void on_deadline(uv_timer_t *t) {
    harness *h = t->data;
    h->timed_out = true;
    uv_stop(&h->loop);
}

static void run_until_stopped(harness *h, int seconds) {
    uv_timer_start(&h->deadline, on_deadline, (uint64_t)seconds * 1000, 0);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&h->deadline);
    assert_false(h->timed_out);
    assert_false(h->failed);
    for (int k = 0; k < h->n; k++) {
        assert_false(h->procs[k].exited && h->procs[k].exit_status != 0);
    }
}

static void start_pipeline(harness *h, const int *cuts, int n_cuts, const cairn_cluster_key *key) {
    memset(h, 0, sizeof *h);
    assert_int_equal(uv_loop_init(&h->loop), 0);
    uv_timer_init(&h->loop, &h->deadline);
    h->deadline.data = h;
    h->key = key;
    h->n = n_cuts + 1;
    for (int k = 0; k < h->n; k++) {
        spawn(h, k, k == 0 ? 0 : cuts[k - 1], k == n_cuts ? N_LAYER : cuts[k]);
    }
    run_until_stopped(h, 60);
}

static void close_handle(uv_handle_t *handle, void *arg) {
    (void)arg;
    if (!uv_is_closing(handle)) {
        uv_close(handle, NULL);
    }
}

static void stop_pipeline(harness *h) {
    for (int k = 0; k < h->n; k++) {
        send_control(&h->procs[k], "{\"op\":\"shutdown\"}");
    }
    run_until_stopped(h, 30);
    for (int k = 0; k < h->n; k++) {
        assert_int_equal(h->procs[k].exit_status, 0);
        cairn_wire_decoder_free(h->procs[k].decoder);
    }
    uv_walk(&h->loop, close_handle, NULL);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&h->loop), 0);
}

/* ---- requests ---- */

static double number_of(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

/* Greedy decoding takes the most likely token, so it leads its own alternatives. */
static void check_logprobs(result *r, int32_t token, const cJSON *lp) {
    if (r->want_top < 0) {
        assert_null(lp);
        return;
    }
    assert_non_null(lp);
    r->n_logprobs++;
    assert_int_equal((int)number_of(lp, "id"), token);
    assert_true(number_of(lp, "logprob") <= 0);
    assert_true(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(lp, "bytes")));
    const cJSON *top = cJSON_GetObjectItemCaseSensitive(lp, "top");
    assert_int_equal(cJSON_GetArraySize(top), r->want_top);
    double previous = 0;
    for (int i = 0; i < r->want_top; i++) {
        const cJSON *alt = cJSON_GetArrayItem(top, i);
        assert_true(number_of(alt, "logprob") <= previous);
        previous = number_of(alt, "logprob");
    }
    if (r->want_top > 0) {
        const cJSON *first = cJSON_GetArrayItem(top, 0);
        assert_int_equal((int)number_of(first, "id"), token);
        assert_true(number_of(first, "logprob") == number_of(lp, "logprob"));
    }
}

static void on_start(void *user, int prompt_tokens) {
    result *r = user;
    assert_true(prompt_tokens > 0);
    r->started_prompt = prompt_tokens;
}

static void on_token(void *user, int32_t token, const char *text, size_t len,
                     const cJSON *logprobs) {
    result *r = user;
    assert_true(r->started_prompt > 0); /* the start comes before any token */
    check_logprobs(r, token, logprobs);
    assert_true(r->n < MAX_TOKENS + 1);
    r->tokens[r->n++] = token;
    assert_true(r->text_len + len < sizeof r->text);
    memcpy(r->text + r->text_len, text, len);
    r->text_len += len;
}

static void finished(result *r) {
    if (++r->h->n_done == N_PROMPTS || r->refused) {
        uv_stop(&r->h->loop);
    }
}

static void on_done(void *user, const char *finish, const char *text, size_t len, int n_prompt,
                    int n_generated, int stop_index) {
    result *r = user;
    (void)finish;
    assert_int_equal(stop_index, -1); /* no stop strings asked for */
    assert_int_equal(n_prompt, r->started_prompt);
    assert_int_equal(n_generated, r->n - (r->n > 0 && r->tokens[r->n - 1] < 0));
    memcpy(r->text + r->text_len, text, len);
    r->text_len += len;
    r->done = true;
    finished(r);
}

static void on_error(void *user, cairn_stream_failure why, const char *message) {
    result *r = user;
    if (why != CAIRN_STREAM_REFUSED) {
        fail_msg("stream %s: %s", why == CAIRN_STREAM_BUSY ? "refused as busy" : "lost", message);
    }
    r->refused = true;
    finished(r);
}

static const cairn_stream_callbacks callbacks = {on_token, on_done, on_error, on_start};

static cairn_generation_params greedy(void) {
    cairn_generation_params p = {0};
    cairn_sampling_defaults(&p.sampling);
    p.sampling.temperature = 0;
    p.max_tokens = MAX_TOKENS;
    return p;
}

static int expected_token(void *user, int32_t token, const char *text, size_t len) {
    result *r = user;
    if (token >= 0) {
        r->tokens[r->n++] = token;
    }
    memcpy(r->text + r->text_len, text, len);
    r->text_len += len;
    return 0;
}

/* What one process computes for a prompt: the reference every stream must match. */
static void expected(const char *prompt, result *out) {
    cairn_shard_config cfg = {.model_path = MODEL, .last_layer = -1, .n_ctx = 256, .n_threads = 1};
    cairn_pipeline *p = NULL;
    cairn_tokenizer *tok = NULL;
    cairn_err err = {{0}};
    assert_int_equal(cairn_pipeline_load_ggml(&cfg, NULL, 0, &p, &err), 0);
    assert_int_equal(cairn_tokenizer_load_file(MODEL, &tok, &err), 0);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    assert_int_equal(cairn_tokenize(tok, prompt, strlen(prompt), true, true, &ids, &n_ids, &err),
                     0);
    cairn_pipeline_seq ps = {p, 0};
    cairn_generation_target target = {cairn_pipeline_seq_forward, &ps,
                                      cairn_pipeline_info(p)->n_vocab, 256, 0};
    cairn_generation_params params = greedy();
    memset(out, 0, sizeof *out);
    assert_int_equal(
        cairn_generate(&target, tok, ids, (int)n_ids, &params, expected_token, out, NULL, &err), 0);
    free(ids);
    cairn_tokenizer_free(tok);
    cairn_pipeline_free(p);
}

/* top_logprobs -1: plain streams; otherwise each token must come with its log-probability
 * and that many alternatives. */
static void check_streams_with(harness *h, int n_streams, const cairn_cluster_key *key,
                               int top_logprobs) {
    result got[N_PROMPTS], want[N_PROMPTS];
    cairn_generation_params params = greedy();
    params.logprobs = top_logprobs >= 0;
    params.top_logprobs = top_logprobs < 0 ? 0 : top_logprobs;
    h->n_done = N_PROMPTS - n_streams;
    for (int i = 0; i < n_streams; i++) {
        memset(&got[i], 0, sizeof got[i]);
        got[i].h = h;
        got[i].want_top = top_logprobs;
        cairn_stream_request req = {
            .instance = "t-1", .prompt = prompts[i], .params = &params, .secret = SECRET};
        cairn_stream *s = NULL;
        cairn_err err = {{0}};
        if (cairn_stream_open(&h->loop, "127.0.0.1", (uint16_t)h->procs[0].port, key, &req,
                              &callbacks, &got[i], &s, &err) != 0) {
            fail_msg("%s", err.msg);
        }
    }
    run_until_stopped(h, 60);
    for (int i = 0; i < n_streams; i++) {
        expected(prompts[i], &want[i]);
        assert_true(got[i].done);
        assert_int_equal(got[i].n, want[i].n);
        assert_memory_equal(got[i].tokens, want[i].tokens, (size_t)want[i].n * sizeof(int32_t));
        assert_int_equal(got[i].text_len, want[i].text_len);
        assert_memory_equal(got[i].text, want[i].text, want[i].text_len);
        if (top_logprobs >= 0) {
            assert_int_equal(got[i].n_logprobs, want[i].n);
        }
    }
}

static void check_streams(harness *h, int n_streams, const cairn_cluster_key *key) {
    check_streams_with(h, n_streams, key, -1);
}

static void one_shard(void **state) {
    (void)state;
    harness h;
    start_pipeline(&h, NULL, 0, NULL);
    check_streams(&h, 1, NULL);
    check_streams(&h, N_PROMPTS, NULL);
    stop_pipeline(&h);
}

static void three_shards(void **state) {
    (void)state;
    harness h;
    const int cuts[] = {2, 4};
    start_pipeline(&h, cuts, 2, NULL);
    check_streams(&h, 1, NULL);
    check_streams(&h, N_PROMPTS, NULL);
    check_streams_with(&h, 2, NULL, 0);
    check_streams_with(&h, N_PROMPTS, NULL, 5);
    stop_pipeline(&h);
}

static void keyed_two_shards(void **state) {
    (void)state;
    cairn_cluster_key key;
    memset(key.bytes, 0x5a, sizeof key.bytes);
    harness h;
    const int cuts[] = {3};
    start_pipeline(&h, cuts, 1, &key);
    check_streams(&h, N_PROMPTS, &key);
    stop_pipeline(&h);
}

/* A request the runner cannot take is refused with a reason; the pipeline goes on. */
static void bad_requests_are_refused(void **state) {
    (void)state;
    harness h;
    const int cuts[] = {2};
    start_pipeline(&h, cuts, 1, NULL);
    cairn_generation_params params = greedy();
    params.sampling.top_p = -3; /* out of range */
    result r = {.h = &h};
    cairn_stream_request req = {
        .instance = "t-1", .prompt = "Hello", .params = &params, .secret = SECRET};
    cairn_stream *s = NULL;
    cairn_err err = {{0}};
    assert_int_equal(cairn_stream_open(&h.loop, "127.0.0.1", (uint16_t)h.procs[0].port, NULL, &req,
                                       &callbacks, &r, &s, &err),
                     0);
    run_until_stopped(&h, 30);
    assert_true(r.refused);
    int32_t too_big[] = {1, 99999};
    params = greedy();
    result r2 = {.h = &h};
    cairn_stream_request req2 = {
        .instance = "t-1", .tokens = too_big, .n_tokens = 2, .params = &params, .secret = SECRET};
    assert_int_equal(cairn_stream_open(&h.loop, "127.0.0.1", (uint16_t)h.procs[0].port, NULL, &req2,
                                       &callbacks, &r2, &s, &err),
                     0);
    run_until_stopped(&h, 30);
    assert_true(r2.refused);
    params = greedy();
    params.logprobs = true;
    params.top_logprobs = CAIRN_MAX_TOP_LOGPROBS + 1;
    result r3 = {.h = &h};
    req.params = &params;
    assert_int_equal(cairn_stream_open(&h.loop, "127.0.0.1", (uint16_t)h.procs[0].port, NULL, &req,
                                       &callbacks, &r3, &s, &err),
                     0);
    run_until_stopped(&h, 30);
    assert_true(r3.refused);
    check_streams(&h, 1, NULL);
    stop_pipeline(&h);
}

/* ---- strangers: links that do not prove the instance's secret ---- */

typedef struct stranger {
    harness *h;
    int n_tokens;
    bool lost;
    char why[256];
} stranger;

static void stranger_token(void *user, int32_t token, const char *text, size_t len,
                           const cJSON *logprobs) {
    (void)token, (void)text, (void)len, (void)logprobs;
    ((stranger *)user)->n_tokens++;
}

static void stranger_done(void *user, const char *finish, const char *text, size_t len,
                          int n_prompt, int n_generated, int stop_index) {
    (void)finish, (void)text, (void)len, (void)n_prompt, (void)n_generated, (void)stop_index;
    stranger *st = user;
    st->n_tokens++;
    uv_stop(&st->h->loop);
}

static void stranger_error(void *user, cairn_stream_failure why, const char *message) {
    stranger *st = user;
    st->lost = why == CAIRN_STREAM_LOST;
    snprintf(st->why, sizeof st->why, "%s", message);
    uv_stop(&st->h->loop);
}

static const cairn_stream_callbacks stranger_callbacks = {stranger_token, stranger_done,
                                                          stranger_error, NULL};

/* A raw client that skips the proof: it sends hello and a request at once and counts the
 * frames that come back until the runner closes the connection. */
typedef struct raw_client {
    harness *h;
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    cairn_buf out;
    cairn_wire_decoder *decoder;
    char buf[65536];
    int n_challenges, n_others;
    bool closed;
    uint64_t closed_at; /* loop time */
} raw_client;

static void raw_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    raw_client *c = handle->data;
    *buf = uv_buf_init(c->buf, sizeof c->buf);
}

static void raw_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    raw_client *c = stream->data;
    cairn_err err = {{0}};
    if (nread < 0) {
        c->closed = true;
        c->closed_at = uv_now(&c->h->loop);
        uv_close((uv_handle_t *)&c->tcp, NULL);
        uv_stop(&c->h->loop);
        return;
    }
    assert_int_equal(cairn_wire_decoder_feed(c->decoder, buf->base, (size_t)nread, &err), 0);
    cairn_wire_frame f;
    while (cairn_wire_decoder_next(c->decoder, &f, &err) > 0) {
        cJSON *msg = NULL;
        assert_int_equal(cairn_wire_parse_json(&f, &msg, &err), 0);
        const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(msg, "op"));
        bool challenge = op && strcmp(op, "challenge") == 0;
        c->n_challenges += challenge;
        c->n_others += !challenge;
        cJSON_Delete(msg);
    }
}

static void raw_connected(uv_connect_t *req, int status) {
    raw_client *c = req->data;
    assert_int_equal(status, 0);
    if (c->out.len > 0) {
        uv_buf_t buf = uv_buf_init(c->out.data, (unsigned)c->out.len);
        assert_int_equal(uv_write(&c->write, (uv_stream_t *)&c->tcp, &buf, 1, NULL), 0);
    }
    assert_int_equal(uv_read_start((uv_stream_t *)&c->tcp, raw_alloc, raw_read), 0);
}

static void append_frame(cairn_buf *out, const char *json) {
    cJSON *o = cJSON_Parse(json);
    cairn_err err = {{0}};
    assert_int_equal(cairn_wire_encode_json(CAIRN_WIRE_CONTROL, o, out, &err), 0);
    cJSON_Delete(o);
}

static void on_pause(uv_timer_t *t) {
    uv_stop(t->loop);
}

static void run_for(harness *h, uint64_t ms) {
    uv_timer_t pause;
    uv_timer_init(&h->loop, &pause);
    uv_timer_start(&pause, on_pause, ms, 0);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&pause, NULL);
    uv_run(&h->loop, UV_RUN_NOWAIT);
}

/* Connects c to the first runner; it sends what c->out holds and reads until closed. */
static void raw_connect(harness *h, raw_client *c) {
    c->h = h;
    cairn_err err = {{0}};
    c->decoder = cairn_wire_decoder_new(0, &err);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", h->procs[0].port, &addr);
    uv_tcp_init(&h->loop, &c->tcp);
    c->tcp.data = c->connect.data = c;
    assert_int_equal(
        uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&addr, raw_connected), 0);
}

static void raw_free(raw_client *c) {
    cairn_wire_decoder_free(c->decoder);
    cairn_buf_free(&c->out);
}

static void raw_request_without_proof(harness *h, raw_client *c) {
    memset(c, 0, sizeof *c);
    append_frame(&c->out, "{\"op\":\"hello\",\"role\":\"client\",\"instance\":\"t-1\"}");
    append_frame(&c->out, "{\"op\":\"request\",\"id\":1,\"prompt\":\"Once\",\"resume\":[],"
                          "\"params\":{}}");
    raw_connect(h, c);
    run_until_stopped(h, 30);
    raw_free(c);
}

/* Until a link proves the instance's secret it costs the runner little and not for long: a
 * client that says nothing is closed after the proving deadline (5 s), one whose first frame
 * is larger than a proof at once, and past 16 unproven links a new one is refused at once. */
static void unproven_links_are_bounded(void **state) {
    (void)state;
    harness h;
    const int cuts[] = {2};
    start_pipeline(&h, cuts, 1, NULL);
    raw_client silent = {0};
    uint64_t start = uv_now(&h.loop);
    raw_connect(&h, &silent);
    run_until_stopped(&h, 15);
    assert_true(silent.closed);
    assert_int_equal(silent.n_challenges, 1);
    assert_true(silent.closed_at - start >= 4000);
    raw_free(&silent);

    raw_client big = {0};
    char *large = malloc(1 << 16);
    memset(large, 'x', (1 << 16) - 1);
    large[(1 << 16) - 1] = 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "proof", large);
    cairn_err err = {{0}};
    assert_int_equal(cairn_wire_encode_json(CAIRN_WIRE_CONTROL, o, &big.out, &err), 0);
    cJSON_Delete(o);
    free(large);
    big.out.len = 8192; /* the start of a 64 KiB frame, which its header announces */
    start = uv_now(&h.loop);
    raw_connect(&h, &big);
    run_until_stopped(&h, 15);
    assert_true(big.closed);
    assert_true(big.closed_at - start < 3000);
    raw_free(&big);

    enum { HELD = 16 };
    raw_client *held = calloc(HELD + 1, sizeof *held);
    for (int i = 0; i < HELD; i++) {
        raw_connect(&h, &held[i]);
    }
    run_for(&h, 500); /* connected, and the challenges on their way */
    start = uv_now(&h.loop);
    raw_connect(&h, &held[HELD]);
    run_until_stopped(&h, 15);
    assert_true(held[HELD].closed);
    assert_int_equal(held[HELD].n_challenges, 0);
    assert_true(held[HELD].closed_at - start < 3000);
    for (int i = 0; i < HELD; i++) {
        assert_false(held[i].closed);
        uv_close((uv_handle_t *)&held[i].tcp, NULL);
    }
    run_for(&h, 500);           /* the runner sees them go */
    check_streams(&h, 1, NULL); /* still serving */
    for (int i = 0; i <= HELD; i++) {
        raw_free(&held[i]);
    }
    free(held);
    stop_pipeline(&h);
}

/* A stream with another secret and a client that proves nothing are closed without a
 * token, and the runners serve the next request as before. */
static void strangers_get_nothing(void **state) {
    (void)state;
    harness h;
    const int cuts[] = {2};
    start_pipeline(&h, cuts, 1, NULL);
    cairn_generation_params params = greedy();
    cairn_stream_request req = {
        .instance = "t-1", .prompt = prompts[0], .params = &params, .secret = OTHER_SECRET};
    stranger st = {.h = &h};
    cairn_stream *s = NULL;
    cairn_err err = {{0}};
    assert_int_equal(cairn_stream_open(&h.loop, "127.0.0.1", (uint16_t)h.procs[0].port, NULL, &req,
                                       &stranger_callbacks, &st, &s, &err),
                     0);
    run_until_stopped(&h, 30);
    assert_true(st.lost);
    assert_int_equal(st.n_tokens, 0);
    raw_client c;
    raw_request_without_proof(&h, &c);
    assert_true(c.closed);
    assert_int_equal(c.n_challenges, 1);
    assert_int_equal(c.n_others, 0);
    check_streams(&h, 1, NULL);
    stop_pipeline(&h);
}

/* [{"role":"user","content":"hi","x":[[...]]}] nesting depth levels in all. */
static cJSON *nested_messages(int depth) {
    cJSON *inner = cJSON_CreateArray();
    for (int d = 0; d < depth - 3; d++) {
        cJSON *outer = cJSON_CreateArray();
        cJSON_AddItemToArray(outer, inner);
        inner = outer;
    }
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "user");
    cJSON_AddStringToObject(m, "content", "hi");
    cJSON_AddItemToObject(m, "x", inner);
    cJSON *list = cJSON_CreateArray();
    cJSON_AddItemToArray(list, m);
    return list;
}

/* The request frame adds one level (its object) to the conversation's own nesting, and
 * must fit one CONTROL frame with the prompt and the stop strings. */
static void requests_the_link_cannot_carry(void **state) {
    (void)state;
    cairn_generation_params params = {0};
    cairn_err err = {{0}};
    cJSON *fits = nested_messages(CAIRN_WIRE_JSON_MAX_DEPTH - 1);
    cairn_stream_request req = {.messages = fits, .params = &params};
    assert_int_equal(cairn_stream_request_check(&req, &err), 0);
    cJSON *deep = nested_messages(CAIRN_WIRE_JSON_MAX_DEPTH);
    req.messages = deep;
    assert_int_equal(cairn_stream_request_check(&req, &err), -1);
    assert_non_null(strstr(err.msg, "nests deeper than 32 levels"));
    cJSON_Delete(fits);
    cJSON_Delete(deep);
    char *prompt = malloc(CAIRN_WIRE_MAX_EVENT + 1);
    assert_non_null(prompt);
    memset(prompt, 'a', CAIRN_WIRE_MAX_EVENT);
    prompt[CAIRN_WIRE_MAX_EVENT] = '\0';
    req = (cairn_stream_request){.prompt = prompt, .params = &params};
    assert_int_equal(cairn_stream_request_check(&req, &err), -1);
    assert_non_null(strstr(err.msg, "more than its limit of 1048576"));
    prompt[CAIRN_WIRE_MAX_EVENT - 4096] = '\0';
    assert_int_equal(cairn_stream_request_check(&req, &err), 0);
    /* the stop strings travel in the same frame */
    const char *stops[] = {prompt};
    params.stop = stops;
    params.n_stop = 1;
    assert_int_equal(cairn_stream_request_check(&req, &err), -1);
    free(prompt);
}

int main(void) {
    /* strangers' sockets are closed by the runner while the test may still be writing */
    cairn_ignore_broken_pipes();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(requests_the_link_cannot_carry),
        cmocka_unit_test(one_shard),
        cmocka_unit_test(three_shards),
        cmocka_unit_test(keyed_two_shards),
        cmocka_unit_test(strangers_get_nothing),
        cmocka_unit_test(unproven_links_are_bounded),
        cmocka_unit_test(bad_requests_are_refused),
    };
    if (getenv("CAIRN_TEST_FILTER")) {
        cmocka_set_test_filter(getenv("CAIRN_TEST_FILTER"));
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
