/*
 * sampling: turns a row of logits into the next token (penalties, greedy, top-k, temperature,
 * top-p, min-p, a seeded draw), computes log-probabilities for the API, and finds stop strings
 * in generated text as it streams.
 *
 * Each sampler owns its scratch memory, its token history and its own PRNG, so equal seeds
 * and equal logits give equal tokens on every machine and thread. It must never modify the
 * caller's logits, use global state or rand(), or know about models, tokenizers or engines.
 */
#ifndef CAIRN_SAMPLING_H
#define CAIRN_SAMPLING_H

#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

typedef struct cairn_sampling_params {
    float temperature;       /* <= 0: greedy (argmax; ties go to the lowest id) */
    int top_k;               /* 0: off */
    float top_p;             /* >= 1: off */
    float min_p;             /* 0: off; keeps tokens with p >= min_p * p(most likely) */
    float repeat_penalty;    /* 1: off; divides positive logits, multiplies negative ones */
    int repeat_last_n;       /* how many recent tokens all penalties look at; default 64 */
    float frequency_penalty; /* 0: off; logit -= count * frequency_penalty */
    float presence_penalty;  /* 0: off; logit -= presence_penalty if the token occurred */
    uint64_t seed;
} cairn_sampling_params;

/* temperature 0.8, top_k 40, top_p 0.95, min_p 0.05, penalties off (window 64), seed 0. */
void cairn_sampling_defaults(cairn_sampling_params *p);

typedef struct cairn_sampler cairn_sampler;

/* Validates the parameters and allocates scratch for n_vocab logits. */
int cairn_sampler_new(const cairn_sampling_params *p, int n_vocab, cairn_sampler **out,
                      cairn_err *err);
/* Picks the next token from n_vocab logits (left unchanged). NaN logits count as -inf. Does
 * not record the token: call cairn_sampler_accept for that. */
int32_t cairn_sampler_sample(cairn_sampler *s, const float *logits);
/* The id of the largest of n logits (ties: the lowest id): greedy decoding without a
 * sampler. */
int32_t cairn_argmax(const float *logits, int n);
/* The candidates a draw would choose from, after every filter: ids most likely first when
 * any filter needed sorting (otherwise in id order), probabilities renormalised to sum to 1.
 * Returns the count (>= 1); the arrays live in the sampler until its next call. Consumes no
 * randomness. Useful to explain or test a configuration. */
int cairn_sampler_candidates(cairn_sampler *s, const float *logits, const int32_t **ids,
                             const float **probs);
/* Records a token for the penalties; feed the prompt's tokens too. Ids outside the
 * vocabulary are ignored. */
void cairn_sampler_accept(cairn_sampler *s, int32_t token);
/* Forgets the history and restarts the PRNG from the seed, so a run can be replayed. */
void cairn_sampler_reset(cairn_sampler *s);
void cairn_sampler_free(cairn_sampler *s);

/* Log-softmax of raw logits: the k most likely tokens, most likely first (ties: lowest id),
 * into ids and logprobs (room for k each). Returns how many were written (min(k, n_vocab)). */
int cairn_logprobs_top(const float *logits, int n_vocab, int k, int32_t *ids, float *logprobs);
/* Log-probability of one token under the raw logits; -inf for an id outside the vocabulary. */
float cairn_logprob_of(const float *logits, int n_vocab, int32_t id);

/* Finds stop strings in streamed text. Text that might be the start of a stop string is held
 * back until it is known not to be; so is an unfinished UTF-8 character, so emitted pieces
 * never split one. */
typedef struct cairn_stop_matcher cairn_stop_matcher;

/* Copies the stop strings (which must be non-empty); n may be 0 for a pass-through. */
int cairn_stop_matcher_new(const char *const *stops, size_t n, cairn_stop_matcher **out,
                           cairn_err *err);
/* Appends text and emits into out whatever is now safe. Returns 1 if a stop string matched
 * (out then ends right before the earliest match, and later pushes emit nothing), 0 if not,
 * -1 if out could not grow. */
int cairn_stop_matcher_push(cairn_stop_matcher *m, const char *text, size_t len, cairn_buf *out);
/* Which stop string matched: its index in the list given to new (at the earliest position,
 * the first listed), or -1 while none has. */
int cairn_stop_matcher_matched(const cairn_stop_matcher *m);
/* Emits everything still held back (nothing after a match). Returns -1 if out could not
 * grow, else 0. */
int cairn_stop_matcher_flush(cairn_stop_matcher *m, cairn_buf *out);
void cairn_stop_matcher_free(cairn_stop_matcher *m);

#endif
