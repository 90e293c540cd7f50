/* tokenizer: the entry point of tokenization. Special tokens are cut out of the text first
 * (each special token in turn, longest first, as llama.cpp does), then every remaining
 * fragment of raw text goes through the vocabulary's algorithm. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

/* ---- shared helpers ---- */

int tok_push_id(cairn_buf *ids, int32_t id, cairn_err *err) {
    if (cairn_buf_append(ids, &id, sizeof(id)) != 0) {
        return cairn_fail(err, "out of memory");
    }
    return 0;
}

static bool bigram_before(const tok_bigram *a, const tok_bigram *b) {
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

int tok_heap_push(tok_heap *h, tok_bigram b) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 64;
        tok_bigram *v = realloc(h->v, cap * sizeof(*v));
        if (!v) {
            return -1;
        }
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!bigram_before(&b, &h->v[parent])) {
            break;
        }
        h->v[i] = h->v[parent];
        i = parent;
    }
    h->v[i] = b;
    return 0;
}

tok_bigram tok_heap_pop(tok_heap *h) {
    tok_bigram top = h->v[0];
    tok_bigram last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->n) {
            break;
        }
        if (child + 1 < h->n && bigram_before(&h->v[child + 1], &h->v[child])) {
            child++;
        }
        if (!bigram_before(&h->v[child], &last)) {
            break;
        }
        h->v[i] = h->v[child];
        i = child;
    }
    if (h->n > 0) {
        h->v[i] = last;
    }
    return top;
}

int tok_merge_symbols(tok_symbol *sym, size_t n, tok_heap *heap, tok_bigram_fn add, void *ctx) {
    heap->n = 0;
    for (size_t i = 1; i < n; i++) {
        if (add(ctx, (int)i - 1, (int)i) != 0) {
            return -1;
        }
    }
    while (heap->n > 0) {
        tok_bigram b = tok_heap_pop(heap);
        tok_symbol *l = &sym[b.left], *r = &sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) {
            continue; /* stale: one side has merged since */
        }
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) {
            sym[r->next].prev = b.left;
        }
        if (add(ctx, l->prev, b.left) != 0 || add(ctx, b.left, l->next) != 0) {
            return -1;
        }
    }
    return 0;
}

void tok_heap_free(tok_heap *h) {
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}

/* ---- special-token partition ---- */

/* A piece of the input: raw text [off, off+len), or a token already decided (id >= 0). */
typedef struct fragment {
    int32_t id;
    size_t off, len;
} fragment;

typedef struct frag_list {
    fragment *v;
    size_t n, cap;
} frag_list;

static int frag_push(frag_list *l, int32_t id, size_t off, size_t len) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        fragment *v = realloc(l->v, cap * sizeof(*v));
        if (!v) {
            return -1;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (fragment){id, off, len};
    return 0;
}

static const char *find_bytes(const char *hay, size_t hay_len, const char *needle, size_t n) {
    if (n == 0 || n > hay_len) {
        return NULL;
    }
    const char *end = hay + hay_len - n + 1;
    for (const char *p = hay; p < end;) {
        p = memchr(p, needle[0], (size_t)(end - p));
        if (!p) {
            return NULL;
        }
        if (memcmp(p, needle, n) == 0) {
            return p;
        }
        p++;
    }
    return NULL;
}

/* Splits raw fragment f at every occurrence of special token id, honouring the token's
 * whitespace-stripping flags. */
static int split_fragment(const cairn_tokenizer *t, const char *text, fragment f, int32_t id,
                          frag_list *out) {
    const char *tok = tok_text(t, id);
    size_t tok_len = t->text[id].len;
    uint32_t attr = t->attr[id];
    size_t pos = f.off, end = f.off + f.len;
    while (pos < end) {
        const char *hit = find_bytes(text + pos, end - pos, tok, tok_len);
        if (!hit) {
            return frag_push(out, -1, pos, end - pos);
        }
        size_t match = (size_t)(hit - text);
        size_t left_len = match - pos;
        if (attr & TOK_ATTR_LSTRIP) {
            while (left_len > 0 && isspace((unsigned char)text[pos + left_len - 1])) {
                left_len--;
            }
        }
        if ((left_len > 0 && frag_push(out, -1, pos, left_len) != 0) ||
            frag_push(out, id, 0, 0) != 0) {
            return -1;
        }
        pos = match + tok_len;
        if (attr & TOK_ATTR_RSTRIP) {
            while (pos < end && isspace((unsigned char)text[pos])) {
                pos++;
            }
        }
    }
    return 0;
}

static int partition(const cairn_tokenizer *t, const char *text, size_t len, bool parse_special,
                     frag_list *frags, cairn_err *err) {
    frag_list next = {0};
    if (len > 0 && frag_push(frags, -1, 0, len) != 0) {
        return cairn_fail(err, "out of memory");
    }
    for (int s = 0; s < t->n_special && frags->n > 0; s++) {
        int32_t id = t->special[s];
        /* Without parse_special, only user-defined tokens are recognised (as in HF). */
        if (!parse_special && (t->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN))) {
            continue;
        }
        next.n = 0;
        for (size_t i = 0; i < frags->n; i++) {
            fragment f = frags->v[i];
            int r =
                f.id >= 0 ? frag_push(&next, f.id, 0, 0) : split_fragment(t, text, f, id, &next);
            if (r != 0) {
                free(next.v);
                return cairn_fail(err, "out of memory");
            }
        }
        frag_list tmp = *frags;
        *frags = next;
        next = tmp;
    }
    free(next.v);
    return 0;
}

/* ---- tokenize ---- */

static int encode_fragments(const cairn_tokenizer *t, const char *text, const frag_list *frags,
                            cairn_buf *ids, cairn_err *err) {
    /* SentencePiece puts a space before text that starts the input or follows a special. */
    bool prev_special = true;
    for (size_t i = 0; i < frags->n; i++) {
        const fragment *f = &frags->v[i];
        int r;
        if (f->id >= 0) {
            r = tok_push_id(ids, f->id, err);
        } else if (t->kind == TOK_KIND_SPM) {
            r = tok_spm_encode(t, text + f->off, f->len, t->add_space_prefix && prev_special, ids,
                               err);
        } else {
            r = tok_bpe_encode(t, text + f->off, f->len, ids, err);
        }
        if (r != 0) {
            return -1;
        }
        prev_special = f->id >= 0;
    }
    return 0;
}

int cairn_tokenize(const cairn_tokenizer *t, const char *text, size_t len, bool add_special,
                   bool parse_special, int32_t **ids, size_t *n_ids, cairn_err *err) {
    *ids = NULL;
    *n_ids = 0;
    if (!text && len > 0) {
        return cairn_fail(err, "tokenize: no text");
    }
    bool add_bos = add_special && t->add_bos;
    bool add_eos = add_special && t->add_eos;
    if ((add_bos && t->bos < 0) || (add_eos && t->eos < 0)) {
        return cairn_fail(err, "tokenize: the model asks for a %s token but has none",
                          add_bos && t->bos < 0 ? "BOS" : "EOS");
    }
    cairn_buf out = {0};
    frag_list frags = {0};
    int r = -1;
    if ((add_bos && tok_push_id(&out, t->bos, err) != 0) ||
        partition(t, text, len, parse_special, &frags, err) != 0 ||
        encode_fragments(t, text, &frags, &out, err) != 0 ||
        (add_eos && tok_push_id(&out, t->eos, err) != 0)) {
        goto done;
    }
    size_t n = out.len / sizeof(int32_t);
    char *data = cairn_buf_take(&out);
    if (!data) {
        cairn_fail(err, "out of memory");
        goto done;
    }
    *ids = (int32_t *)(void *)data;
    *n_ids = n;
    r = 0;
done:
    cairn_buf_free(&out);
    free(frags.v);
    return r;
}
