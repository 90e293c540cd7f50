/* tokenizer: ids back to text, whole or as a stream that only ever hands out complete UTF-8
 * (a character can be spread over several byte tokens). Pieces are rendered once at load
 * time, so decoding is a copy per token. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

/* ---- pieces ---- */

/* The byte a "<0xAB>" token stands for, or -1 if the text is not of that form. */
static int hex_byte_token(const char *s, size_t len) {
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') {
        return -1;
    }
    int v = 0;
    for (int i = 3; i < 5; i++) {
        int c = (unsigned char)s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : -1;
        if (d < 0) {
            return -1;
        }
        v = v * 16 + d;
    }
    return v;
}

/* Appends what token id renders as (with render_special) to out. */
static int render_piece(const cairn_tokenizer *t, int32_t id, cairn_buf *out) {
    const char *s = tok_text(t, id);
    size_t len = t->text[id].len;
    uint32_t attr = t->attr[id];
    if (attr & (TOK_ATTR_UNKNOWN | TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED)) {
        return cairn_buf_append(out, s, len);
    }
    if (attr & TOK_ATTR_BYTE) {
        int b = hex_byte_token(s, len);
        return b >= 0 ? cairn_buf_putc(out, (char)b) : cairn_buf_append(out, s, len);
    }
    if (!(attr & TOK_ATTR_NORMAL)) {
        return 0; /* unused or undefined tokens render as nothing */
    }
    if (t->kind == TOK_KIND_SPM) {
        /* "▁" (U+2581) is SentencePiece's space. */
        for (size_t i = 0; i < len; i++) {
            if (i + 3 <= len && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
                if (cairn_buf_putc(out, ' ') != 0) {
                    return -1;
                }
                i += 2;
            } else if (cairn_buf_putc(out, s[i]) != 0) {
                return -1;
            }
        }
        return 0;
    }
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int n = cairn_utf8_decode(s + i, len - i, &cp);
        int b = tok_cp_to_byte(cp);
        /* A character outside the byte mapping is kept as it is. */
        int r = b >= 0 ? cairn_buf_putc(out, (char)b) : cairn_buf_append(out, s + i, (size_t)n);
        if (r != 0) {
            return -1;
        }
        i += (size_t)n;
    }
    return 0;
}

int tok_build_pieces(cairn_tokenizer *t, cairn_err *err) {
    cairn_buf all = {0};
    t->piece = calloc((size_t)t->n_vocab, sizeof(*t->piece));
    if (!t->piece) {
        return cairn_fail(err, "out of memory");
    }
    for (int32_t i = 0; i < t->n_vocab; i++) {
        size_t start = all.len;
        if (render_piece(t, i, &all) != 0 || all.len > UINT32_MAX) {
            cairn_buf_free(&all);
            return cairn_fail(err, "out of memory rendering token pieces");
        }
        t->piece[i] = (tok_span){(uint32_t)start, (uint32_t)(all.len - start)};
    }
    t->pieces = cairn_buf_take(&all);
    return t->pieces ? 0 : cairn_fail(err, "out of memory");
}

/* The rendered piece of id, empty for control/unknown tokens unless render_special. */
static const char *piece_of(const cairn_tokenizer *t, int32_t id, bool render_special,
                            size_t *len) {
    if (!render_special && (t->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN))) {
        *len = 0;
        return "";
    }
    *len = t->piece[id].len;
    return t->pieces + t->piece[id].off;
}

int cairn_token_to_piece(const cairn_tokenizer *t, int32_t id, bool render_special, char *buf,
                         size_t cap) {
    if (id < 0 || id >= t->n_vocab) {
        return 0;
    }
    size_t len;
    const char *p = piece_of(t, id, render_special, &len);
    if (len > INT_MAX) {
        return -INT_MAX;
    }
    if (len > cap) {
        return -(int)len;
    }
    memcpy(buf, p, len);
    return (int)len;
}

/* Appends a token's piece, dropping one leading space when *strip is set (SentencePiece's
 * word-initial space of the first token is not part of the text). */
static int append_piece(const cairn_tokenizer *t, int32_t id, bool render_special, bool *strip,
                        cairn_buf *out, cairn_err *err) {
    if (id < 0 || id >= t->n_vocab) {
        return cairn_fail(err, "token id %d is outside the vocabulary (%d tokens)", id, t->n_vocab);
    }
    size_t len;
    const char *p = piece_of(t, id, render_special, &len);
    if (*strip && len > 0 && p[0] == ' ') {
        p++;
        len--;
    }
    *strip = false;
    if (cairn_buf_append(out, p, len) != 0) {
        return cairn_fail(err, "out of memory");
    }
    return 0;
}

int cairn_detokenize(const cairn_tokenizer *t, const int32_t *ids, size_t n, bool render_special,
                     char **text, cairn_err *err) {
    *text = NULL;
    cairn_buf out = {0};
    bool strip = t->add_space_prefix;
    for (size_t i = 0; i < n; i++) {
        if (append_piece(t, ids[i], render_special, &strip, &out, err) != 0) {
            cairn_buf_free(&out);
            return -1;
        }
    }
    *text = cairn_buf_take(&out);
    return *text ? 0 : cairn_fail(err, "out of memory");
}

/* ---- streaming ---- */

/* Length of the well-formed UTF-8 character at s (no overlongs, surrogates or values past
 * U+10FFFF), or 0 if the bytes there do not form one. */
static size_t valid_char_len(const unsigned char *s, size_t len) {
    if (s[0] < 0x80) {
        return 1;
    }
    size_t n = (size_t)cairn_utf8_seq_len(s[0]);
    if (n < 2 || n > len) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
    }
    uint32_t cp;
    cairn_utf8_decode((const char *)s, n, &cp);
    static const uint32_t k_min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < k_min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return n;
}

/* Appends s[0..len) with every byte that is not part of a valid character as U+FFFD. */
static int append_valid(cairn_buf *out, const char *s, size_t len) {
    for (size_t i = 0; i < len;) {
        size_t n = valid_char_len((const unsigned char *)s + i, len - i);
        int r = n ? cairn_buf_append(out, s + i, n) : cairn_buf_append(out, "\xef\xbf\xbd", 3);
        if (r != 0) {
            return -1;
        }
        i += n ? n : 1;
    }
    return 0;
}

void cairn_detok_stream_init(cairn_detok_stream *s, const cairn_tokenizer *t, bool render_special) {
    memset(s, 0, sizeof(*s));
    s->tok = t;
    s->render_special = render_special;
    s->strip_leading_space = t->add_space_prefix;
}

int cairn_detok_stream_push(cairn_detok_stream *s, int32_t id, cairn_buf *out, cairn_err *err) {
    if (append_piece(s->tok, id, s->render_special, &s->strip_leading_space, &s->pending, err) !=
        0) {
        return -1;
    }
    size_t done =
        cairn_utf8_complete_prefix(s->pending.data ? s->pending.data : "", s->pending.len);
    if (done == 0 || !s->pending.data) {
        return 0;
    }
    if (append_valid(out, s->pending.data, done) != 0) {
        return cairn_fail(err, "out of memory");
    }
    memmove(s->pending.data, s->pending.data + done, s->pending.len - done);
    s->pending.len -= done;
    return 0;
}

int cairn_detok_stream_flush(cairn_detok_stream *s, cairn_buf *out) {
    if (s->pending.len > 0 && append_valid(out, s->pending.data, s->pending.len) != 0) {
        return -1;
    }
    s->pending.len = 0;
    return 0;
}

void cairn_detok_stream_free(cairn_detok_stream *s) {
    cairn_buf_free(&s->pending);
}
