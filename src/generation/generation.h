/*
 * generation: one completion, from prompt tokens to streamed text. Drives a forward function
 * (an in-process pipeline today, a remote pipeline in the cluster), samples, detokenizes
 * into whole UTF-8 characters, applies stop strings, end-of-generation tokens and the token
 * limit, and reports each piece of text as it becomes final.
 *
 * Owns only the per-request state (sampler, stop matcher, detokenizer stream). Must never
 * own or load models, and never print: text goes to the caller's callback.
 */
#ifndef CAIRN_GENERATION_H
#define CAIRN_GENERATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sampling/sampling.h"
#include "tokenizer/tokenizer.h"
#include "util/util.h"

/* The in-process pipeline (engine.h); declared here so that code which also includes the
 * cluster state, whose shard type shares the engine's name, can use this header. */
typedef struct cairn_pipeline cairn_pipeline;

/* Runs tokens of one sequence forward and writes the last token's logits (n_vocab floats). */
typedef int (*cairn_forward_fn)(void *user, const int32_t *tokens, int n_tokens, float *logits,
                                cairn_err *err);

/* Receives each generated token and the text that became final with it (possibly empty, when
 * a character or a possible stop string is still incomplete). Return non-zero to stop. */
typedef int (*cairn_token_fn)(void *user, int32_t token, const char *text, size_t len);

typedef struct cairn_generation_params {
    cairn_sampling_params sampling;
    int max_tokens;          /* 0: until end of generation or a full context */
    const char *const *stop; /* stop strings; the text before a match is the last output */
    size_t n_stop;
    bool ignore_eog; /* keep going past end-of-generation tokens */
    /* Report each generated token's log-probability, and its top_logprobs most likely
     * alternatives (0..CAIRN_MAX_TOP_LOGPROBS), both under the model's raw distribution:
     * before penalties, temperature and truncation, so the figures describe the model, not
     * the sampler's settings. */
    bool logprobs;
    int top_logprobs;
} cairn_generation_params;

#define CAIRN_MAX_TOP_LOGPROBS 20

typedef enum cairn_finish_reason {
    CAIRN_FINISH_STOP,      /* end-of-generation token or stop string */
    CAIRN_FINISH_LENGTH,    /* max_tokens or the context limit */
    CAIRN_FINISH_CANCELLED, /* the callback asked to stop */
} cairn_finish_reason;

typedef struct cairn_generation_result {
    int n_prompt;
    int n_generated;
    cairn_finish_reason finish;
    double prefill_seconds;
    double decode_seconds;
} cairn_generation_result;

/* The context a forward function may have: n_ctx bounds prompt plus generated tokens. */
typedef struct cairn_generation_target {
    cairn_forward_fn forward;
    void *user;
    int n_vocab;
    int n_ctx;
    int n_past; /* positions the sequence already holds before the prompt */
} cairn_generation_target;

int cairn_generate(const cairn_generation_target *target, const cairn_tokenizer *tok,
                   const int32_t *prompt, int n_prompt, const cairn_generation_params *params,
                   cairn_token_fn on_token, void *user, cairn_generation_result *result,
                   cairn_err *err);

const char *cairn_finish_reason_name(cairn_finish_reason r);

/* The same loop, one token at a time, for callers whose forward pass is not a function
 * call (the last shard of a cluster pipeline samples each token as its logits arrive).
 * cairn_generate() is built on it, so both give the same tokens and text.
 *
 * The session starts after the prompt's forward pass: the caller runs the prompt (and, on
 * resume, the tokens already generated) through the model and passes the logits of the
 * last one to each step. `resume` tokens count as generated and go through the
 * detokenizer and stop strings without producing text again, so a request that continues
 * on a new pipeline resumes exactly where its stream stopped. */
typedef struct cairn_gen_session cairn_gen_session;

typedef struct cairn_gen_step {
    int32_t token; /* the sampled token, or -1 when end of generation was sampled */
    /* Text that became final with the token, then (when done) the text held back until
     * the end; both valid until the next step or free. */
    const char *text;
    size_t len;
    const char *tail;
    size_t tail_len;
    bool done;                  /* no further step: finish says why */
    cairn_finish_reason finish; /* stop or length */
    int stop_index;             /* when done: the stop string that ended it (params.stop), or -1 */
    /* With params.logprobs and a token: its log-probability and the n_top most likely
     * tokens, most likely first (the token itself may be among them). */
    bool has_logprobs;
    float logprob;
    int n_top;
    int32_t top_ids[CAIRN_MAX_TOP_LOGPROBS];
    float top_logprobs[CAIRN_MAX_TOP_LOGPROBS];
} cairn_gen_step;

/* n_past: positions the sequence held before the prompt; n_ctx bounds them all. */
int cairn_gen_session_new(const cairn_tokenizer *tok, int n_vocab, int n_ctx, int n_past,
                          const cairn_generation_params *params, const int32_t *prompt,
                          int n_prompt, const int32_t *resume, int n_resume,
                          cairn_gen_session **out, cairn_err *err);
/* Samples from the logits (n_vocab floats) of the last token fed. After a step that is not
 * done, the caller feeds step->token and steps again with its logits. */
int cairn_gen_session_step(cairn_gen_session *s, const float *logits, cairn_gen_step *step,
                           cairn_err *err);
int cairn_gen_session_generated(const cairn_gen_session *s); /* resume tokens included */
void cairn_gen_session_free(cairn_gen_session *s);

/* A forward function over an in-process pipeline's sequence (user: a cairn_pipeline_seq). */
typedef struct cairn_pipeline_seq {
    cairn_pipeline *pipeline;
    int seq;
} cairn_pipeline_seq;
int cairn_pipeline_seq_forward(void *user, const int32_t *tokens, int n_tokens, float *logits,
                               cairn_err *err);

#endif
