/* The Jinja lexer. Whitespace rules follow Hugging Face's apply_chat_template environment:
 * trim_blocks (a newline right after a block or comment tag is dropped), lstrip_blocks
 * (spaces and tabs before a block or comment tag at the start of a line are dropped),
 * "-" strips all whitespace on that side, "+" turns the trim/lstrip off for that side,
 * newlines are normalized to "\n" and one trailing newline is dropped. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jinja_internal.h"

typedef struct lexer {
    jctx *ctx;
    const char *s;
    size_t n, pos;
    int line;
    bool line_starting; /* the text that follows begins a line (for lstrip_blocks) */
    jtokens *out;
} lexer;

static jtok *push(lexer *lx, jtok_type t, int line, const char *s, size_t len) {
    jtokens *out = lx->out;
    if (out->n == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 256;
        jtok *v = jx_alloc(lx->ctx, cap * sizeof *v);
        if (out->n)
            memcpy(v, out->v, out->n * sizeof *v);
        out->v = v;
        out->cap = cap;
    }
    jtok *tk = &out->v[out->n++];
    memset(tk, 0, sizeof *tk);
    tk->t = t;
    tk->line = line;
    char *copy = jx_alloc(lx->ctx, len + 1);
    if (len)
        memcpy(copy, s, len);
    copy[len] = '\0';
    tk->s = copy;
    tk->len = len;
    return tk;
}

static void advance_to(lexer *lx, size_t to) {
    for (; lx->pos < to; lx->pos++)
        if (lx->s[lx->pos] == '\n')
            lx->line++;
}

static bool at(const lexer *lx, size_t pos, const char *lit) {
    size_t n = strlen(lit);
    return pos + n <= lx->n && memcmp(lx->s + pos, lit, n) == 0;
}

/* Start of the next "{{", "{%" or "{#" at or after pos, or n. */
static size_t find_tag(const lexer *lx, size_t pos) {
    for (size_t i = pos; i + 1 < lx->n; i++)
        if (lx->s[i] == '{' && (lx->s[i + 1] == '{' || lx->s[i + 1] == '%' || lx->s[i + 1] == '#'))
            return i;
    return lx->n;
}

static bool is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Emits the text in [pos, tag) after the whitespace control of the tag that follows it. */
static void emit_text(lexer *lx, size_t tag, bool tag_is_block) {
    size_t end = tag;
    char mod = tag + 2 < lx->n ? lx->s[tag + 2] : '\0';
    if (tag < lx->n && mod == '-') {
        while (end > lx->pos && is_ws(lx->s[end - 1]))
            end--;
    } else if (tag < lx->n && tag_is_block && mod != '+') {
        size_t line_start = end;
        while (line_start > lx->pos && lx->s[line_start - 1] != '\n')
            line_start--;
        /* A newline inside the text starts a line; otherwise it depends on the previous tag. */
        bool starts_line = line_start > lx->pos || lx->line_starting;
        bool blank = true;
        for (size_t i = line_start; i < end; i++)
            if (lx->s[i] != ' ' && lx->s[i] != '\t')
                blank = false;
        if (starts_line && blank)
            end = line_start;
    }
    if (end > lx->pos)
        push(lx, JT_TEXT, lx->line, lx->s + lx->pos, end - lx->pos);
    advance_to(lx, tag);
}

/* Applies the whitespace control of a tag's end, which ended just before lx->pos. */
static void after_tag(lexer *lx, char mod, bool tag_is_block) {
    if (mod == '-') {
        size_t p = lx->pos;
        while (p < lx->n && is_ws(lx->s[p]))
            p++;
        lx->line_starting = p > lx->pos && lx->s[p - 1] == '\n';
        advance_to(lx, p);
    } else if (tag_is_block && mod != '+' && lx->pos < lx->n && lx->s[lx->pos] == '\n') {
        advance_to(lx, lx->pos + 1);
        lx->line_starting = true;
    } else {
        lx->line_starting = false;
    }
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool read_hex(const char *s, size_t avail, int digits, uint32_t *out) {
    if ((size_t)digits > avail)
        return false;
    uint32_t v = 0;
    for (int i = 0; i < digits; i++) {
        int h = hex_value(s[i]);
        if (h < 0)
            return false;
        v = v * 16 + (uint32_t)h;
    }
    *out = v;
    return true;
}

/* A string literal with Python's escapes; lx->pos is at the opening quote. */
static void lex_string(lexer *lx) {
    char q = lx->s[lx->pos];
    int line = lx->line;
    size_t p = lx->pos + 1;
    jsb sb = {0};
    for (;;) {
        if (p >= lx->n)
            jx_fail(lx->ctx, line, "unterminated string literal");
        char c = lx->s[p];
        if (c == q)
            break;
        if (c != '\\' || p + 1 >= lx->n) {
            jsb_putc(lx->ctx, &sb, c);
            p++;
            continue;
        }
        char e = lx->s[p + 1];
        p += 2;
        uint32_t cp;
        int hex_digits = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
        switch (e) {
        case 'n': jsb_putc(lx->ctx, &sb, '\n'); break;
        case 't': jsb_putc(lx->ctx, &sb, '\t'); break;
        case 'r': jsb_putc(lx->ctx, &sb, '\r'); break;
        case 'b': jsb_putc(lx->ctx, &sb, '\b'); break;
        case 'f': jsb_putc(lx->ctx, &sb, '\f'); break;
        case 'v': jsb_putc(lx->ctx, &sb, '\v'); break;
        case 'a': jsb_putc(lx->ctx, &sb, '\a'); break;
        case '0': jsb_putc(lx->ctx, &sb, '\0'); break;
        case '\\':
        case '\'':
        case '"': jsb_putc(lx->ctx, &sb, e); break;
        case '\n': break; /* a backslash-newline continues the literal */
        default:
            if (hex_digits && read_hex(lx->s + p, lx->n - p, hex_digits, &cp) && cp <= 0x10ffff) {
                char buf[4];
                jsb_put(lx->ctx, &sb, buf, (size_t)cairn_utf8_encode(cp, buf));
                p += (size_t)hex_digits;
            } else {
                jsb_putc(lx->ctx, &sb, '\\');
                jsb_putc(lx->ctx, &sb, e);
            }
        }
    }
    push(lx, JT_STRING, line, sb.data ? sb.data : "", sb.len);
    advance_to(lx, p + 1);
}

static void lex_number(lexer *lx) {
    size_t p = lx->pos;
    bool is_float = false;
    while (p < lx->n && (isdigit((unsigned char)lx->s[p]) || lx->s[p] == '_'))
        p++;
    if (p + 1 < lx->n && lx->s[p] == '.' && isdigit((unsigned char)lx->s[p + 1])) {
        is_float = true;
        p++;
        while (p < lx->n && isdigit((unsigned char)lx->s[p]))
            p++;
    }
    if (p < lx->n && (lx->s[p] == 'e' || lx->s[p] == 'E')) {
        size_t q = p + 1;
        if (q < lx->n && (lx->s[q] == '+' || lx->s[q] == '-'))
            q++;
        if (q < lx->n && isdigit((unsigned char)lx->s[q])) {
            is_float = true;
            p = q;
            while (p < lx->n && isdigit((unsigned char)lx->s[p]))
                p++;
        }
    }
    char buf[64];
    size_t k = 0;
    for (size_t i = lx->pos; i < p && k + 1 < sizeof buf; i++)
        if (lx->s[i] != '_')
            buf[k++] = lx->s[i];
    buf[k] = '\0';
    if (p - lx->pos >= sizeof buf)
        jx_fail(lx->ctx, lx->line, "number literal too long");
    jtok *tk = push(lx, is_float ? JT_FLOAT : JT_INT, lx->line, buf, k);
    if (is_float) {
        tk->f = strtod(buf, NULL);
    } else {
        uint64_t v = 0;
        for (size_t i = 0; i < k; i++) {
            if (v > (UINT64_C(9223372036854775807) - (uint64_t)(buf[i] - '0')) / 10)
                jx_fail(lx->ctx, lx->line, "integer literal %s is too large", buf);
            v = v * 10 + (uint64_t)(buf[i] - '0');
        }
        tk->i = (int64_t)v;
    }
    advance_to(lx, p);
}

static const char *const two_char_ops[] = {"==", "!=", "<=", ">=", "//", "**"};

/* Tokens of one {{ }} or {% %} tag; lx->pos is just after the opening delimiter. */
static void lex_tag(lexer *lx, bool is_block, int open_line) {
    char open[JINJA_MAX_NESTING]; /* brackets still open: "}}" inside them is not the end */
    int depth = 0;
    for (;;) {
        while (lx->pos < lx->n && is_ws(lx->s[lx->pos]))
            advance_to(lx, lx->pos + 1);
        if (lx->pos >= lx->n)
            jx_fail(lx->ctx, open_line, "unclosed '%s' tag (missing '%s')", is_block ? "{%" : "{{",
                    is_block ? "%}" : "}}");
        const char *close = is_block ? "%}" : "}}";
        if (depth == 0) {
            char mod = lx->s[lx->pos];
            if ((mod == '-' || mod == '+') && at(lx, lx->pos + 1, close)) {
                push(lx, is_block ? JT_BLOCK_END : JT_VAR_END, lx->line, close, 2);
                advance_to(lx, lx->pos + 3);
                after_tag(lx, mod, is_block);
                return;
            }
            if (at(lx, lx->pos, close)) {
                push(lx, is_block ? JT_BLOCK_END : JT_VAR_END, lx->line, close, 2);
                advance_to(lx, lx->pos + 2);
                after_tag(lx, '\0', is_block);
                return;
            }
        }
        char c = lx->s[lx->pos];
        if (isalpha((unsigned char)c) || c == '_') {
            size_t p = lx->pos;
            while (p < lx->n && (isalnum((unsigned char)lx->s[p]) || lx->s[p] == '_'))
                p++;
            push(lx, JT_NAME, lx->line, lx->s + lx->pos, p - lx->pos);
            advance_to(lx, p);
            continue;
        }
        if (isdigit((unsigned char)c)) {
            lex_number(lx);
            continue;
        }
        if (c == '"' || c == '\'') {
            lex_string(lx);
            continue;
        }
        bool two = false;
        for (size_t i = 0; i < CAIRN_ARRAY_LEN(two_char_ops); i++)
            if (at(lx, lx->pos, two_char_ops[i]))
                two = true;
        if (two) {
            push(lx, JT_OP, lx->line, lx->s + lx->pos, 2);
            advance_to(lx, lx->pos + 2);
            continue;
        }
        if (!strchr("+-*/%~<>=()[]{}.,:|", c))
            jx_fail(lx->ctx, lx->line, "unexpected character '%c' in tag", c);
        if (c == '(' || c == '[' || c == '{') {
            if (depth == (int)sizeof open)
                jx_fail(lx->ctx, lx->line, "template nested deeper than %d levels",
                        JINJA_MAX_NESTING);
            open[depth++] = c;
        } else if (c == ')' || c == ']' || c == '}') {
            char want = depth == 0               ? '\0'
                        : open[depth - 1] == '(' ? ')'
                        : open[depth - 1] == '[' ? ']'
                                                 : '}';
            if (c != want) {
                if (want)
                    jx_fail(lx->ctx, lx->line, "unexpected '%c' (expected '%c')", c, want);
                jx_fail(lx->ctx, lx->line, "unexpected '%c'", c);
            }
            depth--;
        }
        push(lx, JT_OP, lx->line, lx->s + lx->pos, 1);
        advance_to(lx, lx->pos + 1);
    }
}

/* After "{% raw %}": everything up to "{% endraw %}" is text. */
static void lex_raw(lexer *lx, int open_line) {
    for (size_t p = lx->pos; p + 1 < lx->n; p++) {
        if (lx->s[p] != '{' || lx->s[p + 1] != '%')
            continue;
        size_t q = p + 2;
        if (q < lx->n && (lx->s[q] == '-' || lx->s[q] == '+'))
            q++;
        while (q < lx->n && is_ws(lx->s[q]))
            q++;
        if (!at(lx, q, "endraw"))
            continue;
        q += 6;
        while (q < lx->n && is_ws(lx->s[q]))
            q++;
        char mod = '\0';
        if (q < lx->n && (lx->s[q] == '-' || lx->s[q] == '+'))
            mod = lx->s[q++];
        if (!at(lx, q, "%}"))
            continue;
        emit_text(lx, p, true);
        advance_to(lx, q + 2);
        after_tag(lx, mod, true);
        return;
    }
    jx_fail(lx->ctx, open_line, "unclosed '{%% raw %%}' (missing '{%% endraw %%}')");
}

/* Newlines become "\n" and one trailing newline goes, as Jinja does before lexing. */
static char *normalize(jctx *ctx, const char *src, size_t *len_out) {
    size_t n = strlen(src);
    char *s = jx_alloc(ctx, n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i] == '\r') {
            s[k++] = '\n';
            if (i + 1 < n && src[i + 1] == '\n')
                i++;
        } else {
            s[k++] = src[i];
        }
    }
    if (k > 0 && s[k - 1] == '\n')
        k--;
    s[k] = '\0';
    *len_out = k;
    return s;
}

void jinja_lex(jctx *ctx, const char *src, jtokens *out) {
    lexer lx = {.ctx = ctx, .line = 1, .line_starting = true, .out = out};
    lx.s = normalize(ctx, src, &lx.n);
    while (lx.pos < lx.n) {
        size_t tag = find_tag(&lx, lx.pos);
        char kind = tag < lx.n ? lx.s[tag + 1] : '\0';
        emit_text(&lx, tag, kind == '%' || kind == '#');
        if (tag >= lx.n)
            break;
        int open_line = lx.line;
        size_t body = tag + 2;
        if (body < lx.n && (lx.s[body] == '-' || lx.s[body] == '+'))
            body++;
        if (kind == '#') {
            const char *end = strstr(lx.s + body, "#}");
            if (!end)
                jx_fail(ctx, open_line, "unclosed comment (missing '#}')");
            size_t e = (size_t)(end - lx.s);
            char mod = e > body && (lx.s[e - 1] == '-' || lx.s[e - 1] == '+') ? lx.s[e - 1] : '\0';
            advance_to(&lx, e + 2);
            after_tag(&lx, mod, true);
            continue;
        }
        bool is_block = kind == '%';
        size_t first = out->n;
        push(&lx, is_block ? JT_BLOCK_BEGIN : JT_VAR_BEGIN, open_line, lx.s + tag, 2);
        advance_to(&lx, body);
        lex_tag(&lx, is_block, open_line);
        if (is_block && out->n == first + 3 && out->v[first + 1].t == JT_NAME &&
            strcmp(out->v[first + 1].s, "raw") == 0) {
            out->n = first;
            lex_raw(&lx, open_line);
        }
    }
    push(&lx, JT_EOF, lx.line, "", 0);
}
