/* api: generation request bodies of every API flavour (request.h). */
#include "api/request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sampling/sampling.h"
#include "util/json.h"

/* JSON numbers above 2^53 are not exact; a seed must be one. */
#define MAX_SEED 9007199254740991.0

static const cJSON *field(const cJSON *o, const char *key) {
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

static bool absent(const cJSON *v) {
    return !v || cJSON_IsNull(v);
}

static int optional_number(const cJSON *o, const char *key, double lo, double hi, double *out,
                           cairn_err *err) {
    const cJSON *v = field(o, key);
    if (absent(v)) {
        return 0;
    }
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi)) {
        return cairn_fail(err, "\"%s\" must be a number from %g to %g", key, lo, hi);
    }
    *out = v->valuedouble;
    return 0;
}

static int add_stop(cairn_api_generation *g, const char *key, const char *text, cairn_err *err) {
    if (!text[0]) {
        return cairn_fail(err, "\"%s\" must hold non-empty strings", key);
    }
    char *copy = cairn_strdup(text);
    if (!copy) {
        return cairn_fail(err, "out of memory");
    }
    g->stops[g->gen.n_stop++] = copy;
    g->gen.stop = (const char *const *)g->stops;
    return 0;
}

/* key: "stop", or Anthropic's "stop_sequences": a string or up to CAIRN_API_MAX_STOPS. */
static int parse_stops(const cJSON *o, const char *key, cairn_api_generation *g, cairn_err *err) {
    const cJSON *stop = field(o, key);
    if (absent(stop)) {
        return 0;
    }
    if (cJSON_IsString(stop)) {
        return add_stop(g, key, stop->valuestring, err);
    }
    if (!cJSON_IsArray(stop) || cJSON_GetArraySize(stop) > CAIRN_API_MAX_STOPS) {
        return cairn_fail(err, "\"%s\" must be a string or up to %d strings", key,
                          CAIRN_API_MAX_STOPS);
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, stop) {
        if (!cJSON_IsString(item)) {
            return cairn_fail(err, "\"%s\" must hold non-empty strings", key);
        }
        if (add_stop(g, key, item->valuestring, err) != 0) {
            return -1;
        }
    }
    return 0;
}

/* Sampling fields of o; absent (or null) ones keep the defaults already in g. */
static int parse_sampling(const cJSON *o, cairn_api_generation *g, cairn_err *err) {
    cairn_sampling_params *s = &g->gen.sampling;
    double v[10] = {s->temperature,
                    s->top_k,
                    s->top_p,
                    s->min_p,
                    s->repeat_penalty,
                    s->repeat_last_n,
                    s->frequency_penalty,
                    s->presence_penalty,
                    g->gen.max_tokens,
                    0};
    if (optional_number(o, "temperature", 0, 100, &v[0], err) ||
        optional_number(o, "top_k", 0, 1e9, &v[1], err) ||
        optional_number(o, "top_p", 0, 1, &v[2], err) ||
        optional_number(o, "min_p", 0, 1, &v[3], err) ||
        optional_number(o, "repeat_penalty", 0, 100, &v[4], err) ||
        optional_number(o, "repeat_last_n", 0, 1e6, &v[5], err) ||
        optional_number(o, "frequency_penalty", -2, 2, &v[6], err) ||
        optional_number(o, "presence_penalty", -2, 2, &v[7], err) ||
        optional_number(o, "max_tokens", 0, 1e7, &v[8], err) ||
        optional_number(o, "max_completion_tokens", 0, 1e7, &v[8], err) ||
        optional_number(o, "seed", 0, MAX_SEED, &v[9], err) || parse_stops(o, "stop", g, err)) {
        return -1;
    }
    *s = (cairn_sampling_params){(float)v[0], (int)v[1],   (float)v[2], (float)v[3],   (float)v[4],
                                 (int)v[5],   (float)v[6], (float)v[7], (uint64_t)v[9]};
    g->gen.max_tokens = (int)v[8];
    g->seed_given = !absent(field(o, "seed"));
    return 0;
}

static int optional_count(const cJSON *o, const char *key, int max, int *out, cairn_err *err) {
    const cJSON *v = field(o, key);
    if (absent(v)) {
        return 0;
    }
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= max) ||
        v->valuedouble != (double)(int)v->valuedouble) {
        return cairn_fail(err, "\"%s\" must be a whole number from 0 to %d", key, max);
    }
    *out = (int)v->valuedouble;
    return 1;
}

/* Log-probabilities. OpenAI's completions take "logprobs": how many alternatives (0..5);
 * its chat (and cairn and Ollama) take "logprobs": true and "top_logprobs": 0..20. */
static int parse_logprobs(const cJSON *o, cairn_api_flavor flavor, cairn_api_generation *g,
                          cairn_err *err) {
    if (flavor == CAIRN_API_OPENAI_COMPLETION) {
        int given = optional_count(o, "logprobs", 5, &g->gen.top_logprobs, err);
        g->gen.logprobs = given == 1;
        return given < 0 ? -1 : 0;
    }
    const cJSON *on = field(o, "logprobs");
    if (!absent(on) && !cJSON_IsBool(on)) {
        return cairn_fail(err, "\"logprobs\" must be true or false");
    }
    g->gen.logprobs = cJSON_IsTrue(on);
    int given =
        optional_count(o, "top_logprobs", CAIRN_MAX_TOP_LOGPROBS, &g->gen.top_logprobs, err);
    if (given < 0) {
        return -1;
    }
    if (given && !g->gen.logprobs) {
        return cairn_fail(err, "\"top_logprobs\" needs \"logprobs\": true");
    }
    return 0;
}

static void set_defaults(cairn_api_flavor flavor, cairn_api_generation *g) {
    cairn_sampling_defaults(&g->gen.sampling);
    if (flavor == CAIRN_API_OPENAI_COMPLETION || flavor == CAIRN_API_OPENAI_CHAT ||
        flavor == CAIRN_API_ANTHROPIC_MESSAGES || flavor == CAIRN_API_ANTHROPIC_COUNT) {
        /* OpenAI's and Anthropic's defaults: plain sampling at temperature 1, no other
         * truncation */
        g->gen.sampling.temperature = 1.0f;
        g->gen.sampling.top_k = 0;
        g->gen.sampling.top_p = 1.0f;
        g->gen.sampling.min_p = 0.0f;
    }
    g->gen.max_tokens = flavor == CAIRN_API_GENERATE            ? 256
                        : flavor == CAIRN_API_OPENAI_COMPLETION ? 16
                                                                : 0;
}

static bool is_chat(cairn_api_flavor flavor) {
    return flavor == CAIRN_API_OPENAI_CHAT || flavor == CAIRN_API_OLLAMA_CHAT;
}

/* model, prompt or messages, and the stream switches. */
static int parse_subject(const cJSON *o, cairn_api_flavor flavor, cairn_api_generation *g,
                         cairn_err *err) {
    const char *model = cJSON_GetStringValue(field(o, "model"));
    const cJSON *prompt = field(o, "prompt");
    const cJSON *messages = field(o, "messages");
    const cJSON *stream = field(o, "stream");
    const cJSON *n = field(o, "n");
    if (!model || !*model || strlen(model) >= sizeof g->model) {
        return cairn_fail(err, "\"model\" must name a model (a file name or its sha256)");
    }
    if (is_chat(flavor) ? !cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0
                        : !cJSON_IsString(prompt) || !prompt->valuestring[0]) {
        return cairn_fail(err, is_chat(flavor) ? "\"messages\" must be a non-empty array"
                                               : "\"prompt\" must be non-empty text");
    }
    if (!absent(stream) && !cJSON_IsBool(stream)) {
        return cairn_fail(err, "\"stream\" must be true or false");
    }
    if (!absent(n) && (!cJSON_IsNumber(n) || n->valuedouble != 1)) {
        return cairn_fail(err, "only \"n\": 1 is supported");
    }
    snprintf(g->model, sizeof g->model, "%s", model);
    bool ollama = flavor == CAIRN_API_OLLAMA_CHAT || flavor == CAIRN_API_OLLAMA_GENERATE;
    g->stream = ollama ? !cJSON_IsFalse(stream) : cJSON_IsTrue(stream);
    g->include_usage = cJSON_IsTrue(field(field(o, "stream_options"), "include_usage"));
    if (is_chat(flavor)) {
        g->messages = cJSON_Duplicate(messages, true);
    } else {
        g->prompt = cairn_strdup(prompt->valuestring);
    }
    return g->messages || g->prompt ? 0 : cairn_fail(err, "out of memory");
}

/* Ollama's options object: sampling as cairn names it, num_predict for the token limit. */
static int parse_ollama_options(const cJSON *o, cairn_api_generation *g, cairn_err *err) {
    const cJSON *opts = field(o, "options");
    if (absent(opts)) {
        return 0;
    }
    if (!cJSON_IsObject(opts)) {
        return cairn_fail(err, "\"options\" must be an object");
    }
    if (parse_sampling(opts, g, err) != 0) {
        return -1;
    }
    const cJSON *n = field(opts, "num_predict");
    if (!absent(n)) {
        if (!cJSON_IsNumber(n) || !(n->valuedouble >= -2 && n->valuedouble <= 1e7)) {
            return cairn_fail(err, "\"num_predict\" must be a number from -2 to 1e7");
        }
        g->gen.max_tokens = n->valuedouble < 0 ? 0 : (int)n->valuedouble;
    }
    return 0;
}

/* ---- Anthropic's Messages API ---- */

/* Appends one piece of a turn's text; the pieces of a turn are joined by a blank line. */
static int append_piece(cairn_buf *turn, const char *text, cairn_err *err) {
    if (!text[0]) {
        return 0;
    }
    if ((turn->len && cairn_buf_puts(turn, "\n\n") != 0) || cairn_buf_puts(turn, text) != 0) {
        return cairn_fail(err, "out of memory");
    }
    return 0;
}

/* Anthropic's content: a string, or an array of content blocks of which text blocks are
 * what a chat template renders; the others are refused rather than silently dropped. */
static int anthropic_text(const cJSON *content, const char *what, cairn_buf *turn, cairn_err *err) {
    if (cJSON_IsString(content)) {
        return append_piece(turn, content->valuestring, err);
    }
    if (!cJSON_IsArray(content)) {
        return cairn_fail(err, "%s must be a string or an array of content blocks", what);
    }
    const cJSON *block;
    cJSON_ArrayForEach(block, content) {
        const char *type = cJSON_GetStringValue(field(block, "type"));
        const cJSON *text = field(block, "text");
        if (!type) {
            return cairn_fail(err, "%s: every content block needs a \"type\"", what);
        }
        if (strcmp(type, "text") != 0) {
            return cairn_fail(err,
                              "%s: content blocks of type \"%.40s\" are not supported (only "
                              "\"text\")",
                              what, type);
        }
        if (!cJSON_IsString(text)) {
            return cairn_fail(err, "%s: a text block needs \"text\" as a string", what);
        }
        if (append_piece(turn, text->valuestring, err) != 0) {
            return -1;
        }
    }
    return 0;
}

/* Adds {role, content: the turn's text} to chat and empties the turn. */
static int add_turn(cJSON *chat, const char *role, cairn_buf *turn, cairn_err *err) {
    cJSON *m = cJSON_CreateObject();
    bool ok = m && cJSON_AddStringToObject(m, "role", role) &&
              cJSON_AddStringToObject(m, "content", turn->data ? turn->data : "") &&
              cJSON_AddItemToArray(chat, m);
    if (!ok) {
        cJSON_Delete(m);
        return cairn_fail(err, "out of memory");
    }
    turn->len = 0;
    if (turn->data) {
        turn->data[0] = '\0';
    }
    return 0;
}

/* The turns of messages into chat, after the system turn already there. Consecutive
 * messages of one role are one turn, as Anthropic takes them (and as templates that insist
 * on alternating roles need). */
static int anthropic_turns(const cJSON *messages, cJSON *chat, cairn_buf *turn, cairn_err *err) {
    const char *role = NULL; /* the turn's role; points into messages */
    int index = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages) {
        const char *r = cJSON_GetStringValue(field(m, "role"));
        char what[48];
        snprintf(what, sizeof what, "messages[%d].content", index);
        if (!r || (strcmp(r, "user") != 0 && strcmp(r, "assistant") != 0)) {
            return cairn_fail(err, "messages[%d]: \"role\" must be \"user\" or \"assistant\"",
                              index);
        }
        if (role && strcmp(role, r) != 0 && add_turn(chat, role, turn, err) != 0) {
            return -1;
        }
        if (anthropic_text(field(m, "content"), what, turn, err) != 0) {
            return -1;
        }
        role = r;
        index++;
    }
    return add_turn(chat, role, turn, err);
}

/* "system" and "messages" as the chat the model's template renders: a system turn (when
 * there is system text), then the turns, each {role, content} with its text. */
static int anthropic_chat(const cJSON *o, cairn_api_generation *g, cairn_err *err) {
    const cJSON *messages = field(o, "messages");
    const cJSON *system = field(o, "system");
    if (!cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0) {
        return cairn_fail(err, "\"messages\" must be a non-empty array");
    }
    cJSON *chat = cJSON_CreateArray();
    cairn_buf turn = {0};
    int rc = chat ? 0 : cairn_fail(err, "out of memory");
    if (rc == 0 && !absent(system)) {
        rc = anthropic_text(system, "\"system\"", &turn, err);
        if (rc == 0 && turn.len) {
            rc = add_turn(chat, "system", &turn, err);
        }
    }
    if (rc == 0) {
        rc = anthropic_turns(messages, chat, &turn, err);
    }
    cairn_buf_free(&turn);
    if (rc != 0) {
        cJSON_Delete(chat);
        return -1;
    }
    g->messages = chat;
    return 0;
}

/* max_tokens (required: Anthropic has no default), temperature 0..1, top_p, top_k and
 * stop_sequences; absent ones keep the defaults already in g. */
static int anthropic_sampling(const cJSON *o, cairn_api_generation *g, cairn_err *err) {
    cairn_sampling_params *s = &g->gen.sampling;
    double temperature = s->temperature, top_p = s->top_p;
    if (absent(field(o, "max_tokens"))) {
        return cairn_fail(err, "\"max_tokens\" is required");
    }
    int max_tokens = 0;
    if (optional_count(o, "max_tokens", 10000000, &max_tokens, err) < 0) {
        return -1;
    }
    if (max_tokens < 1) {
        return cairn_fail(err, "\"max_tokens\" must be a whole number from 1 to 10000000");
    }
    if (optional_number(o, "temperature", 0, 1, &temperature, err) ||
        optional_number(o, "top_p", 0, 1, &top_p, err) ||
        optional_count(o, "top_k", 1000000000, &s->top_k, err) < 0 ||
        parse_stops(o, "stop_sequences", g, err)) {
        return -1;
    }
    s->temperature = (float)temperature;
    s->top_p = (float)top_p;
    g->gen.max_tokens = max_tokens;
    return 0;
}

/* POST /v1/messages, or (count) its /count_tokens twin, which generates nothing. */
static int parse_anthropic(const cJSON *o, bool count, cairn_api_generation *g, cairn_err *err) {
    const char *model = cJSON_GetStringValue(field(o, "model"));
    const cJSON *stream = field(o, "stream");
    const cJSON *metadata = field(o, "metadata");
    if (!model || !*model || strlen(model) >= sizeof g->model) {
        return cairn_fail(err, "\"model\" must name a model (a file name or its sha256)");
    }
    if (!absent(stream) && !cJSON_IsBool(stream)) {
        return cairn_fail(err, "\"stream\" must be true or false");
    }
    if (!absent(metadata) && !cJSON_IsObject(metadata)) {
        return cairn_fail(err, "\"metadata\" must be an object");
    }
    snprintf(g->model, sizeof g->model, "%s", model);
    g->stream = !count && cJSON_IsTrue(stream);
    if (anthropic_chat(o, g, err) != 0) {
        return -1;
    }
    return count ? 0 : anthropic_sampling(o, g, err);
}

int cairn_api_parse_generation(const char *body, size_t len, cairn_api_flavor flavor,
                               cairn_api_generation *out, cairn_err *err) {
    memset(out, 0, sizeof *out);
    set_defaults(flavor, out);
    cJSON *o = cairn_json_parse(body, len, "the body", err);
    if (!o) {
        return -1;
    }
    int rc;
    if (!cJSON_IsObject(o)) {
        rc = cairn_fail(err, "the body must be a JSON object");
    } else if (flavor == CAIRN_API_ANTHROPIC_MESSAGES || flavor == CAIRN_API_ANTHROPIC_COUNT) {
        rc = parse_anthropic(o, flavor == CAIRN_API_ANTHROPIC_COUNT, out, err);
    } else if (parse_subject(o, flavor, out, err) != 0 ||
               parse_logprobs(o, flavor, out, err) != 0) {
        rc = -1;
    } else if (flavor == CAIRN_API_OLLAMA_CHAT || flavor == CAIRN_API_OLLAMA_GENERATE) {
        rc = parse_ollama_options(o, out, err);
    } else {
        rc = parse_sampling(o, out, err);
    }
    cJSON_Delete(o);
    return rc;
}

void cairn_api_generation_free(cairn_api_generation *g) {
    free(g->prompt);
    cJSON_Delete(g->messages);
    for (size_t i = 0; i < CAIRN_API_MAX_STOPS; i++) {
        free(g->stops[i]);
    }
    memset(g, 0, sizeof *g);
}
