/* generation: the prompt-to-text loop (see generation.h). */
#include "generation/generation.h"

#include "engine/engine.h"

#include <stdlib.h>

#include "platform/platform.h"

struct cairn_gen_session {
    const cairn_tokenizer *tok;
    cairn_generation_params params;
    int n_vocab;
    int n_ctx;
    int n_pos; /* positions the sequence holds, the last sampled token not included */
    int n_generated;
    cairn_sampler *sampler;
    cairn_stop_matcher *stops;
    cairn_detok_stream detok;
    cairn_buf piece; /* detokenized text of the current token */
    cairn_buf text;  /* text that became final with the current token */
    cairn_buf tail;  /* text held back until the end */
};

void cairn_gen_session_free(cairn_gen_session *s) {
    if (!s) {
        return;
    }
    cairn_sampler_free(s->sampler);
    cairn_stop_matcher_free(s->stops);
    cairn_detok_stream_free(&s->detok);
    cairn_buf_free(&s->piece);
    cairn_buf_free(&s->text);
    cairn_buf_free(&s->tail);
    free(s);
}

/* Turns one token into final text in s->text; returns 1 if a stop string ended the
 * generation. */
static int push_token(cairn_gen_session *s, int32_t token, cairn_err *err) {
    s->piece.len = 0;
    s->text.len = 0;
    if (cairn_detok_stream_push(&s->detok, token, &s->piece, err) != 0) {
        return -1;
    }
    int hit = cairn_stop_matcher_push(s->stops, s->piece.data ? s->piece.data : "", s->piece.len,
                                      &s->text);
    if (hit < 0) {
        return cairn_fail(err, "out of memory");
    }
    return hit;
}

/* Text still held back (an unfinished character or a possible stop prefix) at the end. */
static int flush_tail(cairn_gen_session *s, cairn_err *err) {
    s->piece.len = 0;
    s->tail.len = 0;
    if (cairn_detok_stream_flush(&s->detok, &s->piece) != 0 ||
        cairn_stop_matcher_push(s->stops, s->piece.data ? s->piece.data : "", s->piece.len,
                                &s->tail) < 0 ||
        cairn_stop_matcher_flush(s->stops, &s->tail) != 0) {
        return cairn_fail(err, "out of memory");
    }
    return 0;
}

static int check_prompt(int n_ctx, int n_past, int n_prompt, cairn_err *err) {
    if (n_prompt <= 0) {
        return cairn_fail(err, "the prompt is empty");
    }
    if (n_past + n_prompt >= n_ctx) {
        return cairn_fail(err,
                          "the prompt has %d tokens; with %d already in context that "
                          "leaves no room in the context of %d",
                          n_prompt, n_past, n_ctx);
    }
    return 0;
}

/* The tokens a resumed request had already streamed: they shape the sampler's penalties and
 * the detokenizer exactly as when they were first generated, but their text is not new. */
static int replay(cairn_gen_session *s, const int32_t *resume, int n_resume, cairn_err *err) {
    for (int i = 0; i < n_resume; i++) {
        cairn_sampler_accept(s->sampler, resume[i]);
        s->n_generated++;
        int hit = push_token(s, resume[i], err);
        if (hit != 0) {
            return hit < 0 ? -1 : cairn_fail(err, "the resumed tokens already end the text");
        }
    }
    return 0;
}

static bool has_text(const cairn_tokenizer *tok, const int32_t *ids, int n) {
    for (int i = 0; i < n; i++) {
        if (!cairn_tokenizer_is_control(tok, ids[i])) {
            return true;
        }
    }
    return false;
}

int cairn_gen_session_new(const cairn_tokenizer *tok, int n_vocab, int n_ctx, int n_past,
                          const cairn_generation_params *params, const int32_t *prompt,
                          int n_prompt, const int32_t *resume, int n_resume,
                          cairn_gen_session **out, cairn_err *err) {
    if (check_prompt(n_ctx, n_past, n_prompt + n_resume, err) != 0) {
        return -1;
    }
    if (params->top_logprobs < 0 || params->top_logprobs > CAIRN_MAX_TOP_LOGPROBS) {
        return cairn_fail(err, "top_logprobs must be from 0 to %d", CAIRN_MAX_TOP_LOGPROBS);
    }
    cairn_gen_session *s = calloc(1, sizeof *s);
    if (!s) {
        return cairn_fail(err, "out of memory");
    }
    s->tok = tok;
    s->params = *params;
    s->n_vocab = n_vocab;
    s->n_ctx = n_ctx;
    s->n_pos = n_past + n_prompt + n_resume;
    cairn_detok_stream_init(&s->detok, tok, false);
    /* The output continues the prompt's text, so its first word keeps its space; only output
     * that starts the text (after BOS alone, say) drops it, as cairn_detokenize does. */
    s->detok.strip_leading_space = s->detok.strip_leading_space && !has_text(tok, prompt, n_prompt);
    if (cairn_sampler_new(&params->sampling, n_vocab, &s->sampler, err) != 0 ||
        cairn_stop_matcher_new(params->stop, params->n_stop, &s->stops, err) != 0) {
        cairn_gen_session_free(s);
        return -1;
    }
    /* the matcher keeps its own copies: the caller's stop strings may go after this */
    s->params.stop = NULL;
    s->params.n_stop = 0;
    for (int i = 0; i < n_prompt; i++) {
        cairn_sampler_accept(s->sampler, prompt[i]);
    }
    if (replay(s, resume, n_resume, err) != 0) {
        cairn_gen_session_free(s);
        return -1;
    }
    *out = s;
    return 0;
}

static int finish(cairn_gen_session *s, cairn_gen_step *step, cairn_finish_reason why,
                  cairn_err *err) {
    if (flush_tail(s, err) != 0) {
        return -1;
    }
    step->done = true;
    step->finish = why;
    step->stop_index = cairn_stop_matcher_matched(s->stops);
    step->tail = s->tail.data ? s->tail.data : "";
    step->tail_len = s->tail.len;
    return 0;
}

static void report_logprobs(const cairn_gen_session *s, const float *logits, cairn_gen_step *step) {
    step->has_logprobs = true;
    step->logprob = cairn_logprob_of(logits, s->n_vocab, step->token);
    step->n_top = cairn_logprobs_top(logits, s->n_vocab, s->params.top_logprobs, step->top_ids,
                                     step->top_logprobs);
}

int cairn_gen_session_step(cairn_gen_session *s, const float *logits, cairn_gen_step *step,
                           cairn_err *err) {
    *step = (cairn_gen_step){.token = -1, .text = "", .tail = "", .stop_index = -1};
    int32_t token = cairn_sampler_sample(s->sampler, logits);
    cairn_sampler_accept(s->sampler, token);
    if (!s->params.ignore_eog && cairn_tokenizer_is_eog(s->tok, token)) {
        return finish(s, step, CAIRN_FINISH_STOP, err);
    }
    s->n_generated++;
    step->token = token;
    if (s->params.logprobs) {
        report_logprobs(s, logits, step);
    }
    int hit = push_token(s, token, err);
    if (hit < 0) {
        return -1;
    }
    step->text = s->text.data ? s->text.data : "";
    step->len = s->text.len;
    if (hit) {
        return finish(s, step, CAIRN_FINISH_STOP, err);
    }
    if ((s->params.max_tokens > 0 && s->n_generated >= s->params.max_tokens) ||
        s->n_pos >= s->n_ctx) {
        return finish(s, step, CAIRN_FINISH_LENGTH, err);
    }
    s->n_pos++;
    return 0;
}

int cairn_gen_session_generated(const cairn_gen_session *s) {
    return s->n_generated;
}

/* Feeds the session's tokens through the target one by one and reports them. */
static int run_loop(cairn_gen_session *s, const cairn_generation_target *target,
                    cairn_token_fn on_token, void *user, float *logits,
                    cairn_generation_result *res, cairn_err *err) {
    double t1 = cairn_now_seconds();
    cairn_gen_step step;
    for (;;) {
        if (cairn_gen_session_step(s, logits, &step, err) != 0) {
            return -1;
        }
        if (step.token >= 0 && on_token(user, step.token, step.text, step.len) != 0) {
            res->finish = CAIRN_FINISH_CANCELLED;
            break;
        }
        if (step.done) {
            res->finish = step.finish;
            if (step.tail_len > 0) {
                on_token(user, -1, step.tail, step.tail_len);
            }
            break;
        }
        if (target->forward(target->user, &step.token, 1, logits, err) != 0) {
            return -1;
        }
    }
    res->n_generated = s->n_generated;
    res->decode_seconds = cairn_now_seconds() - t1;
    return 0;
}

int cairn_generate(const cairn_generation_target *target, const cairn_tokenizer *tok,
                   const int32_t *prompt, int n_prompt, const cairn_generation_params *params,
                   cairn_token_fn on_token, void *user, cairn_generation_result *result,
                   cairn_err *err) {
    cairn_generation_result res = {0};
    res.n_prompt = n_prompt;
    cairn_gen_session *s = NULL;
    float *logits = malloc((size_t)target->n_vocab * sizeof(float));
    int rc = -1;
    if (!logits) {
        cairn_fail(err, "out of memory");
    } else if (cairn_gen_session_new(tok, target->n_vocab, target->n_ctx, target->n_past, params,
                                     prompt, n_prompt, NULL, 0, &s, err) == 0 &&
               s) {
        double t0 = cairn_now_seconds();
        rc = target->forward(target->user, prompt, n_prompt, logits, err);
        res.prefill_seconds = cairn_now_seconds() - t0;
        if (rc == 0) {
            rc = run_loop(s, target, on_token, user, logits, &res, err);
        }
    }
    cairn_gen_session_free(s);
    free(logits);
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
