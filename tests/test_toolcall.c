/* Tests of the answer parser: canned answers of each family (content only, reasoning and
 * content, one call, two calls, a call after text, malformed calls), each fed whole, split
 * at every byte and byte by byte, must give the same events; and the format each real
 * template selects. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chat/chat.h"

#define TEMPLATES CAIRN_SHARED_DIR "/templates/"

/* Events as text, adjacent fragments of one kind joined: "|C:text|R:text|S0:id,name|A0:..|E0". */
typedef struct event_log {
    cairn_buf text;
    int last_kind, last_index;
} event_log;

static int record(void *user, const cairn_chat_event *e) {
    event_log *log = user;
    static const char kinds[] = "CRSAE";
    bool fragment = e->kind == CAIRN_CHAT_CONTENT || e->kind == CAIRN_CHAT_REASONING ||
                    e->kind == CAIRN_CHAT_TOOL_ARGS;
    assert_true(!fragment || e->len > 0);
    if (!fragment || (int)e->kind != log->last_kind || e->index != log->last_index) {
        cairn_buf_printf(&log->text, "|%c", kinds[e->kind]);
        if (e->kind >= CAIRN_CHAT_TOOL_START) {
            cairn_buf_printf(&log->text, "%d", e->index);
        }
        if (e->kind != CAIRN_CHAT_TOOL_END) {
            cairn_buf_puts(&log->text, ":");
        }
    }
    if (e->kind == CAIRN_CHAT_TOOL_START) {
        cairn_buf_printf(&log->text, "%s,%s", e->id, e->name);
    }
    if (fragment) {
        cairn_buf_append(&log->text, e->text, e->len);
    }
    log->last_kind = (int)e->kind;
    log->last_index = e->index;
    return 0;
}

/* The events of text fed in pieces: cuts[0..n_cuts) are the split points. */
static char *parse_split(const cairn_chat_format *f, const char *text, const size_t *cuts,
                         size_t n_cuts) {
    event_log log = {{0}, -1, -1};
    cairn_chat_parser *p = cairn_chat_parser_new(f, "call_", record, &log);
    assert_non_null(p);
    cairn_err err = {{0}};
    size_t from = 0, len = strlen(text);
    for (size_t i = 0; i <= n_cuts; i++) {
        size_t to = i < n_cuts ? cuts[i] : len;
        assert_int_equal(cairn_chat_parser_feed(p, text + from, to - from, &err), 0);
        from = to;
    }
    assert_int_equal(cairn_chat_parser_finish(p, &err), 0);
    cairn_chat_parser_free(p);
    char *out = cairn_buf_take(&log.text);
    return out ? out : cairn_strdup("");
}

static void expect_events(const cairn_chat_format *f, const char *text, const char *expected) {
    char *whole = parse_split(f, text, NULL, 0);
    if (strcmp(whole, expected) != 0) {
        print_error("answer [%s]\n got [%s]\nwant [%s]\n", text, whole, expected);
    }
    assert_string_equal(whole, expected);
    size_t len = strlen(text);
    for (size_t cut = 1; cut < len; cut++) {
        char *two = parse_split(f, text, &cut, 1);
        if (strcmp(two, expected) != 0) {
            print_error("answer [%s] split at %zu\n got [%s]\nwant [%s]\n", text, cut, two,
                        expected);
        }
        assert_string_equal(two, expected);
        free(two);
    }
    size_t *cuts = calloc(len ? len : 1, sizeof *cuts);
    for (size_t i = 0; i + 1 < len; i++) {
        cuts[i] = i + 1;
    }
    char *bytes = parse_split(f, text, cuts, len ? len - 1 : 0);
    assert_string_equal(bytes, expected);
    free(bytes);
    free(cuts);
    free(whole);
}

typedef struct answer_case {
    cairn_chat_format format;
    const char *answer;
    const char *events;
} answer_case;

#define HERMES                                                                                     \
    { CAIRN_TOOLS_HERMES, true, true, false }
#define HERMES_OPEN                                                                                \
    { CAIRN_TOOLS_HERMES, true, true, true }
#define HERMES_NO_TOOLS                                                                            \
    { CAIRN_TOOLS_HERMES, false, true, false }
#define LLAMA3                                                                                     \
    { CAIRN_TOOLS_LLAMA3, true, false, false }
#define MISTRAL                                                                                    \
    { CAIRN_TOOLS_MISTRAL, true, false, false }
#define GPT_OSS                                                                                    \
    { CAIRN_TOOLS_GPT_OSS, true, true, false }
#define DEEPSEEK                                                                                   \
    { CAIRN_TOOLS_DEEPSEEK, true, true, false }
#define DEEPSEEK_OPEN                                                                              \
    { CAIRN_TOOLS_DEEPSEEK, true, true, true }
#define GLM                                                                                        \
    { CAIRN_TOOLS_GLM, true, true, false }
#define NONE_THINK                                                                                 \
    { CAIRN_TOOLS_NONE, true, true, false }

/* DeepSeek's markers: full-width bars and U+2581 between words. */
#define DS_CALLS                                                                                   \
    "<\xEF\xBD\x9Ctool\xE2\x96\x81"                                                                \
    "calls\xE2\x96\x81"                                                                            \
    "begin\xEF\xBD\x9C>"
#define DS_CALLS_END                                                                               \
    "<\xEF\xBD\x9Ctool\xE2\x96\x81"                                                                \
    "calls\xE2\x96\x81"                                                                            \
    "end\xEF\xBD\x9C>"
#define DS_CALL                                                                                    \
    "<\xEF\xBD\x9Ctool\xE2\x96\x81"                                                                \
    "call\xE2\x96\x81"                                                                             \
    "begin\xEF\xBD\x9C>"
#define DS_CALL_END                                                                                \
    "<\xEF\xBD\x9Ctool\xE2\x96\x81"                                                                \
    "call\xE2\x96\x81"                                                                             \
    "end\xEF\xBD\x9C>"
#define DS_SEP                                                                                     \
    "<\xEF\xBD\x9Ctool\xE2\x96\x81"                                                                \
    "sep\xEF\xBD\x9C>"

#define WEATHER "|S0:call_0,get_weather|A0:{\"city\":\"Paris\"}|E0"
#define TWO_CALLS WEATHER "|S1:call_1,get_time|A1:{\"zone\":\"CET\"}|E1"

static const answer_case cases[] = {
    /* Qwen / Hermes */
    {HERMES, "Hello, caf\xC3\xA9 <b>!", "|C:Hello, caf\xC3\xA9 <b>!"},
    {HERMES, "<think>\nThe user greets.\n</think>\n\nHello!", "|R:The user greets.|C:Hello!"},
    {HERMES_OPEN, "Thinking \xE2\x9C\x93 here.\n</think>\n\nDone.",
     "|R:Thinking \xE2\x9C\x93 here.|C:Done."},
    {HERMES,
     "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n"
     "</tool_call>",
     WEATHER},
    {HERMES,
     "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n"
     "</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\": "
     "\"CET\"}}\n</tool_call>",
     TWO_CALLS},
    {HERMES,
     "<think>\nNeed weather.\n</think>\n\nLet me check.\n<tool_call>\n{\"name\": "
     "\"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
     "|R:Need weather.|C:Let me check." WEATHER},
    {HERMES, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": }\n</tool_call>",
     "|C:<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": }\n</tool_call>"},
    {HERMES, "Sure <tool_call>{\"name\": \"x\"", "|C:Sure<tool_call>{\"name\": \"x\""},
    {HERMES_NO_TOOLS, "<tool_call>{\"name\": \"x\"}</tool_call>",
     "|C:<tool_call>{\"name\": \"x\"}</tool_call>"},
    {NONE_THINK, "<think>a</think>b <tool_call>", "|R:a|C:b <tool_call>"},
    /* Llama 3.x */
    {LLAMA3, "The answer is {not json}.", "|C:The answer is {not json}."},
    {LLAMA3, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}", WEATHER},
    {LLAMA3,
     "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}; "
     "{\"name\": \"get_time\", \"parameters\": {\"zone\": \"CET\"}}",
     TWO_CALLS},
    {LLAMA3,
     "Checking. <|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": "
     "\"Paris\"}}",
     "|C:Checking." WEATHER},
    {LLAMA3, "{\"name\": \"get_weather\", \"parameters\": ",
     "|C:{\"name\": \"get_weather\", "
     "\"parameters\": "},
    /* Mistral */
    {MISTRAL, "Bonjour.", "|C:Bonjour."},
    {MISTRAL,
     "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}, "
     "{\"name\": \"get_time\", \"arguments\": {\"zone\": \"CET\"}}]",
     TWO_CALLS},
    {MISTRAL,
     "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}[TOOL_CALLS]get_time[ARGS]"
     "{\"zone\": \"CET\"}",
     TWO_CALLS},
    {MISTRAL, "Sure.[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}", "|C:Sure." WEATHER},
    {MISTRAL, "[TOOL_CALLS][{\"name\": 3}]", "|C:[TOOL_CALLS][{\"name\": 3}]"},
    /* gpt-oss */
    {GPT_OSS, "<|channel|>final<|message|>Hi there.", "|C:Hi there."},
    {GPT_OSS,
     "<|channel|>analysis<|message|>User says hi.<|end|><|start|>assistant<|channel|>"
     "final<|message|>Hi!",
     "|R:User says hi.|C:Hi!"},
    {GPT_OSS,
     "<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>"
     "commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\": "
     "\"Paris\"}<|call|>",
     "|R:Need weather." WEATHER},
    {GPT_OSS,
     "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>"
     "{\"city\": \"Paris\"}<|call|><|start|>assistant to=functions.get_time<|channel|>"
     "commentary json<|message|>{\"zone\": \"CET\"}",
     TWO_CALLS},
    {GPT_OSS, "<|channel|>commentary to=functions.get_weather<|message|>{\"city\"", "|C:{\"city\""},
    /* DeepSeek R1 and V3.1 */
    {DEEPSEEK_OPEN, "Plan.</think>Answer.", "|R:Plan.|C:Answer."},
    {DEEPSEEK,
     DS_CALLS DS_CALL "function" DS_SEP "get_weather\n```json\n{\"city\": \"Paris\"}\n"
                      "```" DS_CALL_END DS_CALL "function" DS_SEP "get_time\n```json\n{\"zone\": "
                      "\"CET\"}\n```" DS_CALL_END DS_CALLS_END,
     TWO_CALLS},
    {DEEPSEEK,
     "Looking.\n" DS_CALLS DS_CALL "get_weather" DS_SEP
     "{\"city\": \"Paris\"}" DS_CALL_END DS_CALLS_END,
     "|C:Looking." WEATHER},
    {DEEPSEEK, DS_CALLS DS_CALL "get_weather" DS_SEP "{\"city\": Paris}" DS_CALL_END DS_CALLS_END,
     "|C:" DS_CALLS DS_CALL "get_weather" DS_SEP "{\"city\": Paris}" DS_CALL_END DS_CALLS_END},
    /* GLM-4.5+ */
    {GLM,
     "<think>Weather.</think>\n<tool_call>get_weather\n<arg_key>city</arg_key>\n"
     "<arg_value>Paris</arg_value>\n</tool_call>",
     "|R:Weather." WEATHER},
    {GLM,
     "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n"
     "</tool_call><tool_call>get_time\n<arg_key>zone</arg_key>\n<arg_value>CET</arg_value>"
     "\n</tool_call>",
     TWO_CALLS},
    {GLM, "<tool_call>f\n<arg_key>n</arg_key><arg_value>3</arg_value></tool_call>",
     "|S0:call_0,f|A0:{\"n\":3}|E0"},
    {GLM, "<tool_call>get_weather\n<arg_key>city</arg_key></tool_call>",
     "|C:<tool_call>get_weather\n<arg_key>city</arg_key></tool_call>"},
};

static void test_answers_every_split(void **state) {
    (void)state;
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(cases); i++) {
        expect_events(&cases[i].format, cases[i].answer, cases[i].events);
    }
}

/* The callback's non-zero stops the parser and comes back from feed. */
static int stop_at_call(void *user, const cairn_chat_event *e) {
    (void)user;
    return e->kind == CAIRN_CHAT_TOOL_START ? 7 : 0;
}

static void test_callback_stops(void **state) {
    (void)state;
    cairn_chat_format f = HERMES;
    cairn_chat_parser *p = cairn_chat_parser_new(&f, NULL, stop_at_call, NULL);
    cairn_err err = {{0}};
    const char *text = "a<tool_call>{\"name\": \"f\"}</tool_call>";
    assert_int_equal(cairn_chat_parser_feed(p, text, strlen(text), &err), 7);
    assert_int_equal(cairn_chat_parser_finish(p, &err), 7);
    cairn_chat_parser_free(p);
}

static char *load_template(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s%s", TEMPLATES, name);
    cairn_err err = {{0}};
    char *src = cairn_read_file(path, NULL, &err);
    assert_non_null(src);
    return src;
}

static void expect_format(const char *name, const char *prompt, cairn_tool_syntax tools,
                          bool reasoning, bool starts_in_reasoning) {
    char *src = load_template(name);
    cairn_chat_format f = cairn_chat_format_detect(src, prompt);
    if (f.tools != tools || f.reasoning != reasoning ||
        f.starts_in_reasoning != starts_in_reasoning) {
        print_error("%s: %s reasoning %d open %d\n", name, cairn_tool_syntax_name(f.tools),
                    f.reasoning, f.starts_in_reasoning);
    }
    assert_int_equal(f.tools, tools);
    assert_int_equal(f.reasoning, reasoning);
    assert_int_equal(f.starts_in_reasoning, starts_in_reasoning);
    free(src);
}

static void test_formats_of_real_templates(void **state) {
    (void)state;
    expect_format("Qwen-Qwen3-0.6B.jinja", "<|im_start|>assistant\n", CAIRN_TOOLS_HERMES, true,
                  false);
    expect_format("Qwen-Qwen2.5-7B-Instruct.jinja", NULL, CAIRN_TOOLS_HERMES, false, false);
    expect_format("meta-llama-Llama-3.1-8B-Instruct.jinja", NULL, CAIRN_TOOLS_LLAMA3, false, false);
    expect_format("meta-llama-Llama-3.2-3B-Instruct.jinja", NULL, CAIRN_TOOLS_LLAMA3, false, false);
    expect_format("Mistral-Small-3.2-24B-Instruct-2506.jinja", NULL, CAIRN_TOOLS_MISTRAL, false,
                  false);
    expect_format("openai-gpt-oss-120b.jinja", NULL, CAIRN_TOOLS_GPT_OSS, true, false);
    expect_format("deepseek-ai-DeepSeek-V3.1.jinja",
                  "<\xEF\xBD\x9C"
                  "Assistant\xEF\xBD\x9C><think>",
                  CAIRN_TOOLS_DEEPSEEK, true, true);
    expect_format("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", "x<think>\n",
                  CAIRN_TOOLS_DEEPSEEK, true, true);
    expect_format("GLM-4.6.jinja", "<|assistant|>\n<think></think>", CAIRN_TOOLS_GLM, true, false);
    expect_format("chatml.jinja", NULL, CAIRN_TOOLS_NONE, false, false);
    cairn_tool_syntax s;
    for (int i = CAIRN_TOOLS_NONE; i <= CAIRN_TOOLS_GLM; i++) {
        assert_int_equal(cairn_tool_syntax_from_name(cairn_tool_syntax_name(i), &s), 0);
        assert_int_equal(s, i);
    }
    assert_int_equal(cairn_tool_syntax_from_name("bogus", &s), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answers_every_split),
        cmocka_unit_test(test_callback_stops),
        cmocka_unit_test(test_formats_of_real_templates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
