/*
 * api request bodies: what a generation request asks for, parsed from the JSON body of
 * each API flavour (cairn's POST /generate, OpenAI's completions and chat completions,
 * Ollama's generate and chat, Anthropic's messages) into one form the node relays.
 *
 * Pure: no I/O, no clock, no state; the bodies come from the network, so every field is
 * checked (type and range) and nothing is trusted. It must never keep a pointer into the
 * body it parsed.
 */
#ifndef CAIRN_API_REQUEST_H
#define CAIRN_API_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "generation/generation.h"
#include "util/util.h"

#define CAIRN_API_MAX_STOPS 16
#define CAIRN_API_MODEL_SIZE 128 /* as the cluster state's model names */

typedef enum cairn_api_flavor {
    CAIRN_API_GENERATE,          /* POST /generate: {"model","prompt",sampling...} */
    CAIRN_API_OPENAI_COMPLETION, /* POST /v1/completions */
    CAIRN_API_OPENAI_CHAT,       /* POST /v1/chat/completions */
    CAIRN_API_OLLAMA_GENERATE,   /* POST /api/generate: sampling under "options" */
    CAIRN_API_OLLAMA_CHAT,       /* POST /api/chat */
    /* POST /v1/messages: "system" and the messages' text blocks become {role, content}
     * turns (consecutive messages of one role one turn); max_tokens is required */
    CAIRN_API_ANTHROPIC_MESSAGES,
    CAIRN_API_ANTHROPIC_COUNT, /* POST /v1/messages/count_tokens: the same turns, no sampling */
    CAIRN_API_FLAVORS,         /* how many there are */
} cairn_api_flavor;

typedef struct cairn_api_generation {
    char model[CAIRN_API_MODEL_SIZE];
    char *prompt;                /* text, or NULL for a conversation */
    cJSON *messages;             /* a conversation [{role, content}], or NULL for text */
    cairn_generation_params gen; /* gen.stop points into stops */
    char *stops[CAIRN_API_MAX_STOPS];
    bool seed_given; /* false: the caller draws a seed */
    bool stream;
    bool include_usage; /* OpenAI's stream_options.include_usage */
} cairn_api_generation;

/* Parses len bytes of body for the flavour into *out (zeroed first; free it with
 * cairn_api_generation_free whatever the result). Each flavour keeps its own defaults
 * (OpenAI and Anthropic: temperature 1 and no other truncation, 16 tokens for completions;
 * Ollama and cairn: cairn's sampling defaults). -1 with a message naming the bad field. */
int cairn_api_parse_generation(const char *body, size_t len, cairn_api_flavor flavor,
                               cairn_api_generation *out, cairn_err *err);
void cairn_api_generation_free(cairn_api_generation *g);

#endif
