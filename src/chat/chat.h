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

#endif
