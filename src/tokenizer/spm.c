/* tokenizer: SentencePiece (llama.cpp's "SPM" algorithm). The text starts as one symbol per
 * UTF-8 character; the adjacent pair whose concatenation is the highest-scoring vocabulary
 * token is merged until no pair is a token; symbols that are not tokens fall back to
 * "<0xAB>" byte tokens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

typedef struct spm_state {
    const cairn_tokenizer *t;
    tok_symbol *sym;
    size_t n;
    tok_heap heap;
} spm_state;

static int try_bigram(spm_state *s, int left, int right) {
    if (left < 0 || right < 0) {
        return 0;
    }
    /* Symbols are adjacent spans of the text, so their concatenation is one span. */
    size_t size = s->sym[left].n + s->sym[right].n;
    int32_t id = tok_lookup(s->t, s->sym[left].text, size);
    if (id < 0) {
        return 0;
    }
    tok_bigram b = {-(double)s->t->score[id], left, right, size};
    return tok_heap_push(&s->heap, b);
}

static int offer_bigram(void *ctx, int left, int right) {
    return try_bigram(ctx, left, right);
}

static int merge_all(spm_state *s) {
    return tok_merge_symbols(s->sym, s->n, &s->heap, offer_bigram, s);
}

static int32_t byte_token(const cairn_tokenizer *t, unsigned char byte) {
    char hex[8];
    snprintf(hex, sizeof(hex), "<0x%02X>", byte);
    int32_t id = tok_lookup(t, hex, 6);
    if (id < 0) {
        char c = (char)byte;
        id = tok_lookup(t, &c, 1);
    }
    return id;
}

static int emit(const spm_state *s, cairn_buf *ids, cairn_err *err) {
    for (int i = 0; s->n > 0 && i != -1; i = s->sym[i].next) {
        const tok_symbol *sym = &s->sym[i];
        int32_t id = tok_lookup(s->t, sym->text, sym->n);
        if (id >= 0) {
            if (tok_push_id(ids, id, err) != 0) {
                return -1;
            }
            continue;
        }
        for (size_t j = 0; j < sym->n; j++) {
            id = byte_token(s->t, (unsigned char)sym->text[j]);
            if (id < 0) {
                id = s->t->unk;
            }
            if (id < 0) {
                return cairn_fail(err, "vocabulary has no token for byte 0x%02X and no <unk>",
                                  (unsigned char)sym->text[j]);
            }
            if (tok_push_id(ids, id, err) != 0) {
                return -1;
            }
        }
    }
    return 0;
}

static size_t utf8_len_lax(unsigned char c) {
    static const uint8_t k_len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return k_len[c >> 4];
}

static int tokenize_escaped(const cairn_tokenizer *t, const char *text, size_t len, cairn_buf *ids,
                            cairn_err *err) {
    spm_state s = {.t = t};
    s.sym = malloc((len ? len : 1) * sizeof(*s.sym));
    if (!s.sym) {
        return cairn_fail(err, "out of memory");
    }
    for (size_t off = 0; off < len;) {
        size_t n = utf8_len_lax((unsigned char)text[off]);
        if (n > len - off) {
            n = len - off;
        }
        int idx = (int)s.n;
        s.sym[s.n++] = (tok_symbol){idx - 1, off + n == len ? -1 : idx + 1, text + off, n};
        off += n;
    }
    int r = merge_all(&s) != 0 ? cairn_fail(err, "out of memory") : emit(&s, ids, err);
    free(s.sym);
    tok_heap_free(&s.heap);
    return r;
}

int tok_spm_encode(const cairn_tokenizer *t, const char *text, size_t len, bool space_prefix,
                   cairn_buf *ids, cairn_err *err) {
    /* SentencePiece sees spaces as U+2581 "▁", and a word-initial one before the text. */
    static const char k_space[] = "\xe2\x96\x81";
    cairn_buf esc = {0};
    int r = space_prefix ? cairn_buf_append(&esc, k_space, 3) : 0;
    for (size_t i = 0; r == 0 && i < len; i++) {
        r = text[i] == ' ' ? cairn_buf_append(&esc, k_space, 3) : cairn_buf_putc(&esc, text[i]);
    }
    if (r != 0) {
        cairn_buf_free(&esc);
        return cairn_fail(err, "out of memory");
    }
    r = tokenize_escaped(t, esc.data, esc.len, ids, err);
    cairn_buf_free(&esc);
    return r;
}
