/* tokenizer: byte-level BPE. Text is split into words by the pre-tokenizer's regexes, each
 * word's bytes are mapped to printable code points (GPT-2's byte encoding), and adjacent
 * symbols are merged lowest merge rank first, as llama.cpp does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

/* ---- pre-tokenizers ---- */

/* CJK ideographs (and everything from U+0800 up to them) and Hangul, as DeepSeek splits. */
#define RE_DEEPSEEK_CJK "[\\x{4e00}-\\x{9fa5}\\x{800}-\\x{4e00}\\x{ac00}-\\x{d7ff}]+"
/* DeepSeek LLM's explicit letter ranges (cased letters of Latin, Greek, Cyrillic, ...). */
#define RE_DEEPSEEK_LETTERS                                                                        \
    "\\s?[A-Za-z\\x{b5}\\x{c0}-\\x{d6}\\x{d8}-\\x{f6}\\x{f8}-\\x{1ba}\\x{1bc}-\\x{1bf}"            \
    "\\x{1c4}-\\x{293}\\x{295}-\\x{2af}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37b}-\\x{37d}"         \
    "\\x{37f}\\x{386}\\x{388}-\\x{38a}\\x{38c}\\x{38e}-\\x{3a1}\\x{3a3}-\\x{3f5}\\x{3f7}-"         \
    "\\x{481}\\x{48a}-\\x{52f}\\x{531}-\\x{556}\\x{10a0}-\\x{10c5}\\x{13a0}-\\x{13f5}"             \
    "\\x{13f8}-\\x{13fd}\\x{1c90}-\\x{1cba}\\x{1cbd}-\\x{1cbf}\\x{1d00}-\\x{1d2b}"                 \
    "\\x{1d6b}-\\x{1d77}\\x{1d79}-\\x{1d9a}\\x{1e00}-\\x{1f15}\\x{1f18}-\\x{1f1d}"                 \
    "\\x{1f20}-\\x{1f45}\\x{1f48}-\\x{1f4d}\\x{1f50}-\\x{1f57}\\x{1f59}\\x{1f5b}\\x{1f5d}"         \
    "\\x{1f5f}-\\x{1f7d}\\x{1f80}-\\x{1fb4}\\x{1fb6}-\\x{1fbc}\\x{1fbe}\\x{1fc2}-\\x{1fc4}"        \
    "\\x{1fc6}-\\x{1fcc}\\x{1fd0}-\\x{1fd3}\\x{1fd6}-\\x{1fdb}\\x{1fe0}-\\x{1fec}"                 \
    "\\x{1ff2}-\\x{1ff4}\\x{1ff6}-\\x{1ffc}\\x{2102}\\x{2107}\\x{210a}-\\x{2113}\\x{2115}"         \
    "\\x{2119}-\\x{211d}\\x{2124}\\x{2126}\\x{2128}\\x{212a}-\\x{212d}\\x{212f}-\\x{2134}"         \
    "\\x{2139}\\x{213c}-\\x{213f}\\x{2145}-\\x{2149}\\x{214e}\\x{2183}\\x{2184}\\x{2c00}-"         \
    "\\x{2c7b}\\x{2c7e}-\\x{2ce4}\\x{2ceb}-\\x{2cee}\\x{2cf2}\\x{2cf3}\\x{a640}-\\x{a66d}"         \
    "\\x{a680}-\\x{a69b}\\x{a722}-\\x{a76f}\\x{a771}-\\x{a787}\\x{a78b}-\\x{a78e}"                 \
    "\\x{ab70}-\\x{abbf}\\x{fb00}-\\x{fb06}\\x{fb13}-\\x{fb17}\\x{ff21}-\\x{ff3a}"                 \
    "\\x{ff41}-\\x{ff5a}\\x{10400}-\\x{1044f}\\x{104b0}-\\x{104d3}\\x{104d8}-\\x{104fb}"           \
    "\\x{10c80}-\\x{10cb2}\\x{10cc0}-\\x{10cf2}\\x{118a0}-\\x{118df}\\x{1e900}-\\x{1e943}]+"
#define RE_DEEPSEEK_PUNCT                                                                          \
    "\\s?[!-/:-~\\x{ff01}-\\x{ff0f}\\x{ff1a}-\\x{ff5e}\\x{2018}-\\x{201f}\\x{3000}-\\x{3002}]+"
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RE_LLAMA3                                                                                  \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"    \
                    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                   \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"         \
                    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN35                                                                                  \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+"    \
                    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* Letters split at case changes, written with lookaheads the way llama.cpp adapts them. */
#define RE_UPPER_RUN "((?=[\\p{L}])([^a-z]))"
#define RE_LOWER_RUN "((?=[\\p{L}])([^A-Z]))"
#define RE_TEKKEN                                                                                  \
    "[^\\r\\n\\p{L}\\p{N}]?" RE_UPPER_RUN "*" RE_LOWER_RUN "+|[^\\r\\n\\p{L}\\p{N}]?" RE_UPPER_RUN \
    "+" RE_LOWER_RUN "*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+"                      \
    "|\\s+(?!\\S)|\\s+"
#define RE_GPT4O                                                                                   \
    "[^\\r\\n\\p{L}\\p{N}]?" RE_UPPER_RUN "*" RE_LOWER_RUN "+" RE_CONTRACTIONS                     \
    "?|[^\\r\\n\\p{L}\\p{N}]?" RE_UPPER_RUN "+" RE_LOWER_RUN "*" RE_CONTRACTIONS                   \
    "?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_PORO " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{ff0c}\\x{3001}\\x{964}\\x{6d4}\\x{60c})]+"

typedef struct pretok_kind {
    const char *names; /* space-separated tokenizer.ggml.pre values */
    const char *regex[6];
    bool ignore_merges;
    bool add_bos;
} pretok_kind;

/* llama.cpp's pre-tokenizers; the regex lists are theirs, so splits agree with its output. */
static const pretok_kind k_pretoks[] = {
    {"default", {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}, false, false},
    {"gpt-2 mpt phi-2 jina-es jina-de gigachat jina-v2-es jina-v2-de a.x-4.0 mellum modern-bert "
     "olmo jais trillion granite-docling exaone4 jina-v1-en jina-v2-code roberta-bpe",
     {RE_GPT2},
     false,
     false},
    {"llama3 llama-v3 llama-bpe falcon3 falcon-h1 pixtral midm-2.0 lfm2 jina-v5-nano",
     {RE_LLAMA3},
     true,
     true},
    {"dbrx smaug-bpe", {RE_LLAMA3}, false, false},
    {"qwen2 deepseek-r1-qwen kormo f2llmv2 stablelm2 hunyuan solar-open megrez grok-2",
     {RE_QWEN2},
     false,
     false},
    {"qwen35", {RE_QWEN35}, false, false},
    {"starcoder refact command-r smollm codeshell exaone minerva-7b mellum2",
     {"\\p{N}", RE_GPT2},
     false,
     false},
    {"tekken", {RE_TEKKEN}, true, true},
    {"gpt-4o llama4 kanana2 talkie minimax-m2", {RE_GPT4O}, false, false},
    {"poro-chat bloom gpt3-finnish", {RE_PORO}, false, false},
    {"viking", {RE_PORO, "\\p{N}"}, false, false},
    {"falcon", {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}, false, false},
    {"deepseek-llm",
     {"[\\r\\n]", RE_DEEPSEEK_LETTERS, RE_DEEPSEEK_PUNCT, "\\s+$", RE_DEEPSEEK_CJK, "\\p{N}+"},
     false,
     false},
    {"deepseek-coder",
     {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_DEEPSEEK_CJK, "\\p{N}"},
     false,
     false},
    {"deepseek-v3 hunyuan-dense joyai-llm hy_v4",
     {"\\p{N}{1,3}", "[\\x{4e00}-\\x{9fa5}\\x{3040}-\\x{309f}\\x{30a0}-\\x{30ff}]+",
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?"
      "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     false,
     false},
};

static bool name_in_list(const char *names, const char *name) {
    size_t n = strlen(name);
    for (const char *p = names; *p;) {
        const char *end = strchr(p, ' ');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0) {
            return true;
        }
        p += len + (end ? 1 : 0);
    }
    return false;
}

static const pretok_kind *find_pretok(const char *pre) {
    for (size_t i = 0; pre && i < CAIRN_ARRAY_LEN(k_pretoks); i++) {
        if (name_in_list(k_pretoks[i].names, pre)) {
            return &k_pretoks[i];
        }
    }
    return &k_pretoks[0]; /* missing or unknown: llama.cpp's default regexes */
}

int tok_pretok_init(cairn_tokenizer *t, const char *pre, cairn_err *err) {
    const pretok_kind *kind = find_pretok(pre);
    snprintf(t->pre_name, sizeof(t->pre_name), "%s", pre ? pre : "default");
    t->ignore_merges = kind->ignore_merges;
    if (kind->add_bos) {
        t->add_bos = true;
    }
    for (int i = 0; i < (int)CAIRN_ARRAY_LEN(kind->regex) && kind->regex[i]; i++) {
        int code;
        PCRE2_SIZE offset;
        pcre2_code *re =
            pcre2_compile((PCRE2_SPTR)kind->regex[i], PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &code, &offset, NULL);
        if (!re) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(code, msg, sizeof(msg));
            return cairn_fail(err, "pre-tokenizer regex %d of \"%s\" does not compile: %s", i,
                              t->pre_name, (const char *)msg);
        }
        /* JIT is only a speed-up; without it matching still works. */
        (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
        t->pretok.regex[t->pretok.n_regex++] = re;
    }
    return 0;
}

void tok_pretok_free(tok_pretok *p) {
    for (int i = 0; i < p->n_regex; i++) {
        pcre2_code_free(p->regex[i]);
    }
    p->n_regex = 0;
}

/* ---- byte encoding ---- */

static bool byte_is_printable(unsigned b) {
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
}

/* Printable bytes stand for themselves; the others take code points 256, 257, ... in byte
 * order (0..32, then 127..160, then 173). */
uint32_t tok_byte_to_cp(uint8_t b) {
    if (byte_is_printable(b)) {
        return b;
    }
    if (b <= 32) {
        return 256u + b;
    }
    if (b >= 127 && b <= 160) {
        return 256u + 33u + (b - 127u);
    }
    return 256u + 33u + 34u; /* 173 */
}

int tok_cp_to_byte(uint32_t cp) {
    if (cp < 256) {
        return byte_is_printable(cp) ? (int)cp : -1;
    }
    if (cp <= 256 + 32) {
        return (int)(cp - 256);
    }
    if (cp <= 256 + 33 + 33) {
        return (int)(cp - 256 - 33 + 127);
    }
    return cp == 256 + 33 + 34 ? 173 : -1;
}

/* ---- splitting ---- */

typedef struct seg {
    size_t off, len;
} seg;

typedef struct seg_list {
    seg *v;
    size_t n, cap;
} seg_list;

static int seg_push(seg_list *l, size_t off, size_t len) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        seg *v = realloc(l->v, cap * sizeof(*v));
        if (!v) {
            return -1;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (seg){off, len};
    return 0;
}

/* llama.cpp's symbol length for a lead byte: stray continuation bytes count as one. */
static size_t utf8_len_lax(unsigned char c) {
    static const uint8_t k_len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return k_len[c >> 4];
}

/* Splits one segment with re: matches and the gaps between them both become segments. */
static int split_one(const pcre2_code *re, pcre2_match_data *md, const char *text, seg s,
                     seg_list *out, cairn_err *err) {
    const PCRE2_SPTR subject = (PCRE2_SPTR)(text + s.off);
    size_t pos = 0, last = 0;
    while (pos < s.len) {
        int rc = pcre2_match(re, subject, s.len, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) {
            break;
        }
        if (rc < 0) {
            return cairn_fail(err, "pre-tokenizer regex failed (PCRE2 error %d)", rc);
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) {
            /* An empty match splits nothing; step over one character. */
            pos = ms + (ms < s.len ? utf8_len_lax((unsigned char)subject[ms]) : 1);
            continue;
        }
        if ((ms > last && seg_push(out, s.off + last, ms - last) != 0) ||
            seg_push(out, s.off + ms, me - ms) != 0) {
            return cairn_fail(err, "out of memory");
        }
        last = pos = me;
    }
    if (last < s.len && seg_push(out, s.off + last, s.len - last) != 0) {
        return cairn_fail(err, "out of memory");
    }
    return 0;
}

/* Applies the regexes in turn, each to every segment the previous one produced. */
static int pre_split(const tok_pretok *p, const char *text, size_t len, seg_list *out,
                     cairn_err *err) {
    seg_list cur = {0}, next = {0};
    if (seg_push(&cur, 0, len) != 0) {
        return cairn_fail(err, "out of memory");
    }
    for (int r = 0; r < p->n_regex; r++) {
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(p->regex[r], NULL);
        if (!md) {
            free(cur.v);
            free(next.v); /* holds the previous round's buffer after the swap */
            return cairn_fail(err, "out of memory");
        }
        next.n = 0;
        for (size_t i = 0; i < cur.n; i++) {
            if (split_one(p->regex[r], md, text, cur.v[i], &next, err) != 0) {
                pcre2_match_data_free(md);
                free(cur.v);
                free(next.v);
                return -1;
            }
        }
        pcre2_match_data_free(md);
        seg_list tmp = cur;
        cur = next;
        next = tmp;
    }
    free(next.v);
    *out = cur;
    return 0;
}

/* The text as code points re-encoded canonically; undecodable bytes become U+FFFD, as in
 * llama.cpp, which keeps the regexes' input valid UTF-8. */
static int sanitize_utf8(const char *text, size_t len, cairn_buf *out) {
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int n = cairn_utf8_decode(text + i, len - i, &cp);
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            cp = 0xFFFD;
        }
        char enc[4];
        if (cairn_buf_append(out, enc, (size_t)cairn_utf8_encode(cp, enc)) != 0) {
            return -1;
        }
        i += (size_t)n;
    }
    return 0;
}

/* ---- merging ---- */

typedef struct bpe_word {
    tok_symbol *sym;
    size_t n, cap;
    tok_heap heap;
} bpe_word;

static int merge_rank(const cairn_tokenizer *t, const tok_symbol *l, const tok_symbol *r) {
    int32_t idx =
        tok_strtab_find(&t->by_merge, t->arena, t->merge, l->text, l->n, ' ', r->text, r->n);
    /* A merge string splits at its first space, so a left side containing one cannot be it. */
    if (idx >= 0 && l->n > 1 && memchr(l->text + 1, ' ', l->n - 1)) {
        return -1;
    }
    return idx;
}

static int add_bigram(const cairn_tokenizer *t, bpe_word *w, int left, int right) {
    if (left < 0 || right < 0) {
        return 0;
    }
    int rank = merge_rank(t, &w->sym[left], &w->sym[right]);
    if (rank < 0) {
        return 0;
    }
    tok_bigram b = {(double)rank, left, right, w->sym[left].n + w->sym[right].n};
    return tok_heap_push(&w->heap, b);
}

static int make_symbols(const cairn_tokenizer *t, bpe_word *w, const char *s, size_t len) {
    w->n = 0;
    size_t need = len ? len : 1;
    if (need > w->cap) {
        tok_symbol *sym = realloc(w->sym, need * sizeof(*sym));
        if (!sym) {
            return -1;
        }
        w->sym = sym;
        w->cap = need;
    }
    if (t->ignore_merges && tok_lookup(t, s, len) >= 0) {
        w->sym[w->n++] = (tok_symbol){-1, -1, s, len};
        return 0;
    }
    for (size_t off = 0; off < len;) {
        size_t n = utf8_len_lax((unsigned char)s[off]);
        if (n > len - off) {
            n = len - off;
        }
        int idx = (int)w->n;
        w->sym[w->n++] = (tok_symbol){idx - 1, off + n == len ? -1 : idx + 1, s + off, n};
        off += n;
    }
    return 0;
}

typedef struct bpe_merge_ctx {
    const cairn_tokenizer *t;
    bpe_word *w;
} bpe_merge_ctx;

static int offer_bigram(void *ctx, int left, int right) {
    bpe_merge_ctx *m = ctx;
    return add_bigram(m->t, m->w, left, right);
}

static int merge_word(const cairn_tokenizer *t, bpe_word *w) {
    bpe_merge_ctx ctx = {t, w};
    return tok_merge_symbols(w->sym, w->n, &w->heap, offer_bigram, &ctx);
}

static int emit_symbols(const cairn_tokenizer *t, const bpe_word *w, cairn_buf *ids,
                        cairn_err *err) {
    for (size_t i = 0; i < w->n; i++) {
        const tok_symbol *s = &w->sym[i];
        if (s->n == 0) {
            continue;
        }
        int32_t id = tok_lookup(t, s->text, s->n);
        if (id >= 0) {
            if (tok_push_id(ids, id, err) != 0) {
                return -1;
            }
            continue;
        }
        /* Like llama.cpp: fall back to single-byte tokens, dropping bytes without one. */
        for (size_t j = 0; j < s->n; j++) {
            id = tok_lookup(t, s->text + j, 1);
            if (id >= 0 && tok_push_id(ids, id, err) != 0) {
                return -1;
            }
        }
    }
    return 0;
}

static int encode_word(const cairn_tokenizer *t, const char *s, size_t len, bpe_word *w,
                       cairn_buf *scratch, cairn_buf *ids, cairn_err *err) {
    scratch->len = 0;
    for (size_t i = 0; i < len; i++) {
        char enc[4];
        int n = cairn_utf8_encode(tok_byte_to_cp((uint8_t)s[i]), enc);
        if (cairn_buf_append(scratch, enc, (size_t)n) != 0) {
            return cairn_fail(err, "out of memory");
        }
    }
    if (make_symbols(t, w, scratch->data, scratch->len) != 0 || merge_word(t, w) != 0) {
        return cairn_fail(err, "out of memory");
    }
    return emit_symbols(t, w, ids, err);
}

int tok_bpe_encode(const cairn_tokenizer *t, const char *text, size_t len, cairn_buf *ids,
                   cairn_err *err) {
    cairn_buf clean = {0}, scratch = {0};
    seg_list words = {0};
    bpe_word w = {0};
    int r = -1;
    if (sanitize_utf8(text, len, &clean) != 0) {
        cairn_fail(err, "out of memory");
        goto done;
    }
    if (clean.len == 0) {
        r = 0;
        goto done;
    }
    if (pre_split(&t->pretok, clean.data, clean.len, &words, err) != 0) {
        goto done;
    }
    for (size_t i = 0; i < words.n; i++) {
        if (encode_word(t, clean.data + words.v[i].off, words.v[i].len, &w, &scratch, ids, err) !=
            0) {
            goto done;
        }
    }
    r = 0;
done:
    cairn_buf_free(&clean);
    cairn_buf_free(&scratch);
    free(words.v);
    free(w.sym);
    tok_heap_free(&w.heap);
    return r;
}
