/* Tests of the chat module: real model chat templates rendered for a known conversation and
 * compared with each family's documented prompt format, the Jinja features templates rely
 * on, errors that name the construct and line, and limits against hostile templates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chat/chat.h"
#include "fuzz/jinja_fuzz_entry.h"

#define TEMPLATES CAIRN_SHARED_DIR "/templates/"
#define JINJA_CORPUS CAIRN_SOURCE_DIR "/tests/fuzz/corpus/jinja/"

/* 2025-03-14 00:00:00 UTC, the clock strftime_now() sees in these tests. */
#define FIXED_NOW 1741910400

/* ---- helpers ---- */

static char *load_template(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s%s", TEMPLATES, name);
    cairn_err err = {{0}};
    char *src = cairn_read_file(path, NULL, &err);
    if (!src)
        print_error("%s\n", err.msg);
    assert_non_null(src);
    return src;
}

static cJSON *msg(const char *role, const char *content) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", role);
    cJSON_AddStringToObject(m, "content", content);
    return m;
}

/* system + user + assistant + user: the conversation every family test renders. */
static cJSON *conversation(bool with_system) {
    cJSON *msgs = cJSON_CreateArray();
    if (with_system)
        cJSON_AddItemToArray(msgs, msg("system", "You are a helpful assistant."));
    cJSON_AddItemToArray(msgs, msg("user", "Hello!"));
    cJSON_AddItemToArray(msgs, msg("assistant", "Hi there."));
    cJSON_AddItemToArray(msgs, msg("user", "What is 2+2?"));
    return msgs;
}

/* The context HF's apply_chat_template builds, with a fixed clock; takes msgs. */
static cJSON *chat_context(cJSON *msgs, const char *bos, const char *eos) {
    cJSON *ctx = cJSON_CreateObject();
    cJSON_AddItemToObject(ctx, "messages", msgs);
    cJSON_AddBoolToObject(ctx, "add_generation_prompt", true);
    cJSON_AddStringToObject(ctx, "bos_token", bos);
    cJSON_AddStringToObject(ctx, "eos_token", eos);
    cJSON_AddNumberToObject(ctx, "cairn_now", FIXED_NOW);
    return ctx;
}

static void expect_render(const char *tpl, const cJSON *ctx, const char *expected) {
    char *out = NULL;
    cairn_err err = {{0}};
    int rc = cairn_jinja_render(tpl, ctx, &out, &err);
    if (rc != 0)
        print_error("render failed: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_non_null(out);
    if (strcmp(out, expected) != 0)
        print_error("got:\n[%s]\nexpected:\n[%s]\n", out, expected);
    assert_string_equal(out, expected);
    free(out);
}

static void expect_file_render(const char *name, const cJSON *ctx, const char *expected) {
    char *tpl = load_template(name);
    expect_render(tpl, ctx, expected);
    free(tpl);
}

/* Renders tpl with no context, expecting an error that contains every given fragment. */
static void expect_error(const char *tpl, const cJSON *ctx, const char *frag1, const char *frag2) {
    char *out = (char *)1;
    cairn_err err = {{0}};
    int rc = cairn_jinja_render(tpl, ctx, &out, &err);
    if (rc == 0)
        print_error("unexpected success: [%s]\n", out);
    assert_int_equal(rc, -1);
    assert_null(out);
    if (!strstr(err.msg, frag1) || (frag2 && !strstr(err.msg, frag2)))
        print_error("error [%s] lacks [%s] / [%s]\n", err.msg, frag1, frag2 ? frag2 : "");
    assert_non_null(strstr(err.msg, frag1));
    if (frag2)
        assert_non_null(strstr(err.msg, frag2));
}

static void expect_simple(const char *tpl, const char *expected) {
    cJSON *ctx = cJSON_CreateObject();
    cJSON_AddNumberToObject(ctx, "cairn_now", FIXED_NOW);
    expect_render(tpl, ctx, expected);
    cJSON_Delete(ctx);
}

/* ---- model families ---- */

#define CHATML_CONV                                                                                \
    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\nHi there.<|im_end|>\n"             \
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
#define CHATML_SYSTEM "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"

static void test_chatml(void **state) {
    (void)state;
    cJSON *ctx = chat_context(conversation(true), "", "");
    expect_file_render("chatml.jinja", ctx, CHATML_SYSTEM CHATML_CONV "<|im_start|>assistant\n");
    cJSON_Delete(ctx);
}

static void test_qwen25(void **state) {
    (void)state;
    cJSON *ctx = chat_context(conversation(true), "", "<|im_end|>");
    expect_file_render("Qwen-Qwen2.5-7B-Instruct.jinja", ctx,
                       CHATML_SYSTEM CHATML_CONV "<|im_start|>assistant\n");
    cJSON_Delete(ctx);
    /* Without a system message the template supplies its own. */
    ctx = chat_context(conversation(false), "", "<|im_end|>");
    expect_file_render("Qwen-Qwen2.5-7B-Instruct.jinja", ctx,
                       "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a "
                       "helpful assistant.<|im_end|>\n" CHATML_CONV "<|im_start|>assistant\n");
    cJSON_Delete(ctx);
}

static void test_smollm3(void **state) {
    (void)state;
    const char *head = "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\n";
    const char *custom = "## Custom Instructions\n\nYou are a helpful assistant.\n\n<|im_end|>\n";
    char expected[2048];
    /* Thinking on (the template's default): assistant turns and the prompt stay plain. */
    cJSON *ctx = chat_context(conversation(true), "", "<|im_end|>");
    snprintf(expected, sizeof expected, "%sReasoning Mode: /think\n\n%s%s", head, custom,
             CHATML_CONV "<|im_start|>assistant\n");
    expect_file_render("HuggingFaceTB-SmolLM3-3B.jinja", ctx, expected);
    /* Thinking off: every assistant turn and the prompt get an empty think block. */
    cJSON_AddBoolToObject(ctx, "enable_thinking", false);
    snprintf(expected, sizeof expected,
             "%sReasoning Mode: /no_think\n\n%s"
             "<|im_start|>user\nHello!<|im_end|>\n"
             "<|im_start|>assistant\n<think>\n\n</think>\nHi there.<|im_end|>\n"
             "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
             "<|im_start|>assistant\n<think>\n\n</think>\n",
             head, custom);
    expect_file_render("HuggingFaceTB-SmolLM3-3B.jinja", ctx, expected);
    cJSON_Delete(ctx);
    /* "/no_think" in the system prompt switches thinking off and is removed from it. */
    cJSON *msgs = cJSON_CreateArray();
    cJSON_AddItemToArray(msgs, msg("system", "Be brief. /no_think"));
    cJSON_AddItemToArray(msgs, msg("user", "Hi"));
    ctx = chat_context(msgs, "", "");
    snprintf(expected, sizeof expected,
             "%sReasoning Mode: /no_think\n\n## Custom Instructions\n\nBe brief.\n\n<|im_end|>\n"
             "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n",
             head);
    expect_file_render("HuggingFaceTB-SmolLM3-3B.jinja", ctx, expected);
    cJSON_Delete(ctx);
}

/* The Llama-2-chat template as Meta's tokenizer_config.json ships it. */
static const char llama2_template[] =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}"
    "{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}"
    "{% endif %}{% endfor %}";

static void test_llama2(void **state) {
    (void)state;
    cJSON *ctx = chat_context(conversation(true), "<s>", "</s>");
    expect_render(llama2_template, ctx,
                  "<s>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello! [/INST]"
                  " Hi there. </s><s>[INST] What is 2+2? [/INST]");
    cJSON_Delete(ctx);
    cJSON *msgs = cJSON_CreateArray();
    cJSON_AddItemToArray(msgs, msg("user", "a"));
    cJSON_AddItemToArray(msgs, msg("user", "b"));
    ctx = chat_context(msgs, "<s>", "</s>");
    expect_error(llama2_template, ctx, "Conversation roles must alternate", NULL);
    cJSON_Delete(ctx);
}

#define LLAMA3_BODY                                                                                \
    "You are a helpful assistant.<|eot_id|>"                                                       \
    "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"                                 \
    "<|start_header_id|>assistant<|end_header_id|>\n\nHi there.<|eot_id|>"                         \
    "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"                           \
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
#define LLAMA3_HEAD                                                                                \
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"                              \
    "Cutting Knowledge Date: December 2023\n"

static void test_llama31_and_33(void **state) {
    (void)state;
    /* 3.1 and 3.3 print a fixed "Today Date" unless the caller passes date_string. */
    const char *expected = LLAMA3_HEAD "Today Date: 26 Jul 2024\n\n" LLAMA3_BODY;
    cJSON *ctx = chat_context(conversation(true), "<|begin_of_text|>", "<|eot_id|>");
    expect_file_render("meta-llama-Llama-3.1-8B-Instruct.jinja", ctx, expected);
    expect_file_render("meta-llama-Llama-3.3-70B-Instruct.jinja", ctx, expected);
    cJSON_AddStringToObject(ctx, "date_string", "01 Jan 2025");
    expect_file_render("meta-llama-Llama-3.1-8B-Instruct.jinja", ctx,
                       LLAMA3_HEAD "Today Date: 01 Jan 2025\n\n" LLAMA3_BODY);
    cJSON_Delete(ctx);
}

static void test_llama32_date(void **state) {
    (void)state;
    /* 3.2 asks strftime_now() for the date: the context's clock, 2025-03-14. */
    cJSON *ctx = chat_context(conversation(true), "<|begin_of_text|>", "<|eot_id|>");
    expect_file_render("meta-llama-Llama-3.2-3B-Instruct.jinja", ctx,
                       LLAMA3_HEAD "Today Date: 14 Mar 2025\n\n" LLAMA3_BODY);
    cJSON_Delete(ctx);
}

static void test_mistral(void **state) {
    (void)state;
    cJSON *ctx = chat_context(conversation(true), "<s>", "</s>");
    /* Nemo folds the system prompt into the last user turn. */
    expect_file_render("mistralai-Mistral-Nemo-Instruct-2407.jinja", ctx,
                       "<s>[INST]Hello![/INST]Hi there.</s>"
                       "[INST]You are a helpful assistant.\n\nWhat is 2+2?[/INST]");
    /* Small 3.2 and Devstral use the [SYSTEM_PROMPT] block. */
    const char *v7 = "<s>[SYSTEM_PROMPT]You are a helpful assistant.[/SYSTEM_PROMPT]"
                     "[INST]Hello![/INST]Hi there.</s>[INST]What is 2+2?[/INST]";
    expect_file_render("Mistral-Small-3.2-24B-Instruct-2506.jinja", ctx, v7);
    expect_file_render("unsloth-mistral-Devstral-Small-2507.jinja", ctx, v7);
    cJSON_Delete(ctx);
    /* Without one, Small 3.2's default system prompt carries strftime_now's date. */
    ctx = chat_context(conversation(false), "<s>", "</s>");
    char *tpl = load_template("Mistral-Small-3.2-24B-Instruct-2506.jinja");
    char *out = NULL;
    cairn_err err = {{0}};
    assert_int_equal(cairn_jinja_render(tpl, ctx, &out, &err), 0);
    assert_true(strncmp(out, "<s>[SYSTEM_PROMPT]You are Mistral Small 3", 41) == 0);
    assert_non_null(strstr(out, "The current date is 2025-03-14."));
    assert_non_null(strstr(out, "[/SYSTEM_PROMPT][INST]Hello![/INST]Hi there.</s>"));
    free(out);
    free(tpl);
    cJSON_Delete(ctx);
    /* Nemo enforces alternating roles. */
    cJSON *msgs = cJSON_CreateArray();
    cJSON_AddItemToArray(msgs, msg("user", "a"));
    cJSON_AddItemToArray(msgs, msg("user", "b"));
    ctx = chat_context(msgs, "<s>", "</s>");
    tpl = load_template("mistralai-Mistral-Nemo-Instruct-2407.jinja");
    expect_error(tpl, ctx, "conversation roles must alternate", NULL);
    free(tpl);
    cJSON_Delete(ctx);
}

static void test_phi35(void **state) {
    (void)state;
    cJSON *ctx = chat_context(conversation(true), "<s>", "<|endoftext|>");
    expect_file_render("microsoft-Phi-3.5-mini-instruct.jinja", ctx,
                       "<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHello!<|end|>\n"
                       "<|assistant|>\nHi there.<|end|>\n<|user|>\nWhat is 2+2?<|end|>\n"
                       "<|assistant|>\n");
    /* Without the generation prompt the template ends with the EOS token. */
    cJSON_ReplaceItemInObject(ctx, "add_generation_prompt", cJSON_CreateBool(false));
    expect_file_render("microsoft-Phi-3.5-mini-instruct.jinja", ctx,
                       "<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHello!<|end|>\n"
                       "<|assistant|>\nHi there.<|end|>\n<|user|>\nWhat is 2+2?<|end|>\n"
                       "<|endoftext|>");
    cJSON_Delete(ctx);
}

static void test_gemma2(void **state) {
    (void)state;
    char *tpl = load_template("google-gemma-2-2b-it.jinja");
    /* Gemma 2's template refuses a system role... */
    cJSON *ctx = chat_context(conversation(true), "<bos>", "<eos>");
    expect_error(tpl, ctx, "System role not supported", NULL);
    cJSON_Delete(ctx);
    /* ...and renders user/model turns, trimming content. */
    ctx = chat_context(conversation(false), "<bos>", "<eos>");
    expect_render(tpl, ctx,
                  "<bos><start_of_turn>user\nHello!<end_of_turn>\n<start_of_turn>model\n"
                  "Hi there.<end_of_turn>\n<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n"
                  "<start_of_turn>model\n");
    cJSON_Delete(ctx);
    free(tpl);
}

static void test_qwen3_thinking(void **state) {
    (void)state;
    char *tpl = load_template("Qwen-Qwen3-0.6B.jinja");
    /* A past assistant turn's reasoning is dropped: it precedes the last user query. */
    cJSON *msgs = cJSON_CreateArray();
    cJSON_AddItemToArray(msgs, msg("system", "You are a helpful assistant."));
    cJSON_AddItemToArray(msgs, msg("user", "Hello!"));
    cJSON_AddItemToArray(msgs, msg("assistant", "<think>\nA greeting.\n</think>\n\nHi there."));
    cJSON_AddItemToArray(msgs, msg("user", "What is 2+2?"));
    cJSON *ctx = chat_context(msgs, "", "<|im_end|>");
    cJSON_AddBoolToObject(ctx, "enable_thinking", true);
    expect_render(tpl, ctx, CHATML_SYSTEM CHATML_CONV "<|im_start|>assistant\n");
    /* enable_thinking=false pre-fills an empty think block. */
    cJSON_ReplaceItemInObject(ctx, "enable_thinking", cJSON_CreateBool(false));
    expect_render(tpl, ctx,
                  CHATML_SYSTEM CHATML_CONV "<|im_start|>assistant\n<think>\n\n</think>\n\n");
    cJSON_Delete(ctx);
    /* An assistant turn after the last user query keeps its reasoning, normalized. */
    msgs = cJSON_CreateArray();
    cJSON_AddItemToArray(msgs, msg("user", "Hello!"));
    cJSON_AddItemToArray(msgs, msg("assistant", "<think>\n\nA greeting.\n</think>\n\nHi there."));
    ctx = chat_context(msgs, "", "<|im_end|>");
    cJSON_ReplaceItemInObject(ctx, "add_generation_prompt", cJSON_CreateBool(false));
    expect_render(tpl, ctx,
                  "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n<think>\n"
                  "A greeting.\n</think>\n\nHi there.<|im_end|>\n");
    cJSON_Delete(ctx);
    free(tpl);
}

static void test_qwen3_tools(void **state) {
    (void)state;
    char *tpl = load_template("Qwen-Qwen3-0.6B.jinja");
    cJSON *ctx = chat_context(cJSON_CreateArray(), "", "");
    cJSON *msgs = cJSON_GetObjectItem(ctx, "messages");
    cJSON_AddItemToArray(msgs, msg("user", "Weather in Paris?"));
    cJSON *call =
        cJSON_Parse("{\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"type\": "
                    "\"function\", \"function\": {\"name\": \"get_weather\", "
                    "\"arguments\": {\"city\": \"Paris\"}}}]}");
    cJSON_AddItemToArray(msgs, call);
    cJSON_AddItemToArray(msgs, msg("tool", "{\"temp\": 21}"));
    cJSON *tools =
        cJSON_Parse("[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", "
                    "\"parameters\": {\"type\": \"object\", \"required\": [\"city\"]}}}]");
    cJSON_AddItemToObject(ctx, "tools", tools);
    expect_render(
        tpl, ctx,
        "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with "
        "the user query.\n\nYou are provided with function signatures within "
        "<tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": "
        "{\"name\": \"get_weather\", \"parameters\": {\"type\": \"object\", "
        "\"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, return a json "
        "object with function name and arguments within <tool_call></tool_call> XML "
        "tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
        "<args-json-object>}\n</tool_call><|im_end|>\n"
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
        "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
        "{\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n"
        "<|im_start|>user\n<tool_response>\n{\"temp\": 21}\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n");
    cJSON_Delete(ctx);
    free(tpl);
}

static void test_chat_render_and_default(void **state) {
    (void)state;
    cJSON *msgs = conversation(true);
    char *out = NULL;
    cairn_err err = {{0}};
    assert_int_equal(
        cairn_chat_render(cairn_chat_default_template(), msgs, true, NULL, NULL, &out, &err), 0);
    assert_string_equal(out, CHATML_SYSTEM CHATML_CONV "<|im_start|>assistant\n");
    free(out);
    char *tpl = load_template("google-gemma-2-2b-it.jinja");
    cJSON *no_sys = conversation(false);
    assert_int_equal(cairn_chat_render(tpl, no_sys, false, "<bos>", "<eos>", &out, &err), 0);
    assert_true(strncmp(out, "<bos><start_of_turn>user\nHello!", 31) == 0);
    assert_true(cairn_str_ends_with(out, "What is 2+2?<end_of_turn>\n"));
    free(out);
    assert_int_equal(cairn_chat_render(tpl, msgs, true, "<bos>", "<eos>", &out, &err), -1);
    assert_string_equal(err.msg, "System role not supported");
    assert_null(out);
    assert_int_equal(cairn_chat_render(tpl, NULL, true, "", "", &out, &err), -1);
    free(tpl);
    cJSON_Delete(msgs);
    cJSON_Delete(no_sys);
}

/* ---- Jinja features (expected values are what Python's jinja2 renders) ---- */

static void test_whitespace_control(void **state) {
    (void)state;
    /* trim_blocks drops the newline after a block tag; lstrip_blocks the indent before it. */
    expect_simple("a\n  {% if true %}\n    x\n  {% endif %}\nb\n", "a\n    x\nb");
    expect_simple("{% for i in [1,2] -%}\n  {{ i }}\n{%- endfor %}|{{- ' y ' -}}|  {#- c -#}  z",
                  "12| y |z");
    expect_simple(
        "  {{ 1 }}  {% if 1 %}A{% endif %}\n  {%+ if 1 %}B{% endif +%}\nC {# hi #}\nD\n\n",
        "  1  A  B\nC D\n");
    expect_simple("{# comment #}\nx", "x");
    expect_simple("line\r\nnext\r\n", "line\nnext");
    expect_simple("{% raw %}{{ not parsed }}{% endraw %}", "{{ not parsed }}");
}

static void test_loops(void **state) {
    (void)state;
    expect_simple("{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}"
                  "{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }};"
                  "{% endfor %}",
                  "10TrueFalse332;21FalseFalse321;32FalseTrue310;");
    expect_simple("{% for x in range(10) if x % 3 == 0 %}{{ x }}/{{ loop.length }} {% else %}none"
                  "{% endfor %}{% for x in [] %}{% else %}empty{% endfor %}",
                  "0/4 3/4 6/4 9/4 empty");
    expect_simple("{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}"
                  "{% if x > 4 %}{% break %}{% endif %}{{ x }}{% endfor %}",
                  "0134");
    expect_simple("{% for a in [[1,2],[3]] %}{% for b in a %}{{ loop.index }}{{ b }}{% endfor %}"
                  "{{ loop.index }};{% endfor %}",
                  "11221;132;");
    expect_simple("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }} {% endfor %}",
                  "a=1 b=2 ");
    expect_simple("{% for x in [1,2,3] %}{{ loop.previtem }}-{{ loop.nextitem }}/"
                  "{{ loop.cycle('o', 'e') }} {% endfor %}",
                  "-2/o 1-3/e 2-/o ");
}

static void test_set_namespace_macro(void **state) {
    (void)state;
    expect_simple("{% set ns = namespace(x=0) %}{% for i in range(3) %}{% set ns.x = ns.x + i %}"
                  "{% set y = i %}{% endfor %}{{ ns.x }}{{ y is defined }}",
                  "3False");
    expect_simple("{% set x = 1 %}{% if true %}{% set x = 2 %}{% endif %}{{ x }}"
                  "{% for i in [1] %}{% set x = 3 %}{{ x }}{% endfor %}{{ x }}",
                  "232");
    expect_simple("{% set s %}  hello {{ 1 }}\n{% endset %}[{{ s }}]"
                  "{% set t | trim | upper %}  abc  {% endset %}[{{ t }}]"
                  "{% filter upper %}xyz{% endfilter %}",
                  "[  hello 1\n][ABC]XYZ");
    expect_simple("{% macro m(a, b='B', c=none) %}[{{ a }}{{ b }}{{ c }}]{% endmacro %}"
                  "{{ m(1) }}{{ m(1, 2) }}{{ m(a=3, c=4) }}"
                  "{% macro rec(n) %}{% if n > 0 %}{{ n }}{{ rec(n - 1) }}{% endif %}{% endmacro %}"
                  "{{ rec(3) }}",
                  "[1BNone][12None][3B4]321");
    expect_simple("{% set a, b = 1, 2 %}{{ a }}{{ b }}", "12");
    /* Each loop iteration starts with a fresh scope. */
    expect_simple("{% for i in [1,2] %}{% if i == 2 %}[{{ x }}]{% endif %}{% set x = i %}"
                  "{% endfor %}",
                  "[]");
}

static void test_expressions(void **state) {
    (void)state;
    expect_simple("{{ [1,2,3,4,5][::-1] }}{{ 'h\xc3\xa9llo'[1:3] }}{{ 'abcdef'[::2] }}"
                  "{{ [1,2,3][-2:] }}{{ 'abc'[-1] }}{{ [1,2,3,4,5][4:1:-2] }}",
                  "[5, 4, 3, 2, 1]\xc3\xa9lace[2, 3]c[5, 3]");
    expect_simple("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % -3 }} {{ 7 / 2 }} {{ 2 ** 10 }} "
                  "{{ 1.5 + 1 }} {{ 'a' * 3 }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 10 / 5 }}",
                  "3 -4 -2 3.5 1024 2.5 aaa 0.30000000000000004 1e+20 2.0");
    expect_simple("{{ 1 < 2 < 3 }} {{ 'a' in 'cat' }} {{ 'x' not in ['y'] }} {{ 1 == 1.0 }} "
                  "{{ [1,[2]] == [1,[2]] }} {{ {'a':1} == {'a':1} }} {{ not 1 == 2 }}",
                  "True True True True True True True");
    expect_simple("{{ 0 or 'x' }} {{ 1 and 'y' }} {{ 'a' if false }}|{{ 'a' if 0 else 'b' }}",
                  "x y |b");
    expect_simple("{{ 'a' ~ 1 ~ none ~ true }}|{{ [1, 'a', \"it's\", none, 1.5, {'k': (1, 2)}] }}",
                  "a1NoneTrue|[1, 'a', \"it's\", None, 1.5, {'k': (1, 2)}]");
    expect_simple("{{ '\\u00e9\\x41\\t' }}|{{ 'a' 'b' }}", "\xc3\xa9"
                                                           "A\t|ab");
    expect_simple("{{ none.x is defined }}{{ x is undefined }}{{ {'a': 1}.b is defined }}",
                  "FalseTrueFalse");
}

static void test_filters_and_methods(void **state) {
    (void)state;
    expect_simple(
        "{{ ' x '|trim }}|{{ [3,1,2]|sort }}|{{ 'abc'|length }}|{{ 'h\xc3\xa9llo'|upper }}|"
        "{{ 'my title-case'|title }}|{{ [1,2,3]|join('-') }}|{{ [1,2]|first }}{{ [1,2]|last }}|"
        "{{ undefined_x|default('d') }}|{{ ''|default('e', true) }}|{{ '12'|int + 1 }}|"
        "{{ [1,1,2,'a','A']|unique|list }}|{{ 'abc'|list }}|{{ 42|string }}|"
        "{{ {'b': 1, 'a': 2}|dictsort }}|{{ {'a': 1}|items|list }}",
        "x|[1, 2, 3]|3|H\xc3\x89LLO|My Title-Case|1-2-3|12|d|e|13|[1, 2, 'a']|"
        "['a', 'b', 'c']|42|[('a', 2), ('b', 1)]|[('a', 1)]");
    expect_simple("{% set xs = [{'n':'a','t':1},{'n':'b','t':0},{'n':'c'}] %}"
                  "{{ xs|selectattr('t')|map(attribute='n')|list }}"
                  "{{ xs|rejectattr('t')|map(attribute='n')|join }}"
                  "{{ xs|selectattr('t','equalto',0)|list|length }}"
                  "{{ [1,2,3,4]|select('odd')|list }}{{ ['a','b']|map('upper')|list }}"
                  "{{ none|selectattr('x')|list }}",
                  "['a']bc1[1, 3]['A', 'B'][]");
    expect_simple("{{ '  x y  '.strip() }}|{{ 'xxhixx'.strip('x') }}|{{ 'a,b,,c'.split(',') }}|"
                  "{{ ' a  b '.split() }}|{{ 'hello world'.title() }}|{{ 'abc'.startswith('ab') }}"
                  "{{ 'abc'.endswith(('x','c')) }}|{{ 'aaa'.replace('a','b',2) }}|"
                  "{{ '\\n\\nx\\n'.lstrip('\\n') }}|{{ 'A-b'.lower() }}{{ 'a-B'.upper() }}|"
                  "{{ 'a</think>b'.split('</think>')[-1] }}",
                  "x y|hi|['a', 'b', '', 'c']|['a', 'b']|Hello World|TrueTrue|bba|x\n|a-bA-B|b");
    expect_simple(
        "{% set d = {'b': 1, 'a': 2} %}{{ d.get('a') }}{{ d.get('z') }}{{ d.get('z', 5) }}"
        "{{ d.keys()|list }}{{ d.values()|list }}{{ d['a'] }}{{ d.a }}{{ 'a' in d }}",
        "2None5['b', 'a'][1, 2]22True");
    expect_simple("{{ 'a\\nb\\n\\nc'|indent(2) }}|{{ 'x\\n'|indent(3, first=true) }}",
                  "a\n  b\n\n  c|   x\n");
    /* safe strings escape what is added to them, as Jinja's Markup does. */
    expect_simple("{{ '<a>'|safe + '<b>' }}|{{ '<a>' + '<b>' }}", "<a>&lt;b&gt;|<a><b>");
}

static void test_tojson(void **state) {
    (void)state;
    /* Python's json.dumps defaults, with ensure_ascii off as in HF's tojson. */
    expect_simple("{{ {'a': [1, 2.5, true, none, '\xc3\xa9\"\\n'], 'b': {}}|tojson }}",
                  "{\"a\": [1, 2.5, true, null, \"\xc3\xa9\\\"\\n\"], \"b\": {}}");
    expect_simple("{{ {'a': [1, {'c': []}], 'b': 'x'}|tojson(indent=2) }}",
                  "{\n  \"a\": [\n    1,\n    {\n      \"c\": []\n    }\n  ],\n  \"b\": \"x\"\n}");
    expect_simple(
        "{{ '\xc3\xa9'|tojson(ensure_ascii=True) }}|{{ {'b':1,'a':2}|tojson(sort_keys=True) }}"
        "|{{ [1,2]|tojson(separators=(',',':')) }}|{{ '</s>\\u0001'|tojson }}",
        "\"\\u00e9\"|{\"a\": 2, \"b\": 1}|[1,2]|\"</s>\\u0001\"");
    /* Numbers from the JSON context keep their form. */
    cJSON *ctx =
        cJSON_Parse("{\"v\": {\"i\": 3, \"f\": 0.25, \"big\": 1e300, \"s\": \"\\ud83d\\ude00\"}}");
    expect_render("{{ v|tojson }}", ctx,
                  "{\"i\": 3, \"f\": 0.25, \"big\": 1e+300, \"s\": \"\xf0\x9f\x98\x80\"}");
    cJSON_Delete(ctx);
}

static void test_strftime_now(void **state) {
    (void)state;
    expect_simple("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M %A') }}|"
                  "{{ strftime_now is defined }}",
                  "14 Mar 2025|2025-03-14 00:00 Friday|True");
}

/* ---- errors ---- */

static void test_errors_name_construct_and_line(void **state) {
    (void)state;
    expect_error("{{ raise_exception('Only user and assistant roles are supported!') }}", NULL,
                 "Only user and assistant roles are supported!", NULL);
    expect_error("x\n{{ y | nosuchfilter }}", NULL, "line 2", "unknown filter 'nosuchfilter'");
    expect_error("\n\n{{ 1 is nosuchtest }}", NULL, "line 3", "unknown test 'nosuchtest'");
    expect_error("{{ 'a'.nosuchmethod() }}", NULL, "line 1", "unknown method 'nosuchmethod'");
    expect_error("a\n\n{% frobnicate %}", NULL, "line 3", "unknown tag 'frobnicate'");
    expect_error("a\n{% if x %}\nb", NULL, "line 2", "unclosed '{% if %}'");
    expect_error("a\n{% for x in y %}{% endif %}", NULL, "line 2", "'{% endif %}'");
    expect_error("a\n{{ x \nb", NULL, "line 2", "unclosed '{{'");
    expect_error("\n{# never closed", NULL, "line 2", "unclosed comment");
    expect_error("x\n\n{{ 1 + }}", NULL, "line 3", "expected an expression");
    expect_error("{{ \"abc }}", NULL, "line 1", "unterminated string");
    expect_error("{{ (1 }}", NULL, "line 1", "unexpected '}' (expected ')')");
    expect_error("{{ [1, 2) }}", NULL, "line 1", "unexpected ')' (expected ']')");
    expect_error("{% endfor %}", NULL, "line 1", "unexpected '{% endfor %}'");
    expect_error("\n{% break %}", NULL, "line 2", "'break' outside a for loop");
    expect_error("{{ x.y }}", NULL, "line 1", "'x' is undefined");
    expect_error("{{ 'a' + 1 }}", NULL, "line 1", "unsupported operand types for +");
    expect_error("{% for x in y recursive %}{% endfor %}", NULL, "line 1", "recursive");
    expect_error("{{ 'a %s' % 1 }}", NULL, "line 1", "string formatting");
    expect_error("{% set x.y = 1 %}", NULL, "line 1", "'x' is undefined");
    expect_error("{% set d = {} %}{% set d.y = 1 %}", NULL, "line 1", "not a namespace");
}

/* ---- limits against hostile templates ---- */

static void test_limits(void **state) {
    (void)state;
    expect_error("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", NULL, "nested deeper", NULL);
    expect_error("{% for i in range(1001) %}{% for j in range(1001) %}{% endfor %}{% endfor %}",
                 NULL, "loop iterations", NULL);
    expect_error("{{ range(100000000)|length }}", NULL, "range of more than", NULL);
    expect_error("{% for i in range(20000) %}{{ 'x' * 1000 }}{% endfor %}", NULL, "output exceeds",
                 NULL);
    expect_error("{{ 'x' * 1000000000 }}", NULL, "repetition too large", NULL);
    expect_error("{% set ns = namespace(s='x') %}{% for i in range(40) %}"
                 "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                 NULL, "longer than", NULL);
    expect_error("{% set a = [] %}{% set _ = a.append(a) %}{{ a }}", NULL, "nested deeper", NULL);
    expect_error("{% set a = [] %}{% set _ = a.append(a) %}{{ a|tojson }}", NULL, "nested deeper",
                 NULL);
    expect_error("{{ 9223372036854775807 + 1 }}", NULL, "integer overflow", NULL);
    char *deep = malloc(20000);
    assert_non_null(deep);
    size_t k = 0;
    memcpy(deep, "{{ ", 3);
    k += 3;
    memset(deep + k, '(', 5000);
    k += 5000;
    deep[k++] = '1';
    memset(deep + k, ')', 5000);
    k += 5000;
    memcpy(deep + k, " }}", 4);
    expect_error(deep, NULL, "nested deeper", NULL);
    for (int i = 0; i < 1000; i++)
        memcpy(deep + (size_t)i * 10, "{% if 1 %}", 10);
    deep[10000] = '\0';
    expect_error(deep, NULL, "nested deeper", NULL);
    free(deep);
}

/* ---- every shared template: renders, or fails with a clear error; never crashes ---- */

static const char *const all_templates[] = {
    "Apertus-8B-Instruct.jinja",
    "Apriel-1.6-15b-Thinker-fixed.jinja",
    "Bielik-11B-v3.0-Instruct.jinja",
    "ByteDance-Seed-OSS.jinja",
    "CohereForAI-c4ai-command-r-plus-tool_use.jinja",
    "CohereForAI-c4ai-command-r7b-12-2024-tool_use.jinja",
    "GLM-4.6.jinja",
    "GLM-4.7-Flash.jinja",
    "GigaChat3-10B-A1.8B.jinja",
    "GigaChat3.1-10B-A1.8B.jinja",
    "HuggingFaceTB-SmolLM3-3B.jinja",
    "Kimi-K2-Instruct.jinja",
    "Kimi-K2-Thinking.jinja",
    "LFM2-8B-A1B.jinja",
    "LFM2.5-8B-A1B.jinja",
    "LFM2.5-Instruct.jinja",
    "MiMo-VL.jinja",
    "MiniMax-M2.jinja",
    "Mistral-Small-3.2-24B-Instruct-2506.jinja",
    "NVIDIA-Nemotron-3-Nano-30B-A3B-BF16.jinja",
    "NVIDIA-Nemotron-Nano-v2.jinja",
    "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja",
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja",
    "Qwen-QwQ-32B.jinja",
    "Qwen-Qwen2.5-7B-Instruct.jinja",
    "Qwen-Qwen3-0.6B.jinja",
    "Qwen3-Coder.jinja",
    "Qwen3.5-4B.jinja",
    "Reka-Edge.jinja",
    "StepFun3.5-Flash.jinja",
    "chatml.jinja",
    "deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja",
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja",
    "deepseek-ai-DeepSeek-V3.1.jinja",
    "deepseek-ai-DeepSeek-V3.2.jinja",
    "fireworks-ai-llama-3-firefunction-v2.jinja",
    "google-gemma-2-2b-it.jinja",
    "google-gemma-4-31B-it-interleaved.jinja",
    "google-gemma-4-31B-it.jinja",
    "ibm-granite-granite-3.3-2B-Instruct.jinja",
    "ibm-granite-granite-4.0.jinja",
    "ibm-granite-granite-4.1.jinja",
    "llama-cpp-deepseek-r1.jinja",
    "llama-cpp-rwkv-world.jinja",
    "meetkai-functionary-medium-v3.1.jinja",
    "meetkai-functionary-medium-v3.2.jinja",
    "meta-llama-Llama-3.1-8B-Instruct.jinja",
    "meta-llama-Llama-3.2-3B-Instruct.jinja",
    "meta-llama-Llama-3.3-70B-Instruct.jinja",
    "microsoft-Phi-3.5-mini-instruct.jinja",
    "mistralai-Ministral-3-14B-Reasoning-2512.jinja",
    "mistralai-Mistral-Nemo-Instruct-2407.jinja",
    "moonshotai-Kimi-K2.jinja",
    "openai-gpt-oss-120b.jinja",
    "stepfun-ai-Step-3.5-Flash.jinja",
    "unsloth-Apriel-1.5.jinja",
    "unsloth-mistral-Devstral-Small-2507.jinja",
    "upstage-Solar-Open-100B.jinja",
};

/* Templates whose own logic rejects the plain system+user+assistant+user conversation. */
static bool rejects_plain_conversation(const char *name) {
    return !strcmp(name, "google-gemma-2-2b-it.jinja") || /* "System role not supported" */
           !strcmp(name, "fireworks-ai-llama-3-firefunction-v2.jinja"); /* needs `functions` */
}

static cJSON *tool_conversation(void) {
    return cJSON_Parse(
        "[{\"role\": \"system\", \"content\": \"Be brief.\"},"
        " {\"role\": \"user\", \"content\": \"Weather in Paris?\"},"
        " {\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"id\": \"call12345\","
        "   \"type\": \"function\", \"function\": {\"name\": \"get_weather\","
        "   \"arguments\": {\"city\": \"Paris\"}}}]},"
        " {\"role\": \"tool\", \"tool_call_id\": \"call12345\", \"name\": \"get_weather\","
        "  \"content\": \"{\\\"temp\\\": 21}\"},"
        " {\"role\": \"assistant\", \"content\": \"It is 21 degrees.\"},"
        " {\"role\": \"user\", \"content\": \"Thanks\"}]");
}

static void test_all_shared_templates(void **state) {
    (void)state;
    int rendered = 0;
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(all_templates); i++) {
        const char *name = all_templates[i];
        char *tpl = load_template(name);
        for (int variant = 0; variant < 4; variant++) {
            cJSON *ctx;
            if (variant == 3) {
                ctx = chat_context(tool_conversation(), "<s>", "</s>");
                cJSON_AddItemToObject(
                    ctx, "tools",
                    cJSON_Parse(
                        "[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\","
                        " \"description\": \"Get the weather\", \"parameters\": {\"type\": "
                        "\"object\","
                        " \"properties\": {\"city\": {\"type\": \"string\"}}}}}]"));
            } else {
                ctx = chat_context(conversation(variant != 1), "<s>", "</s>");
                if (variant == 2)
                    cJSON_AddBoolToObject(ctx, "enable_thinking", false);
            }
            char *out = NULL;
            cairn_err err = {{0}};
            int rc = cairn_jinja_render(tpl, ctx, &out, &err);
            if (rc == 0) {
                assert_non_null(out);
                rendered++;
            } else {
                assert_int_equal(rc, -1);
                assert_null(out);
                assert_true(err.msg[0] != '\0');
                print_message("  %-52s variant %d: %s\n", name, variant, err.msg);
            }
            if (variant == 0 && !rejects_plain_conversation(name)) {
                if (rc != 0)
                    print_error("%s failed on the plain conversation: %s\n", name, err.msg);
                assert_int_equal(rc, 0);
                assert_non_null(out);
                /* Every template shows the last user message somewhere. */
                assert_non_null(strstr(out, "What is 2+2?"));
            }
            free(out);
            cJSON_Delete(ctx);
        }
        free(tpl);
    }
    print_message("  %d of %zu template renders succeeded\n", rendered,
                  4 * CAIRN_ARRAY_LEN(all_templates));
}

/* ---- mutated templates: the fuzz target's contract, on a deterministic run ---- */

#define MUTATION_RUNS 20000
#define MAX_MUTANT (64 * 1024)

static const char *const corpus_seeds[] = {
    "seed-00-chatml.jinja", "seed-01-tools.jinja",   "seed-02-namespace.jinja",
    "seed-03-macro.jinja",  "seed-04-filters.jinja", "seed-05-blocks.jinja",
    "seed-06-values.jinja",
};

/* Pieces of template syntax a mutation inserts, so mutants reach past the lexer. */
static const char *const jinja_pieces[] = {
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "#}",
    "{%-",
    "-%}",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "'",
    "\"",
    "|",
    ".",
    ",",
    ":",
    "~",
    "*",
    "**",
    "+",
    "-",
    "//",
    "%",
    " if ",
    " else ",
    " in ",
    " is ",
    " not ",
    " and ",
    " or ",
    "{% endfor %}",
    "{% endif %}",
    "{% for x in messages %}",
    "{% if messages %}",
    "{% set x = ",
    "{% macro m(a) %}",
    "{% endmacro %}",
    "m(x)",
    "loop.",
    "range(",
    "10**9",
    "'a' * 1000",
    "|tojson",
    "|join",
    "|length",
    "namespace(",
    "[::-1]",
    "messages",
    "tools",
    "\\u00e9",
    "\\x",
    "-1",
    "1e308",
    "9223372036854775807",
    "none",
};

typedef struct prng {
    uint64_t s;
} prng;

static size_t rnd_below(prng *r, size_t n) {
    r->s = r->s * 6364136223846793005ull + 1442695040888963407ull;
    return n ? (size_t)(r->s >> 33) % n : 0;
}

static void insert_bytes(char *buf, size_t *len, size_t at, const char *s, size_t k) {
    if (*len + k > MAX_MUTANT)
        return;
    memmove(buf + at + k, buf + at, *len - at);
    memcpy(buf + at, s, k);
    *len += k;
}

static void mutate_template(prng *r, char *buf, size_t *len) {
    size_t n = *len, at = rnd_below(r, n + 1);
    switch (rnd_below(r, 6)) {
    case 0: /* replace a byte */
        if (n)
            buf[rnd_below(r, n)] = (char)(1 + rnd_below(r, 255));
        break;
    case 1: /* delete a range */
        if (at < n) {
            size_t k = 1 + rnd_below(r, n - at < 64 ? n - at : 64);
            memmove(buf + at, buf + at + k, n - at - k);
            *len = n - k;
        }
        break;
    case 2: { /* duplicate a range elsewhere */
        if (at < n) {
            char tmp[256];
            size_t k = 1 + rnd_below(r, n - at < sizeof tmp ? n - at : sizeof tmp);
            memcpy(tmp, buf + at, k);
            insert_bytes(buf, len, rnd_below(r, n + 1), tmp, k);
        }
        break;
    }
    case 3: /* truncate */ *len = at; break;
    default: { /* insert template syntax */
        const char *p = jinja_pieces[rnd_below(r, CAIRN_ARRAY_LEN(jinja_pieces))];
        insert_bytes(buf, len, at, p, strlen(p));
    }
    }
}

static void test_mutated_templates(void **state) {
    (void)state;
    enum {
        N_CORPUS = CAIRN_ARRAY_LEN(corpus_seeds),
        N_SEEDS = N_CORPUS + CAIRN_ARRAY_LEN(all_templates)
    };
    char *seeds[N_SEEDS];
    for (size_t i = 0; i < N_SEEDS; i++) {
        char path[512];
        if (i < N_CORPUS)
            snprintf(path, sizeof path, "%s%s", JINJA_CORPUS, corpus_seeds[i]);
        else
            snprintf(path, sizeof path, "%s%s", TEMPLATES, all_templates[i - N_CORPUS]);
        cairn_err err = {{0}};
        seeds[i] = cairn_read_file(path, NULL, &err);
        if (!seeds[i])
            fail_msg("%s", err.msg);
        assert_true(strlen(seeds[i]) <= MAX_MUTANT);
    }
    cJSON *context = jinja_fuzz_context();
    assert_non_null(context);
    static char buf[MAX_MUTANT];
    prng r = {0x9E3779B97F4A7C15ull};
    for (int run = 0; run < MUTATION_RUNS; run++) {
        const char *seed = seeds[rnd_below(&r, N_SEEDS)];
        size_t len = strlen(seed);
        memcpy(buf, seed, len);
        size_t n_mutations = 1 + rnd_below(&r, 8);
        for (size_t m = 0; m < n_mutations; m++)
            mutate_template(&r, buf, &len);
        cairn_err why = {{0}};
        if (jinja_fuzz_one((const uint8_t *)buf, len, context, &why) != 0)
            fail_msg("mutation run %d (%zu bytes): %s", run, len, why.msg);
    }
    cJSON_Delete(context);
    for (size_t i = 0; i < N_SEEDS; i++)
        free(seeds[i]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chatml),
        cmocka_unit_test(test_qwen25),
        cmocka_unit_test(test_smollm3),
        cmocka_unit_test(test_llama2),
        cmocka_unit_test(test_llama31_and_33),
        cmocka_unit_test(test_llama32_date),
        cmocka_unit_test(test_mistral),
        cmocka_unit_test(test_phi35),
        cmocka_unit_test(test_gemma2),
        cmocka_unit_test(test_qwen3_thinking),
        cmocka_unit_test(test_qwen3_tools),
        cmocka_unit_test(test_chat_render_and_default),
        cmocka_unit_test(test_whitespace_control),
        cmocka_unit_test(test_loops),
        cmocka_unit_test(test_set_namespace_macro),
        cmocka_unit_test(test_expressions),
        cmocka_unit_test(test_filters_and_methods),
        cmocka_unit_test(test_tojson),
        cmocka_unit_test(test_strftime_now),
        cmocka_unit_test(test_errors_name_construct_and_line),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_all_shared_templates),
        cmocka_unit_test(test_mutated_templates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
