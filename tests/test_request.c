/* API request bodies (src/api/request.c): each flavour's fields and defaults, every kind of
 * bad field refused with its name, Anthropic's content blocks turned into chat turns, bodies nested
 * too deep refused before cJSON recurses into them (on a small stack), and 30k mutated bodies that
 * never crash, leak or yield a request outside its bounds (run under ASan/UBSan in CI). */
/* libuv's headers use POSIX types (pthread_rwlock_t) that strict C11 hides. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <uv.h>

#include "api/request.h"
#include "util/json.h"

static int parse(const char *body, cairn_api_flavor flavor, cairn_api_generation *g,
                 cairn_err *err) {
    return cairn_api_parse_generation(body, strlen(body), flavor, g, err);
}

static void openai_chat_fields(void **state) {
    (void)state;
    cairn_api_generation g;
    cairn_err err = {{0}};
    const char *body =
        "{\"model\":\"m.gguf\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
        "\"max_completion_tokens\":7,\"temperature\":0.5,\"top_p\":0.9,\"seed\":42,"
        "\"stop\":[\"a\",\"bc\"],\"presence_penalty\":0.5,\"frequency_penalty\":-0.5,"
        "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"n\":1,"
        "\"logprobs\":true,\"top_logprobs\":20}";
    assert_int_equal(parse(body, CAIRN_API_OPENAI_CHAT, &g, &err), 0);
    assert_string_equal(g.model, "m.gguf");
    assert_null(g.prompt);
    assert_true(cJSON_IsArray(g.messages));
    assert_int_equal(g.gen.max_tokens, 7);
    assert_true(g.gen.sampling.temperature == 0.5f && g.gen.sampling.top_p == 0.9f);
    assert_int_equal(g.gen.sampling.top_k, 0); /* OpenAI: no top-k unless asked */
    assert_true(g.seed_given);
    assert_int_equal((int)g.gen.sampling.seed, 42);
    assert_int_equal((int)g.gen.n_stop, 2);
    assert_string_equal(g.gen.stop[1], "bc");
    assert_true(g.stream && g.include_usage);
    assert_true(g.gen.logprobs);
    assert_int_equal(g.gen.top_logprobs, 20);
    cairn_api_generation_free(&g);
}

/* Completions count alternatives in "logprobs" (0 still reports the token's own); chat
 * switches them on with "logprobs" and counts them in "top_logprobs". */
static void logprobs_per_flavour(void **state) {
    (void)state;
    cairn_api_generation g;
    cairn_err err = {{0}};
    assert_int_equal(parse("{\"model\":\"m\",\"prompt\":\"p\",\"logprobs\":0}",
                           CAIRN_API_OPENAI_COMPLETION, &g, &err),
                     0);
    assert_true(g.gen.logprobs);
    assert_int_equal(g.gen.top_logprobs, 0);
    cairn_api_generation_free(&g);
    assert_int_equal(parse("{\"model\":\"m\",\"prompt\":\"p\",\"logprobs\":null}",
                           CAIRN_API_OPENAI_COMPLETION, &g, &err),
                     0);
    assert_false(g.gen.logprobs);
    cairn_api_generation_free(&g);
    assert_int_equal(parse("{\"model\":\"m\",\"messages\":[{}],\"logprobs\":true}",
                           CAIRN_API_OPENAI_CHAT, &g, &err),
                     0);
    assert_true(g.gen.logprobs);
    assert_int_equal(g.gen.top_logprobs, 0);
    cairn_api_generation_free(&g);
    assert_int_equal(parse("{\"model\":\"m\",\"messages\":[{}]}", CAIRN_API_OPENAI_CHAT, &g, &err),
                     0);
    assert_false(g.gen.logprobs);
    cairn_api_generation_free(&g);
}

static void defaults_per_flavour(void **state) {
    (void)state;
    cairn_api_generation g;
    cairn_err err = {{0}};
    assert_int_equal(
        parse("{\"model\":\"m\",\"prompt\":\"p\"}", CAIRN_API_OPENAI_COMPLETION, &g, &err), 0);
    assert_int_equal(g.gen.max_tokens, 16);
    assert_true(g.gen.sampling.temperature == 1.0f && !g.stream && !g.seed_given);
    cairn_api_generation_free(&g);
    assert_int_equal(parse("{\"model\":\"m\",\"prompt\":\"p\"}", CAIRN_API_GENERATE, &g, &err), 0);
    assert_int_equal(g.gen.max_tokens, 256);
    cairn_api_generation_free(&g);
    /* Ollama streams unless told not to, and takes sampling under "options" */
    assert_int_equal(parse("{\"model\":\"m\",\"prompt\":\"p\",\"options\":{\"num_predict\":9,"
                           "\"temperature\":0}}",
                           CAIRN_API_OLLAMA_GENERATE, &g, &err),
                     0);
    assert_true(g.stream);
    assert_int_equal(g.gen.max_tokens, 9);
    assert_true(g.gen.sampling.temperature == 0.0f);
    cairn_api_generation_free(&g);
    assert_int_equal(parse("{\"model\":\"m\",\"messages\":[{}],\"stream\":false,\"options\":{"
                           "\"num_predict\":-1}}",
                           CAIRN_API_OLLAMA_CHAT, &g, &err),
                     0);
    assert_false(g.stream);
    assert_int_equal(g.gen.max_tokens, 0);
    cairn_api_generation_free(&g);
}

/* Anthropic's body: system blocks and text blocks become plain turns, consecutive messages
 * of one role one turn; other blocks' fields (cache_control) and unknown fields are
 * ignored. */
static void anthropic_fields(void **state) {
    (void)state;
    cairn_api_generation g;
    cairn_err err = {{0}};
    const char *body =
        "{\"model\":\"m.gguf\",\"max_tokens\":9,\"temperature\":0,\"top_p\":0.5,\"top_k\":7,"
        "\"stop_sequences\":[\"END\",\"\\n\\n\"],\"stream\":true,\"metadata\":{\"user_id\":\"u\"},"
        "\"tools\":[],\"thinking\":{\"type\":\"disabled\"},"
        "\"system\":[{\"type\":\"text\",\"text\":\"Be brief.\",\"cache_control\":"
        "{\"type\":\"ephemeral\"}},{\"type\":\"text\",\"text\":\"Be kind.\"}],"
        "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"there\"}]},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"Hello\"}]},"
        "{\"role\":\"user\",\"content\":\"bye\"}]}";
    assert_int_equal(parse(body, CAIRN_API_ANTHROPIC_MESSAGES, &g, &err), 0);
    assert_string_equal(g.model, "m.gguf");
    assert_null(g.prompt);
    char *chat = cJSON_PrintUnformatted(g.messages);
    assert_string_equal(chat, "[{\"role\":\"system\",\"content\":\"Be brief.\\n\\nBe kind.\"},"
                              "{\"role\":\"user\",\"content\":\"hi\\n\\nthere\"},"
                              "{\"role\":\"assistant\",\"content\":\"Hello\"},"
                              "{\"role\":\"user\",\"content\":\"bye\"}]");
    free(chat);
    assert_int_equal(g.gen.max_tokens, 9);
    assert_true(g.gen.sampling.temperature == 0.0f && g.gen.sampling.top_p == 0.5f);
    assert_int_equal(g.gen.sampling.top_k, 7);
    assert_true(g.gen.sampling.min_p == 0.0f);
    assert_int_equal((int)g.gen.n_stop, 2);
    assert_string_equal(g.gen.stop[0], "END");
    assert_string_equal(g.gen.stop[1], "\n\n");
    assert_true(g.stream);
    assert_false(g.seed_given);
    cairn_api_generation_free(&g);
    /* Anthropic's defaults: the full distribution at temperature 1; a string system prompt */
    assert_int_equal(parse("{\"model\":\"m\",\"max_tokens\":1,\"system\":\"S\","
                           "\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}",
                           CAIRN_API_ANTHROPIC_MESSAGES, &g, &err),
                     0);
    assert_true(g.gen.sampling.temperature == 1.0f && g.gen.sampling.top_p == 1.0f);
    assert_int_equal(g.gen.sampling.top_k, 0);
    assert_false(g.stream);
    chat = cJSON_PrintUnformatted(g.messages);
    assert_string_equal(chat, "[{\"role\":\"system\",\"content\":\"S\"},"
                              "{\"role\":\"user\",\"content\":\"q\"}]");
    free(chat);
    cairn_api_generation_free(&g);
    /* count_tokens: the same turns, no max_tokens needed, never a stream */
    assert_int_equal(parse("{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\","
                           "\"content\":[{\"type\":\"text\",\"text\":\"q\"}]}]}",
                           CAIRN_API_ANTHROPIC_COUNT, &g, &err),
                     0);
    chat = cJSON_PrintUnformatted(g.messages);
    assert_string_equal(chat, "[{\"role\":\"user\",\"content\":\"q\"}]");
    free(chat);
    assert_false(g.stream);
    cairn_api_generation_free(&g);
}

static void bad_fields_are_named(void **state) {
    (void)state;
    static const struct {
        cairn_api_flavor flavor;
        const char *body, *names;
    } cases[] = {
        {CAIRN_API_OPENAI_CHAT, "{nope", "not valid JSON"},
        {CAIRN_API_OPENAI_CHAT, "[]", "JSON object"},
        {CAIRN_API_OPENAI_CHAT, "{\"messages\":[{}]}", "\"model\""},
        {CAIRN_API_OPENAI_CHAT, "{\"model\":3,\"messages\":[{}]}", "\"model\""},
        {CAIRN_API_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[]}", "\"messages\""},
        {CAIRN_API_OPENAI_COMPLETION, "{\"model\":\"m\",\"prompt\":\"\"}", "\"prompt\""},
        {CAIRN_API_OPENAI_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"n\":2}", "\"n\""},
        {CAIRN_API_OPENAI_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"stream\":1}",
         "\"stream\""},
        {CAIRN_API_OPENAI_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"temperature\":\"x\"}",
         "\"temperature\""},
        {CAIRN_API_OPENAI_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"top_p\":1.5}",
         "\"top_p\""},
        {CAIRN_API_OPENAI_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"max_tokens\":-1}",
         "\"max_tokens\""},
        {CAIRN_API_OPENAI_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"seed\":1e300}",
         "\"seed\""},
        {CAIRN_API_OPENAI_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"stop\":[\"\"]}",
         "\"stop\""},
        {CAIRN_API_OPENAI_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"stop\":[1]}",
         "\"stop\""},
        {CAIRN_API_OLLAMA_GENERATE, "{\"model\":\"m\",\"prompt\":\"p\",\"options\":3}",
         "\"options\""},
        {CAIRN_API_OLLAMA_GENERATE,
         "{\"model\":\"m\",\"prompt\":\"p\",\"options\":{\"num_predict\":\"a\"}}",
         "\"num_predict\""},
        {CAIRN_API_OPENAI_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"logprobs\":6}",
         "\"logprobs\""},
        {CAIRN_API_OPENAI_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"logprobs\":true}",
         "\"logprobs\""},
        {CAIRN_API_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{}],\"logprobs\":1}",
         "\"logprobs\""},
        {CAIRN_API_OPENAI_CHAT,
         "{\"model\":\"m\",\"messages\":[{}],\"logprobs\":true,\"top_logprobs\":21}",
         "\"top_logprobs\""},
        {CAIRN_API_OPENAI_CHAT,
         "{\"model\":\"m\",\"messages\":[{}],\"logprobs\":true,\"top_logprobs\":2.5}",
         "\"top_logprobs\""},
        {CAIRN_API_OPENAI_CHAT, "{\"model\":\"m\",\"messages\":[{}],\"top_logprobs\":2}",
         "\"top_logprobs\""},
        {CAIRN_API_ANTHROPIC_MESSAGES,
         "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}",
         "\"max_tokens\" is required"},
        {CAIRN_API_ANTHROPIC_MESSAGES,
         "{\"model\":\"m\",\"max_tokens\":0,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}",
         "\"max_tokens\""},
        {CAIRN_API_ANTHROPIC_MESSAGES,
         "{\"model\":\"m\",\"max_tokens\":1.5,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]"
         "}",
         "\"max_tokens\""},
        {CAIRN_API_ANTHROPIC_MESSAGES,
         "{\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}", "\"model\""},
        {CAIRN_API_ANTHROPIC_MESSAGES, "{\"model\":\"m\",\"max_tokens\":1,\"messages\":[]}",
         "\"messages\""},
        {CAIRN_API_ANTHROPIC_MESSAGES,
         "{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"system\",\"content\":\"q\"}]"
         "}",
         "messages[0]: \"role\""},
        {CAIRN_API_ANTHROPIC_MESSAGES,
         "{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"content\":\"q\"}]}", "\"role\""},
        {CAIRN_API_ANTHROPIC_MESSAGES,
         "{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":3}]}",
         "messages[0].content"},
        {CAIRN_API_ANTHROPIC_MESSAGES,
         "{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{"
         "\"role\":\"user\",\"content\":[{\"type\":\"image\"}]}]}",
         "messages[1].content: content blocks of type \"image\""},
        {CAIRN_API_ANTHROPIC_MESSAGES,
         "{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":[{"
         "\"text\":\"a\"}]}]}",
         "\"type\""},
        {CAIRN_API_ANTHROPIC_MESSAGES,
         "{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":[{"
         "\"type\":\"text\",\"text\":1}]}]}",
         "\"text\""},
        {CAIRN_API_ANTHROPIC_MESSAGES,
         "{\"model\":\"m\",\"max_tokens\":1,\"system\":3,\"messages\":[{\"role\":\"user\","
         "\"content\":\"q\"}]}",
         "\"system\""},
        {CAIRN_API_ANTHROPIC_MESSAGES,
         "{\"model\":\"m\",\"max_tokens\":1,\"system\":[{\"type\":\"tool_use\"}],\"messages\":[{"
         "\"role\":\"user\",\"content\":\"q\"}]}",
         "\"system\""},
        {CAIRN_API_ANTHROPIC_MESSAGES,
         "{\"model\":\"m\",\"max_tokens\":1,\"temperature\":1.5,\"messages\":[{\"role\":\"user\","
         "\"content\":\"q\"}]}",
         "\"temperature\""},
        {CAIRN_API_ANTHROPIC_MESSAGES,
         "{\"model\":\"m\",\"max_tokens\":1,\"top_k\":-1,\"messages\":[{\"role\":\"user\","
         "\"content\":\"q\"}]}",
         "\"top_k\""},
        {CAIRN_API_ANTHROPIC_MESSAGES,
         "{\"model\":\"m\",\"max_tokens\":1,\"stop_sequences\":[\"\"],\"messages\":[{\"role\":"
         "\"user\",\"content\":\"q\"}]}",
         "\"stop_sequences\""},
        {CAIRN_API_ANTHROPIC_MESSAGES,
         "{\"model\":\"m\",\"max_tokens\":1,\"stop_sequences\":3,\"messages\":[{\"role\":\"user\","
         "\"content\":\"q\"}]}",
         "\"stop_sequences\""},
        {CAIRN_API_ANTHROPIC_MESSAGES,
         "{\"model\":\"m\",\"max_tokens\":1,\"stream\":\"yes\",\"messages\":[{\"role\":\"user\","
         "\"content\":\"q\"}]}",
         "\"stream\""},
        {CAIRN_API_ANTHROPIC_MESSAGES,
         "{\"model\":\"m\",\"max_tokens\":1,\"metadata\":3,\"messages\":[{\"role\":\"user\","
         "\"content\":\"q\"}]}",
         "\"metadata\""},
        {CAIRN_API_ANTHROPIC_COUNT, "{\"model\":\"m\",\"messages\":{}}", "\"messages\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cairn_api_generation g;
        cairn_err err = {{0}};
        if (parse(cases[i].body, cases[i].flavor, &g, &err) == 0 ||
            !strstr(err.msg, cases[i].names)) {
            fail_msg("%s: expected an error naming %s, got \"%s\"", cases[i].body, cases[i].names,
                     err.msg);
        }
        cairn_api_generation_free(&g);
    }
    /* at most 16 stop strings; a model name longer than the state holds */
    char body[2048] = "{\"model\":\"m\",\"prompt\":\"p\",\"stop\":[";
    for (int i = 0; i < 17; i++) {
        strcat(body, i ? ",\"s\"" : "\"s\"");
    }
    strcat(body, "]}");
    cairn_api_generation g;
    cairn_err err = {{0}};
    assert_int_equal(parse(body, CAIRN_API_OPENAI_COMPLETION, &g, &err), -1);
    cairn_api_generation_free(&g);
    char name[300] = "{\"model\":\"";
    memset(name + strlen(name), 'm', 200);
    strcpy(name + strlen(name), "\",\"prompt\":\"p\"}");
    assert_int_equal(parse(name, CAIRN_API_OPENAI_COMPLETION, &g, &err), -1);
    cairn_api_generation_free(&g);
}

/* Mutations of valid bodies of every flavour: whatever parses stays within bounds. */
static void mutated_bodies(void **state) {
    (void)state;
    static const char *const seeds[] = {
        "{\"model\":\"m\",\"prompt\":\"Once\",\"max_tokens\":5,\"temperature\":0,\"stop\":\"x\"}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true,"
        "\"stream_options\":{\"include_usage\":true},\"seed\":3,\"stop\":[\"a\",\"b\"],"
        "\"logprobs\":true,\"top_logprobs\":4}",
        "{\"model\":\"m\",\"prompt\":\"p\",\"options\":{\"num_predict\":4,\"top_k\":3}}",
        "{\"model\":\"m\",\"prompt\":\"Once\",\"logprobs\":3,\"echo\":false}",
        "{\"model\":\"m\",\"max_tokens\":5,\"system\":[{\"type\":\"text\",\"text\":\"s\"}],"
        "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]}],"
        "\"stop_sequences\":[\"x\"],\"top_k\":3,\"stream\":true}",
    };
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    char buf[512];
    for (int i = 0; i < 30000; i++) {
        const char *seed = seeds[i % 5];
        size_t len = strlen(seed);
        memcpy(buf, seed, len);
        int edits = 1 + (int)(rng % 4);
        for (int e = 0; e < edits; e++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            size_t at = (size_t)(rng >> 33) % len;
            switch ((rng >> 20) % 3) {
            case 0: buf[at] = (char)(rng >> 40); break;            /* replace a byte */
            case 1: len = at + 1; break;                           /* truncate */
            default: buf[at] = "{}[]\",:0-e9tn"[(rng >> 44) % 13]; /* a JSON-ish byte */
            }
        }
        cairn_api_generation g;
        cairn_err err = {{0}};
        if (cairn_api_parse_generation(buf, len, (cairn_api_flavor)(i % CAIRN_API_FLAVORS), &g,
                                       &err) == 0) {
            assert_true(g.model[0] != '\0');
            assert_true((g.prompt != NULL) != (g.messages != NULL));
            assert_true(g.gen.n_stop <= CAIRN_API_MAX_STOPS);
            assert_true(g.gen.max_tokens >= 0);
            assert_true(g.gen.sampling.temperature >= 0 && g.gen.sampling.temperature <= 100);
            assert_true(g.gen.top_logprobs >= 0 && g.gen.top_logprobs <= CAIRN_MAX_TOP_LOGPROBS);
        } else {
            assert_true(err.msg[0] != '\0');
        }
        cairn_api_generation_free(&g);
    }
}

/* {"model":"m","prompt":"p","x":[[[...]]]} with the object at depth 1 and depth levels in
 * all; malloc'd. */
static char *nested_body(size_t depth) {
    const char *head = "{\"model\":\"m\",\"prompt\":\"p\",\"x\":";
    size_t n = strlen(head), inner = depth - 1;
    char *s = malloc(n + 2 * inner + 2);
    assert_non_null(s);
    memcpy(s, head, n);
    memset(s + n, '[', inner);
    memset(s + n + inner, ']', inner);
    strcpy(s + n + 2 * inner, "}");
    return s;
}

typedef struct deep_case {
    const char *body;
    cairn_api_flavor flavor;
    int rc;
    cairn_err err;
} deep_case;

static void parse_deep(void *arg) {
    deep_case *c = arg;
    cairn_api_generation g;
    c->rc = cairn_api_parse_generation(c->body, strlen(c->body), c->flavor, &g, &c->err);
    cairn_api_generation_free(&g);
}

/* Parses on a thread with a 128 KiB stack: cJSON would need several times that for a body
 * nested 999 deep (just under its own limit of 1000). */
static void parse_on_small_stack(deep_case *c) {
    uv_thread_t t;
    uv_thread_options_t opt = {UV_THREAD_HAS_STACK_SIZE, 128 * 1024};
    assert_int_equal(uv_thread_create_ex(&t, &opt, parse_deep, c), 0);
    assert_int_equal(uv_thread_join(&t), 0);
}

static void deep_bodies_are_refused(void **state) {
    (void)state;
    char *deep = nested_body(999);
    for (int f = 0; f < CAIRN_API_FLAVORS; f++) {
        deep_case c = {deep, (cairn_api_flavor)f, 0, {{0}}};
        parse_on_small_stack(&c);
        assert_int_equal(c.rc, -1);
        assert_string_equal(c.err.msg, "the body nests deeper than 64 levels");
    }
    free(deep);
    /* exactly the limit is fine (the unknown field is ignored) */
    char *edge = nested_body(CAIRN_JSON_MAX_DEPTH);
    deep_case c = {edge, CAIRN_API_OPENAI_COMPLETION, 0, {{0}}};
    parse_on_small_stack(&c);
    assert_int_equal(c.rc, 0);
    free(edge);
    /* brackets inside strings, escaped quotes included, do not count */
    cairn_buf b = {0};
    cairn_buf_puts(&b, "{\"model\":\"m\",\"prompt\":\"\\\"\\\\");
    for (int i = 0; i < 900; i++) {
        cairn_buf_putc(&b, '[');
    }
    cairn_buf_puts(&b, "\"}");
    cairn_api_generation g;
    cairn_err err = {{0}};
    assert_int_equal(cairn_api_parse_generation(b.data, b.len, CAIRN_API_GENERATE, &g, &err), 0);
    assert_int_equal((int)strlen(g.prompt), 902);
    cairn_api_generation_free(&g);
    cairn_buf_free(&b);
    /* one value, and nothing after it */
    assert_int_equal(parse("{\"model\":\"m\",\"prompt\":\"p\"} {}", CAIRN_API_GENERATE, &g, &err),
                     -1);
    assert_non_null(strstr(err.msg, "the body is not valid JSON"));
    cairn_api_generation_free(&g);
}

/* The shape walk counts values, so a small text cannot make cJSON allocate gigabytes. */
static void value_count_is_bounded(void **state) {
    (void)state;
    size_t n = (size_t)CAIRN_JSON_MAX_VALUES + 1;
    char *s = malloc(2 * n + 2);
    assert_non_null(s);
    s[0] = '[';
    for (size_t i = 0; i < n; i++) {
        s[1 + 2 * i] = '0';
        s[2 + 2 * i] = ',';
    }
    s[2 * n] = ']';
    s[2 * n + 1] = '\0';
    cairn_err err = {{0}};
    assert_null(cairn_json_parse(s, strlen(s), "the body", &err));
    assert_string_equal(err.msg, "the body has more than 1048576 values");
    free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(openai_chat_fields),     cmocka_unit_test(defaults_per_flavour),
        cmocka_unit_test(logprobs_per_flavour),   cmocka_unit_test(bad_fields_are_named),
        cmocka_unit_test(mutated_bodies),         cmocka_unit_test(deep_bodies_are_refused),
        cmocka_unit_test(value_count_is_bounded), cmocka_unit_test(anthropic_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
