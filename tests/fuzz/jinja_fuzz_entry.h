/* One fuzz input through the chat module's Jinja interpreter, shared by the libFuzzer target
 * (fuzz_jinja.c) and the deterministic mutation run in test_chat.c.
 *
 * The input is a template's source (chat templates come from downloaded GGUF files, so every
 * byte is untrusted). It is rendered with a fixed context that has what real templates look
 * at: a conversation with a system prompt, tool calls and a tool answer, a tool list, the
 * special tokens and a fixed clock. Template errors are expected; what must hold is the
 * render API's contract: success gives a string within the output limit, failure gives no
 * string and a message. Memory errors and leaks are the sanitizers' to catch, and an
 * unbounded render shows up as a fuzzer timeout. */
#ifndef CAIRN_JINJA_FUZZ_ENTRY_H
#define CAIRN_JINJA_FUZZ_ENTRY_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"
#include "chat/jinja_internal.h"

static inline cJSON *jinja_fuzz_context(void) {
    return cJSON_Parse(
        "{\"messages\": ["
        " {\"role\": \"system\", \"content\": \"Be brief.\"},"
        " {\"role\": \"user\", \"content\": \"Weather in Paris?\"},"
        " {\"role\": \"assistant\", \"content\": \"\", \"reasoning_content\": \"Look it up.\","
        "  \"tool_calls\": [{\"id\": \"call12345\", \"type\": \"function\", \"function\":"
        "   {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}}]},"
        " {\"role\": \"tool\", \"tool_call_id\": \"call12345\", \"name\": \"get_weather\","
        "  \"content\": \"{\\\"temp\\\": 21}\"},"
        " {\"role\": \"assistant\", \"content\": \"It is 21 degrees.\"},"
        " {\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"Thanks\"}]}],"
        " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"get_weather\","
        "  \"description\": \"Get the weather\", \"parameters\": {\"type\": \"object\","
        "  \"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}}}],"
        " \"add_generation_prompt\": true, \"enable_thinking\": false,"
        " \"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"cairn_now\": 1741910400}");
}

/* Renders data as a template with context; returns 0, or -1 with why set when the render API
 * broke its contract. */
static inline int jinja_fuzz_one(const uint8_t *data, size_t size, const cJSON *context,
                                 cairn_err *why) {
    char *src = malloc(size + 1);
    if (!src) {
        return cairn_fail(why, "out of memory");
    }
    if (size) {
        memcpy(src, data, size);
    }
    src[size] = '\0';
    char *out = (char *)"unset";
    cairn_err err = {{0}};
    int rc = cairn_jinja_render(src, context, &out, &err);
    int broken = 0;
    if (rc == 0) {
        if (!out) {
            broken = cairn_fail(why, "render succeeded without an output");
        } else if (strlen(out) > JINJA_MAX_OUTPUT) {
            broken = cairn_fail(why, "render gave %zu bytes, more than its limit", strlen(out));
        }
    } else if (rc != -1 || out != NULL || err.msg[0] == '\0') {
        broken = cairn_fail(why, "render failed with rc %d, %s output, message \"%s\"", rc,
                            out ? "an" : "no", err.msg);
    }
    if (rc == 0 || rc == -1) {
        free(out);
    }
    free(src);
    return broken;
}

#endif
