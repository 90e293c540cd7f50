/*
 * tokenizer: text <-> token ids, driven entirely by a GGUF file's tokenizer.* metadata.
 * Supports SentencePiece-style vocabularies (tokenizer.ggml.model = "llama") and byte-level
 * BPE ("gpt2") with the pre-tokenizer chosen by tokenizer.ggml.pre, and reproduces
 * llama.cpp's tokenization of both, including special-token parsing and BOS/EOS rules.
 *
 * Owns a private copy of the vocabulary, merges and compiled regexes (the gguf_context may
 * be freed after loading). Must never trust the metadata: every array type, length and token
 * id is checked, and a defect becomes one clear error, never an abort. Must never print.
 * A loaded tokenizer is immutable, so one instance may be used from several threads.
 */
#ifndef CAIRN_TOKENIZER_H
#define CAIRN_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

struct gguf_context;

typedef struct cairn_tokenizer cairn_tokenizer;

/* Builds a tokenizer from the metadata of an open GGUF file. Unknown tokenizer.ggml.pre
 * values (and a missing one) use llama.cpp's "default" BPE pre-tokenizer regexes. */
int cairn_tokenizer_from_gguf(const struct gguf_context *g, cairn_tokenizer **out, cairn_err *err);
/* Reads only the metadata of a GGUF file (no tensor data) and builds its tokenizer. */
int cairn_tokenizer_load_file(const char *gguf_path, cairn_tokenizer **out, cairn_err *err);
void cairn_tokenizer_free(cairn_tokenizer *t);

/* Tokenizes text[0..len). add_special adds BOS/EOS as the model's metadata says;
 * parse_special turns text spelling a control token (e.g. "<s>") into that token, while
 * user-defined tokens are always recognised, as in llama.cpp. On success *ids (caller frees,
 * non-NULL even when *n_ids is 0) holds the ids. */
int cairn_tokenize(const cairn_tokenizer *t, const char *text, size_t len, bool add_special,
                   bool parse_special, int32_t **ids, size_t *n_ids, cairn_err *err);

/* The bytes one token stands for: byte tokens give their raw byte, SentencePiece "▁" becomes
 * a space, byte-level BPE text is mapped back to bytes. Control and unknown tokens give
 * nothing unless render_special. Returns the length written to buf, -(needed length) if cap
 * is too small, or 0 for an id outside the vocabulary. buf is not NUL-terminated. */
int cairn_token_to_piece(const cairn_tokenizer *t, int32_t id, bool render_special, char *buf,
                         size_t cap);

/* Concatenates the pieces of ids into a NUL-terminated string (caller frees). Like llama.cpp,
 * a vocabulary that adds a space prefix has one leading space of the first token removed.
 * Unlike llama.cpp, no "clean up tokenization spaces" pass is applied, so that the result
 * always equals the concatenated streaming output. */
int cairn_detokenize(const cairn_tokenizer *t, const int32_t *ids, size_t n, bool render_special,
                     char **text, cairn_err *err);

int cairn_tokenizer_n_vocab(const cairn_tokenizer *t);
int32_t cairn_tokenizer_bos(const cairn_tokenizer *t); /* -1 if none */
int32_t cairn_tokenizer_eos(const cairn_tokenizer *t); /* -1 if none */
/* End of generation: eos, eot, eom and the end-of-turn tokens llama.cpp recognises by text. */
bool cairn_tokenizer_is_eog(const cairn_tokenizer *t, int32_t id);
bool cairn_tokenizer_is_control(const cairn_tokenizer *t, int32_t id);
/* The raw vocabulary string of a token (e.g. "▁the", "<0x0A>"), or NULL if out of range. */
const char *cairn_tokenizer_token_text(const cairn_tokenizer *t, int32_t id);
/* Whether tokenizing with add_special prepends BOS / appends EOS. */
bool cairn_tokenizer_add_bos(const cairn_tokenizer *t);
bool cairn_tokenizer_add_eos(const cairn_tokenizer *t);
/* The id of a token whose vocabulary string is exactly text, or -1. */
int32_t cairn_tokenizer_find(const cairn_tokenizer *t, const char *text, size_t len);

/* Streaming detokenizer: tokens go in one at a time, and only complete UTF-8 comes out, so a
 * character split across byte tokens is held back until its last byte arrives. The first
 * token gets the same leading-space removal as cairn_detokenize; a caller continuing text
 * that already has output can set strip_leading_space = false after init. */
typedef struct cairn_detok_stream {
    const cairn_tokenizer *tok;
    bool render_special;
    bool strip_leading_space; /* applies to the next token only */
    cairn_buf pending;        /* bytes of an unfinished UTF-8 character */
} cairn_detok_stream;

void cairn_detok_stream_init(cairn_detok_stream *s, const cairn_tokenizer *t, bool render_special);
/* Appends the text that became complete with token id to out. */
int cairn_detok_stream_push(cairn_detok_stream *s, int32_t id, cairn_buf *out, cairn_err *err);
/* Appends any held bytes to out, each invalid byte as U+FFFD. Returns 0, or -1 on no memory. */
int cairn_detok_stream_flush(cairn_detok_stream *s, cairn_buf *out);
void cairn_detok_stream_free(cairn_detok_stream *s);

#endif
