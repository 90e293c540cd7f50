/* generation: the prompt-to-text loop (see generation.h). */
#include "generation/generation.h"

#include <stdlib.h>

#include "platform/platform.h"

typedef struct generation_state {
    cairn_sampler *sampler;
    cairn_stop_matcher *stops;
    cairn_detok_stream detok;
    cairn_buf piece; /* detokenized text of the current token */
    cairn_buf text;  /* text that became final with the current token */
    float *logits;
} generation_state;

static void state_free(generation_state *st) {
    cairn_sampler_free(st->sampler);
    cairn_stop_matcher_free(st->stops);
    cairn_detok_stream_free(&st->detok);
    cairn_buf_free(&st->piece);
    cairn_buf_free(&st->text);
    free(st->logits);
}

static int state_init(generation_state *st, const cairn_generation_target *target,
                      const cairn_tokenizer *tok, const cairn_generation_params *params,
                      cairn_err *err) {
    if (cairn_sampler_new(&params->sampling, target->n_vocab, &st->sampler, err) != 0 ||
        cairn_stop_matcher_new(params->stop, params->n_stop, &st->stops, err) != 0) {
        return -1;
    }
    cairn_detok_stream_init(&st->detok, tok, false);
    st->logits = malloc((size_t)target->n_vocab * sizeof(float));
    if (!st->logits) {
        return cairn_fail(err, "out of memory");
    }
    return 0;
}

/* Turns one token into final text; returns 1 if a stop string ended the generation. */
static int emit_token(generation_state *st, int32_t token, cairn_err *err) {
    st->piece.len = 0;
    st->text.len = 0;
    if (cairn_detok_stream_push(&st->detok, token, &st->piece, err) != 0) {
        return -1;
    }
    int hit = cairn_stop_matcher_push(st->stops, st->piece.data ? st->piece.data : "",
                                      st->piece.len, &st->text);
    if (hit < 0) {
        return cairn_fail(err, "out of memory");
    }
    return hit;
}

/* Text still held back (an unfinished character or a possible stop prefix) at the end. */
static int flush_text(generation_state *st, cairn_err *err) {
    st->piece.len = 0;
    st->text.len = 0;
    if (cairn_detok_stream_flush(&st->detok, &st->piece) != 0 ||
        cairn_stop_matcher_push(st->stops, st->piece.data ? st->piece.data : "", st->piece.len,
                                &st->text) < 0 ||
        cairn_stop_matcher_flush(st->stops, &st->text) != 0) {
        return cairn_fail(err, "out of memory");
    }
    return 0;
}

static int check_prompt(const cairn_generation_target *target, int n_prompt, cairn_err *err) {
    if (n_prompt <= 0) {
        return cairn_fail(err, "the prompt is empty");
    }
    if (target->n_past + n_prompt >= target->n_ctx) {
        return cairn_fail(err,
                          "the prompt has %d tokens; with %d already in context that "
                          "leaves no room in the context of %d",
                          n_prompt, target->n_past, target->n_ctx);
    }
    return 0;
}

static int run_loop(generation_state *st, const cairn_generation_target *target,
                    const cairn_tokenizer *tok, const int32_t *prompt, int n_prompt,
                    const cairn_generation_params *params, cairn_token_fn on_token, void *user,
                    cairn_generation_result *res, cairn_err *err) {
    for (int i = 0; i < n_prompt; i++) {
        cairn_sampler_accept(st->sampler, prompt[i]);
    }
    double t0 = cairn_now_seconds();
    if (target->forward(target->user, prompt, n_prompt, st->logits, err) != 0) {
        return -1;
    }
    double t1 = cairn_now_seconds();
    res->prefill_seconds = t1 - t0;
    int n_pos = target->n_past + n_prompt;
    res->finish = CAIRN_FINISH_LENGTH;
    for (;;) {
        int32_t token = cairn_sampler_sample(st->sampler, st->logits);
        cairn_sampler_accept(st->sampler, token);
        if (!params->ignore_eog && cairn_tokenizer_is_eog(tok, token)) {
            res->finish = CAIRN_FINISH_STOP;
            break;
        }
        res->n_generated++;
        int hit = emit_token(st, token, err);
        if (hit < 0) {
            return -1;
        }
        if (on_token(user, token, st->text.data ? st->text.data : "", st->text.len) != 0) {
            res->finish = CAIRN_FINISH_CANCELLED;
            break;
        }
        if (hit) {
            res->finish = CAIRN_FINISH_STOP;
            break;
        }
        if ((params->max_tokens > 0 && res->n_generated >= params->max_tokens) ||
            n_pos >= target->n_ctx) {
            break;
        }
        if (target->forward(target->user, &token, 1, st->logits, err) != 0) {
            return -1;
        }
        n_pos++;
    }
    res->decode_seconds = cairn_now_seconds() - t1;
    if (res->finish != CAIRN_FINISH_CANCELLED) {
        if (flush_text(st, err) != 0) {
            return -1;
        }
        if (st->text.len > 0) {
            on_token(user, -1, st->text.data, st->text.len);
        }
    }
    return 0;
}

int cairn_generate(const cairn_generation_target *target, const cairn_tokenizer *tok,
                   const int32_t *prompt, int n_prompt, const cairn_generation_params *params,
                   cairn_token_fn on_token, void *user, cairn_generation_result *result,
                   cairn_err *err) {
    cairn_generation_result res = {0};
    res.n_prompt = n_prompt;
    if (check_prompt(target, n_prompt, err) != 0) {
        return -1;
    }
    generation_state st = {0};
    int rc = state_init(&st, target, tok, params, err);
    if (rc == 0) {
        rc = run_loop(&st, target, tok, prompt, n_prompt, params, on_token, user, &res, err);
    }
    state_free(&st);
    if (result) {
        *result = res;
    }
    return rc;
}

const char *cairn_finish_reason_name(cairn_finish_reason r) {
    switch (r) {
    case CAIRN_FINISH_STOP: return "stop";
    case CAIRN_FINISH_LENGTH: return "length";
    case CAIRN_FINISH_CANCELLED: return "cancelled";
    }
    return "unknown";
}

int cairn_pipeline_seq_forward(void *user, const int32_t *tokens, int n_tokens, float *logits,
                               cairn_err *err) {
    const cairn_pipeline_seq *ps = user;
    return cairn_pipeline_forward(ps->pipeline, ps->seq, tokens, n_tokens, false, logits, err);
}
