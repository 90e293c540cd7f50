/* Values of the Jinja interpreter: the arena they live in, conversion from cJSON, and the
 * Python semantics templates rely on (truthiness, equality, ordering, str(), json.dumps). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jinja_internal.h"

struct jarena_block {
    jarena_block *next;
    size_t used, cap;
    max_align_t data[];
};

#define JARENA_BLOCK_SIZE ((size_t)64 << 10)

void jarena_free(jarena *a) {
    jarena_block *b = a->head;
    while (b) {
        jarena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->total = 0;
}

_Noreturn void jx_fail(jctx *ctx, int line, const char *fmt, ...) {
    char msg[sizeof(((cairn_err *)0)->msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0)
        cairn_fail(ctx->err, "template line %d: %s", line, msg);
    else
        cairn_fail(ctx->err, "%s", msg);
    longjmp(ctx->on_error, 1);
}

void *jx_alloc(jctx *ctx, size_t size) {
    const size_t align = sizeof(max_align_t);
    size = (size + align - 1) / align * align;
    if (size == 0)
        size = align;
    jarena_block *b = ctx->arena.head;
    if (!b || b->cap - b->used < size) {
        size_t cap = size > JARENA_BLOCK_SIZE / 4 ? size : JARENA_BLOCK_SIZE;
        if (size > JINJA_MAX_MEMORY || ctx->arena.total + cap > JINJA_MAX_MEMORY)
            jx_fail(ctx, 0, "template rendering needs more than %zu MiB of memory",
                    JINJA_MAX_MEMORY >> 20);
        jarena_block *nb = malloc(sizeof *nb + cap);
        if (!nb)
            jx_fail(ctx, 0, "out of memory rendering the template");
        nb->used = 0;
        nb->cap = cap;
        ctx->arena.total += cap;
        if (b && cap != JARENA_BLOCK_SIZE) {
            /* A big one-off block goes behind the current one so its free room stays usable. */
            nb->next = b->next;
            b->next = nb;
            nb->used = size;
            return nb->data;
        }
        nb->next = b;
        ctx->arena.head = nb;
        b = nb;
    }
    void *p = (char *)b->data + b->used;
    b->used += size;
    return p;
}

/* ---- string builder ---- */

static void jsb_grow(jctx *ctx, jsb *sb, size_t extra) {
    if (sb->cap - sb->len > extra)
        return;
    if (extra > JINJA_MAX_STRING || sb->len + extra > JINJA_MAX_STRING + JINJA_MAX_OUTPUT)
        jx_fail(ctx, 0, "template produced a string longer than %zu MiB", JINJA_MAX_STRING >> 20);
    size_t cap = sb->cap ? sb->cap * 2 : 64;
    while (cap - sb->len <= extra)
        cap *= 2;
    char *nd = jx_alloc(ctx, cap);
    if (sb->len)
        memcpy(nd, sb->data, sb->len);
    sb->data = nd;
    sb->cap = cap;
}

void jsb_put(jctx *ctx, jsb *sb, const char *s, size_t n) {
    jsb_grow(ctx, sb, n);
    if (n)
        memcpy(sb->data + sb->len, s, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
}

void jsb_puts(jctx *ctx, jsb *sb, const char *s) {
    jsb_put(ctx, sb, s, strlen(s));
}

void jsb_putc(jctx *ctx, jsb *sb, char c) {
    jsb_put(ctx, sb, &c, 1);
}

void jsb_printf(jctx *ctx, jsb *sb, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp)
        jx_fail(ctx, 0, "internal error: formatted value too long");
    jsb_put(ctx, sb, tmp, (size_t)n);
}

jv jsb_value(jctx *ctx, const jsb *sb) {
    return jv_strn(ctx, sb->data ? sb->data : "", sb->len);
}

/* ---- constructors ---- */

jv jv_undef(const char *name) {
    jv v = {.t = JV_UNDEF};
    v.u.undef_name = name;
    return v;
}
jv jv_none(void) {
    return (jv){.t = JV_NONE};
}
jv jv_bool(bool b) {
    jv v = {.t = JV_BOOL};
    v.u.b = b;
    return v;
}
jv jv_int(int64_t i) {
    jv v = {.t = JV_INT};
    v.u.i = i;
    return v;
}
jv jv_float(double f) {
    jv v = {.t = JV_FLOAT};
    v.u.f = f;
    return v;
}

jv jv_strn(jctx *ctx, const char *s, size_t n) {
    if (n > JINJA_MAX_STRING)
        jx_fail(ctx, 0, "template produced a string longer than %zu MiB", JINJA_MAX_STRING >> 20);
    jstr *js = jx_alloc(ctx, sizeof *js + n + 1);
    js->len = n;
    if (n)
        memcpy(js->data, s, n);
    js->data[n] = '\0';
    jv v = {.t = JV_STR};
    v.u.s = js;
    return v;
}

jv jv_cstr(jctx *ctx, const char *s) {
    return jv_strn(ctx, s, strlen(s));
}

jv jv_list(jctx *ctx, size_t cap) {
    jlist *l = jx_alloc(ctx, sizeof *l);
    l->len = 0;
    l->cap = cap;
    l->is_tuple = false;
    l->items = cap ? jx_alloc(ctx, cap * sizeof(jv)) : NULL;
    jv v = {.t = JV_LIST};
    v.u.l = l;
    return v;
}

jv jv_dict(jctx *ctx, size_t cap) {
    jdict *d = jx_alloc(ctx, sizeof *d);
    d->len = 0;
    d->cap = cap;
    d->is_namespace = false;
    d->keys = cap ? jx_alloc(ctx, cap * sizeof(jv)) : NULL;
    d->vals = cap ? jx_alloc(ctx, cap * sizeof(jv)) : NULL;
    jv v = {.t = JV_DICT};
    v.u.d = d;
    return v;
}

void jlist_push(jctx *ctx, jlist *l, jv v) {
    if (l->len == l->cap) {
        if (l->len >= JINJA_MAX_LIST)
            jx_fail(ctx, 0, "template built a list longer than %u elements", JINJA_MAX_LIST);
        size_t cap = l->cap ? l->cap * 2 : 8;
        jv *items = jx_alloc(ctx, cap * sizeof(jv));
        if (l->len)
            memcpy(items, l->items, l->len * sizeof(jv));
        l->items = items;
        l->cap = cap;
    }
    l->items[l->len++] = v;
}

static bool key_equal(jv a, jv b) {
    if (a.t == JV_STR && b.t == JV_STR)
        return a.u.s->len == b.u.s->len && memcmp(a.u.s->data, b.u.s->data, a.u.s->len) == 0;
    if (jv_is_number(a) && jv_is_number(b))
        return jv_as_double(a) == jv_as_double(b);
    return a.t == b.t && (a.t == JV_NONE);
}

static long dict_find(const jdict *d, jv key) {
    for (size_t i = 0; i < d->len; i++)
        if (key_equal(d->keys[i], key))
            return (long)i;
    return -1;
}

bool jdict_get(const jdict *d, jv key, jv *out) {
    long i = dict_find(d, key);
    if (i < 0)
        return false;
    *out = d->vals[i];
    return true;
}

bool jdict_get_cstr(const jdict *d, const char *key, jv *out) {
    size_t n = strlen(key);
    for (size_t i = 0; i < d->len; i++) {
        jv k = d->keys[i];
        if (k.t == JV_STR && k.u.s->len == n && memcmp(k.u.s->data, key, n) == 0) {
            *out = d->vals[i];
            return true;
        }
    }
    return false;
}

void jdict_set(jctx *ctx, jdict *d, jv key, jv val) {
    long i = dict_find(d, key);
    if (i >= 0) {
        /* a key was found, so the arrays hold at least i + 1 entries */
        d->vals[i] = val; // NOLINT(clang-analyzer-core.NullDereference)
        return;
    }
    if (d->len == d->cap) {
        if (d->len >= JINJA_MAX_LIST)
            jx_fail(ctx, 0, "template built a mapping larger than %u entries", JINJA_MAX_LIST);
        size_t cap = d->cap ? d->cap * 2 : 8;
        jv *keys = jx_alloc(ctx, cap * sizeof(jv));
        jv *vals = jx_alloc(ctx, cap * sizeof(jv));
        if (d->len) {
            memcpy(keys, d->keys, d->len * sizeof(jv));
            memcpy(vals, d->vals, d->len * sizeof(jv));
        }
        d->keys = keys;
        d->vals = vals;
        d->cap = cap;
    }
    d->keys[d->len] = key;
    d->vals[d->len] = val;
    d->len++;
}

void jdict_set_cstr(jctx *ctx, jdict *d, const char *key, jv val) {
    jdict_set(ctx, d, jv_cstr(ctx, key), val);
}

/* ---- cJSON ---- */

/* Integral JSON numbers become ints so they print as "3", not "3.0", like Python's json. */
static jv number_from_json(double d) {
    if (d == floor(d) && fabs(d) <= 9007199254740992.0)
        return jv_int((int64_t)d);
    return jv_float(d);
}

jv jv_from_cjson(jctx *ctx, const cJSON *j, int depth) {
    if (!j)
        return jv_none();
    if (depth > JINJA_MAX_NESTING)
        jx_fail(ctx, 0, "context data is nested deeper than %d levels", JINJA_MAX_NESTING);
    if (cJSON_IsBool(j))
        return jv_bool(cJSON_IsTrue(j));
    if (cJSON_IsNull(j))
        return jv_none();
    if (cJSON_IsNumber(j))
        return number_from_json(j->valuedouble);
    if (cJSON_IsString(j) || cJSON_IsRaw(j))
        return jv_cstr(ctx, j->valuestring ? j->valuestring : "");
    if (cJSON_IsArray(j)) {
        jv l = jv_list(ctx, (size_t)cJSON_GetArraySize(j));
        for (const cJSON *c = j->child; c; c = c->next)
            jlist_push(ctx, l.u.l, jv_from_cjson(ctx, c, depth + 1));
        return l;
    }
    if (cJSON_IsObject(j)) {
        jv d = jv_dict(ctx, (size_t)cJSON_GetArraySize(j));
        for (const cJSON *c = j->child; c; c = c->next)
            jdict_set(ctx, d.u.d, jv_cstr(ctx, c->string ? c->string : ""),
                      jv_from_cjson(ctx, c, depth + 1));
        return d;
    }
    return jv_none();
}

/* ---- Python semantics ---- */

const char *jv_type_name(jv v) {
    switch (v.t) {
    case JV_UNDEF: return "undefined";
    case JV_NONE: return "none";
    case JV_BOOL: return "bool";
    case JV_INT: return "int";
    case JV_FLOAT: return "float";
    case JV_STR: return "string";
    case JV_LIST: return "list";
    case JV_DICT: return v.u.d->is_namespace ? "namespace" : "dict";
    case JV_MACRO: return "macro";
    case JV_FUNC: return "function";
    case JV_LOOP: return "loop";
    }
    return "value";
}

bool jv_truthy(jv v) {
    switch (v.t) {
    case JV_UNDEF:
    case JV_NONE: return false;
    case JV_BOOL: return v.u.b;
    case JV_INT: return v.u.i != 0;
    case JV_FLOAT: return v.u.f != 0.0;
    case JV_STR: return v.u.s->len > 0;
    case JV_LIST: return v.u.l->len > 0;
    case JV_DICT: return v.u.d->is_namespace || v.u.d->len > 0;
    default: return true;
    }
}

bool jv_is_number(jv v) {
    return v.t == JV_INT || v.t == JV_FLOAT || v.t == JV_BOOL;
}

double jv_as_double(jv v) {
    if (v.t == JV_INT)
        return (double)v.u.i;
    if (v.t == JV_BOOL)
        return v.u.b ? 1.0 : 0.0;
    return v.u.f;
}

bool jv_equal(jctx *ctx, jv a, jv b, int depth) {
    if (depth > JINJA_MAX_NESTING)
        jx_fail(ctx, 0, "values compared are nested deeper than %d levels", JINJA_MAX_NESTING);
    if (jv_is_number(a) && jv_is_number(b)) {
        if (a.t != JV_FLOAT && b.t != JV_FLOAT)
            return (a.t == JV_INT ? a.u.i : a.u.b) == (b.t == JV_INT ? b.u.i : b.u.b);
        return jv_as_double(a) == jv_as_double(b);
    }
    if (a.t != b.t)
        return false;
    switch (a.t) {
    case JV_UNDEF:
    case JV_NONE: return true;
    case JV_STR: return key_equal(a, b);
    case JV_LIST:
        if (a.u.l->len != b.u.l->len)
            return false;
        for (size_t i = 0; i < a.u.l->len; i++)
            if (!jv_equal(ctx, a.u.l->items[i], b.u.l->items[i], depth + 1))
                return false;
        return true;
    case JV_DICT:
        if (a.u.d == b.u.d)
            return true;
        if (a.u.d->is_namespace || b.u.d->is_namespace || a.u.d->len != b.u.d->len)
            return false;
        for (size_t i = 0; i < a.u.d->len; i++) {
            jv other;
            if (!jdict_get(b.u.d, a.u.d->keys[i], &other) ||
                !jv_equal(ctx, a.u.d->vals[i], other, depth + 1))
                return false;
        }
        return true;
    case JV_MACRO: return a.u.macro == b.u.macro;
    case JV_FUNC: return a.u.func == b.u.func;
    case JV_LOOP: return a.u.loop == b.u.loop;
    default: return false;
    }
}

int jv_compare(jctx *ctx, int line, jv a, jv b) {
    if (jv_is_number(a) && jv_is_number(b)) {
        if (a.t == JV_INT && b.t == JV_INT)
            return (a.u.i > b.u.i) - (a.u.i < b.u.i);
        double x = jv_as_double(a), y = jv_as_double(b);
        return (x > y) - (x < y);
    }
    if (a.t == JV_STR && b.t == JV_STR) {
        size_t n = a.u.s->len < b.u.s->len ? a.u.s->len : b.u.s->len;
        int c = memcmp(a.u.s->data, b.u.s->data, n);
        if (c)
            return c < 0 ? -1 : 1;
        return (a.u.s->len > b.u.s->len) - (a.u.s->len < b.u.s->len);
    }
    if (a.t == JV_LIST && b.t == JV_LIST) {
        size_t n = a.u.l->len < b.u.l->len ? a.u.l->len : b.u.l->len;
        for (size_t i = 0; i < n; i++) {
            int c = jv_compare(ctx, line, a.u.l->items[i], b.u.l->items[i]);
            if (c)
                return c;
        }
        return (a.u.l->len > b.u.l->len) - (a.u.l->len < b.u.l->len);
    }
    jx_fail(ctx, line, "cannot order a %s and a %s", jv_type_name(a), jv_type_name(b));
}

/* Python's repr() of a float: the shortest digits that read back to the same double,
 * positional between 1e-4 and 1e16, scientific outside. */
static void write_float(jctx *ctx, jsb *sb, double d, bool json) {
    if (isnan(d)) {
        jsb_puts(ctx, sb, json ? "NaN" : "nan");
        return;
    }
    if (isinf(d)) {
        jsb_puts(ctx, sb, d < 0 ? (json ? "-Infinity" : "-inf") : (json ? "Infinity" : "inf"));
        return;
    }
    char buf[64];
    int prec = 1;
    for (; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    /* buf is [-]D[.DDD]e[+-]XX */
    char digits[32] = {0};
    size_t nd = 0;
    const char *p = buf;
    bool neg = *p == '-';
    if (neg)
        p++;
    for (; *p && *p != 'e'; p++)
        if (*p != '.')
            digits[nd++] = *p;
    int exp = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    if (neg)
        jsb_putc(ctx, sb, '-');
    if (exp >= -4 && exp < 16) {
        if (exp < 0) {
            jsb_puts(ctx, sb, "0.");
            for (int i = -1; i > exp; i--)
                jsb_putc(ctx, sb, '0');
            jsb_put(ctx, sb, digits, nd);
        } else {
            for (int i = 0; i <= exp; i++)
                jsb_putc(ctx, sb, (size_t)i < nd ? digits[i] : '0');
            jsb_putc(ctx, sb, '.');
            if ((size_t)exp + 1 < nd)
                jsb_put(ctx, sb, digits + exp + 1, nd - (size_t)exp - 1);
            else
                jsb_putc(ctx, sb, '0');
        }
        return;
    }
    jsb_putc(ctx, sb, digits[0]);
    if (nd > 1) {
        jsb_putc(ctx, sb, '.');
        jsb_put(ctx, sb, digits + 1, nd - 1);
    }
    jsb_printf(ctx, sb, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
}

/* Python's repr() of a string, as str() of a list or dict shows its elements. */
static void write_repr_str(jctx *ctx, jsb *sb, const jstr *s) {
    bool has_single = memchr(s->data, '\'', s->len) != NULL;
    bool has_double = memchr(s->data, '"', s->len) != NULL;
    char q = has_single && !has_double ? '"' : '\'';
    jsb_putc(ctx, sb, q);
    for (size_t i = 0; i < s->len; i++) {
        unsigned char c = (unsigned char)s->data[i];
        if (c == '\\' || c == (unsigned char)q) {
            jsb_putc(ctx, sb, '\\');
            jsb_putc(ctx, sb, (char)c);
        } else if (c == '\n') {
            jsb_puts(ctx, sb, "\\n");
        } else if (c == '\r') {
            jsb_puts(ctx, sb, "\\r");
        } else if (c == '\t') {
            jsb_puts(ctx, sb, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            jsb_printf(ctx, sb, "\\x%02x", c);
        } else {
            jsb_putc(ctx, sb, (char)c);
        }
    }
    jsb_putc(ctx, sb, q);
}

static void write_repr(jctx *ctx, jsb *sb, jv v, int depth) {
    if (v.t == JV_STR)
        write_repr_str(ctx, sb, v.u.s);
    else
        jv_write_str(ctx, sb, v, depth);
}

void jv_write_str(jctx *ctx, jsb *sb, jv v, int depth) {
    if (depth > JINJA_MAX_NESTING)
        jx_fail(ctx, 0, "value printed is nested deeper than %d levels", JINJA_MAX_NESTING);
    switch (v.t) {
    case JV_UNDEF: return;
    case JV_NONE: jsb_puts(ctx, sb, "None"); return;
    case JV_BOOL: jsb_puts(ctx, sb, v.u.b ? "True" : "False"); return;
    case JV_INT: jsb_printf(ctx, sb, "%lld", (long long)v.u.i); return;
    case JV_FLOAT: write_float(ctx, sb, v.u.f, false); return;
    case JV_STR: jsb_put(ctx, sb, v.u.s->data, v.u.s->len); return;
    case JV_LIST:
        jsb_putc(ctx, sb, v.u.l->is_tuple ? '(' : '[');
        for (size_t i = 0; i < v.u.l->len; i++) {
            if (i)
                jsb_puts(ctx, sb, ", ");
            write_repr(ctx, sb, v.u.l->items[i], depth + 1);
        }
        if (v.u.l->is_tuple && v.u.l->len == 1)
            jsb_putc(ctx, sb, ',');
        jsb_putc(ctx, sb, v.u.l->is_tuple ? ')' : ']');
        return;
    case JV_DICT:
        if (v.u.d->is_namespace) {
            jsb_puts(ctx, sb, "<Namespace>");
            return;
        }
        jsb_putc(ctx, sb, '{');
        for (size_t i = 0; i < v.u.d->len; i++) {
            if (i)
                jsb_puts(ctx, sb, ", ");
            write_repr(ctx, sb, v.u.d->keys[i], depth + 1);
            jsb_puts(ctx, sb, ": ");
            write_repr(ctx, sb, v.u.d->vals[i], depth + 1);
        }
        jsb_putc(ctx, sb, '}');
        return;
    case JV_MACRO: jsb_puts(ctx, sb, "<macro>"); return;
    case JV_FUNC: jsb_puts(ctx, sb, "<function>"); return;
    case JV_LOOP: jsb_puts(ctx, sb, "<LoopContext>"); return;
    }
}

jv jv_html_escape(jctx *ctx, jv v) {
    if (v.t == JV_STR && v.safe)
        return v;
    const jstr *s = jv_to_str(ctx, v);
    jsb sb = {0};
    for (size_t i = 0; i < s->len; i++) {
        switch (s->data[i]) {
        case '&': jsb_puts(ctx, &sb, "&amp;"); break;
        case '<': jsb_puts(ctx, &sb, "&lt;"); break;
        case '>': jsb_puts(ctx, &sb, "&gt;"); break;
        case '"': jsb_puts(ctx, &sb, "&#34;"); break;
        case '\'': jsb_puts(ctx, &sb, "&#39;"); break;
        default: jsb_putc(ctx, &sb, s->data[i]);
        }
    }
    jv out = jsb_value(ctx, &sb);
    out.safe = true;
    return out;
}

const jstr *jv_to_str(jctx *ctx, jv v) {
    if (v.t == JV_STR)
        return v.u.s;
    jsb sb = {0};
    jv_write_str(ctx, &sb, v, 0);
    return jsb_value(ctx, &sb).u.s;
}

/* ---- json.dumps ---- */

static void write_json_str(jctx *ctx, jsb *sb, const char *s, size_t n, bool ensure_ascii) {
    jsb_putc(ctx, sb, '"');
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80 && ensure_ascii) {
            uint32_t cp;
            i += (size_t)cairn_utf8_decode(s + i, n - i, &cp);
            if (cp >= 0x10000) {
                cp -= 0x10000;
                jsb_printf(ctx, sb, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
            } else {
                jsb_printf(ctx, sb, "\\u%04x", cp);
            }
            continue;
        }
        i++;
        switch (c) {
        case '"': jsb_puts(ctx, sb, "\\\""); break;
        case '\\': jsb_puts(ctx, sb, "\\\\"); break;
        case '\n': jsb_puts(ctx, sb, "\\n"); break;
        case '\r': jsb_puts(ctx, sb, "\\r"); break;
        case '\t': jsb_puts(ctx, sb, "\\t"); break;
        case '\b': jsb_puts(ctx, sb, "\\b"); break;
        case '\f': jsb_puts(ctx, sb, "\\f"); break;
        default:
            if (c < 0x20 || (c == 0x7f && ensure_ascii))
                jsb_printf(ctx, sb, "\\u%04x", c);
            else
                jsb_putc(ctx, sb, (char)c);
        }
    }
    jsb_putc(ctx, sb, '"');
}

static void json_newline(jctx *ctx, jsb *sb, const jjson_opts *o, int level) {
    jsb_putc(ctx, sb, '\n');
    for (int i = 0; i < o->indent * level; i++)
        jsb_putc(ctx, sb, ' ');
}

static void write_json_key(jctx *ctx, jsb *sb, jv k, const jjson_opts *o, int line) {
    if (k.t == JV_STR) {
        write_json_str(ctx, sb, k.u.s->data, k.u.s->len, o->ensure_ascii);
        return;
    }
    /* Python's json turns number, bool and None keys into strings. */
    jsb key = {0};
    if (k.t == JV_NONE)
        jsb_puts(ctx, &key, "null");
    else if (k.t == JV_BOOL)
        jsb_puts(ctx, &key, k.u.b ? "true" : "false");
    else if (k.t == JV_INT || k.t == JV_FLOAT)
        jv_write_str(ctx, &key, k, 0);
    else
        jx_fail(ctx, line, "tojson: keys must be strings, not %s", jv_type_name(k));
    write_json_str(ctx, sb, key.data, key.len, o->ensure_ascii);
}

static int compare_keys(jctx *ctx, int line, jv a, jv b) {
    return jv_compare(ctx, line, a, b);
}

static size_t *sorted_key_order(jctx *ctx, const jdict *d, int line) {
    size_t *order = jx_alloc(ctx, (d->len ? d->len : 1) * sizeof *order);
    for (size_t i = 0; i < d->len; i++)
        order[i] = i;
    for (size_t i = 1; i < d->len; i++) /* insertion sort: stable, dicts are small */
        for (size_t j = i;
             j > 0 && compare_keys(ctx, line, d->keys[order[j - 1]], d->keys[order[j]]) > 0; j--) {
            size_t t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    return order;
}

void jv_write_json(jctx *ctx, jsb *sb, jv v, const jjson_opts *o, int level, int line) {
    if (level > JINJA_MAX_NESTING)
        jx_fail(ctx, line, "tojson: value is nested deeper than %d levels", JINJA_MAX_NESTING);
    const char *item_sep = o->item_sep ? o->item_sep : (o->indent >= 0 ? "," : ", ");
    const char *key_sep = o->key_sep ? o->key_sep : ": ";
    switch (v.t) {
    case JV_NONE: jsb_puts(ctx, sb, "null"); return;
    case JV_BOOL: jsb_puts(ctx, sb, v.u.b ? "true" : "false"); return;
    case JV_INT: jsb_printf(ctx, sb, "%lld", (long long)v.u.i); return;
    case JV_FLOAT: write_float(ctx, sb, v.u.f, true); return;
    case JV_STR: write_json_str(ctx, sb, v.u.s->data, v.u.s->len, o->ensure_ascii); return;
    case JV_LIST:
        if (v.u.l->len == 0) {
            jsb_puts(ctx, sb, "[]");
            return;
        }
        jsb_putc(ctx, sb, '[');
        for (size_t i = 0; i < v.u.l->len; i++) {
            if (i)
                jsb_puts(ctx, sb, item_sep);
            if (o->indent >= 0)
                json_newline(ctx, sb, o, level + 1);
            jv_write_json(ctx, sb, v.u.l->items[i], o, level + 1, line);
        }
        if (o->indent >= 0)
            json_newline(ctx, sb, o, level);
        jsb_putc(ctx, sb, ']');
        return;
    case JV_DICT: {
        const jdict *d = v.u.d;
        if (d->len == 0) {
            jsb_puts(ctx, sb, "{}");
            return;
        }
        size_t *order = o->sort_keys ? sorted_key_order(ctx, d, line) : NULL;
        jsb_putc(ctx, sb, '{');
        for (size_t n = 0; n < d->len; n++) {
            size_t i = order ? order[n] : n;
            if (n)
                jsb_puts(ctx, sb, item_sep);
            if (o->indent >= 0)
                json_newline(ctx, sb, o, level + 1);
            write_json_key(ctx, sb, d->keys[i], o, line);
            jsb_puts(ctx, sb, key_sep);
            jv_write_json(ctx, sb, d->vals[i], o, level + 1, line);
        }
        if (o->indent >= 0)
            json_newline(ctx, sb, o, level);
        jsb_putc(ctx, sb, '}');
        return;
    }
    default: jx_fail(ctx, line, "tojson: a %s is not JSON serializable", jv_type_name(v));
    }
}

/* ---- UTF-8 ---- */

size_t jstr_cp_len(const jstr *s) {
    size_t n = 0;
    for (size_t i = 0; i < s->len; i++)
        if (((unsigned char)s->data[i] & 0xc0) != 0x80)
            n++;
    return n;
}

size_t *jstr_cp_offsets(jctx *ctx, const jstr *s, size_t *n_out) {
    size_t n = jstr_cp_len(s);
    size_t *off = jx_alloc(ctx, (n + 1) * sizeof *off);
    size_t k = 0;
    for (size_t i = 0; i < s->len; i++)
        if (((unsigned char)s->data[i] & 0xc0) != 0x80)
            off[k++] = i;
    off[n] = s->len;
    *n_out = n;
    return off;
}

const jv *jstr_chars(jctx *ctx, const jstr *s, size_t *n_out) {
    size_t len;
    size_t *off = jstr_cp_offsets(ctx, s, &len);
    jv *items = jx_alloc(ctx, (len ? len : 1) * sizeof *items);
    for (size_t i = 0; i < len; i++)
        items[i] = jv_strn(ctx, s->data + off[i], off[i + 1] - off[i]);
    *n_out = len;
    return items;
}
