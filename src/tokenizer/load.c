/* tokenizer: building a tokenizer from GGUF metadata, with every array and id checked, and
 * the token attributes and end-of-generation set derived the way llama.cpp derives them. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "model/model.h"
#include "tokenizer/tokenizer_internal.h"

#define KEY_PREFIX "tokenizer.ggml."

/* GGUF token types (tokenizer.ggml.token_type). */
enum {
    GGUF_TOKEN_NORMAL = 1,
    GGUF_TOKEN_UNKNOWN = 2,
    GGUF_TOKEN_CONTROL = 3,
    GGUF_TOKEN_USER_DEFINED = 4,
    GGUF_TOKEN_UNUSED = 5,
    GGUF_TOKEN_BYTE = 6,
};

/* Texts llama.cpp treats as end of turn / end of generation even when the metadata does not
 * name them (most converted models only record eos). */
static const char *const k_eot_texts[] = {
    "<|eot_id|>",         "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<|end_of_text|>",    "<EOT>",      "_<EOT>",  "[EOT]",         "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
};
static const char *const k_eog_texts[] = {
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
};
/* gpt-oss structure tokens: rendered even without render_special (they carry the channel
 * layout the chat parser needs). */
static const char *const k_always_rendered[] = {
    "<|channel|>",
    "<|message|>",
    "<|start|>",
    "<|constrain|>",
};

typedef struct loader {
    const struct gguf_context *g;
    cairn_tokenizer *t;
    cairn_buf arena;
    cairn_err *err;
} loader;

static int32_t find_text(const cairn_tokenizer *t, const char *s) {
    return tok_lookup(t, s, strlen(s));
}

static int arena_add(loader *L, const char *s, size_t len, tok_span *span) {
    if (L->arena.len + len + 1 > UINT32_MAX) {
        return cairn_fail(L->err, "tokenizer vocabulary is too large (over 4 GiB of text)");
    }
    span->off = (uint32_t)L->arena.len;
    span->len = (uint32_t)len;
    if (cairn_buf_append(&L->arena, s, len) != 0 || cairn_buf_putc(&L->arena, '\0') != 0) {
        return cairn_fail(L->err, "out of memory for the tokenizer vocabulary");
    }
    return 0;
}

/* Reads a required or optional array key, checking its element type and minimum length. */
static int get_array(loader *L, const char *key, int type, size_t min_len, bool required,
                     int64_t *key_id, size_t *n) {
    int r = cairn_meta_array(L->g, key, type, n, L->err);
    if (r < 0) {
        return -1;
    }
    if (r == 0) {
        *key_id = -1;
        return required ? cairn_fail(L->err, "metadata key %s is missing", key) : 0;
    }
    if (*n < min_len) {
        return cairn_fail(L->err, "metadata key %s has %zu entries, expected %zu", key, *n,
                          min_len);
    }
    *key_id = gguf_find_key(L->g, key);
    return 0;
}

static uint32_t attr_from_type(int32_t type) {
    switch (type) {
    case GGUF_TOKEN_NORMAL: return TOK_ATTR_NORMAL;
    case GGUF_TOKEN_UNKNOWN: return TOK_ATTR_UNKNOWN;
    case GGUF_TOKEN_CONTROL: return TOK_ATTR_CONTROL;
    case GGUF_TOKEN_USER_DEFINED: return TOK_ATTR_USER_DEFINED;
    case GGUF_TOKEN_UNUSED: return TOK_ATTR_UNUSED;
    case GGUF_TOKEN_BYTE: return TOK_ATTR_BYTE;
    default: return TOK_ATTR_UNDEFINED;
    }
}

/* Where the per-token arrays are; scores and types are optional (-1). */
typedef struct token_arrays {
    int64_t tokens, scores, types;
    int score_type; /* scores may be stored as float32 or int32 */
    size_t n;
} token_arrays;

static int find_token_arrays(loader *L, token_arrays *a) {
    size_t n_other;
    if (get_array(L, KEY_PREFIX "tokens", GGUF_TYPE_STRING, 1, true, &a->tokens, &a->n) != 0) {
        return -1;
    }
    if (a->n > INT32_MAX / 2) {
        return cairn_fail(L->err, "tokenizer has %zu tokens, too many", a->n);
    }
    a->score_type = GGUF_TYPE_FLOAT32;
    if (cairn_meta_array(L->g, KEY_PREFIX "scores", GGUF_TYPE_INT32, &n_other, NULL) == 1) {
        a->score_type = GGUF_TYPE_INT32;
    }
    if (get_array(L, KEY_PREFIX "scores", a->score_type, a->n, false, &a->scores, &n_other) != 0 ||
        get_array(L, KEY_PREFIX "token_type", GGUF_TYPE_INT32, a->n, false, &a->types, &n_other) !=
            0) {
        return -1;
    }
    return 0;
}

static int read_token(loader *L, const token_arrays *a, size_t i) {
    cairn_tokenizer *t = L->t;
    const char *s = gguf_get_arr_str(L->g, a->tokens, i);
    char empty_name[32];
    if (!s || !*s) {
        /* llama.cpp gives empty tokens a unique placeholder so lookups stay one-to-one. */
        snprintf(empty_name, sizeof(empty_name), "[EMPTY_%zu]", i);
        s = empty_name;
    }
    if (arena_add(L, s, strlen(s), &t->text[i]) != 0) {
        return -1;
    }
    if (a->scores >= 0) {
        const char *data = gguf_get_arr_data(L->g, a->scores);
        int32_t v;
        if (a->score_type == GGUF_TYPE_FLOAT32) {
            memcpy(&t->score[i], data + 4 * i, 4);
        } else {
            memcpy(&v, data + 4 * i, 4);
            t->score[i] = (float)v;
        }
    }
    int32_t type = GGUF_TOKEN_NORMAL;
    if (a->types >= 0) {
        memcpy(&type, (const char *)gguf_get_arr_data(L->g, a->types) + 4 * i, 4);
    }
    t->attr[i] = attr_from_type(type);
    return 0;
}

static int load_tokens(loader *L) {
    cairn_tokenizer *t = L->t;
    token_arrays a;
    if (find_token_arrays(L, &a) != 0) {
        return -1;
    }
    t->n_vocab = (int)a.n;
    t->text = calloc(a.n, sizeof(*t->text));
    t->score = calloc(a.n, sizeof(*t->score));
    t->attr = calloc(a.n, sizeof(*t->attr));
    if (!t->text || !t->score || !t->attr) {
        return cairn_fail(L->err, "out of memory for %zu tokens", a.n);
    }
    for (size_t i = 0; i < a.n; i++) {
        if (read_token(L, &a, i) != 0) {
            return -1;
        }
    }
    return 0;
}

static int index_tokens(loader *L) {
    cairn_tokenizer *t = L->t;
    if (tok_strtab_init(&t->by_text, (size_t)t->n_vocab, L->err) != 0) {
        return -1;
    }
    for (int32_t i = 0; i < t->n_vocab; i++) {
        int32_t dup = tok_strtab_insert(&t->by_text, t->arena, t->text, i);
        if (dup >= 0) {
            return cairn_fail(L->err, "tokens %d and %d have the same text \"%s\"", dup, i,
                              tok_text(t, i));
        }
    }
    return 0;
}

static int load_merges(loader *L) {
    cairn_tokenizer *t = L->t;
    int64_t key_id;
    size_t n;
    if (get_array(L, KEY_PREFIX "merges", GGUF_TYPE_STRING, 0, true, &key_id, &n) != 0) {
        return -1;
    }
    if (n > INT32_MAX / 2) {
        return cairn_fail(L->err, "tokenizer has %zu merges, too many", n);
    }
    t->merge = calloc(n ? n : 1, sizeof(*t->merge));
    if (!t->merge || tok_strtab_init(&t->by_merge, n, L->err) != 0) {
        return cairn_fail(L->err, "out of memory for %zu merges", n);
    }
    t->n_merges = (int)n;
    for (size_t i = 0; i < n; i++) {
        const char *s = gguf_get_arr_str(L->g, key_id, i);
        size_t len = s ? strlen(s) : 0;
        /* "left right", split at the first space after the first byte. A merge without one
         * can never apply; it keeps its rank slot but is not indexed. */
        const char *space = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (arena_add(L, space ? s : "", space ? len : 0, &t->merge[i]) != 0) {
            return -1;
        }
    }
    /* Indexing waits until the arena stops moving; the first of equal merges keeps its rank. */
    return 0;
}

static void index_merges(cairn_tokenizer *t) {
    for (int32_t i = 0; i < t->n_merges; i++) {
        if (t->merge[i].len > 0) {
            tok_strtab_insert(&t->by_merge, t->arena, t->merge, i);
        }
    }
}

/* Reads an optional special-token id. -1 and 0xFFFFFFFF mean "none" (converters write them
 * for absent tokens); any other value outside the vocabulary is an error. */
static int read_special(loader *L, const char *name, int32_t *id) {
    char key[96];
    snprintf(key, sizeof(key), KEY_PREFIX "%s", name);
    int64_t v;
    int r = cairn_meta_int(L->g, key, &v, L->err);
    if (r <= 0) {
        return r;
    }
    if (v == -1 || v == (int64_t)UINT32_MAX) {
        *id = -1;
        return 0;
    }
    if (v < 0 || v >= L->t->n_vocab) {
        return cairn_fail(L->err, "metadata key %s = %lld is outside the vocabulary (%d tokens)",
                          key, (long long)v, L->t->n_vocab);
    }
    *id = (int32_t)v;
    return 0;
}

static int read_bool(loader *L, const char *name, bool *out) {
    char key[96];
    snprintf(key, sizeof(key), KEY_PREFIX "%s", name);
    return cairn_meta_bool(L->g, key, out, L->err) < 0 ? -1 : 0;
}

static void set_defaults(cairn_tokenizer *t) {
    t->bos = t->eos = t->eot = t->eom = t->unk = t->pad = t->sep = -1;
    if (t->kind == TOK_KIND_SPM) {
        t->bos = 1;
        t->eos = 2;
        t->unk = 0;
        t->add_bos = true;
        t->add_space_prefix = true;
    } else {
        /* llama.cpp's defaults for a BPE file without ids; kept so ids agree with it. */
        t->bos = 11;
        t->eos = 11;
    }
    int32_t *ids[] = {&t->bos, &t->eos, &t->unk};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(ids); i++) {
        if (*ids[i] >= t->n_vocab) {
            *ids[i] = -1;
        }
    }
}

static int read_specials(loader *L) {
    cairn_tokenizer *t = L->t;
    static const struct {
        const char *name;
        size_t offset;
    } keys[] = {
        {"bos_token_id", offsetof(cairn_tokenizer, bos)},
        {"eos_token_id", offsetof(cairn_tokenizer, eos)},
        {"eot_token_id", offsetof(cairn_tokenizer, eot)},
        {"eom_token_id", offsetof(cairn_tokenizer, eom)},
        {"unknown_token_id", offsetof(cairn_tokenizer, unk)},
        {"seperator_token_id", offsetof(cairn_tokenizer, sep)}, /* sic: the GGUF key name */
        {"padding_token_id", offsetof(cairn_tokenizer, pad)},
    };
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(keys); i++) {
        if (read_special(L, keys[i].name, (int32_t *)((char *)t + keys[i].offset)) != 0) {
            return -1;
        }
    }
    if (read_bool(L, "add_bos_token", &t->add_bos) != 0 ||
        read_bool(L, "add_eos_token", &t->add_eos) != 0 ||
        read_bool(L, "add_space_prefix", &t->add_space_prefix) != 0) {
        return -1;
    }
    return 0;
}

/* The first text of list that is a token, or -1. */
static int32_t first_present(const cairn_tokenizer *t, const char *const *list, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int32_t id = find_text(t, list[i]);
        if (id >= 0) {
            return id;
        }
    }
    return -1;
}

/* Marks end-of-generation tokens, finding eot/eom by text when the metadata has none, and
 * makes every such token a control token (so it is never rendered as text by default). */
static void derive_eog(cairn_tokenizer *t) {
    if (t->eot < 0 && (t->eot = first_present(t, k_eot_texts, CAIRN_ARRAY_LEN(k_eot_texts))) >= 0) {
        t->attr[t->eot] |= TOK_ATTR_CONTROL;
    }
    if (t->eom < 0 && (t->eom = find_text(t, "<|eom_id|>")) >= 0) {
        t->attr[t->eom] |= TOK_ATTR_CONTROL;
    }
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(k_eog_texts); i++) {
        int32_t id = find_text(t, k_eog_texts[i]);
        if (id >= 0) {
            t->attr[id] |= TOK_ATTR_EOG | TOK_ATTR_CONTROL;
        }
    }
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(k_always_rendered); i++) {
        int32_t id = find_text(t, k_always_rendered[i]);
        if (id >= 0) {
            t->attr[id] = TOK_ATTR_USER_DEFINED;
        }
    }
    int32_t ids[] = {t->eos, t->eot, t->eom};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(ids); i++) {
        if (ids[i] >= 0) {
            t->attr[ids[i]] |= TOK_ATTR_EOG;
        }
    }
    /* gpt-oss ends a message with <|end|> but a turn with <|return|>/<|call|>. */
    int32_t end = find_text(t, "<|end|>");
    if (end >= 0 && (t->attr[end] & TOK_ATTR_EOG) &&
        ((find_text(t, "<|return|>") >= 0 && find_text(t, "<|call|>") >= 0) ||
         (find_text(t, "<|calls|>") >= 0 && find_text(t, "<|flush|>") >= 0))) {
        t->attr[end] = TOK_ATTR_USER_DEFINED;
    }
}

typedef struct len_id {
    uint32_t len;
    int32_t id;
} len_id;

static int longest_first(const void *a, const void *b) {
    const len_id *x = a, *y = b;
    if (x->len != y->len) {
        return x->len > y->len ? -1 : 1;
    }
    return (x->id > y->id) - (x->id < y->id);
}

static int collect_specials(cairn_tokenizer *t, cairn_err *err) {
    const uint32_t mask = TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN;
    len_id *list = malloc((size_t)t->n_vocab * sizeof(*list));
    if (!list) {
        return cairn_fail(err, "out of memory");
    }
    int n = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        if (t->attr[i] & mask) {
            list[n++] = (len_id){t->text[i].len, i};
        }
    }
    qsort(list, (size_t)n, sizeof(*list), longest_first);
    t->special = malloc((size_t)(n ? n : 1) * sizeof(*t->special));
    if (!t->special) {
        free(list);
        return cairn_fail(err, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        t->special[i] = list[i].id;
    }
    t->n_special = n;
    free(list);
    return 0;
}

/* Phi-3's special tokens swallow the whitespace after them (llama.cpp keys this on the
 * model name, as the GGUF has no per-token strip flags). */
static void apply_name_rules(loader *L) {
    cairn_tokenizer *t = L->t;
    const char *name = NULL;
    if (cairn_meta_str(L->g, "general.name", &name, NULL) != 1) {
        return;
    }
    char lower[128];
    size_t n = 0;
    for (; name[n] && n + 1 < sizeof(lower); n++) {
        lower[n] = (char)tolower((unsigned char)name[n]);
    }
    lower[n] = '\0';
    if (!strstr(lower, "phi-3") && !strstr(lower, "phi3")) {
        return;
    }
    for (int i = 0; i < t->n_special; i++) {
        t->attr[t->special[i]] |= TOK_ATTR_RSTRIP;
    }
    int32_t id = find_text(t, "</s>");
    if (id >= 0) {
        t->attr[id] |= TOK_ATTR_RSTRIP;
    }
    const char *keep[] = {"<unk>", "<s>", "<|endoftext|>"};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(keep); i++) {
        id = find_text(t, keep[i]);
        if (id >= 0) {
            t->attr[id] &= ~(uint32_t)TOK_ATTR_RSTRIP;
        }
    }
}

static int read_model(loader *L, const char **pre) {
    cairn_tokenizer *t = L->t;
    const char *model = NULL;
    int r = cairn_meta_str(L->g, KEY_PREFIX "model", &model, L->err);
    if (r < 0) {
        return -1;
    }
    if (r == 0) {
        return cairn_fail(L->err, "metadata key " KEY_PREFIX "model is missing (no tokenizer)");
    }
    if (strcmp(model, "llama") == 0) {
        t->kind = TOK_KIND_SPM;
    } else if (strcmp(model, "gpt2") == 0) {
        t->kind = TOK_KIND_BPE;
    } else {
        return cairn_fail(L->err, "unsupported tokenizer model \"%s\" (supported: llama, gpt2)",
                          model);
    }
    *pre = NULL;
    return cairn_meta_str(L->g, KEY_PREFIX "pre", pre, L->err) < 0 ? -1 : 0;
}

static int build(loader *L) {
    cairn_tokenizer *t = L->t;
    const char *pre;
    if (read_model(L, &pre) != 0 || load_tokens(L) != 0) {
        return -1;
    }
    if (t->kind == TOK_KIND_BPE && load_merges(L) != 0) {
        return -1;
    }
    t->arena_len = L->arena.len;
    t->arena = cairn_buf_take(&L->arena);
    if (!t->arena) {
        return cairn_fail(L->err, "out of memory");
    }
    if (index_tokens(L) != 0) {
        return -1;
    }
    if (t->kind == TOK_KIND_BPE) {
        index_merges(t);
    }
    set_defaults(t);
    /* The pre-tokenizer may change add_bos; the file's own flags override it. */
    if (t->kind == TOK_KIND_BPE && tok_pretok_init(t, pre, L->err) != 0) {
        return -1;
    }
    if (read_specials(L) != 0) {
        return -1;
    }
    derive_eog(t);
    if (collect_specials(t, L->err) != 0) {
        return -1;
    }
    apply_name_rules(L);
    return tok_build_pieces(t, L->err);
}

int cairn_tokenizer_from_gguf(const struct gguf_context *g, cairn_tokenizer **out, cairn_err *err) {
    *out = NULL;
    if (!g) {
        return cairn_fail(err, "tokenizer: no GGUF metadata");
    }
    cairn_tokenizer *t = calloc(1, sizeof(*t));
    if (!t) {
        return cairn_fail(err, "out of memory");
    }
    loader L = {.g = g, .t = t, .err = err};
    int r = build(&L);
    cairn_buf_free(&L.arena);
    if (r != 0) {
        cairn_fail_prefix(err, "tokenizer");
        cairn_tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

int cairn_tokenizer_load_file(const char *gguf_path, cairn_tokenizer **out, cairn_err *err) {
    *out = NULL;
    struct gguf_init_params params = {.no_alloc = true, .ctx = NULL};
    struct gguf_context *g = gguf_init_from_file(gguf_path, params);
    if (!g) {
        return cairn_fail(err, "cannot read GGUF metadata from %s", gguf_path);
    }
    int r = cairn_tokenizer_from_gguf(g, out, err);
    gguf_free(g);
    if (r != 0) {
        return cairn_fail_prefix(err, "%s", gguf_path);
    }
    return 0;
}

void cairn_tokenizer_free(cairn_tokenizer *t) {
    if (!t) {
        return;
    }
    free(t->arena);
    free(t->text);
    free(t->score);
    free(t->attr);
    free(t->piece);
    free(t->pieces);
    tok_strtab_free(&t->by_text);
    free(t->merge);
    tok_strtab_free(&t->by_merge);
    free(t->special);
    tok_pretok_free(&t->pretok);
    free(t);
}

/* ---- accessors ---- */

static bool valid_id(const cairn_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab;
}

int cairn_tokenizer_n_vocab(const cairn_tokenizer *t) {
    return t->n_vocab;
}

int32_t cairn_tokenizer_bos(const cairn_tokenizer *t) {
    return t->bos;
}

int32_t cairn_tokenizer_eos(const cairn_tokenizer *t) {
    return t->eos;
}

bool cairn_tokenizer_is_eog(const cairn_tokenizer *t, int32_t id) {
    return valid_id(t, id) && (t->attr[id] & TOK_ATTR_EOG);
}

bool cairn_tokenizer_is_control(const cairn_tokenizer *t, int32_t id) {
    return valid_id(t, id) && (t->attr[id] & TOK_ATTR_CONTROL);
}

const char *cairn_tokenizer_token_text(const cairn_tokenizer *t, int32_t id) {
    return valid_id(t, id) ? tok_text(t, id) : NULL;
}

bool cairn_tokenizer_add_bos(const cairn_tokenizer *t) {
    return t->add_bos && t->bos >= 0;
}

bool cairn_tokenizer_add_eos(const cairn_tokenizer *t) {
    return t->add_eos && t->eos >= 0;
}

int32_t cairn_tokenizer_find(const cairn_tokenizer *t, const char *text, size_t len) {
    return tok_lookup(t, text, len);
}
