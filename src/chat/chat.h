/*
 * chat: turns a conversation into the prompt text a model expects, by rendering the model's
 * own chat template (the Jinja source in its GGUF metadata, `tokenizer.chat_template`) with
 * a small Jinja interpreter that follows Hugging Face's apply_chat_template environment:
 * trim_blocks and lstrip_blocks on, loop controls (break/continue), tojson as Python's
 * json.dumps with ensure_ascii off, raise_exception() and strftime_now().
 *
 * Owns nothing beyond one render. Must never run a template unbounded (output size, loop
 * iterations, call depth and memory are all capped) and never guess: a construct it does not
 * support fails with an error naming it and its line, instead of rendering something else.
 */
#ifndef CAIRN_CHAT_H
#define CAIRN_CHAT_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "tokenizer/tokenizer.h"
#include "util/util.h"

/* Renders a Jinja template with the given context (a JSON object, or NULL for none). On
 * success *out is a NUL-terminated string the caller frees, and 0 is returned; on failure
 * -1 with err set: "template line N: ..." for template errors, or the template's own message
 * verbatim when it calls raise_exception(). strftime_now() formats the UTC time given by the
 * context number "cairn_now" (Unix seconds), or the current time when that is absent. */
int cairn_jinja_render(const char *template_src, const cJSON *context, char **out, cairn_err *err);

/* Renders a chat: messages is a JSON array of {role, content}; the context also gets
 * add_generation_prompt, bos_token and eos_token (NULL gives ""). Templates that need more
 * (tools, enable_thinking, ...) are rendered with cairn_jinja_render. */
int cairn_chat_render(const char *template_src, const cJSON *messages, bool add_generation_prompt,
                      const char *bos_token, const char *eos_token, char **out, cairn_err *err);

/* The template for models that ship none: ChatML ("<|im_start|>role\ncontent<|im_end|>\n"
 * per message, then "<|im_start|>assistant\n" for the generation prompt), the most widely
 * used format and the one llama.cpp also falls back to. */
const char *cairn_chat_default_template(void);

/* The chat template in a GGUF file's metadata, or a copy of the default one when it has
 * none; the caller frees *out. */
int cairn_chat_template_load(const char *gguf_path, char **out, cairn_err *err);

/* The prompt tokens of a conversation: rendered with the generation prompt, then
 * tokenized with special tokens parsed. BOS is added only when the template did not write
 * it itself. The caller frees *ids. */
int cairn_chat_tokenize(const char *template_src, const cJSON *messages, const cairn_tokenizer *tok,
                        int32_t **ids, size_t *n, cairn_err *err);

/* ---- the model's answer: reasoning, content and tool calls (toolcall.c) ---- */

/* How a family writes tool calls in its answers (each family's template shows it). */
typedef enum cairn_tool_syntax {
    CAIRN_TOOLS_NONE,     /* no tool calls: content only */
    CAIRN_TOOLS_HERMES,   /* Qwen, Hermes: <tool_call>{"name","arguments"}</tool_call> */
    CAIRN_TOOLS_LLAMA3,   /* Llama 3.x: {"name","parameters"}, alone or after <|python_tag|> */
    CAIRN_TOOLS_MISTRAL,  /* [TOOL_CALLS][{"name","arguments"}...] or [TOOL_CALLS]name[ARGS]{} */
    CAIRN_TOOLS_GPT_OSS,  /* harmony channels: analysis, commentary to=functions.NAME, final */
    CAIRN_TOOLS_DEEPSEEK, /* <｜tool▁calls▁begin｜>... (V3/R1 and the V3.1 form) */
    CAIRN_TOOLS_GLM,      /* GLM-4.5+: <tool_call>NAME<arg_key>k</arg_key><arg_value>v... */
} cairn_tool_syntax;

typedef struct cairn_chat_format {
    cairn_tool_syntax tools;
    bool parse_tools;         /* false: calls stay content (tool_choice "none") */
    bool reasoning;           /* <think>...</think> ([THINK] for Mistral) is reasoning */
    bool starts_in_reasoning; /* the prompt opened the reasoning block */
} cairn_chat_format;

/* The format of a template's answers; prompt (the rendered prompt, or NULL) tells whether
 * the answer starts inside a reasoning block the prompt opened. */
cairn_chat_format cairn_chat_format_detect(const char *template_src, const char *prompt);
/* Whether the syntax's markers are special tokens, which the detokenizer must then show. */
bool cairn_tool_syntax_needs_special(cairn_tool_syntax s);
const char *cairn_tool_syntax_name(cairn_tool_syntax s);
/* -1 for a name that is none of cairn_tool_syntax_name's. */
int cairn_tool_syntax_from_name(const char *name, cairn_tool_syntax *out);

typedef enum cairn_chat_event_kind {
    CAIRN_CHAT_CONTENT,    /* text: answer text */
    CAIRN_CHAT_REASONING,  /* text: reasoning text */
    CAIRN_CHAT_TOOL_START, /* index, id, name */
    CAIRN_CHAT_TOOL_ARGS,  /* index, text: a fragment of the arguments' JSON */
    CAIRN_CHAT_TOOL_END,   /* index */
} cairn_chat_event_kind;

typedef struct cairn_chat_event {
    cairn_chat_event_kind kind;
    const char *text; /* len bytes of whole UTF-8 characters, not NUL-terminated */
    size_t len;
    int index;             /* the call's, from 0 */
    const char *id, *name; /* TOOL_START */
} cairn_chat_event;

/* A non-zero return stops the parser: feed and finish return it. */
typedef int (*cairn_chat_event_fn)(void *user, const cairn_chat_event *e);

/* An incremental parser of one answer: fed its text in pieces split anywhere (inside a
 * marker or a character), it reports events in order, the same whatever the split. Text
 * that may still begin a marker is held back until it is decided; finish flushes it. A
 * call that does not parse (bad JSON, never closed) comes back as content. Call ids are
 * id_prefix followed by the call's index. */
typedef struct cairn_chat_parser cairn_chat_parser;
cairn_chat_parser *cairn_chat_parser_new(const cairn_chat_format *format, const char *id_prefix,
                                         cairn_chat_event_fn on_event, void *user);
/* 0, the callback's non-zero, or -1 with err (out of memory). */
int cairn_chat_parser_feed(cairn_chat_parser *p, const char *text, size_t len, cairn_err *err);
int cairn_chat_parser_finish(cairn_chat_parser *p, cairn_err *err);
void cairn_chat_parser_free(cairn_chat_parser *p);

#endif
