/* Tests of the tokenizer: llama.cpp's own test vectors for four vocabularies, known ids of
 * the shared models, the streaming detokenizer, and rejection of broken metadata. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gguf.h"
#include "platform/platform.h"
#include "tokenizer/tokenizer.h"
#include "util/util.h"

#define VOCAB_DIR CAIRN_SHARED_DIR "/vocab/"
#define MODEL_DIR CAIRN_SHARED_DIR "/models/"

static cairn_tokenizer *load(const char *path) {
    cairn_err err = {{0}};
    cairn_tokenizer *t = NULL;
    if (cairn_tokenizer_load_file(path, &t, &err) != 0) {
        print_error("loading %s: %s\n", path, err.msg);
        fail();
    }
    return t;
}

static void tokenize_ok(const cairn_tokenizer *t, const char *text, size_t len, bool add_special,
                        bool parse_special, int32_t **ids, size_t *n) {
    cairn_err err = {{0}};
    if (cairn_tokenize(t, text, len, add_special, parse_special, ids, n, &err) != 0) {
        print_error("tokenize: %s\n", err.msg);
        fail();
    }
}

static char *detokenize_ok(const cairn_tokenizer *t, const int32_t *ids, size_t n,
                           bool render_special) {
    cairn_err err = {{0}};
    char *text = NULL;
    if (cairn_detokenize(t, ids, n, render_special, &text, &err) != 0) {
        print_error("detokenize: %s\n", err.msg);
        fail();
    }
    return text;
}

static void print_ids(const char *label, const int32_t *ids, size_t n) {
    cairn_buf b = {0};
    for (size_t i = 0; i < n; i++) {
        cairn_buf_printf(&b, " %d", ids[i]);
    }
    print_message("    %s:%s\n", label, b.data ? b.data : "");
    cairn_buf_free(&b);
}

/* ---- 1. llama.cpp's vocabulary test vectors ---- */

/* Inputs are separated by "\n__ggml_vocab_test__\n" (the newline before the marker is not
 * part of the input), the way llama.cpp's test-tokenizer-0 reads them. */
static size_t split_inputs(char *raw, size_t len, char ***out, size_t **lens) {
    static const char sep[] = "\n__ggml_vocab_test__\n";
    const size_t sep_len = sizeof(sep) - 1;
    size_t n = 0, cap = 64;
    *out = malloc(cap * sizeof(**out));
    *lens = malloc(cap * sizeof(**lens));
    size_t pos = 0;
    while (pos < len) {
        char *hit = NULL;
        for (size_t i = pos; i + sep_len <= len; i++) {
            if (memcmp(raw + i, sep, sep_len) == 0) {
                hit = raw + i;
                break;
            }
        }
        size_t end = hit ? (size_t)(hit - raw) : len;
        if (n == cap) {
            cap *= 2;
            *out = realloc(*out, cap * sizeof(**out));
            *lens = realloc(*lens, cap * sizeof(**lens));
        }
        (*out)[n] = raw + pos;
        (*lens)[n] = end - pos;
        n++;
        if (!hit) {
            break;
        }
        pos = end + sep_len;
    }
    return n;
}

static size_t parse_ids(const char *line, int32_t *ids, size_t cap) {
    size_t n = 0;
    char *end;
    for (const char *p = line; n < cap;) {
        long v = strtol(p, &end, 10);
        if (end == p) {
            break;
        }
        ids[n++] = (int32_t)v;
        p = end;
    }
    return n;
}

static void run_vectors(const char *name) {
    char path[512];
    snprintf(path, sizeof(path), VOCAB_DIR "%s", name);
    cairn_tokenizer *t = load(path);
    char inp_path[520], out_path[520];
    snprintf(inp_path, sizeof(inp_path), "%s.inp", path);
    snprintf(out_path, sizeof(out_path), "%s.out", path);
    cairn_err err = {{0}};
    size_t inp_len, out_len;
    char *inp = cairn_read_file(inp_path, &inp_len, &err);
    char *outs = cairn_read_file(out_path, &out_len, &err);
    assert_non_null(inp);
    assert_non_null(outs);

    char **inputs;
    size_t *lens;
    size_t n_inputs = split_inputs(inp, inp_len, &inputs, &lens);
    int failures = 0;
    size_t n_lines = 0;
    for (char *line = outs; line && *line; n_lines++) {
        char *nl = strchr(line, '\n');
        if (nl) {
            *nl = '\0';
        }
        if (n_lines >= n_inputs) {
            break;
        }
        int32_t want[4096];
        size_t n_want = parse_ids(line, want, CAIRN_ARRAY_LEN(want));
        int32_t *got;
        size_t n_got;
        const char *text = inputs[n_lines];
        size_t text_len = lens[n_lines];
        tokenize_ok(t, text, text_len, false, false, &got, &n_got);
        bool same = n_got == n_want && memcmp(got, want, n_got * sizeof(*got)) == 0;
        char *back = detokenize_ok(t, want, n_want, true);
        bool round_trip = strlen(back) == text_len && memcmp(back, text, text_len) == 0;
        if (!same || !round_trip) {
            failures++;
            print_message("%s vector %zu: input \"%.*s\"\n", name, n_lines, (int)text_len, text);
            if (!same) {
                print_ids("expected", want, n_want);
                print_ids("got     ", got, n_got);
            }
            if (!round_trip) {
                print_message("    decoded: \"%s\"\n", back);
            }
        }
        free(back);
        free(got);
        line = nl ? nl + 1 : NULL;
    }
    assert_int_equal(n_lines, n_inputs);
    assert_true(n_inputs > 10);
    free(inputs);
    free(lens);
    free(inp);
    free(outs);
    cairn_tokenizer_free(t);
    assert_int_equal(failures, 0);
}

static void test_vectors_llama_spm(void **state) {
    (void)state;
    run_vectors("ggml-vocab-llama-spm.gguf");
}

static void test_vectors_phi3(void **state) {
    (void)state;
    run_vectors("ggml-vocab-phi-3.gguf");
}

static void test_vectors_gpt2(void **state) {
    (void)state;
    double start = cairn_now_seconds();
    cairn_tokenizer *t = load(VOCAB_DIR "ggml-vocab-gpt-2.gguf");
    print_message("gpt-2 tokenizer (%d tokens) loaded in %.3f s\n", cairn_tokenizer_n_vocab(t),
                  cairn_now_seconds() - start);
    cairn_tokenizer_free(t);
    run_vectors("ggml-vocab-gpt-2.gguf");
}

static void test_vectors_mpt(void **state) {
    (void)state;
    run_vectors("ggml-vocab-mpt.gguf");
}

static void round_trip(const cairn_tokenizer *t, const char *text, bool parse_special) {
    int32_t *ids;
    size_t n;
    tokenize_ok(t, text, strlen(text), false, parse_special, &ids, &n);
    char *back = detokenize_ok(t, ids, n, true);
    if (strcmp(back, text) != 0) {
        print_error("round trip of \"%s\" gave \"%s\"\n", text, back);
    }
    assert_string_equal(back, text);
    free(back);
    free(ids);
}

static void test_gpt_neox_round_trip(void **state) {
    (void)state;
    cairn_tokenizer *t = load(VOCAB_DIR "ggml-vocab-gpt-neox.gguf");
    assert_int_equal(cairn_tokenizer_n_vocab(t), 50432);
    assert_false(cairn_tokenizer_add_bos(t));
    const char *texts[] = {
        "Hello world",
        "  leading spaces\tand\ttabs\n\nnew lines",
        "numbers 1234567 and 3.14",
        "Grüße, 日本語, 🦙 emoji",
        "'s 're 've I'm we'll",
        "",
    };
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(texts); i++) {
        round_trip(t, texts[i], false);
    }
    /* Text that is not valid UTF-8 still tokenizes, as U+FFFD. */
    int32_t *ids;
    size_t n;
    tokenize_ok(t,
                "a\xff"
                "b",
                3, false, false, &ids, &n);
    char *back = detokenize_ok(t, ids, n, false);
    assert_string_equal(back, "a\xef\xbf\xbd"
                              "b");
    free(back);
    free(ids);
    cairn_tokenizer_free(t);
}

/* ---- 2. stories260K ---- */

static void test_stories260k(void **state) {
    (void)state;
    cairn_tokenizer *t = load(MODEL_DIR "stories260K.gguf");
    assert_int_equal(cairn_tokenizer_n_vocab(t), 512);
    assert_int_equal(cairn_tokenizer_bos(t), 1);
    assert_int_equal(cairn_tokenizer_eos(t), 2);
    assert_true(cairn_tokenizer_add_bos(t));
    assert_true(cairn_tokenizer_is_eog(t, 2));
    assert_false(cairn_tokenizer_is_eog(t, 403));
    int32_t *ids;
    size_t n;
    tokenize_ok(t, "Once upon a time", 16, true, false, &ids, &n);
    const int32_t want[] = {1, 403, 407, 261, 378};
    print_ids("got", ids, n);
    assert_int_equal(n, CAIRN_ARRAY_LEN(want));
    assert_memory_equal(ids, want, sizeof(want));
    /* Like llama.cpp, the BOS takes the leading-space removal, so the space stays. */
    char *text = detokenize_ok(t, ids, n, false);
    assert_string_equal(text, " Once upon a time");
    free(text);
    text = detokenize_ok(t, ids + 1, n - 1, false);
    assert_string_equal(text, "Once upon a time");
    free(text);
    free(ids);
    cairn_tokenizer_free(t);
}

/* ---- 3. the real Llama-2 tokenizer ---- */

static bool contains(const int32_t *ids, size_t n, int32_t id) {
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == id) {
            return true;
        }
    }
    return false;
}

static void test_llama2_tokenizer(void **state) {
    (void)state;
    cairn_tokenizer *t = load(MODEL_DIR "llama-2-tiny-random.gguf");
    assert_int_equal(cairn_tokenizer_n_vocab(t), 32000);
    assert_string_equal(cairn_tokenizer_token_text(t, 1), "<s>");
    assert_true(cairn_tokenizer_is_control(t, 1));
    assert_null(cairn_tokenizer_token_text(t, 32000));

    const char *texts[] = {
        "Hello world",
        "The quick brown fox jumps over the lazy dog.",
        "emoji 🦙🚀 and ✅",
        "  two leading spaces",
        "tabs\tand\nnewlines\n",
        "日本語のテキスト",
        "<s> as text </s>",
    };
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(texts); i++) {
        round_trip(t, texts[i], false);
    }

    /* 🦙 has no token: it falls back to its four bytes, "<0xF0>" ... (byte b is id b + 3). */
    int32_t *ids;
    size_t n;
    tokenize_ok(t, "🦙", strlen("🦙"), false, false, &ids, &n);
    print_ids("llama emoji", ids, n);
    assert_int_equal(n, 5);
    assert_string_equal(cairn_tokenizer_token_text(t, ids[0]), "\xe2\x96\x81");
    const int32_t bytes[] = {0xF0 + 3, 0x9F + 3, 0xA6 + 3, 0x99 + 3};
    assert_memory_equal(ids + 1, bytes, sizeof(bytes));
    char piece[8];
    assert_int_equal(cairn_token_to_piece(t, 0xF0 + 3, false, piece, sizeof(piece)), 1);
    assert_int_equal((unsigned char)piece[0], 0xF0);
    free(ids);

    /* Special tokens: recognised only with parse_special. */
    const char *special = "<s>Hi</s>";
    tokenize_ok(t, special, strlen(special), false, true, &ids, &n);
    print_ids("parse_special", ids, n);
    assert_true(n >= 3);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[n - 1], 2);
    char *text = detokenize_ok(t, ids, n, false);
    assert_string_equal(text, " Hi");
    free(text);
    text = detokenize_ok(t, ids, n, true);
    assert_string_equal(text, "<s> Hi</s>");
    free(text);
    free(ids);

    tokenize_ok(t, special, strlen(special), false, false, &ids, &n);
    assert_false(contains(ids, n, 1));
    assert_false(contains(ids, n, 2));
    text = detokenize_ok(t, ids, n, false);
    assert_string_equal(text, special);
    free(text);
    free(ids);

    /* add_special: BOS first, no EOS (add_eos is off for Llama 2). */
    tokenize_ok(t, "Hi", 2, true, false, &ids, &n);
    assert_int_equal(ids[0], 1);
    assert_int_not_equal(ids[n - 1], 2);
    free(ids);

    /* token_to_piece reports the room it needs. */
    int32_t hello = cairn_tokenizer_find(t, "\xe2\x96\x81Hello", 8);
    assert_true(hello > 0);
    assert_int_equal(cairn_token_to_piece(t, hello, false, piece, 3), -6);
    assert_int_equal(cairn_token_to_piece(t, hello, false, piece, sizeof(piece)), 6);
    assert_memory_equal(piece, " Hello", 6);
    assert_int_equal(cairn_token_to_piece(t, 1, false, piece, sizeof(piece)), 0);
    assert_int_equal(cairn_token_to_piece(t, 1, true, piece, sizeof(piece)), 3);
    cairn_tokenizer_free(t);
}

/* ---- 4. streaming detokenizer ---- */

static bool valid_utf8(const char *s, size_t len) {
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        size_t n = c < 0x80             ? 1
                   : (c & 0xE0) == 0xC0 ? 2
                   : (c & 0xF0) == 0xE0 ? 3
                   : (c & 0xF8) == 0xF0 ? 4
                                        : 0;
        if (n == 0 || i + n > len) {
            return false;
        }
        for (size_t k = 1; k < n; k++) {
            if (((unsigned char)s[i + k] & 0xC0) != 0x80) {
                return false;
            }
        }
        i += n;
    }
    return true;
}

static void test_stream_detokenizer(void **state) {
    (void)state;
    cairn_tokenizer *t = load(MODEL_DIR "llama-2-tiny-random.gguf");
    const char *text = "Grüße 🦙 aus 日本 ✅🫠 ok";
    int32_t *ids;
    size_t n;
    tokenize_ok(t, text, strlen(text), false, false, &ids, &n);
    char *full = detokenize_ok(t, ids, n, false);

    cairn_detok_stream s;
    cairn_detok_stream_init(&s, t, false);
    cairn_buf all = {0};
    int held_back = 0;
    cairn_err err = {{0}};
    for (size_t i = 0; i < n; i++) {
        cairn_buf chunk = {0};
        assert_int_equal(cairn_detok_stream_push(&s, ids[i], &chunk, &err), 0);
        assert_true(valid_utf8(chunk.data, chunk.len));
        if (chunk.len == 0 && cairn_tokenizer_token_text(t, ids[i])[0] == '<' && i > 0) {
            held_back++;
        }
        cairn_buf_append(&all, chunk.data, chunk.len);
        cairn_buf_free(&chunk);
    }
    assert_int_equal(cairn_detok_stream_flush(&s, &all), 0);
    cairn_detok_stream_free(&s);
    assert_true(held_back >= 3); /* 🦙 and 🫠 arrive as byte tokens */
    assert_non_null(all.data);
    assert_string_equal(all.data, full);
    assert_string_equal(full, text);
    cairn_buf_free(&all);
    free(full);

    /* A character cut off at the end comes out of flush as replacement characters. */
    cairn_detok_stream_init(&s, t, false);
    cairn_buf out = {0};
    assert_int_equal(cairn_detok_stream_push(&s, 0xF0 + 3, &out, &err), 0);
    assert_int_equal(cairn_detok_stream_push(&s, 0x9F + 3, &out, &err), 0);
    assert_int_equal(out.len, 0);
    assert_int_equal(cairn_detok_stream_flush(&s, &out), 0);
    assert_string_equal(out.data, "\xef\xbf\xbd\xef\xbf\xbd");
    assert_int_equal(cairn_detok_stream_push(&s, 40000, &out, &err), -1);
    print_message("bad id: %s\n", err.msg);
    cairn_detok_stream_free(&s);
    cairn_buf_free(&out);
    free(ids);
    cairn_tokenizer_free(t);
}

static uint32_t next_random(uint32_t *seed) {
    *seed = *seed * 1664525u + 1013904223u;
    return *seed >> 8;
}

/* Random valid UTF-8 of up to cap-1 bytes: ASCII, and 2-, 3- and 4-byte characters. */
static size_t random_utf8(uint32_t *seed, char *out, size_t cap) {
    static const uint32_t k_limit[] = {0x80, 0x800, 0x10000, 0x110000};
    size_t len = 0;
    size_t n_chars = 1 + next_random(seed) % 24;
    for (size_t i = 0; i < n_chars && len + 4 < cap; i++) {
        uint32_t cp = 1 + next_random(seed) % (k_limit[next_random(seed) % 4] - 1);
        if ((cp >= 0xD800 && cp <= 0xDFFF) || cp == 0x2581) {
            cp = ' '; /* no surrogates; "▁" would come back as SentencePiece's space */
        }
        len += (size_t)cairn_utf8_encode(cp, out + len);
    }
    out[len] = '\0';
    return len;
}

/* Random text round-trips exactly through both kinds of tokenizer; random bytes (invalid
 * UTF-8) tokenize without trouble and decode to valid UTF-8 through byte-level BPE. */
static void test_random_text(void **state) {
    (void)state;
    cairn_tokenizer *spm = load(MODEL_DIR "llama-2-tiny-random.gguf");
    cairn_tokenizer *bpe = load(VOCAB_DIR "ggml-vocab-gpt-2.gguf");
    uint32_t seed = 12345;
    for (int round = 0; round < 300; round++) {
        char text[128];
        random_utf8(&seed, text, sizeof(text));
        round_trip(spm, text, round % 2 == 0);
        round_trip(bpe, text, round % 2 == 0);

        size_t len = 1 + (size_t)round % 60;
        for (size_t i = 0; i < len; i++) {
            text[i] = (char)next_random(&seed);
        }
        int32_t *ids;
        size_t n;
        tokenize_ok(spm, text, len, true, true, &ids, &n);
        free(ids);
        tokenize_ok(bpe, text, len, false, false, &ids, &n);
        char *back = detokenize_ok(bpe, ids, n, true);
        assert_true(valid_utf8(back, strlen(back)));
        free(back);
        free(ids);
    }
    cairn_tokenizer_free(spm);
    cairn_tokenizer_free(bpe);
}

/* ---- 5. broken metadata ---- */

static const char *k_tokens[] = {"<unk>",
                                 "<s>",
                                 "</s>",
                                 "\xe2\x96\x81",
                                 "a",
                                 "b",
                                 "\xe2\x96\x81"
                                 "a",
                                 "ab"};
static const float k_scores[] = {0, 0, 0, -1, -2, -3, -0.5f, -0.25f};
static const int32_t k_types[] = {2, 3, 3, 1, 1, 1, 1, 1};

/* A small valid SentencePiece vocabulary; each case below breaks one thing. */
static struct gguf_context *spm_vocab(void) {
    struct gguf_context *g = gguf_init_empty();
    gguf_set_val_str(g, "tokenizer.ggml.model", "llama");
    gguf_set_arr_str(g, "tokenizer.ggml.tokens", k_tokens, CAIRN_ARRAY_LEN(k_tokens));
    gguf_set_arr_data(g, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, k_scores,
                      CAIRN_ARRAY_LEN(k_scores));
    gguf_set_arr_data(g, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, k_types,
                      CAIRN_ARRAY_LEN(k_types));
    gguf_set_val_u32(g, "tokenizer.ggml.bos_token_id", 1);
    gguf_set_val_u32(g, "tokenizer.ggml.eos_token_id", 2);
    return g;
}

/* Writes g to a file, loads it, and returns the load's result (the error in err). */
static int load_written(struct gguf_context *g, cairn_tokenizer **t, cairn_err *err) {
    const char *path = CAIRN_BINARY_DIR "/test_tokenizer_tmp.gguf";
    assert_true(gguf_write_to_file(g, path, true));
    gguf_free(g);
    int r = cairn_tokenizer_load_file(path, t, err);
    remove(path);
    return r;
}

static void expect_error(struct gguf_context *g, const char *needle) {
    cairn_tokenizer *t = (cairn_tokenizer *)1;
    cairn_err err = {{0}};
    assert_int_equal(load_written(g, &t, &err), -1);
    assert_null(t);
    print_message("    rejected: %s\n", err.msg);
    if (!strstr(err.msg, needle)) {
        print_error("error \"%s\" does not mention \"%s\"\n", err.msg, needle);
        fail();
    }
}

static void test_valid_small_vocab(void **state) {
    (void)state;
    cairn_tokenizer *t = NULL;
    cairn_err err = {{0}};
    if (load_written(spm_vocab(), &t, &err) != 0) {
        print_error("%s\n", err.msg);
        fail();
    }
    int32_t *ids;
    size_t n;
    tokenize_ok(t, "ab a", 4, true, false, &ids, &n);
    /* "▁ab▁a": "ab" scores best and is merged first, which leaves "▁" alone; the second
     * "▁a" then merges: <s> ▁ ab ▁a. */
    const int32_t want[] = {1, 3, 7, 6};
    print_ids("small vocab", ids, n);
    assert_int_equal(n, CAIRN_ARRAY_LEN(want));
    assert_memory_equal(ids, want, sizeof(want));
    free(ids);
    /* A character with neither a token nor a byte token becomes <unk>. */
    tokenize_ok(t, "c", 1, false, false, &ids, &n);
    assert_int_equal(n, 2);
    assert_int_equal(ids[1], 0);
    free(ids);
    cairn_tokenizer_free(t);
}

static void test_bad_metadata(void **state) {
    (void)state;
    struct gguf_context *g;

    g = gguf_init_empty();
    gguf_set_val_str(g, "tokenizer.ggml.model", "llama");
    expect_error(g, "tokenizer.ggml.tokens");

    g = spm_vocab();
    gguf_set_arr_data(g, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, k_scores, 3);
    expect_error(g, "tokenizer.ggml.scores");

    g = spm_vocab();
    gguf_set_arr_data(g, "tokenizer.ggml.scores", GGUF_TYPE_UINT8, "abcdefgh", 8);
    expect_error(g, "tokenizer.ggml.scores");

    g = spm_vocab();
    gguf_set_arr_data(g, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, k_types, 2);
    expect_error(g, "tokenizer.ggml.token_type");

    g = spm_vocab();
    gguf_set_arr_data(g, "tokenizer.ggml.tokens", GGUF_TYPE_INT32, k_types, 8);
    expect_error(g, "tokenizer.ggml.tokens");

    g = spm_vocab();
    gguf_set_val_u32(g, "tokenizer.ggml.model", 7);
    expect_error(g, "tokenizer.ggml.model");

    g = spm_vocab();
    gguf_set_val_str(g, "tokenizer.ggml.add_bos_token", "yes");
    expect_error(g, "add_bos_token");

    g = spm_vocab();
    gguf_set_val_u32(g, "tokenizer.ggml.bos_token_id", 8);
    expect_error(g, "bos_token_id");

    g = spm_vocab();
    gguf_set_val_i32(g, "tokenizer.ggml.eos_token_id", -5);
    expect_error(g, "eos_token_id");

    g = spm_vocab();
    gguf_set_val_str(g, "tokenizer.ggml.eos_token_id", "2");
    expect_error(g, "eos_token_id");

    g = spm_vocab();
    gguf_set_val_str(g, "tokenizer.ggml.model", "bert");
    expect_error(g, "bert");

    g = spm_vocab();
    gguf_remove_key(g, "tokenizer.ggml.model");
    expect_error(g, "tokenizer.ggml.model");

    g = spm_vocab();
    gguf_set_val_str(g, "tokenizer.ggml.model", "gpt2");
    expect_error(g, "tokenizer.ggml.merges");

    const char *dup[] = {"a", "b", "a"};
    g = spm_vocab();
    gguf_set_arr_str(g, "tokenizer.ggml.tokens", dup, 3);
    gguf_remove_key(g, "tokenizer.ggml.scores");
    gguf_remove_key(g, "tokenizer.ggml.token_type");
    gguf_set_val_u32(g, "tokenizer.ggml.bos_token_id", 0);
    gguf_set_val_u32(g, "tokenizer.ggml.eos_token_id", 1);
    expect_error(g, "same text");

    cairn_tokenizer *t = (cairn_tokenizer *)1;
    cairn_err err = {{0}};
    assert_int_equal(cairn_tokenizer_load_file(CAIRN_BINARY_DIR "/no-such-file.gguf", &t, &err),
                     -1);
    assert_null(t);
}

/* A token's bytes as JSON text: valid characters pass, each stray byte (half a character,
 * an overlong form, a surrogate) becomes U+FFFD, control characters stay. */
static void test_lossy_utf8(void **state) {
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain \n\t", "plain \n\t"},
        {"caf\xc3\xa9 \xe2\x82\xac", "caf\xc3\xa9 \xe2\x82\xac"},
        {"\xe2\x82", "\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"a\xff"
         "b",
         "a\xef\xbf\xbd"
         "b"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cairn_buf b = {0};
        assert_int_equal(cairn_utf8_append_lossy(&b, cases[i].in, strlen(cases[i].in)), 0);
        assert_int_equal(cairn_buf_putc(&b, '\0'), 0);
        assert_string_equal(b.data, cases[i].out);
        cairn_buf_free(&b);
    }
    assert_int_equal(cairn_utf8_count("caf\xc3\xa9 \xe2\x82\xac\xf0\x9f\x98\x80"), 7);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_llama_spm),   cmocka_unit_test(test_vectors_phi3),
        cmocka_unit_test(test_vectors_gpt2),        cmocka_unit_test(test_vectors_mpt),
        cmocka_unit_test(test_gpt_neox_round_trip), cmocka_unit_test(test_stories260k),
        cmocka_unit_test(test_llama2_tokenizer),    cmocka_unit_test(test_stream_detokenizer),
        cmocka_unit_test(test_lossy_utf8),          cmocka_unit_test(test_random_text),
        cmocka_unit_test(test_valid_small_vocab),   cmocka_unit_test(test_bad_metadata),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
