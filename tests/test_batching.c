/* Steps of many sequences at once (cairn_shard_forward_many) must give every sequence what
 * it gets alone. Eight requests with mixed prompt lengths arrive at different steps, share
 * fewer slots than there are requests, prefill in chunks while others decode, and one is
 * cancelled midway so its slot is reused; each request's greedy tokens must equal those of
 * the same request run alone, on one shard and through a chain of three. Models: the real
 * stories260K (F32 and Q8_0) and random-weight models of gpt-oss (sliding-window layers
 * with a window of 8, so their rings wrap, between global ones; sinks; experts) and of
 * deepseek2 (latent attention; routed and shared experts). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define CAIRN_GENMODEL_NO_MAIN
#include "../tools/cairn-genmodel.c"

#include "engine/engine.h"

#define STORIES_F32 CAIRN_SHARED_DIR "/models/stories260K.gguf"
#define STORIES_Q8 CAIRN_SHARED_DIR "/models/stories260K-q8_0.gguf"
#define GPT_OSS CAIRN_BINARY_DIR "/test_batching_gpt_oss.gguf"
#define DEEPSEEK CAIRN_BINARY_DIR "/test_batching_deepseek.gguf"

#define N_REQUESTS 8
#define N_SLOTS 5  /* fewer than the requests: some wait, slots are reused */
#define N_BATCH 16 /* prompts are split and share steps with decoding */
#define N_CTX 96
#define MAX_SHARDS 3
#define MAX_STEPS 400

typedef struct request_spec {
    int prompt_len, generate, arrives, cancel_after; /* cancel_after 0: runs to the end */
} request_spec;

static const request_spec specs[N_REQUESTS] = {
    {1, 12, 0, 0}, {5, 8, 0, 0},  {17, 10, 1, 0}, {3, 15, 2, 4},
    {40, 6, 3, 0}, {9, 12, 3, 0}, {2, 9, 5, 0},   {23, 7, 6, 0},
};

typedef struct request {
    int32_t prompt[N_CTX];
    int32_t tokens[N_CTX]; /* generated */
    int n_generated, fed, slot;
    bool done;
} request;

typedef struct chain {
    cairn_shard *shards[MAX_SHARDS];
    int n;
    int n_vocab, n_embd;
} chain;

static chain load_chain(const char *path, const int *cuts, int n_cuts) {
    chain c = {.n = n_cuts + 1};
    for (int i = 0; i <= n_cuts; i++) {
        cairn_shard_config cfg = {.model_path = path,
                                  .first_layer = i == 0 ? 0 : cuts[i - 1],
                                  .last_layer = i == n_cuts ? -1 : cuts[i],
                                  .n_ctx = N_CTX,
                                  .n_seq = N_SLOTS,
                                  .n_threads = 1,
                                  .n_batch = N_BATCH,
                                  .kv_f32 = true};
        cairn_err err = {{0}};
        if (cairn_shard_load_ggml(&cfg, &c.shards[i], &err) != 0) {
            fail_msg("loading %s: %s", path, err.msg);
        }
    }
    c.n_vocab = c.shards[0]->info.n_vocab;
    c.n_embd = c.shards[0]->info.n_embd;
    return c;
}

static void free_chain(chain *c) {
    for (int i = 0; i < c->n; i++) {
        cairn_shard_free(c->shards[i]);
    }
}

static int32_t argmax(const float *logits, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++) {
        best = logits[i] > logits[best] ? i : best;
    }
    return best;
}

/* One step of n sequences through every shard; logits[i] gets sequence i's last logits. */
static void chain_step(chain *c, const int *seqs, const int32_t *const *tokens, const int *counts,
                       int n, float **logits) {
    float *hidden[N_REQUESTS] = {0}, *next[N_REQUESTS] = {0};
    for (int k = 0; k < c->n; k++) {
        bool last = k == c->n - 1;
        cairn_batch b[N_REQUESTS];
        for (int i = 0; i < n; i++) {
            b[i] = (cairn_batch){.seq = seqs[i],
                                 .n_tokens = counts[i],
                                 .tokens = k == 0 ? tokens[i] : NULL,
                                 .hidden = k == 0 ? NULL : hidden[i]};
            next[i] = last ? logits[i] : malloc((size_t)counts[i] * c->n_embd * sizeof(float));
        }
        cairn_err err = {{0}};
        if (cairn_shard_forward_many(c->shards[k], b, n, next, &err) != 0) {
            fail_msg("shard %d: %s", k, err.msg);
        }
        for (int i = 0; i < n; i++) {
            free(hidden[i]);
            hidden[i] = last ? NULL : next[i];
        }
    }
}

static void clear_seq(chain *c, int seq) {
    for (int k = 0; k < c->n; k++) {
        cairn_err err = {{0}};
        assert_int_equal(cairn_shard_seq_truncate(c->shards[k], seq, 0, &err), 0);
    }
}

static void make_prompts(request *rq, int n_vocab) {
    uint32_t x = 2024;
    for (int r = 0; r < N_REQUESTS; r++) {
        memset(&rq[r], 0, sizeof(rq[r]));
        rq[r].slot = -1;
        for (int i = 0; i < specs[r].prompt_len; i++) {
            x = x * 1664525u + 1013904223u;
            rq[r].prompt[i] = i == 0 ? 1 : 2 + (int32_t)((x >> 12) % (uint32_t)(n_vocab - 2));
        }
    }
}

static int tokens_wanted(int r) {
    return specs[r].cancel_after ? specs[r].cancel_after : specs[r].generate;
}

/* Each request on its own, in slot 0: the whole prompt, then greedy decoding. */
static void run_alone(chain *c, request *rq) {
    float *logits = malloc((size_t)c->n_vocab * sizeof(float));
    for (int r = 0; r < N_REQUESTS; r++) {
        clear_seq(c, 0);
        const int32_t *in = rq[r].prompt;
        int count = specs[r].prompt_len, seq = 0;
        for (int g = 0; g < tokens_wanted(r); g++) {
            chain_step(c, &seq, &in, &count, 1, &logits);
            rq[r].tokens[g] = argmax(logits, c->n_vocab);
            in = &rq[r].tokens[g];
            count = 1;
        }
        rq[r].n_generated = tokens_wanted(r);
    }
    free(logits);
}

static bool slot_taken(const request *rq, int slot) {
    for (int r = 0; r < N_REQUESTS; r++) {
        if (rq[r].slot == slot && !rq[r].done) {
            return true;
        }
    }
    return false;
}

/* Free slots go to arrived requests in arrival order. */
static void assign_slots(chain *c, request *rq, int step) {
    for (int r = 0; r < N_REQUESTS; r++) {
        if (rq[r].slot >= 0 || rq[r].done || specs[r].arrives > step) {
            continue;
        }
        for (int s = 0; s < N_SLOTS; s++) {
            if (!slot_taken(rq, s)) {
                clear_seq(c, s);
                rq[r].slot = s;
                break;
            }
        }
    }
}

/* What request r feeds this step within the budget: its next token when decoding, else
 * the next chunk of its prompt; 0 when it has nothing to do or no room. */
static int plan_request(const request *q, int r, int budget, const int32_t **in) {
    if (q->slot < 0 || q->done || budget <= 0) {
        return 0;
    }
    int left = specs[r].prompt_len - q->fed;
    if (left > 0) {
        *in = q->prompt + q->fed;
        return left < budget ? left : budget;
    }
    *in = &q->tokens[q->n_generated - 1];
    return 1;
}

/* All requests together: each step takes every decoding request's token first, then prompt
 * chunks as the batch allows. */
static void run_batched(chain *c, request *rq) {
    float *logits[N_REQUESTS];
    for (int i = 0; i < N_REQUESTS; i++) {
        logits[i] = malloc((size_t)c->n_vocab * sizeof(float));
    }
    for (int step = 0; step < MAX_STEPS; step++) {
        assign_slots(c, rq, step);
        int seqs[N_REQUESTS], counts[N_REQUESTS], who[N_REQUESTS], n = 0, budget = N_BATCH;
        const int32_t *in[N_REQUESTS];
        for (int pass = 0; pass < 2; pass++) {
            for (int r = 0; r < N_REQUESTS; r++) {
                bool decoding = rq[r].fed >= specs[r].prompt_len;
                if (decoding != (pass == 0)) {
                    continue;
                }
                int count = plan_request(&rq[r], r, budget, &in[n]);
                if (count > 0) {
                    seqs[n] = rq[r].slot, counts[n] = count, who[n++] = r;
                    budget -= count;
                }
            }
        }
        if (n == 0) {
            bool all_done = true;
            for (int r = 0; r < N_REQUESTS; r++) {
                all_done &= rq[r].done;
            }
            if (all_done) {
                break;
            }
            continue;
        }
        chain_step(c, seqs, in, counts, n, logits);
        for (int i = 0; i < n; i++) {
            request *q = &rq[who[i]];
            q->fed += counts[i];
            if (q->fed < specs[who[i]].prompt_len) {
                continue; /* a prompt chunk short of the end: its logits are not used */
            }
            q->tokens[q->n_generated++] = argmax(logits[i], c->n_vocab);
            q->done = q->n_generated == tokens_wanted(who[i]);
        }
    }
    for (int i = 0; i < N_REQUESTS; i++) {
        free(logits[i]);
    }
}

static void check_batching(const char *path, const int *cuts, int n_cuts) {
    chain c = load_chain(path, cuts, n_cuts);
    static request alone[N_REQUESTS], together[N_REQUESTS];
    make_prompts(alone, c.n_vocab);
    make_prompts(together, c.n_vocab);
    run_alone(&c, alone);
    for (int s = 0; s < N_SLOTS; s++) {
        clear_seq(&c, s);
    }
    run_batched(&c, together);
    for (int r = 0; r < N_REQUESTS; r++) {
        assert_true(together[r].done);
        for (int g = 0; g < tokens_wanted(r); g++) {
            if (alone[r].tokens[g] != together[r].tokens[g]) {
                fail_msg("%s, %d shard(s): request %d token %d is %d batched, %d alone", path, c.n,
                         r, g, (int)together[r].tokens[g], (int)alone[r].tokens[g]);
            }
        }
    }
    free_chain(&c);
}

static void test_stories_f32(void **state) {
    (void)state;
    check_batching(STORIES_F32, NULL, 0);
    check_batching(STORIES_F32, (int[]){2, 4}, 2);
}

static void test_stories_q8(void **state) {
    (void)state;
    check_batching(STORIES_Q8, NULL, 0);
    check_batching(STORIES_Q8, (int[]){1, 3}, 2);
}

static void test_sliding_window(void **state) {
    (void)state;
    check_batching(GPT_OSS, NULL, 0);
    check_batching(GPT_OSS, (int[]){1, 2}, 2);
}

static void test_latent_attention_experts(void **state) {
    (void)state;
    check_batching(DEEPSEEK, NULL, 0);
    check_batching(DEEPSEEK, (int[]){1, 2}, 2);
}

/* A step that names one sequence twice or exceeds the batch is refused. */
static void test_bad_steps(void **state) {
    (void)state;
    chain c = load_chain(STORIES_F32, NULL, 0);
    int32_t tokens[N_BATCH + 1] = {1};
    float *out[2] = {malloc((size_t)c.n_vocab * sizeof(float)),
                     malloc((size_t)c.n_vocab * sizeof(float))};
    cairn_batch twice[2] = {{.seq = 1, .n_tokens = 1, .tokens = tokens},
                            {.seq = 1, .n_tokens = 1, .tokens = tokens}};
    cairn_err err = {{0}};
    assert_int_equal(cairn_shard_forward_many(c.shards[0], twice, 2, out, &err), -1);
    assert_non_null(strstr(err.msg, "twice"));
    cairn_batch big[2] = {{.seq = 0, .n_tokens = N_BATCH, .tokens = tokens},
                          {.seq = 1, .n_tokens = 1, .tokens = tokens}};
    assert_int_equal(cairn_shard_forward_many(c.shards[0], big, 2, out, &err), -1);
    assert_non_null(strstr(err.msg, "exceeds"));
    assert_int_equal(cairn_shard_seq_len(c.shards[0], 0), 0);
    free(out[0]);
    free(out[1]);
    free_chain(&c);
}

static int generate(const char *shape, const char *path, int layers, int experts, int window) {
    gm_options opt = {.shape = shape,
                      .n_swa = window,
                      .n_experts = experts,
                      .n_ff_exp = 256,
                      .type = "F32",
                      .out_path = path,
                      .n_layers = layers,
                      .n_vocab = 2048,
                      .seed = 11,
                      .weight_std = 0.05f};
    gm_stats stats;
    cairn_err err = {{0}};
    if (gm_generate(&opt, &stats, &err) != 0) {
        fprintf(stderr, "generating %s: %s\n", shape, err.msg);
        return -1;
    }
    return 0;
}

static int setup(void **state) {
    (void)state;
    (void)gm_main; /* the tool's entry point, not used by the test */
    /* a window shorter than the longer prompts, so rings wrap inside batched steps */
    return generate("gpt-oss-20b", GPT_OSS, 3, 4, 8) ||
           generate("deepseek-v3-small", DEEPSEEK, 3, 16, 0);
}

static int teardown(void **state) {
    (void)state;
    remove(GPT_OSS);
    remove(DEEPSEEK);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories_f32),    cmocka_unit_test(test_stories_q8),
        cmocka_unit_test(test_sliding_window), cmocka_unit_test(test_latent_attention_experts),
        cmocka_unit_test(test_bad_steps),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
