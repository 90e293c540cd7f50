/*
 * flow: requests moving through a pipeline of runners.
 *
 * The first shard takes requests from clients, tokenizes them, gives each a free KV slot
 * (the same slot number on every shard) and sends "begin" down the pipeline, then the
 * prompt's activations in batches. Every shard does what reaches it in arrival order on one
 * compute thread and passes the result on, so while one request's step is on shard 2 the
 * next request's step can be on shard 1: with k requests in flight up to k shards work at
 * once. The last shard samples (it holds each request's generation session: sampler,
 * detokenizer, stop strings) and sends the token round the ring to the first shard, which
 * streams it to the client and feeds it back in, or, when the request is done, sends "end"
 * down the pipeline and gives the slot to the next waiting request.
 *
 * Messages on pipeline links (CONTROL JSON unless said otherwise):
 *   begin {rid, slot, keep, prompt:[ids], resume:[ids], params}  first -> ... -> last
 *     (keep: the slot's first positions the request shares with what the slot holds)
 *   DATA_ACTIVATIONS (request id = rid, pos, n_tokens, n_embd)  shard k -> k+1
 *   end {rid}                                                  first -> ... -> last
 *   token {rid, token, text, tail, done, finish, generated,   last -> first (the ring)
 *         logprobs?: {id, logprob, bytes, top:[{id, logprob, bytes}]},
 *         stop_index?: the stop string that ended it}
 *   error {rid, message}                                       last -> first
 * Messages on client links:
 *   client -> first: hello {role:"client", instance}, then request {id, prompt | tokens,
 *                    resume:[ids], params, count?} and cancel {id}
 *   first -> client: start {id, prompt_tokens} once admitted, token {id, token, text,
 *                    logprobs?}, done {id, finish, text, prompt_tokens, completion_tokens,
 *                    stop_index?},
 *                    error {id, message}; a request with count: true takes no slot and is
 *                    answered done {finish:"count", prompt_tokens} at once
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"
#include "cluster/json_fields.h"
#include "platform/platform.h"
#include "runner/runner_internal.h"
#include "sampling/sampling.h"

/* ---- jobs ---- */

job *flow_job_new(job_kind kind) {
    job *j = calloc(1, sizeof *j);
    if (j) {
        j->kind = kind;
    }
    return j;
}

void flow_job_free(job *j) {
    if (!j) {
        return;
    }
    cJSON_Delete(j->msg);
    free(j->tokens);
    free(j->hidden);
    free(j->out);
    free(j);
}

/* Checks a forward job against its slot and gives it room for its output. */
static int prepare_forward(runner *r, job *j, cairn_batch *b) {
    cairn_shard *s = r->shard_obj;
    if (cairn_shard_seq_len(s, j->slot) != j->pos) {
        return cairn_fail(&j->err, "request %llu is out of step: position %d, slot holds %d",
                          (unsigned long long)j->rid, j->pos, cairn_shard_seq_len(s, j->slot));
    }
    *b = (cairn_batch){
        .seq = j->slot, .n_tokens = j->n_tokens, .tokens = j->tokens, .hidden = j->hidden};
    j->out = malloc(cairn_shard_output_floats(s, b) * sizeof(float));
    return j->out ? 0 : cairn_fail(&j->err, "out of memory");
}

/* The step's forward jobs, in one compute pass through the shard. */
static void forward_jobs(runner *r, job **jobs, int n) {
    int rc = 0;
    cairn_err err = {{0}};
    for (int i = 0; i < n && rc == 0; i++) {
        rc = prepare_forward(r, jobs[i], &r->step_batches[i]);
        r->step_outs[i] = jobs[i]->out;
        if (rc != 0) {
            err = jobs[i]->err;
        }
    }
    if (rc == 0) {
        rc = cairn_shard_forward_many(r->shard_obj, r->step_batches, n, r->step_outs, &err);
    }
    for (int i = 0; i < n; i++) {
        jobs[i]->rc = rc;
        jobs[i]->err = err;
    }
}

static void warm_up_job(runner *r, job *j) {
    while (j->hang) {
        cairn_sleep_ms(1000);
    }
    forward_jobs(r, &j, 1);
    if (j->rc == 0) {
        j->rc = cairn_shard_seq_truncate(r->shard_obj, j->slot, 0, &j->err);
    }
}

/* On the pool thread: first what clears or keeps slots, then every forward job at once.
 * A step holds at most one job per slot, so the order between them does not matter. */
static void step_work(uv_work_t *req) {
    runner *r = req->data;
    int n_forward = 0;
    for (job *j = r->step; j; j = j->next) {
        switch (j->kind) {
        case JOB_BEGIN:
            j->rc = cairn_shard_seq_truncate(r->shard_obj, j->slot, j->keep, &j->err);
            break;
        case JOB_END: j->rc = 0; break; /* the cells stay, for a later request to reuse */
        case JOB_WARMUP: warm_up_job(r, j); break;
        case JOB_FORWARD: r->step_forward[n_forward++] = j; break;
        }
    }
    if (n_forward > 0) {
        if (r->step_delay_ms > 0) {
            cairn_sleep_ms(r->step_delay_ms);
        }
        forward_jobs(r, r->step_forward, n_forward);
    }
    r->step_sequences = n_forward;
}

static void after_step(uv_work_t *req, int status);

/* Splits the first n tokens of a prompt chunk off into a job of their own, which is
 * returned; the rest stays queued as it was, n positions later. */
static job *split_job(runner *r, job *j, int n) {
    job *head = flow_job_new(JOB_FORWARD);
    size_t width = j->tokens ? sizeof(int32_t) : (size_t)r->n_embd * sizeof(float);
    void *part = head ? malloc((size_t)n * width) : NULL;
    if (!part) {
        flow_job_free(head);
        return NULL;
    }
    void *whole = j->tokens ? (void *)j->tokens : (void *)j->hidden;
    memcpy(part, whole, (size_t)n * width);
    memmove(whole, (char *)whole + (size_t)n * width, (size_t)(j->n_tokens - n) * width);
    if (j->tokens) {
        head->tokens = part;
    } else {
        head->hidden = part;
    }
    head->rid = j->rid;
    head->slot = j->slot;
    head->pos = j->pos;
    head->n_tokens = n;
    j->pos += n;
    j->n_tokens -= n;
    return head;
}

static void unlink_job(runner *r, job *prev, job *j) {
    if (prev) {
        prev->next = j->next;
    } else {
        r->jobs_head = j->next;
    }
    if (r->jobs_tail == j) {
        r->jobs_tail = prev;
    }
    j->next = NULL;
}

/* Whether a job may join the step being chosen: it must be the first queued job of its slot
 * (a step does a slot's jobs out of queue order), or follow only a job that clears the slot
 * and is in the step already (the step clears slots before it computes). */
enum { SLOT_FREE, SLOT_WAITS, SLOT_FORWARDS };

/* Every job that clears a slot or decodes a token (pass 0), then prompt chunks while the
 * batch has room (pass 1), the last of them cut to fit. A warm-up runs alone. */
static job *choose_step(runner *r) {
    job *step = NULL, **tail = &step;
    int budget = r->n_batch;
    memset(r->slot_seen, SLOT_FREE, (size_t)r->slots * sizeof(*r->slot_seen));
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < r->slots; i++) {
            r->slot_seen[i] = r->slot_seen[i] == SLOT_WAITS ? SLOT_FREE : r->slot_seen[i];
        }
        job *prev = NULL;
        for (job *j = r->jobs_head, *next; j; j = next) {
            next = j->next;
            if (j->kind == JOB_WARMUP) {
                if (!step) {
                    unlink_job(r, prev, j);
                    return j;
                }
                return step;
            }
            bool may = r->slot_seen[j->slot] == SLOT_FREE;
            bool prompt = j->kind == JOB_FORWARD && j->n_tokens > 1;
            job *take = NULL;
            if (may && !prompt && pass == 0 && (j->kind != JOB_FORWARD || budget >= 1)) {
                take = j;
            } else if (may && prompt && pass == 1 && budget > 0) {
                take = j->n_tokens <= budget ? j : split_job(r, j, budget);
            }
            if (take == j) {
                unlink_job(r, prev, j);
            } else {
                prev = j;
            }
            if (!take) {
                r->slot_seen[j->slot] = SLOT_WAITS;
                continue;
            }
            if (take->kind == JOB_FORWARD) { /* the whole job or its first part */
                budget -= take->n_tokens;
                r->slot_seen[j->slot] = SLOT_FORWARDS;
            }
            *tail = take;
            tail = &take->next;
        }
    }
    return step;
}

static void start_next(runner *r) {
    if (r->stepping || !r->jobs_head || r->phase == PHASE_SHUTTING_DOWN) {
        return;
    }
    r->step = choose_step(r);
    if (!r->step) {
        return;
    }
    r->stepping = true;
    r->job_work.data = r;
    int rc = uv_queue_work(r->loop, &r->job_work, step_work, after_step);
    if (rc != 0) {
        runner_fail(r, "cannot start a compute step: %s", uv_strerror(rc));
    }
}

void flow_enqueue(runner *r, job *j) {
    if (r->jobs_tail) {
        r->jobs_tail->next = j;
    } else {
        r->jobs_head = j;
    }
    r->jobs_tail = j;
    start_next(r);
}

/* ---- slots ---- */

int flow_init(runner *r, cairn_err *err) {
    size_t slots = (size_t)r->slots;
    r->slot_table = calloc(slots, sizeof *r->slot_table);
    r->slot_cached = calloc(slots, sizeof *r->slot_cached);
    r->slot_seen = calloc(slots, sizeof *r->slot_seen);
    r->step_forward = calloc(slots, sizeof(job *));
    r->step_batches = calloc(slots, sizeof *r->step_batches);
    r->step_outs = calloc(slots, sizeof *r->step_outs);
    bool ok = r->slot_table && r->slot_cached && r->slot_seen && r->step_forward &&
              r->step_batches && r->step_outs;
    return ok ? 0 : cairn_fail(err, "out of memory");
}

static runner_slot *slot_of(runner *r, uint64_t rid) {
    for (int i = 0; r->slot_table && i < r->slots; i++) {
        if (r->slot_table[i].used && r->slot_table[i].rid == rid) {
            return &r->slot_table[i];
        }
    }
    return NULL;
}

static void waiting_free(waiting_request *w) {
    if (w) {
        free(w->tokens);
        cJSON_Delete(w->params);
        free(w);
    }
}

void flow_free(runner *r) {
    for (int i = 0; r->slot_table && i < r->slots; i++) {
        cairn_gen_session_free(r->slot_table[i].session);
    }
    free(r->slot_table);
    r->slot_table = NULL;
    for (int i = 0; r->slot_cached && i < r->slots; i++) {
        free(r->slot_cached[i].ids);
    }
    free(r->slot_cached);
    r->slot_cached = NULL;
    free(r->slot_seen);
    free(r->step_forward);
    free(r->step_batches);
    free(r->step_outs);
    r->slot_seen = NULL;
    r->step_forward = NULL;
    r->step_batches = NULL;
    r->step_outs = NULL;
    while (r->waiting_head) {
        waiting_request *w = r->waiting_head;
        r->waiting_head = w->next;
        waiting_free(w);
    }
    while (r->jobs_head) {
        job *j = r->jobs_head;
        r->jobs_head = j->next;
        flow_job_free(j);
    }
}

/* ---- messages ---- */

static void send_to_client(runner_slot *s, cJSON *msg) {
    if (msg && s->client && !s->cancelled) {
        dlink_send_control(s->client, msg);
    }
    cJSON_Delete(msg);
}

static cJSON *op_message(const char *op) {
    cJSON *o = cJSON_CreateObject();
    if (o && !cJSON_AddStringToObject(o, "op", op)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* busy: the request may succeed later (the instance is not ready, the queue is full). */
static void client_error(dlink *client, uint64_t id, const char *message, bool busy) {
    cJSON *o = op_message("error");
    cJSON_AddNumberToObject(o, "id", (double)id);
    cJSON_AddStringToObject(o, "message", message);
    if (busy) {
        cJSON_AddBoolToObject(o, "busy", true);
    }
    if (o) {
        dlink_send_control(client, o);
    }
    cJSON_Delete(o);
}

/* A request's prompt tokens, told the client once the request is admitted: "start" before
 * its tokens, or for a request that only counts them its "done" (finish "count"). */
static void client_prompt_count(dlink *client, uint64_t id, size_t n_tokens, bool count_only) {
    cJSON *o = op_message(count_only ? "done" : "start");
    bool ok = o && cJSON_AddNumberToObject(o, "id", (double)id) &&
              cJSON_AddNumberToObject(o, "prompt_tokens", (double)n_tokens);
    if (ok && count_only) {
        ok = cJSON_AddStringToObject(o, "finish", "count") &&
             cJSON_AddStringToObject(o, "text", "") &&
             cJSON_AddNumberToObject(o, "completion_tokens", 0);
    }
    if (ok) {
        dlink_send_control(client, o);
    } else if (count_only) {
        client_error(client, id, "out of memory", false);
    }
    cJSON_Delete(o);
}

/* ---- the first shard: requests in, slots, tokens back round the ring ---- */

/* Records that a slot's cells will hold these tokens next (the first shard feeds them). */
static int slot_append(slot_tokens *c, const int32_t *ids, int n) {
    if (c->n + n > c->cap) {
        int cap = c->cap ? c->cap : 64;
        while (cap < c->n + n) {
            cap *= 2;
        }
        int32_t *grown = realloc(c->ids, (size_t)cap * sizeof *grown);
        if (!grown) {
            return -1;
        }
        c->ids = grown;
        c->cap = cap;
    }
    memcpy(c->ids + c->n, ids, (size_t)n * sizeof *ids);
    c->n += n;
    return 0;
}

static int common_prefix(const slot_tokens *c, const int32_t *ids, int n) {
    int i = 0;
    while (i < c->n && i < n && c->ids[i] == ids[i]) {
        i++;
    }
    return i;
}

/* The positions of a slot a request can reuse, given the prefix they have in common: all
 * but the request's last token, whose logits must be computed; none on a model whose rings
 * forget. */
static int reusable(const runner *r, int common, const waiting_request *w) {
    if (!r->shard_obj->info.keeps_prefixes) {
        return 0;
    }
    int n = (int)w->n_tokens;
    return common < n ? common : n - 1;
}

static void enqueue_prompt(runner *r, int slot, uint64_t rid, const int32_t *tokens, int from,
                           int n) {
    for (int pos = from; pos < n; pos += r->n_batch) {
        int len = n - pos < r->n_batch ? n - pos : r->n_batch;
        job *j = flow_job_new(JOB_FORWARD);
        if (!j || !(j->tokens = malloc((size_t)len * sizeof *j->tokens))) {
            flow_job_free(j);
            runner_fail(r, "out of memory");
            return;
        }
        memcpy(j->tokens, tokens + pos, (size_t)len * sizeof *j->tokens);
        j->rid = rid;
        j->slot = slot;
        j->pos = pos;
        j->n_tokens = len;
        j->sample = r->is_last && pos + len == n;
        flow_enqueue(r, j);
    }
}

static cJSON *begin_message(uint64_t rid, int slot, int keep, const waiting_request *w) {
    cJSON *o = op_message("begin");
    size_t n_prompt = w->n_tokens - w->n_resume;
    bool ok =
        o && cJSON_AddNumberToObject(o, "rid", (double)rid) &&
        cJSON_AddNumberToObject(o, "slot", slot) && cJSON_AddNumberToObject(o, "keep", keep) &&
        cairn_json_add_child(o, "prompt", tokens_to_json(w->tokens, n_prompt)) &&
        cairn_json_add_child(o, "resume", tokens_to_json(w->tokens + n_prompt, w->n_resume)) &&
        cairn_json_add_child(o, "params", cJSON_Duplicate(w->params, true));
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* common: the prefix the slot's cells share with the request's tokens. */
static void start_request(runner *r, int slot, int common, waiting_request *w) {
    uint64_t rid = ++r->next_rid;
    runner_slot *s = &r->slot_table[slot];
    *s = (runner_slot){.used = true,
                       .rid = rid,
                       .n_total = (int)w->n_tokens,
                       .client = w->client,
                       .client_id = w->client_id,
                       .next_pos = (int)w->n_tokens};
    int keep = reusable(r, common, w);
    slot_tokens *cached = &r->slot_cached[slot];
    cached->n = keep;
    cached->last_used = ++r->slot_clock;
    job *j = flow_job_new(JOB_BEGIN);
    if (!j || !(j->msg = begin_message(rid, slot, keep, w)) ||
        slot_append(cached, w->tokens + keep, (int)w->n_tokens - keep) != 0) {
        flow_job_free(j);
        runner_fail(r, "out of memory");
        return;
    }
    if (keep > 0) {
        cairn_log(&r->log, CAIRN_LOG_DEBUG, "slot %d: %d of %zu prompt tokens reused", slot, keep,
                  w->n_tokens);
    }
    j->rid = rid;
    j->slot = slot;
    j->keep = keep;
    runner_activity(r);
    flow_enqueue(r, j);
    enqueue_prompt(r, slot, rid, w->tokens, keep, (int)w->n_tokens);
}

/* The free slot for a request, as llama-server chooses: the one holding the longest prefix
 * of its tokens (its length goes to *common), else the one unused longest. -1 when none is
 * free. */
static int choose_slot(const runner *r, const waiting_request *w, int *common_out) {
    int best = -1, best_common = -1;
    for (int i = 0; i < r->slots; i++) {
        if (r->slot_table[i].used) {
            continue;
        }
        int common = common_prefix(&r->slot_cached[i], w->tokens, (int)w->n_tokens);
        if (common > best_common || (common == best_common && r->slot_cached[i].last_used <
                                                                  r->slot_cached[best].last_used)) {
            best = i;
            best_common = common;
        }
    }
    *common_out = best_common;
    return best;
}

static void start_waiting(runner *r) {
    int slot, common;
    while (r->waiting_head && (slot = choose_slot(r, r->waiting_head, &common)) >= 0) {
        waiting_request *w = r->waiting_head;
        r->waiting_head = w->next;
        if (!r->waiting_head) {
            r->waiting_tail = NULL;
        }
        r->n_waiting--;
        start_request(r, slot, common, w);
        waiting_free(w);
    }
}

/* The request of this slot is over at the first shard: the rest of the pipeline forgets it
 * in order, after anything of it still in flight. */
static void finish_slot(runner *r, runner_slot *s) {
    job *j = flow_job_new(JOB_END);
    if (!j || !(j->msg = op_message("end")) ||
        !cJSON_AddNumberToObject(j->msg, "rid", (double)s->rid)) {
        flow_job_free(j);
        runner_fail(r, "out of memory");
        return;
    }
    j->rid = s->rid;
    j->slot = (int)(s - r->slot_table);
    cairn_gen_session_free(s->session);
    *s = (runner_slot){0};
    runner_activity(r);
    flow_enqueue(r, j);
    start_waiting(r);
}

static void head_decode(runner *r, runner_slot *s, int32_t token) {
    job *j = flow_job_new(JOB_FORWARD);
    if (!j || !(j->tokens = malloc(sizeof *j->tokens))) {
        flow_job_free(j);
        runner_fail(r, "out of memory");
        return;
    }
    j->tokens[0] = token;
    j->rid = s->rid;
    j->slot = (int)(s - r->slot_table);
    if (slot_append(&r->slot_cached[j->slot], &token, 1) != 0) {
        flow_job_free(j);
        runner_fail(r, "out of memory");
        return;
    }
    j->pos = s->next_pos++;
    j->n_tokens = 1;
    j->sample = r->is_last;
    flow_enqueue(r, j);
}

/* A token (or the end) of a request arrives back at the first shard. */
static int head_on_token(runner *r, const cJSON *msg, cairn_err *err) {
    uint64_t rid = 0, token_plus = 0, generated = 0;
    bool done = false;
    const char *text = cJSON_GetStringValue(cairn_json_field(msg, "text"));
    const char *tail = cJSON_GetStringValue(cairn_json_field(msg, "tail"));
    const char *finish = cJSON_GetStringValue(cairn_json_field(msg, "finish"));
    const cJSON *tok = cairn_json_field(msg, "token");
    if (cairn_json_get_number(msg, "rid", &rid, err) != 0 || !cJSON_IsNumber(tok) ||
        tok->valuedouble < -1 || tok->valuedouble >= r->n_vocab ||
        cairn_json_get_bool(msg, "done", &done, err) != 0 ||
        cairn_json_get_number(msg, "generated", &generated, err) != 0 || !text || !tail ||
        !finish) {
        return cairn_fail(err, "malformed token message");
    }
    (void)token_plus;
    int32_t token = (int32_t)tok->valuedouble;
    runner_slot *s = slot_of(r, rid);
    if (!s) {
        return 0; /* a request that was already given up */
    }
    cJSON *out = op_message("token");
    cJSON_AddNumberToObject(out, "id", (double)s->client_id);
    cJSON_AddNumberToObject(out, "token", token);
    cJSON_AddStringToObject(out, "text", text);
    const cJSON *logprobs = cairn_json_field(msg, "logprobs");
    if (cJSON_IsObject(logprobs)) {
        cJSON_AddItemToObject(out, "logprobs", cJSON_Duplicate(logprobs, true));
    }
    send_to_client(s, out);
    if (done) {
        cJSON *d = op_message("done");
        cJSON_AddNumberToObject(d, "id", (double)s->client_id);
        cJSON_AddStringToObject(d, "finish", finish);
        cJSON_AddStringToObject(d, "text", tail);
        cJSON_AddNumberToObject(d, "prompt_tokens", s->n_total);
        cJSON_AddNumberToObject(d, "completion_tokens", (double)generated);
        const cJSON *stop_index = cairn_json_field(msg, "stop_index");
        if (cJSON_IsNumber(stop_index)) {
            cJSON_AddNumberToObject(d, "stop_index", stop_index->valuedouble);
        }
        send_to_client(s, d);
    }
    if (done || s->cancelled || token < 0) {
        finish_slot(r, s);
    } else {
        head_decode(r, s, token);
    }
    return 0;
}

static int head_on_error(runner *r, const cJSON *msg, cairn_err *err) {
    uint64_t rid = 0;
    const char *message = cJSON_GetStringValue(cairn_json_field(msg, "message"));
    if (cairn_json_get_number(msg, "rid", &rid, err) != 0 || !message) {
        return cairn_fail(err, "malformed error message");
    }
    runner_slot *s = slot_of(r, rid);
    if (s) {
        if (s->client && !s->cancelled) {
            client_error(s->client, s->client_id, message, false);
        }
        finish_slot(r, s);
    }
    return 0;
}

/* Tokens of a request: its prompt text tokenized as `cairn generate` does, its messages
 * through the model's chat template as `cairn chat` does, or ids given. */
static int prompt_tokens(runner *r, const cJSON *msg, int32_t **ids, size_t *n, cairn_err *err) {
    const cJSON *prompt = cairn_json_field(msg, "prompt");
    const cJSON *messages = cairn_json_field(msg, "messages");
    if (messages) {
        if (!cJSON_IsArray(messages)) {
            return cairn_fail(err, "\"messages\" must be an array");
        }
        return cairn_chat_tokenize(r->chat_template, messages, r->tok, ids, n, err);
    }
    if (cJSON_IsString(prompt)) {
        const char *text = prompt->valuestring;
        return cairn_tokenize(r->tok, text, strlen(text), true, true, ids, n, err);
    }
    return tokens_from_json(cairn_json_field(msg, "tokens"), RUNNER_MAX_REQUEST_TOKENS, ids, n,
                            err);
}

/* The prompt's tokens then the resumed ones, checked against the context and vocabulary. */
static int request_tokens(runner *r, const cJSON *msg, waiting_request *w, cairn_err *err) {
    int32_t *ids = NULL, *resume = NULL;
    size_t n_ids = 0, n_resume = 0;
    if (prompt_tokens(r, msg, &ids, &n_ids, err) != 0 ||
        tokens_from_json(cairn_json_field(msg, "resume"), RUNNER_MAX_REQUEST_TOKENS, &resume,
                         &n_resume, err) != 0) {
        free(ids);
        return -1;
    }
    size_t total = n_ids + n_resume;
    const char *problem = NULL;
    int32_t *all = NULL;
    if (n_ids == 0) {
        problem = "the prompt is empty";
    } else if (total >= (size_t)r->n_ctx) {
        problem = "the prompt does not fit the context";
    } else if (!(all = realloc(ids, total * sizeof *ids))) {
        problem = "out of memory";
    }
    if (problem) {
        free(ids);
        free(resume);
        cairn_fail(err, "%s (%zu tokens, a context of %d)", problem, total, r->n_ctx);
        return -1;
    }
    if (n_resume > 0 && resume) {
        memcpy(all + n_ids, resume, n_resume * sizeof *resume);
    }
    free(resume);
    for (size_t i = 0; i < total; i++) {
        if (all[i] >= r->n_vocab) {
            int32_t bad = all[i];
            free(all);
            cairn_fail(err, "token id %d is not in the vocabulary", (int)bad);
            return -1;
        }
    }
    w->tokens = all;
    w->n_tokens = total;
    w->n_resume = n_resume;
    return 0;
}

/* The last shard builds the session from these parameters; checking them here refuses a
 * bad request before it takes a slot. */
static int check_params(runner *r, const cJSON *params, cairn_err *err) {
    request_params p;
    if (request_params_from_json(params, &p, err) != 0) {
        return -1;
    }
    cairn_sampler *s = NULL;
    int rc = cairn_sampler_new(&p.gen.sampling, r->n_vocab, &s, err);
    cairn_sampler_free(s);
    request_params_free(&p);
    return rc;
}

static int on_request(runner *r, dlink *l, const cJSON *msg, cairn_err *err) {
    uint64_t id = 0;
    if (cairn_json_get_number(msg, "id", &id, err) != 0) {
        return -1;
    }
    waiting_request *w = calloc(1, sizeof *w);
    if (!w) {
        return cairn_fail(err, "out of memory");
    }
    w->client = l;
    w->client_id = id;
    cairn_err why = {{0}};
    const cJSON *params = cairn_json_field(msg, "params");
    bool busy = r->phase != PHASE_READY || r->n_waiting >= (size_t)r->max_waiting;
    if (r->phase != PHASE_READY) {
        cairn_fail(&why, "the instance is not ready");
    } else if (busy) {
        cairn_fail(&why, "too many requests are waiting for a slot (%zu)", r->n_waiting);
    } else if (check_params(r, params, &why) == 0 && request_tokens(r, msg, w, &why) == 0) {
        w->params = cJSON_Duplicate(params, true);
    }
    if (why.msg[0] || !w->params) {
        client_error(l, id, why.msg[0] ? why.msg : "out of memory", busy);
        waiting_free(w);
        return 0;
    }
    bool count_only = cJSON_IsTrue(cairn_json_field(msg, "count"));
    client_prompt_count(l, id, w->n_tokens, count_only);
    if (count_only) {
        waiting_free(w);
        return 0;
    }
    if (r->waiting_tail) {
        r->waiting_tail->next = w;
    } else {
        r->waiting_head = w;
    }
    r->waiting_tail = w;
    r->n_waiting++;
    start_waiting(r);
    return 0;
}

static void cancel_client(runner *r, dlink *l, bool any_id, uint64_t id) {
    for (int i = 0; r->slot_table && i < r->slots; i++) {
        runner_slot *s = &r->slot_table[i];
        if (s->used && s->client == l && (any_id || s->client_id == id)) {
            s->cancelled = true;
            s->client = NULL;
        }
    }
    waiting_request **p = &r->waiting_head;
    r->waiting_tail = NULL;
    while (*p) {
        waiting_request *w = *p;
        if (w->client == l && (any_id || w->client_id == id)) {
            *p = w->next;
            r->n_waiting--;
            waiting_free(w);
        } else {
            r->waiting_tail = w;
            p = &w->next;
        }
    }
}

int flow_on_client_frame(runner *r, dlink *l, const cJSON *msg, cairn_err *err) {
    const char *op = cJSON_GetStringValue(cairn_json_field(msg, "op"));
    if (op && strcmp(op, "request") == 0) {
        return on_request(r, l, msg, err);
    }
    if (op && strcmp(op, "cancel") == 0) {
        uint64_t id = 0;
        if (cairn_json_get_number(msg, "id", &id, err) != 0) {
            return -1;
        }
        cancel_client(r, l, false, id);
        return 0;
    }
    return cairn_fail(err, "unknown client message \"%s\"", op ? op : "?");
}

void flow_client_gone(runner *r, dlink *l) {
    cancel_client(r, l, true, 0);
}

/* ---- the other shards: what comes down the pipeline ---- */

static int on_begin(runner *r, cJSON *msg, cairn_err *err) {
    uint64_t rid = 0, slot = 0, keep = 0;
    uint32_t n_prompt = 0, n_resume = 0;
    if (cairn_json_get_number(msg, "rid", &rid, err) != 0 ||
        cairn_json_get_uint(msg, "slot", (uint64_t)r->slots - 1, &slot, err) != 0 ||
        !cairn_json_get_array(msg, "prompt", RUNNER_MAX_REQUEST_TOKENS, &n_prompt, err) ||
        !cairn_json_get_array(msg, "resume", RUNNER_MAX_REQUEST_TOKENS, &n_resume, err) ||
        cairn_json_get_uint(msg, "keep", (uint64_t)r->n_ctx - 1, &keep, err) != 0) {
        return cairn_fail_prefix(err, "begin");
    }
    if (keep >= (uint64_t)n_prompt + n_resume) {
        return cairn_fail(err, "begin: keeps %llu positions of a request of %u tokens",
                          (unsigned long long)keep, n_prompt + n_resume);
    }
    runner_slot *s = &r->slot_table[slot];
    cairn_gen_session_free(s->session);
    *s = (runner_slot){.used = true, .rid = rid, .n_total = (int)(n_prompt + n_resume)};
    runner_activity(r);
    job *j = flow_job_new(JOB_BEGIN);
    if (!j) {
        return cairn_fail(err, "out of memory");
    }
    j->rid = rid;
    j->slot = (int)slot;
    j->keep = (int)keep;
    j->msg = msg;
    flow_enqueue(r, j);
    return 1; /* the job owns msg now */
}

static int on_end(runner *r, cJSON *msg, cairn_err *err) {
    uint64_t rid = 0;
    if (cairn_json_get_number(msg, "rid", &rid, err) != 0) {
        return cairn_fail_prefix(err, "end");
    }
    runner_slot *s = slot_of(r, rid);
    if (!s) {
        return 0;
    }
    job *j = flow_job_new(JOB_END);
    if (!j) {
        return cairn_fail(err, "out of memory");
    }
    j->rid = rid;
    j->slot = (int)(s - r->slot_table);
    j->msg = msg;
    flow_enqueue(r, j);
    return 1;
}

static int on_activations(runner *r, const cairn_wire_frame *f, cairn_err *err) {
    cairn_wire_data d;
    if (cairn_wire_parse_data(f, &d, err) != 0) {
        return -1;
    }
    runner_slot *s = slot_of(r, d.h.request_id);
    if (!s || d.h.width != (uint32_t)r->n_embd || d.h.n_tokens > (uint32_t)r->n_batch ||
        d.h.pos + d.h.n_tokens > (uint32_t)r->n_ctx) {
        return cairn_fail(err, "activations for an unknown request or of the wrong shape");
    }
    job *j = flow_job_new(JOB_FORWARD);
    if (!j || !(j->hidden = malloc(d.n_values * sizeof(float)))) {
        flow_job_free(j);
        return cairn_fail(err, "out of memory");
    }
    cairn_wire_data_floats(&d, j->hidden);
    j->rid = s->rid;
    j->slot = (int)(s - r->slot_table);
    j->pos = (int)d.h.pos;
    j->n_tokens = (int)d.h.n_tokens;
    j->sample = r->is_last && j->pos + j->n_tokens >= s->n_total;
    flow_enqueue(r, j);
    return 0;
}

int flow_on_pipeline_frame(runner *r, dlink *l, const cairn_wire_frame *f, cairn_err *err) {
    (void)l;
    if (r->phase != PHASE_READY) {
        return cairn_fail(err, "not serving yet");
    }
    if (f->type == CAIRN_WIRE_DATA_ACTIVATIONS && !r->is_first) {
        return on_activations(r, f, err);
    }
    cJSON *msg = NULL;
    if (f->type != CAIRN_WIRE_CONTROL || cairn_wire_parse_json(f, &msg, err) != 0) {
        return cairn_fail(err, "unexpected %s frame on a pipeline link",
                          cairn_wire_type_name(f->type));
    }
    const char *op = cJSON_GetStringValue(cairn_json_field(msg, "op"));
    int rc;
    if (op && strcmp(op, "hello") == 0) {
        rc = 0;
    } else if (op && strcmp(op, "begin") == 0 && !r->is_first) {
        rc = on_begin(r, msg, err);
    } else if (op && strcmp(op, "end") == 0 && !r->is_first) {
        rc = on_end(r, msg, err);
    } else if (op && strcmp(op, "token") == 0 && r->is_first) {
        rc = head_on_token(r, msg, err);
    } else if (op && strcmp(op, "error") == 0 && r->is_first) {
        rc = head_on_error(r, msg, err);
    } else {
        rc = cairn_fail(err, "unexpected \"%s\" on a pipeline link", op ? op : "?");
    }
    if (rc != 1) {
        cJSON_Delete(msg);
    }
    return rc < 0 ? -1 : 0;
}

/* ---- the last shard: sampling ---- */

/* A token message goes to the first shard: round the ring, or to itself. */
static void to_head(runner *r, cJSON *msg) {
    if (!msg) {
        runner_fail(r, "out of memory");
        return;
    }
    if (r->is_first) {
        cairn_err err = {{0}};
        const char *op = cJSON_GetStringValue(cairn_json_field(msg, "op"));
        int rc =
            strcmp(op, "token") == 0 ? head_on_token(r, msg, &err) : head_on_error(r, msg, &err);
        if (rc != 0) {
            runner_fail(r, "%s", err.msg);
        }
    } else if (r->next) {
        dlink_send_control(r->next, msg);
    }
    cJSON_Delete(msg);
}

static void session_error(runner *r, uint64_t rid, const char *message) {
    cJSON *o = op_message("error");
    cJSON_AddNumberToObject(o, "rid", (double)rid);
    cJSON_AddStringToObject(o, "message", message);
    to_head(r, o);
}

static int start_session(runner *r, runner_slot *s, const cJSON *msg, cairn_err *err) {
    int32_t *prompt = NULL, *resume = NULL;
    size_t n_prompt = 0, n_resume = 0;
    request_params p;
    if (request_params_from_json(cairn_json_field(msg, "params"), &p, err) != 0) {
        return -1;
    }
    int rc = tokens_from_json(cairn_json_field(msg, "prompt"), RUNNER_MAX_REQUEST_TOKENS, &prompt,
                              &n_prompt, err);
    if (rc == 0) {
        rc = tokens_from_json(cairn_json_field(msg, "resume"), RUNNER_MAX_REQUEST_TOKENS, &resume,
                              &n_resume, err);
    }
    if (rc == 0) {
        /* the session copies the stop strings it needs, so p may go right after */
        rc = cairn_gen_session_new(r->tok, r->n_vocab, r->n_ctx, 0, &p.gen, prompt, (int)n_prompt,
                                   resume, (int)n_resume, &s->session, err);
    }
    free(prompt);
    free(resume);
    request_params_free(&p);
    return rc;
}

/* A token's text as its bytes (a piece may hold part of a UTF-8 character, which JSON
 * strings cannot carry). Special tokens show their text: an alternative may be one. */
static cJSON *piece_bytes(const runner *r, int32_t id) {
    char small[256];
    char *buf = small;
    int n = cairn_token_to_piece(r->tok, id, true, small, sizeof small);
    if (n < 0) {
        size_t need = (size_t)-n;
        if (!(buf = malloc(need))) {
            return NULL;
        }
        n = cairn_token_to_piece(r->tok, id, true, buf, need);
    }
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; arr && i < n; i++) {
        if (!cJSON_AddItemToArray(arr, cJSON_CreateNumber((unsigned char)buf[i]))) {
            cJSON_Delete(arr);
            arr = NULL;
        }
    }
    if (buf != small) {
        free(buf);
    }
    return arr;
}

/* OpenAI's figure for a probability too small to represent: JSON has no -infinity. */
static double finite_logprob(float lp) {
    return lp > -9999.0f ? (double)lp : -9999.0;
}

static cJSON *logprob_entry(const runner *r, int32_t id, float logprob) {
    cJSON *e = cJSON_CreateObject();
    if (!e || !cJSON_AddNumberToObject(e, "id", id) ||
        !cJSON_AddNumberToObject(e, "logprob", finite_logprob(logprob)) ||
        !cairn_json_add_child(e, "bytes", piece_bytes(r, id))) {
        cJSON_Delete(e);
        return NULL;
    }
    return e;
}

/* {id, logprob, bytes, top:[{id, logprob, bytes}]} for a step that has them. */
static cJSON *step_logprobs(const runner *r, const cairn_gen_step *step) {
    cJSON *o = logprob_entry(r, step->token, step->logprob);
    cJSON *top = cJSON_CreateArray();
    bool ok = o && top;
    for (int i = 0; ok && i < step->n_top; i++) {
        ok = cJSON_AddItemToArray(top, logprob_entry(r, step->top_ids[i], step->top_logprobs[i]));
    }
    if (!ok || !cairn_json_add_child(o, "top", top)) {
        if (!ok) {
            cJSON_Delete(top);
        }
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static void sample(runner *r, job *j) {
    runner_slot *s = &r->slot_table[j->slot];
    if (!s->used || s->rid != j->rid || !s->session) {
        return;
    }
    cairn_gen_step step;
    cairn_err err = {{0}};
    if (cairn_gen_session_step(s->session, j->out, &step, &err) != 0) {
        session_error(r, j->rid, err.msg);
        return;
    }
    cJSON *o = op_message("token");
    bool ok = o && cJSON_AddNumberToObject(o, "rid", (double)j->rid) &&
              cJSON_AddNumberToObject(o, "token", step.token) &&
              cJSON_AddStringToObject(o, "text", "") && cJSON_AddStringToObject(o, "tail", "") &&
              cJSON_AddBoolToObject(o, "done", step.done) &&
              cJSON_AddStringToObject(o, "finish",
                                      step.done ? cairn_finish_reason_name(step.finish) : "") &&
              cJSON_AddNumberToObject(o, "generated", cairn_gen_session_generated(s->session));
    /* text may hold any bytes the detokenizer made final; JSON needs valid UTF-8, which the
     * stream guarantees by holding back unfinished characters */
    if (ok) {
        char *text = cairn_strndup(step.text, step.len),
             *tail = cairn_strndup(step.tail, step.tail_len);
        ok = text && tail && cJSON_ReplaceItemInObject(o, "text", cJSON_CreateString(text)) &&
             cJSON_ReplaceItemInObject(o, "tail", cJSON_CreateString(tail));
        free(text);
        free(tail);
    }
    if (ok && step.has_logprobs) {
        ok = cairn_json_add_child(o, "logprobs", step_logprobs(r, &step));
    }
    if (ok && step.done && step.stop_index >= 0) {
        ok = cJSON_AddNumberToObject(o, "stop_index", step.stop_index) != NULL;
    }
    if (!ok) {
        cJSON_Delete(o);
        o = NULL;
    }
    if (step.done) {
        cairn_gen_session_free(s->session);
        s->session = NULL;
    }
    to_head(r, o);
}

/* ---- after each compute step ---- */

static void pass_on(runner *r, job *j) {
    const cairn_wire_data_header h = {.request_id = j->rid,
                                      .pos = (uint32_t)j->pos,
                                      .n_tokens = (uint32_t)j->n_tokens,
                                      .width = (uint32_t)r->n_embd};
    if (r->next) {
        dlink_send_activations(r->next, &h, j->out);
    }
}

static void after_begin(runner *r, job *j) {
    if (!r->is_last) {
        if (r->next) {
            dlink_send_control(r->next, j->msg);
        }
        return;
    }
    runner_slot *s = &r->slot_table[j->slot];
    cairn_err err = {{0}};
    if (s->used && s->rid == j->rid && start_session(r, s, j->msg, &err) != 0) {
        session_error(r, j->rid, err.msg);
    }
}

static void after_end(runner *r, job *j) {
    if (!r->is_first) {
        runner_slot *s = &r->slot_table[j->slot];
        if (s->used && s->rid == j->rid) {
            cairn_gen_session_free(s->session);
            *s = (runner_slot){0};
            runner_activity(r);
        }
    }
    if (!r->is_last && r->next) {
        dlink_send_control(r->next, j->msg);
    }
}

static void after_job(runner *r, job *j) {
    if (j->rc != 0) {
        runner_fail(r, "compute step failed: %s", j->err.msg[0] ? j->err.msg : "cancelled");
        return;
    }
    switch (j->kind) {
    case JOB_WARMUP:
        r->phase = PHASE_READY;
        r->running_reported = false;
        runner_report(r, "ready");
        cairn_log(&r->log, CAIRN_LOG_INFO, "ready");
        break;
    case JOB_BEGIN: after_begin(r, j); break;
    case JOB_END: after_end(r, j); break;
    case JOB_FORWARD:
        if (!r->is_last) {
            pass_on(r, j);
        } else if (j->sample) {
            sample(r, j);
        }
        break;
    }
}

/* Jobs that follow from this step's (the next tokens of the requests it sampled) are
 * queued while r->stepping is still set, so they all wait for one next step together. */
static void after_step(uv_work_t *req, int status) {
    runner *r = req->data;
    if (status == 0) {
        r->steps++;
    }
    job *jobs = r->step;
    r->step = NULL;
    if (r->step_sequences > r->most_step_sequences) {
        /* once per new maximum: a line that shows requests really share steps */
        r->most_step_sequences = r->step_sequences;
        cairn_log(&r->log, CAIRN_LOG_INFO, "a compute step held %d sequences", r->step_sequences);
    }
    for (job *j = jobs, *next; j; j = next) {
        next = j->next;
        if (status != 0) {
            j->rc = -1;
        }
        if (r->phase != PHASE_SHUTTING_DOWN) {
            after_job(r, j);
        }
        flow_job_free(j);
    }
    r->stepping = false;
    start_next(r);
}

/* One small step through the shard before serving, so the first request does not pay for
 * allocating compute buffers and faulting in the weights. */
void flow_warm_up(runner *r) {
    job *j = flow_job_new(JOB_WARMUP);
    if (!j) {
        runner_fail(r, "out of memory");
        return;
    }
    j->n_tokens = 1;
    j->hang = r->hang && strcmp(r->hang, "warmup") == 0;
    if (r->is_first) {
        j->tokens = calloc(1, sizeof *j->tokens);
    } else {
        j->hidden = calloc((size_t)r->n_embd, sizeof *j->hidden);
    }
    if (!j->tokens && !j->hidden) {
        flow_job_free(j);
        runner_fail(r, "out of memory");
        return;
    }
    flow_enqueue(r, j);
}
