/* Tests of the dummy engine: determinism, split invariance, sequences, truncation, limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/engine.h"
#include "platform/platform.h"

enum { N_LAYER = 5, N_VOCAB = 97, N_EMBD = 12, PROMPT = 20, DECODE = 20 };

static cairn_dummy_config base_config(void) {
    cairn_dummy_config c;
    memset(&c, 0, sizeof(c));
    c.n_layer = N_LAYER;
    c.last_layer = -1;
    c.n_vocab = N_VOCAB;
    c.n_embd = N_EMBD;
    c.n_ctx = 256;
    c.n_seq = 2;
    c.seed = 42;
    return c;
}

static cairn_shard *make_shard(cairn_dummy_config c, int first, int last) {
    c.first_layer = first;
    c.last_layer = last;
    cairn_shard *s = NULL;
    cairn_err err = {{0}};
    int rc = cairn_shard_create_dummy(&c, &s, &err);
    if (rc != 0) {
        print_error("create_dummy: %s\n", err.msg);
    }
    assert_int_equal(rc, 0);
    return s;
}

/* A chain of dummy shards split at the given cuts, run by hand through the shard API. */
typedef struct chain {
    cairn_shard *shards[N_LAYER];
    int n;
} chain;

static chain make_chain(cairn_dummy_config c, const int *cuts, int n_cuts) {
    chain ch = {{0}, 0};
    int first = 0;
    for (int i = 0; i <= n_cuts; i++) {
        int last = i < n_cuts ? cuts[i] : N_LAYER;
        ch.shards[ch.n++] = make_shard(c, first, last);
        first = last;
    }
    return ch;
}

static void free_chain(chain *ch) {
    for (int i = 0; i < ch->n; i++) {
        cairn_shard_free(ch->shards[i]);
    }
}

/* Feeds tokens through every shard; the last shard's logits (all rows if all_logits) go to
 * logits. */
static void chain_forward(chain *ch, int seq, const int32_t *tokens, int n_tokens, bool all_logits,
                          float *logits) {
    float *hidden = NULL;
    for (int i = 0; i < ch->n; i++) {
        cairn_shard *s = ch->shards[i];
        cairn_batch b = {.seq = seq, .n_tokens = n_tokens, .all_logits = all_logits};
        b.tokens = tokens;
        b.hidden = hidden;
        bool last = i == ch->n - 1;
        float *out = last ? logits : malloc(sizeof(float) * cairn_shard_output_floats(s, &b));
        assert_non_null(out);
        cairn_err err = {{0}};
        int rc = cairn_shard_forward(s, &b, out, &err);
        if (rc != 0) {
            print_error("forward: %s\n", err.msg);
        }
        assert_int_equal(rc, 0);
        free(hidden);
        hidden = last ? NULL : out;
    }
}

static int32_t argmax(const float *v, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++) {
        if (v[i] > v[best]) {
            best = i;
        }
    }
    return best;
}

static void make_prompt(int32_t *tokens, int n, int salt) {
    for (int i = 0; i < n; i++) {
        tokens[i] = (int32_t)((i * 31 + salt * 17 + 5) % N_VOCAB);
    }
}

/* Prefill then greedy decode; records every logit row (prompt rows too) and the tokens. */
typedef struct trace {
    float prompt_logits[PROMPT * N_VOCAB];
    float decode_logits[DECODE * N_VOCAB];
    int32_t generated[DECODE];
} trace;

static void run_trace(chain *ch, int seq, const int32_t *prompt, trace *t) {
    chain_forward(ch, seq, prompt, PROMPT, true, t->prompt_logits);
    int32_t next = argmax(t->prompt_logits + (PROMPT - 1) * N_VOCAB, N_VOCAB);
    for (int i = 0; i < DECODE; i++) {
        t->generated[i] = next;
        chain_forward(ch, seq, &next, 1, false, t->decode_logits + i * N_VOCAB);
        next = argmax(t->decode_logits + i * N_VOCAB, N_VOCAB);
    }
}

static trace *unsplit_trace(cairn_dummy_config c, const int32_t *prompt) {
    trace *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    chain ch = make_chain(c, NULL, 0);
    run_trace(&ch, 0, prompt, t);
    free_chain(&ch);
    return t;
}

static void test_info(void **state) {
    (void)state;
    cairn_shard *s = make_shard(base_config(), 1, 3);
    assert_int_equal(s->info.first_layer, 1);
    assert_int_equal(s->info.last_layer, 3);
    assert_int_equal(s->info.n_layer, N_LAYER);
    assert_int_equal(s->info.n_vocab, N_VOCAB);
    assert_int_equal(s->info.n_embd, N_EMBD);
    assert_false(s->info.is_first);
    assert_false(s->info.is_last);
    assert_true(s->info.weight_bytes > 0);
    assert_string_equal(s->ops->name, "dummy");
    cairn_shard_free(s);

    cairn_dummy_config c;
    memset(&c, 0, sizeof(c));
    c.n_layer = 2;
    c.last_layer = -1;
    s = make_shard(c, 0, -1);
    assert_true(s->info.is_first && s->info.is_last);
    assert_int_equal(s->info.n_vocab, 256);
    assert_int_equal(s->info.n_embd, 16);
    assert_int_equal(s->info.n_ctx, 4096);
    assert_int_equal(s->info.n_seq, 1);
    assert_int_equal(s->info.n_batch, 512);
    cairn_shard_free(s);
}

static void test_deterministic_and_nontrivial(void **state) {
    (void)state;
    int32_t prompt[PROMPT];
    make_prompt(prompt, PROMPT, 0);
    trace *a = unsplit_trace(base_config(), prompt);
    trace *b = unsplit_trace(base_config(), prompt);
    assert_memory_equal(a, b, sizeof(*a));

    /* Greedy output is not constant, not a simple successor rule, and has variety. */
    int distinct = 0, successor = 0;
    for (int i = 0; i < DECODE; i++) {
        int seen = 0;
        for (int j = 0; j < i; j++) {
            seen |= a->generated[j] == a->generated[i];
        }
        distinct += !seen;
        if (i > 0) {
            successor += a->generated[i] == (a->generated[i - 1] + 1) % N_VOCAB;
        }
    }
    assert_true(distinct >= 5);
    assert_true(successor < DECODE / 2);

    /* Another seed is another model. */
    cairn_dummy_config other = base_config();
    other.seed = 43;
    trace *c = unsplit_trace(other, prompt);
    assert_memory_not_equal(a->decode_logits, c->decode_logits, sizeof(a->decode_logits));
    free(a);
    free(b);
    free(c);
}

static void test_history_matters(void **state) {
    (void)state;
    /* One earlier token differs: rows before it are equal, every row from it on differs,
     * including the last, whose own token is the same. */
    enum { CHANGED = 10 };
    int32_t p1[PROMPT], p2[PROMPT];
    make_prompt(p1, PROMPT, 0);
    memcpy(p2, p1, sizeof(p1));
    p2[CHANGED] = (p2[CHANGED] + 1) % N_VOCAB;
    trace *a = unsplit_trace(base_config(), p1);
    trace *b = unsplit_trace(base_config(), p2);
    assert_memory_equal(a->prompt_logits, b->prompt_logits, sizeof(float) * CHANGED * N_VOCAB);
    for (int row = CHANGED; row < PROMPT; row++) {
        assert_memory_not_equal(a->prompt_logits + row * N_VOCAB, b->prompt_logits + row * N_VOCAB,
                                sizeof(float) * N_VOCAB);
    }
    free(a);
    free(b);
}

static void check_split(const int *cuts, int n_cuts, const int32_t *prompt, const trace *want) {
    trace *got = calloc(1, sizeof(*got));
    assert_non_null(got);
    chain ch = make_chain(base_config(), cuts, n_cuts);
    run_trace(&ch, 0, prompt, got);
    free_chain(&ch);
    assert_memory_equal(got, want, sizeof(*got));
    free(got);
}

static void test_split_invariance(void **state) {
    (void)state;
    int32_t prompt[PROMPT];
    make_prompt(prompt, PROMPT, 3);
    trace *want = unsplit_trace(base_config(), prompt);
    int splits = 0;
    for (int a = 1; a < N_LAYER; a++) {
        int two[1] = {a};
        check_split(two, 1, prompt, want);
        splits++;
        for (int b = a + 1; b < N_LAYER; b++) {
            int three[2] = {a, b};
            check_split(three, 2, prompt, want);
            splits++;
        }
    }
    assert_int_equal(splits, 4 + 6);
    int every_layer[4] = {1, 2, 3, 4};
    check_split(every_layer, 4, prompt, want);
    free(want);
}

static void test_token_by_token_equals_batch(void **state) {
    (void)state;
    int32_t prompt[PROMPT];
    make_prompt(prompt, PROMPT, 4);
    trace *want = unsplit_trace(base_config(), prompt);
    chain ch = make_chain(base_config(), NULL, 0);
    float row[N_VOCAB];
    for (int i = 0; i < PROMPT; i++) {
        chain_forward(&ch, 0, &prompt[i], 1, false, row);
        assert_memory_equal(row, want->prompt_logits + i * N_VOCAB, sizeof(row));
    }
    free_chain(&ch);
    free(want);
}

static void test_sequences_independent(void **state) {
    (void)state;
    int32_t p0[PROMPT], p1[PROMPT];
    make_prompt(p0, PROMPT, 0);
    make_prompt(p1, PROMPT, 9);
    trace *want0 = unsplit_trace(base_config(), p0);
    trace *want1 = unsplit_trace(base_config(), p1);

    /* Interleave the two sequences step by step on one split chain. */
    int cut[1] = {2};
    chain ch = make_chain(base_config(), cut, 1);
    trace *got0 = calloc(1, sizeof(*got0));
    trace *got1 = calloc(1, sizeof(*got1));
    assert_non_null(got0);
    assert_non_null(got1);
    chain_forward(&ch, 0, p0, PROMPT, true, got0->prompt_logits);
    chain_forward(&ch, 1, p1, PROMPT, true, got1->prompt_logits);
    int32_t next0 = argmax(got0->prompt_logits + (PROMPT - 1) * N_VOCAB, N_VOCAB);
    int32_t next1 = argmax(got1->prompt_logits + (PROMPT - 1) * N_VOCAB, N_VOCAB);
    for (int i = 0; i < DECODE; i++) {
        got1->generated[i] = next1;
        chain_forward(&ch, 1, &next1, 1, false, got1->decode_logits + i * N_VOCAB);
        next1 = argmax(got1->decode_logits + i * N_VOCAB, N_VOCAB);
        got0->generated[i] = next0;
        chain_forward(&ch, 0, &next0, 1, false, got0->decode_logits + i * N_VOCAB);
        next0 = argmax(got0->decode_logits + i * N_VOCAB, N_VOCAB);
    }
    assert_memory_equal(got0, want0, sizeof(*got0));
    assert_memory_equal(got1, want1, sizeof(*got1));
    for (int i = 0; i < ch.n; i++) {
        assert_int_equal(cairn_shard_seq_len(ch.shards[i], 0), PROMPT + DECODE);
        assert_int_equal(cairn_shard_seq_len(ch.shards[i], 1), PROMPT + DECODE);
    }
    free_chain(&ch);
    free(got0);
    free(got1);
    free(want0);
    free(want1);
}

static void test_truncate_and_refeed(void **state) {
    (void)state;
    int32_t prompt[PROMPT];
    make_prompt(prompt, PROMPT, 6);
    trace *want = unsplit_trace(base_config(), prompt);
    int cut[1] = {3};
    chain ch = make_chain(base_config(), cut, 1);
    float *logits = malloc(sizeof(float) * PROMPT * N_VOCAB);
    assert_non_null(logits);
    chain_forward(&ch, 0, prompt, PROMPT, true, logits);

    /* Replace the tail with different tokens, then go back and refeed the original. */
    int keep = 7;
    cairn_err err = {{0}};
    for (int i = 0; i < ch.n; i++) {
        assert_int_equal(cairn_shard_seq_truncate(ch.shards[i], 0, keep, &err), 0);
        assert_int_equal(cairn_shard_seq_len(ch.shards[i], 0), keep);
    }
    int32_t detour[5] = {1, 2, 3, 4, 5};
    chain_forward(&ch, 0, detour, 5, true, logits);
    for (int i = 0; i < ch.n; i++) {
        assert_int_equal(cairn_shard_seq_truncate(ch.shards[i], 0, keep, &err), 0);
    }
    chain_forward(&ch, 0, prompt + keep, PROMPT - keep, true, logits);
    assert_memory_equal(logits, want->prompt_logits + keep * N_VOCAB,
                        sizeof(float) * (PROMPT - keep) * N_VOCAB);

    /* Clearing restarts the sequence; keeping more than it holds changes nothing. */
    for (int i = 0; i < ch.n; i++) {
        assert_int_equal(cairn_shard_seq_truncate(ch.shards[i], 0, 1000, &err), 0);
        assert_int_equal(cairn_shard_seq_len(ch.shards[i], 0), PROMPT);
        assert_int_equal(cairn_shard_seq_truncate(ch.shards[i], 0, 0, &err), 0);
        assert_int_equal(cairn_shard_seq_len(ch.shards[i], 0), 0);
    }
    chain_forward(&ch, 0, prompt, PROMPT, true, logits);
    assert_memory_equal(logits, want->prompt_logits, sizeof(float) * PROMPT * N_VOCAB);
    assert_int_equal(cairn_shard_seq_truncate(ch.shards[0], 5, 0, &err), -1);
    assert_int_equal(cairn_shard_seq_truncate(ch.shards[0], 0, -1, &err), -1);
    free_chain(&ch);
    free(logits);
    free(want);
}

static void test_context_limit(void **state) {
    (void)state;
    cairn_dummy_config c = base_config();
    c.n_ctx = 8;
    cairn_shard *s = make_shard(c, 0, -1);
    int32_t tokens[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    float logits[N_VOCAB];
    cairn_batch b = {.seq = 0, .n_tokens = 5, .tokens = tokens};
    cairn_err err = {{0}};
    assert_int_equal(cairn_shard_forward(s, &b, logits, &err), 0);
    b.n_tokens = 4;
    assert_int_equal(cairn_shard_forward(s, &b, logits, &err), -1);
    assert_non_null(strstr(err.msg, "context"));
    assert_int_equal(cairn_shard_seq_len(s, 0), 5); /* the failed batch left no trace */
    b.n_tokens = 3;
    assert_int_equal(cairn_shard_forward(s, &b, logits, &err), 0);
    assert_int_equal(cairn_shard_seq_len(s, 0), 8);

    /* Batches the shard cannot take are refused before they reach it. */
    b.seq = 2;
    assert_int_equal(cairn_shard_forward(s, &b, logits, &err), -1);
    b.seq = 1;
    int32_t bad[1] = {N_VOCAB};
    b.tokens = bad;
    b.n_tokens = 1;
    assert_int_equal(cairn_shard_forward(s, &b, logits, &err), -1);
    cairn_shard_free(s);
}

static void expect_bad_config(cairn_dummy_config c, const char *why) {
    cairn_shard *s = NULL;
    cairn_err err = {{0}};
    int rc = cairn_shard_create_dummy(&c, &s, &err);
    if (rc != -1) {
        print_error("config accepted: %s\n", why);
    }
    assert_int_equal(rc, -1);
    assert_null(s);
    assert_true(strlen(err.msg) > 0);
}

static void test_bad_configs(void **state) {
    (void)state;
    cairn_dummy_config ok = base_config();
    cairn_dummy_config c = ok;
    c.n_layer = 0;
    expect_bad_config(c, "no layers");
    c = ok;
    c.first_layer = -1;
    expect_bad_config(c, "negative first layer");
    c = ok;
    c.first_layer = N_LAYER;
    expect_bad_config(c, "first layer past the end");
    c = ok;
    c.first_layer = 2;
    c.last_layer = 2;
    expect_bad_config(c, "empty range");
    c = ok;
    c.first_layer = 3;
    c.last_layer = 2;
    expect_bad_config(c, "reversed range");
    c = ok;
    c.last_layer = N_LAYER + 1;
    expect_bad_config(c, "last layer past the end");
    c = ok;
    c.last_layer = -2;
    expect_bad_config(c, "negative last layer");
    c = ok;
    c.n_vocab = -5;
    expect_bad_config(c, "negative vocabulary");
    c = ok;
    c.n_embd = -1;
    expect_bad_config(c, "negative width");
    c = ok;
    c.n_ctx = -1;
    expect_bad_config(c, "negative context");
    c = ok;
    c.n_seq = -3;
    expect_bad_config(c, "negative sequences");
    c = ok;
    c.n_batch = -1;
    expect_bad_config(c, "negative batch");
    c = ok;
    c.delay_ms_per_token = -1;
    expect_bad_config(c, "negative delay");
    c = ok;
    c.n_vocab = 1 << 24;
    c.n_embd = 1 << 16;
    expect_bad_config(c, "absurd output matrix");
}

static void test_delay(void **state) {
    (void)state;
    cairn_dummy_config c = base_config();
    c.delay_ms_per_token = 5;
    cairn_shard *s = make_shard(c, 0, 2);
    int32_t tokens[2] = {1, 2};
    float hidden[2 * N_EMBD];
    cairn_batch b = {.seq = 0, .n_tokens = 2, .tokens = tokens};
    double t0 = cairn_now_seconds();
    assert_int_equal(cairn_shard_forward(s, &b, hidden, NULL), 0);
    double elapsed = cairn_now_seconds() - t0;
    assert_true(elapsed >= 0.019); /* 2 tokens * 2 layers * 5 ms */
    cairn_shard_free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_info),
        cmocka_unit_test(test_deterministic_and_nontrivial),
        cmocka_unit_test(test_history_matters),
        cmocka_unit_test(test_split_invariance),
        cmocka_unit_test(test_token_by_token_equals_batch),
        cmocka_unit_test(test_sequences_independent),
        cmocka_unit_test(test_truncate_and_refeed),
        cmocka_unit_test(test_context_limit),
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_delay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
