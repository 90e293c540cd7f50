/* tokenizer: the string hash table behind token and merge lookups (a 150k vocabulary must
 * load and tokenize without linear scans). */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

static uint32_t fnv1a(uint32_t h, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

uint32_t tok_hash(const char *a, size_t alen, char sep, const char *b, size_t blen) {
    uint32_t h = fnv1a(2166136261u, a, alen);
    if (b) {
        h = fnv1a(h, &sep, 1);
        h = fnv1a(h, b, blen);
    }
    /* FNV's low bits are weak for short keys; mix before masking. */
    h ^= h >> 16;
    h *= 0x45d9f3bu;
    h ^= h >> 16;
    return h;
}

int tok_strtab_init(tok_strtab *tab, size_t n_keys, cairn_err *err) {
    size_t cap = 16;
    while (cap < 2 * n_keys) {
        cap *= 2;
    }
    tab->slots = malloc(cap * sizeof(*tab->slots));
    if (!tab->slots) {
        return cairn_fail(err, "out of memory for a %zu-entry token table", n_keys);
    }
    memset(tab->slots, 0xff, cap * sizeof(*tab->slots));
    tab->mask = cap - 1;
    return 0;
}

void tok_strtab_free(tok_strtab *tab) {
    free(tab->slots);
    tab->slots = NULL;
}

static bool key_equals(const char *arena, tok_span key, const char *a, size_t alen, char sep,
                       const char *b, size_t blen) {
    size_t want = b ? alen + 1 + blen : alen;
    if (key.len != want) {
        return false;
    }
    const char *k = arena + key.off;
    if (memcmp(k, a, alen) != 0) {
        return false;
    }
    return !b || (k[alen] == sep && memcmp(k + alen + 1, b, blen) == 0);
}

int32_t tok_strtab_find(const tok_strtab *tab, const char *arena, const tok_span *keys,
                        const char *a, size_t alen, char sep, const char *b, size_t blen) {
    size_t i = tok_hash(a, alen, sep, b, blen) & tab->mask;
    for (;; i = (i + 1) & tab->mask) {
        int32_t idx = tab->slots[i];
        if (idx < 0) {
            return -1;
        }
        if (key_equals(arena, keys[idx], a, alen, sep, b, blen)) {
            return idx;
        }
    }
}

int32_t tok_strtab_insert(tok_strtab *tab, const char *arena, const tok_span *keys, int32_t idx) {
    const char *s = arena + keys[idx].off;
    size_t len = keys[idx].len;
    size_t i = tok_hash(s, len, 0, NULL, 0) & tab->mask;
    for (;; i = (i + 1) & tab->mask) {
        int32_t other = tab->slots[i];
        if (other < 0) {
            tab->slots[i] = idx;
            return -1;
        }
        if (key_equals(arena, keys[other], s, len, 0, NULL, 0)) {
            return other;
        }
    }
}
