/*
 * Private to src/tokenizer: the tokenizer's data layout and the functions its source files
 * share. Nothing outside this directory may include it.
 */
#ifndef CAIRN_TOKENIZER_INTERNAL_H
#define CAIRN_TOKENIZER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer/tokenizer.h"

/* Token attributes, as llama.cpp derives them from tokenizer.ggml.token_type. */
enum {
    TOK_ATTR_UNDEFINED = 0,
    TOK_ATTR_UNKNOWN = 1 << 0,
    TOK_ATTR_UNUSED = 1 << 1,
    TOK_ATTR_NORMAL = 1 << 2,
    TOK_ATTR_CONTROL = 1 << 3,
    TOK_ATTR_USER_DEFINED = 1 << 4,
    TOK_ATTR_BYTE = 1 << 5,
    TOK_ATTR_LSTRIP = 1 << 7,
    TOK_ATTR_RSTRIP = 1 << 8,
    TOK_ATTR_EOG = 1 << 16, /* cairn's own: ends generation */
};

typedef enum tok_kind {
    TOK_KIND_SPM, /* SentencePiece: score-driven merges with byte fallback */
    TOK_KIND_BPE, /* byte-level BPE: regex pre-split, then ranked merges */
} tok_kind;

/* A string stored in an arena, by offset so the arena may grow while it is built. */
typedef struct tok_span {
    uint32_t off;
    uint32_t len;
} tok_span;

/* Open-addressing hash set of strings that live in an arena; maps a string to the index of
 * its span in keys[]. */
typedef struct tok_strtab {
    int32_t *slots; /* -1 = empty */
    size_t mask;
} tok_strtab;

/* Pre-tokenizer: a list of regexes, each splitting the pieces the previous one produced. */
typedef struct tok_pretok {
    int n_regex;
    pcre2_code *regex[6];
} tok_pretok;

struct cairn_tokenizer {
    tok_kind kind;
    int n_vocab;
    char *arena; /* token texts and merges, each NUL-terminated */
    size_t arena_len;
    tok_span *text;  /* [n_vocab] raw vocabulary strings */
    float *score;    /* [n_vocab] */
    uint32_t *attr;  /* [n_vocab] TOK_ATTR_* */
    tok_span *piece; /* [n_vocab] rendered bytes (in pieces), as if render_special */
    char *pieces;
    tok_strtab by_text;

    int n_merges;
    tok_span *merge; /* [n_merges] "left right" strings; index = rank */
    tok_strtab by_merge;

    int32_t *special; /* control/user-defined/unknown ids, longest text first */
    int n_special;

    int32_t bos, eos, eot, eom, unk, pad, sep;
    bool add_bos, add_eos, add_space_prefix;
    bool ignore_merges; /* BPE: a pre-split word that is a whole token skips merging */
    tok_pretok pretok;
    char pre_name[32];
};

/* ---- strtab.c ---- */
uint32_t tok_hash(const char *a, size_t alen, char sep, const char *b, size_t blen);
int tok_strtab_init(tok_strtab *tab, size_t n_keys, cairn_err *err);
void tok_strtab_free(tok_strtab *tab);
/* Inserts key index idx; returns the index already holding an equal key, or -1 if none
 * (then idx was inserted). */
int32_t tok_strtab_insert(tok_strtab *tab, const char *arena, const tok_span *keys, int32_t idx);
/* Finds the key equal to a (+ sep + b when b is not NULL); -1 if absent. */
int32_t tok_strtab_find(const tok_strtab *tab, const char *arena, const tok_span *keys,
                        const char *a, size_t alen, char sep, const char *b, size_t blen);

static inline const char *tok_text(const cairn_tokenizer *t, int32_t id) {
    return t->arena + t->text[id].off;
}

static inline int32_t tok_lookup(const cairn_tokenizer *t, const char *s, size_t len) {
    return tok_strtab_find(&t->by_text, t->arena, t->text, s, len, 0, NULL, 0);
}

/* ---- bpe.c ---- */
/* Chooses and compiles the pre-tokenizer for tokenizer.ggml.pre (NULL = missing). */
int tok_pretok_init(cairn_tokenizer *t, const char *pre, cairn_err *err);
void tok_pretok_free(tok_pretok *p);
/* Appends the ids of one raw-text fragment. */
int tok_bpe_encode(const cairn_tokenizer *t, const char *text, size_t len, cairn_buf *ids,
                   cairn_err *err);
/* The GPT-2 byte <-> code point mapping that keeps every byte printable in BPE vocabularies. */
uint32_t tok_byte_to_cp(uint8_t byte);
int tok_cp_to_byte(uint32_t cp); /* -1 if cp is not the image of a byte */

/* ---- spm.c ---- */
/* Appends the ids of one raw-text fragment, with a leading space first if space_prefix. */
int tok_spm_encode(const cairn_tokenizer *t, const char *text, size_t len, bool space_prefix,
                   cairn_buf *ids, cairn_err *err);

/* ---- decode.c ---- */
/* Renders every token's piece (as with render_special) into t->piece / t->pieces. */
int tok_build_pieces(cairn_tokenizer *t, cairn_err *err);

/* ---- shared helpers ---- */
/* Pushes one id onto a cairn_buf used as an int32_t array. */
int tok_push_id(cairn_buf *ids, int32_t id, cairn_err *err);

/* Bigram heap shared by SPM and BPE: the smallest key wins, ties go to the leftmost pair. */
typedef struct tok_bigram {
    double key;
    int left, right;
    size_t size;
} tok_bigram;

typedef struct tok_heap {
    tok_bigram *v;
    size_t n, cap;
} tok_heap;

int tok_heap_push(tok_heap *h, tok_bigram b);
tok_bigram tok_heap_pop(tok_heap *h);
void tok_heap_free(tok_heap *h);

/* A symbol of the merge algorithms: a byte span of the text in a doubly-linked list. */
typedef struct tok_symbol {
    int prev, next;
    const char *text;
    size_t n;
} tok_symbol;

/* Pushes the bigram of symbols left and right onto the heap if the vocabulary can merge it
 * (with its rank or score as the key); either index may be -1 (no neighbour). */
typedef int (*tok_bigram_fn)(void *ctx, int left, int right);

/* The merge loop SentencePiece and BPE share: seeds the heap with every adjacent pair,
 * then repeatedly merges the best pair still current, offering the new neighbours. Only
 * how a bigram is found and ranked (add) differs between the two. */
int tok_merge_symbols(tok_symbol *sym, size_t n, tok_heap *heap, tok_bigram_fn add, void *ctx);

#endif
