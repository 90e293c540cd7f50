/* Jinja's filters and tests, the Python string/dict/list methods chat templates call, and
 * the globals Hugging Face provides (raise_exception, strftime_now) beside Jinja's own
 * (range, namespace, dict). Case mapping is ASCII-only; other characters pass unchanged. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat/jinja_internal.h"

/* ---- arguments ---- */

/* Positional argument i, or the keyword argument name; false if neither was given. */
static bool get_arg(const jargs *a, size_t i, const char *name, jv *out) {
    if (i < a->n_pos) {
        *out = a->pos[i];
        return true;
    }
    for (size_t k = 0; name && k < a->n_kw; k++)
        if (!strcmp(a->kwnames[k], name)) {
            *out = a->kw[k];
            return true;
        }
    return false;
}

static jv arg_or(const jargs *a, size_t i, const char *name, jv def) {
    jv v;
    return get_arg(a, i, name, &v) ? v : def;
}

/* Rejects keyword arguments the callee does not know and surplus positional ones. */
static void check_args(jctx *ctx, int line, const char *what, const jargs *a, size_t max_pos,
                       const char *const *kw_names) {
    if (a->n_pos > max_pos)
        jx_fail(ctx, line, "%s takes at most %zu positional arguments, %zu given", what, max_pos,
                a->n_pos);
    for (size_t k = 0; k < a->n_kw; k++) {
        bool ok = false;
        for (const char *const *n = kw_names; n && *n; n++)
            if (!strcmp(*n, a->kwnames[k]))
                ok = true;
        if (!ok)
            jx_fail(ctx, line, "%s got an unknown keyword argument '%s'", what, a->kwnames[k]);
    }
}

static const jstr *want_str(jctx *ctx, int line, const char *what, jv v) {
    if (v.t != JV_STR)
        jx_fail(ctx, line, "%s needs a string, not %s", what, jv_type_name(v));
    return v.u.s;
}

static int64_t want_int(jctx *ctx, int line, const char *what, jv v) {
    if (v.t == JV_INT)
        return v.u.i;
    if (v.t == JV_BOOL)
        return v.u.b;
    jx_fail(ctx, line, "%s needs an integer, not %s", what, jv_type_name(v));
}

/* ---- string helpers ---- */

static bool is_py_space(uint32_t c) {
    return c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f) || c == 0x85 ||
           c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
           c == 0x202f || c == 0x205f || c == 0x3000;
}

static bool cp_in(uint32_t c, const jstr *set) {
    size_t i = 0;
    while (i < set->len) {
        uint32_t d;
        i += (size_t)cairn_utf8_decode(set->data + i, set->len - i, &d);
        if (c == d)
            return true;
    }
    return false;
}

static bool strip_match(uint32_t c, const jstr *chars) {
    return chars ? cp_in(c, chars) : is_py_space(c);
}

/* str.strip / lstrip / rstrip; chars NULL means whitespace. */
static jv strip(jctx *ctx, const jstr *s, const jstr *chars, bool left, bool right) {
    size_t b = 0, e = s->len;
    while (left && b < e) {
        uint32_t c;
        int k = cairn_utf8_decode(s->data + b, e - b, &c);
        if (!strip_match(c, chars))
            break;
        b += (size_t)k;
    }
    while (right && e > b) {
        size_t p = e - 1;
        while (p > b && ((unsigned char)s->data[p] & 0xc0) == 0x80)
            p--;
        uint32_t c;
        cairn_utf8_decode(s->data + p, e - p, &c);
        if (!strip_match(c, chars))
            break;
        e = p;
    }
    return jv_strn(ctx, s->data + b, e - b);
}

static const char *find_sub(const char *hay, size_t hay_len, const char *needle, size_t n) {
    if (n == 0)
        return hay;
    for (size_t i = 0; i + n <= hay_len; i++)
        if (!memcmp(hay + i, needle, n))
            return hay + i;
    return NULL;
}

static jv str_split(jctx *ctx, const jstr *s, const jstr *sep, int64_t maxsplit, int line) {
    jv out = jv_list(ctx, 4);
    if (sep) {
        if (sep->len == 0)
            jx_fail(ctx, line, "split: empty separator");
        size_t pos = 0;
        int64_t splits = 0;
        for (;;) {
            const char *hit = (maxsplit < 0 || splits < maxsplit)
                                  ? find_sub(s->data + pos, s->len - pos, sep->data, sep->len)
                                  : NULL;
            if (!hit) {
                jlist_push(ctx, out.u.l, jv_strn(ctx, s->data + pos, s->len - pos));
                return out;
            }
            size_t at = (size_t)(hit - s->data);
            jlist_push(ctx, out.u.l, jv_strn(ctx, s->data + pos, at - pos));
            pos = at + sep->len;
            splits++;
        }
    }
    /* No separator: runs of whitespace split, and no empty strings result. */
    size_t i = 0;
    int64_t splits = 0;
    while (i < s->len) {
        while (i < s->len && isspace((unsigned char)s->data[i]))
            i++;
        if (i >= s->len)
            break;
        if (maxsplit >= 0 && splits >= maxsplit) {
            size_t e = s->len;
            while (e > i && isspace((unsigned char)s->data[e - 1]))
                e--;
            jlist_push(ctx, out.u.l, jv_strn(ctx, s->data + i, e - i));
            break;
        }
        size_t b = i;
        while (i < s->len && !isspace((unsigned char)s->data[i]))
            i++;
        jlist_push(ctx, out.u.l, jv_strn(ctx, s->data + b, i - b));
        splits++;
    }
    return out;
}

static jv str_replace(jctx *ctx, const jstr *s, const jstr *old, const jstr *new_s, int64_t count) {
    jsb sb = {0};
    size_t pos = 0;
    int64_t done = 0;
    if (old->len == 0) { /* Python inserts the replacement around every character */
        size_t n;
        size_t *off = jstr_cp_offsets(ctx, s, &n);
        for (size_t i = 0; i <= n; i++) {
            if (count < 0 || done < count) {
                jsb_put(ctx, &sb, new_s->data, new_s->len);
                done++;
            }
            if (i < n)
                jsb_put(ctx, &sb, s->data + off[i], off[i + 1] - off[i]);
        }
        return jsb_value(ctx, &sb);
    }
    for (;;) {
        const char *hit = (count < 0 || done < count)
                              ? find_sub(s->data + pos, s->len - pos, old->data, old->len)
                              : NULL;
        if (!hit)
            break;
        size_t at = (size_t)(hit - s->data);
        jsb_put(ctx, &sb, s->data + pos, at - pos);
        jsb_put(ctx, &sb, new_s->data, new_s->len);
        pos = at + old->len;
        done++;
    }
    jsb_put(ctx, &sb, s->data + pos, s->len - pos);
    return jsb_value(ctx, &sb);
}

enum { CASE_UPPER, CASE_LOWER, CASE_CAPITALIZE, CASE_PY_TITLE, CASE_JINJA_TITLE };

/* Simple case mappings for ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic: the
 * scripts chat templates and role names realistically contain. Others pass unchanged. */
static uint32_t cp_upper(uint32_t c) {
    if (c >= 'a' && c <= 'z')
        return c - 32;
    if ((c >= 0xe0 && c <= 0xfe && c != 0xf7) || (c >= 0x3b1 && c <= 0x3c9 && c != 0x3c2) ||
        (c >= 0x430 && c <= 0x44f))
        return c - 32;
    if (c == 0xff)
        return 0x178;
    if (c == 0x3c2)
        return 0x3a3;
    if (c >= 0x450 && c <= 0x45f)
        return c - 80;
    if ((c >= 0x100 && c <= 0x137) || (c >= 0x14a && c <= 0x177))
        return c & ~1u;
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e))
        return (c & 1u) ? c : c - 1;
    switch (c) {
    case 0x3ac: return 0x386;
    case 0x3ad: return 0x388;
    case 0x3ae: return 0x389;
    case 0x3af: return 0x38a;
    case 0x3cc: return 0x38c;
    case 0x3cd: return 0x38e;
    case 0x3ce: return 0x38f;
    default: return c;
    }
}

static uint32_t cp_lower(uint32_t c) {
    if (c >= 'A' && c <= 'Z')
        return c + 32;
    if ((c >= 0xc0 && c <= 0xde && c != 0xd7) || (c >= 0x391 && c <= 0x3a9 && c != 0x3a2) ||
        (c >= 0x410 && c <= 0x42f))
        return c + 32;
    if (c == 0x178)
        return 0xff;
    if (c >= 0x400 && c <= 0x40f)
        return c + 80;
    if ((c >= 0x100 && c <= 0x137) || (c >= 0x14a && c <= 0x177))
        return c | 1u;
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e))
        return (c & 1u) ? c + 1 : c;
    switch (c) {
    case 0x386: return 0x3ac;
    case 0x388: return 0x3ad;
    case 0x389: return 0x3ae;
    case 0x38a: return 0x3af;
    case 0x38c: return 0x3cc;
    case 0x38e: return 0x3cd;
    case 0x38f: return 0x3ce;
    default: return c;
    }
}

static bool cp_cased(uint32_t c) {
    return cp_upper(c) != c || cp_lower(c) != c;
}

static bool cp_word_break(uint32_t c) {
    return is_py_space(c) || (c < 0x80 && strchr("-({[<", (int)c));
}

static jv change_case(jctx *ctx, const jstr *s, int mode) {
    jsb sb = {0};
    bool prev_cased = false, word_start = true, first = true;
    size_t i = 0;
    while (i < s->len) {
        uint32_t c, m = 0;
        i += (size_t)cairn_utf8_decode(s->data + i, s->len - i, &c);
        switch (mode) {
        case CASE_UPPER: m = cp_upper(c); break;
        case CASE_LOWER: m = cp_lower(c); break;
        case CASE_CAPITALIZE: m = first ? cp_upper(c) : cp_lower(c); break;
        case CASE_PY_TITLE: /* str.title: a cased letter after an uncased one starts a word */
            m = prev_cased ? cp_lower(c) : cp_upper(c);
            prev_cased = cp_cased(c);
            break;
        case CASE_JINJA_TITLE: /* the title filter: words start after spaces - ( { [ < */
            m = word_start ? cp_upper(c) : cp_lower(c);
            word_start = cp_word_break(c);
            break;
        }
        first = false;
        char buf[4];
        jsb_put(ctx, &sb, buf, (size_t)cairn_utf8_encode(m, buf));
    }
    return jsb_value(ctx, &sb);
}

static bool starts_or_ends(jctx *ctx, int line, const jstr *s, jv affix, bool at_end) {
    if (affix.t == JV_LIST) {
        for (size_t i = 0; i < affix.u.l->len; i++)
            if (starts_or_ends(ctx, line, s, affix.u.l->items[i], at_end))
                return true;
        return false;
    }
    const jstr *a = want_str(ctx, line, at_end ? "endswith" : "startswith", affix);
    if (a->len > s->len)
        return false;
    return !memcmp(s->data + (at_end ? s->len - a->len : 0), a->data, a->len);
}

/* ---- sequences ---- */

/* Items of a value treated as a sequence (lists, strings by character, mapping keys). */
static const jv *seq_items(jctx *ctx, int line, const char *what, jv v, size_t *n) {
    switch (v.t) {
    case JV_LIST: *n = v.u.l->len; return v.u.l->items;
    case JV_DICT: *n = v.u.d->len; return v.u.d->keys;
    case JV_UNDEF: *n = 0; return NULL;
    case JV_STR: return jstr_chars(ctx, v.u.s, n);
    default: jx_fail(ctx, line, "%s: a %s is not iterable", what, jv_type_name(v));
    }
}

/* item.attr, where attr may be dotted ("function.name") or an integer index. */
static jv lookup_attribute(jctx *ctx, jv item, const jstr *attr) {
    const char *p = attr->data, *end = attr->data + attr->len;
    while (p <= end) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        if (!dot)
            dot = end;
        jv key = jv_strn(ctx, p, (size_t)(dot - p));
        jv next = jv_undef(key.u.s->data);
        if (item.t == JV_DICT) {
            jdict_get(item.u.d, key, &next);
        } else if (item.t == JV_LIST && isdigit((unsigned char)*p)) {
            size_t idx = (size_t)strtoull(key.u.s->data, NULL, 10);
            if (idx < item.u.l->len)
                next = item.u.l->items[idx];
        }
        item = next;
        if (item.t == JV_UNDEF)
            return item;
        p = dot + 1;
    }
    return item;
}

static jv lower_if_str(jctx *ctx, jv v, bool case_sensitive) {
    return (v.t == JV_STR && !case_sensitive) ? change_case(ctx, v.u.s, CASE_LOWER) : v;
}

typedef struct sort_key {
    jv key;
    jv item;
} sort_key;

/* A stable merge sort, since Python's sort is stable and templates may rely on it. */
static void sort_keys(jctx *ctx, int line, sort_key *v, size_t n, bool reverse, sort_key *tmp) {
    if (n < 2)
        return;
    size_t h = n / 2;
    sort_keys(ctx, line, v, h, reverse, tmp);
    sort_keys(ctx, line, v + h, n - h, reverse, tmp);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        int c = jv_compare(ctx, line, v[j].key, v[i].key);
        if (reverse ? c > 0 : c < 0)
            tmp[k++] = v[j++];
        else
            tmp[k++] = v[i++];
    }
    while (i < h)
        tmp[k++] = v[i++];
    while (j < n)
        tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof *v);
}

/* ---- filters ---- */

typedef jv (*filter_fn)(jctx *ctx, jscope *sc, int line, jv v, const jargs *a);

static jv f_length(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc, (void)a;
    switch (v.t) {
    case JV_STR: return jv_int((int64_t)jstr_cp_len(v.u.s));
    case JV_LIST: return jv_int((int64_t)v.u.l->len);
    case JV_DICT: return jv_int((int64_t)v.u.d->len);
    case JV_UNDEF: return jv_int(0);
    default: jx_fail(ctx, line, "length: a %s has no length", jv_type_name(v));
    }
}

static jv f_default(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc;
    static const char *const kw[] = {"default_value", "boolean", NULL};
    check_args(ctx, line, "default", a, 2, kw);
    jv def = arg_or(a, 0, "default_value", jv_cstr(ctx, ""));
    bool boolean = jv_truthy(arg_or(a, 1, "boolean", jv_bool(false)));
    if (v.t == JV_UNDEF || (boolean && !jv_truthy(v)))
        return def;
    return v;
}

static jv f_trim(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc;
    jv chars;
    const jstr *set = get_arg(a, 0, "chars", &chars) && chars.t != JV_NONE
                          ? want_str(ctx, line, "trim", chars)
                          : NULL;
    return strip(ctx, jv_to_str(ctx, v), set, true, true);
}

static jv f_upper(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc, (void)line, (void)a;
    return change_case(ctx, jv_to_str(ctx, v), CASE_UPPER);
}
static jv f_lower(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc, (void)line, (void)a;
    return change_case(ctx, jv_to_str(ctx, v), CASE_LOWER);
}
static jv f_title(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc, (void)line, (void)a;
    return change_case(ctx, jv_to_str(ctx, v), CASE_JINJA_TITLE);
}
static jv f_capitalize(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc, (void)line, (void)a;
    return change_case(ctx, jv_to_str(ctx, v), CASE_CAPITALIZE);
}

static jv f_replace(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc;
    jv old, new_v;
    if (!get_arg(a, 0, "old", &old) || !get_arg(a, 1, "new", &new_v))
        jx_fail(ctx, line, "replace needs the old and the new string");
    jv count = arg_or(a, 2, "count", jv_none());
    return str_replace(ctx, jv_to_str(ctx, v), jv_to_str(ctx, old), jv_to_str(ctx, new_v),
                       count.t == JV_NONE ? -1 : want_int(ctx, line, "replace", count));
}

static jv f_string(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc, (void)line, (void)a;
    jv out = {.t = JV_STR};
    out.u.s = jv_to_str(ctx, v);
    return out;
}

static jv f_safe(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc, (void)line, (void)a;
    jv out = {.t = JV_STR, .safe = true};
    out.u.s = jv_to_str(ctx, v);
    return out;
}

static jv f_escape(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc, (void)line, (void)a;
    return jv_html_escape(ctx, v);
}

/* HF's tojson: json.dumps(x, ensure_ascii=False, indent=None, separators=None,
 * sort_keys=False), in that positional order. */
static jv f_tojson(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc;
    static const char *const kw[] = {"ensure_ascii", "indent", "separators", "sort_keys", NULL};
    check_args(ctx, line, "tojson", a, 4, kw);
    jjson_opts o = {.indent = -1};
    o.ensure_ascii = jv_truthy(arg_or(a, 0, "ensure_ascii", jv_bool(false)));
    jv indent = arg_or(a, 1, "indent", jv_none());
    if (indent.t != JV_NONE) {
        int64_t n = want_int(ctx, line, "tojson indent", indent);
        o.indent = n < 0 ? 0 : n > 64 ? 64 : (int)n;
    }
    jv seps = arg_or(a, 2, "separators", jv_none());
    if (seps.t != JV_NONE) {
        if (seps.t != JV_LIST || seps.u.l->len != 2 || seps.u.l->items[0].t != JV_STR ||
            seps.u.l->items[1].t != JV_STR)
            jx_fail(ctx, line, "tojson separators must be a pair of strings");
        o.item_sep = seps.u.l->items[0].u.s->data;
        o.key_sep = seps.u.l->items[1].u.s->data;
    }
    o.sort_keys = jv_truthy(arg_or(a, 3, "sort_keys", jv_bool(false)));
    if (v.t == JV_UNDEF)
        jx_fail(ctx, line, "tojson: value is undefined");
    jsb sb = {0};
    jv_write_json(ctx, &sb, v, &o, 0, line);
    return jsb_value(ctx, &sb);
}

static jv f_first(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc, (void)a;
    size_t n;
    const jv *items = seq_items(ctx, line, "first", v, &n);
    return n ? items[0] : jv_undef("first item");
}

static jv f_last(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc, (void)a;
    size_t n;
    const jv *items = seq_items(ctx, line, "last", v, &n);
    return n ? items[n - 1] : jv_undef("last item");
}

static jv f_list(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc, (void)a;
    size_t n;
    const jv *items = seq_items(ctx, line, "list", v, &n);
    jv out = jv_list(ctx, n);
    for (size_t i = 0; i < n; i++)
        jlist_push(ctx, out.u.l, items[i]);
    return out;
}

static jv f_reverse(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc, (void)a;
    size_t n;
    const jv *items = seq_items(ctx, line, "reverse", v, &n);
    if (v.t == JV_STR) {
        jsb sb = {0};
        for (size_t i = n; i > 0; i--)
            jsb_put(ctx, &sb, items[i - 1].u.s->data, items[i - 1].u.s->len);
        return jsb_value(ctx, &sb);
    }
    jv out = jv_list(ctx, n);
    for (size_t i = n; i > 0; i--)
        jlist_push(ctx, out.u.l, items[i - 1]);
    return out;
}

static jv f_join(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc;
    static const char *const kw[] = {"d", "attribute", NULL};
    check_args(ctx, line, "join", a, 2, kw);
    const jstr *sep = jv_to_str(ctx, arg_or(a, 0, "d", jv_cstr(ctx, "")));
    jv attr = arg_or(a, 1, "attribute", jv_none());
    size_t n;
    const jv *items = seq_items(ctx, line, "join", v, &n);
    jsb sb = {0};
    for (size_t i = 0; i < n; i++) {
        if (i)
            jsb_put(ctx, &sb, sep->data, sep->len);
        jv item = items[i];
        if (attr.t != JV_NONE)
            item = lookup_attribute(ctx, item, jv_to_str(ctx, attr));
        jv_write_str(ctx, &sb, item, 0);
    }
    return jsb_value(ctx, &sb);
}

static jv pair(jctx *ctx, jv k, jv v) {
    jv p = jv_list(ctx, 2);
    p.u.l->is_tuple = true;
    jlist_push(ctx, p.u.l, k);
    jlist_push(ctx, p.u.l, v);
    return p;
}

static jv f_items(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc, (void)a;
    if (v.t == JV_UNDEF)
        return jv_list(ctx, 0);
    if (v.t != JV_DICT)
        jx_fail(ctx, line, "items: a %s is not a mapping", jv_type_name(v));
    jv out = jv_list(ctx, v.u.d->len);
    for (size_t i = 0; i < v.u.d->len; i++)
        jlist_push(ctx, out.u.l, pair(ctx, v.u.d->keys[i], v.u.d->vals[i]));
    return out;
}

static jv f_dictsort(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc;
    static const char *const kw[] = {"case_sensitive", "by", "reverse", NULL};
    check_args(ctx, line, "dictsort", a, 3, kw);
    if (v.t != JV_DICT)
        jx_fail(ctx, line, "dictsort: a %s is not a mapping", jv_type_name(v));
    bool cs = jv_truthy(arg_or(a, 0, "case_sensitive", jv_bool(false)));
    jv by = arg_or(a, 1, "by", jv_cstr(ctx, "key"));
    bool by_value = by.t == JV_STR && !strcmp(by.u.s->data, "value");
    bool reverse = jv_truthy(arg_or(a, 2, "reverse", jv_bool(false)));
    size_t n = v.u.d->len;
    sort_key *keys = jx_alloc(ctx, (n ? n : 1) * sizeof *keys);
    sort_key *tmp = jx_alloc(ctx, (n ? n : 1) * sizeof *tmp);
    for (size_t i = 0; i < n; i++) {
        keys[i].item = pair(ctx, v.u.d->keys[i], v.u.d->vals[i]);
        keys[i].key = lower_if_str(ctx, by_value ? v.u.d->vals[i] : v.u.d->keys[i], cs);
    }
    sort_keys(ctx, line, keys, n, reverse, tmp);
    jv out = jv_list(ctx, n);
    for (size_t i = 0; i < n; i++)
        jlist_push(ctx, out.u.l, keys[i].item);
    return out;
}

static jv f_sort(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc;
    static const char *const kw[] = {"reverse", "case_sensitive", "attribute", NULL};
    check_args(ctx, line, "sort", a, 3, kw);
    bool reverse = jv_truthy(arg_or(a, 0, "reverse", jv_bool(false)));
    bool cs = jv_truthy(arg_or(a, 1, "case_sensitive", jv_bool(false)));
    jv attr = arg_or(a, 2, "attribute", jv_none());
    size_t n;
    const jv *items = seq_items(ctx, line, "sort", v, &n);
    sort_key *keys = jx_alloc(ctx, (n ? n : 1) * sizeof *keys);
    sort_key *tmp = jx_alloc(ctx, (n ? n : 1) * sizeof *tmp);
    for (size_t i = 0; i < n; i++) {
        jv k = attr.t == JV_NONE ? items[i] : lookup_attribute(ctx, items[i], jv_to_str(ctx, attr));
        keys[i].key = lower_if_str(ctx, k, cs);
        keys[i].item = items[i];
    }
    sort_keys(ctx, line, keys, n, reverse, tmp);
    jv out = jv_list(ctx, n);
    for (size_t i = 0; i < n; i++)
        jlist_push(ctx, out.u.l, keys[i].item);
    return out;
}

static jv f_unique(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc;
    static const char *const kw[] = {"case_sensitive", "attribute", NULL};
    check_args(ctx, line, "unique", a, 2, kw);
    bool cs = jv_truthy(arg_or(a, 0, "case_sensitive", jv_bool(false)));
    jv attr = arg_or(a, 1, "attribute", jv_none());
    size_t n;
    const jv *items = seq_items(ctx, line, "unique", v, &n);
    jv out = jv_list(ctx, n);
    jv seen = jv_list(ctx, n);
    for (size_t i = 0; i < n; i++) {
        jv k = attr.t == JV_NONE ? items[i] : lookup_attribute(ctx, items[i], jv_to_str(ctx, attr));
        k = lower_if_str(ctx, k, cs);
        bool dup = false;
        for (size_t j = 0; j < seen.u.l->len && !dup; j++)
            dup = jv_equal(ctx, seen.u.l->items[j], k, 0);
        if (!dup) {
            jlist_push(ctx, seen.u.l, k);
            jlist_push(ctx, out.u.l, items[i]);
        }
    }
    return out;
}

/* select / reject / selectattr / rejectattr share one walk. */
static jv select_items(jctx *ctx, jscope *sc, int line, jv v, const jargs *a, bool by_attr,
                       bool keep_if) {
    const char *what =
        by_attr ? (keep_if ? "selectattr" : "rejectattr") : (keep_if ? "select" : "reject");
    size_t first_test_arg = by_attr ? 1 : 0;
    const jstr *attr = NULL;
    if (by_attr) {
        if (a->n_pos < 1)
            jx_fail(ctx, line, "%s needs an attribute name", what);
        attr = want_str(ctx, line, what, a->pos[0]);
    }
    const char *test = NULL;
    if (a->n_pos > first_test_arg) {
        test = want_str(ctx, line, what, a->pos[first_test_arg])->data;
        if (!jinja_test_exists(test))
            jx_fail(ctx, line, "unknown test '%s'", test);
    }
    jargs targs = {0};
    if (a->n_pos > first_test_arg + 1) {
        targs.pos = a->pos + first_test_arg + 1;
        targs.n_pos = a->n_pos - first_test_arg - 1;
    }
    size_t n = 0;
    const jv *items = jv_truthy(v) ? seq_items(ctx, line, what, v, &n) : NULL;
    jv out = jv_list(ctx, n);
    for (size_t i = 0; i < n; i++) {
        jv x = attr ? lookup_attribute(ctx, items[i], attr) : items[i];
        bool pass = test ? jinja_apply_test(ctx, sc, line, test, x, &targs) : jv_truthy(x);
        if (pass == keep_if)
            jlist_push(ctx, out.u.l, items[i]);
    }
    return out;
}

static jv f_select(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    return select_items(ctx, sc, line, v, a, false, true);
}
static jv f_reject(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    return select_items(ctx, sc, line, v, a, false, false);
}
static jv f_selectattr(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    return select_items(ctx, sc, line, v, a, true, true);
}
static jv f_rejectattr(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    return select_items(ctx, sc, line, v, a, true, false);
}

static jv f_map(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    size_t n = 0;
    const jv *items = jv_truthy(v) ? seq_items(ctx, line, "map", v, &n) : NULL; /* as Jinja */
    jv out = jv_list(ctx, n);
    jv attr;
    if (get_arg(a, SIZE_MAX, "attribute", &attr)) {
        jv def = arg_or(a, SIZE_MAX, "default", jv_undef(NULL));
        const jstr *name = jv_to_str(ctx, attr);
        for (size_t i = 0; i < n; i++) {
            jv x = lookup_attribute(ctx, items[i], name);
            jlist_push(ctx, out.u.l, x.t == JV_UNDEF && def.t != JV_UNDEF ? def : x);
        }
        return out;
    }
    if (a->n_pos < 1)
        jx_fail(ctx, line, "map needs a filter name or attribute=");
    const char *filter = want_str(ctx, line, "map", a->pos[0])->data;
    if (!jinja_filter_exists(filter))
        jx_fail(ctx, line, "unknown filter '%s'", filter);
    jargs fargs = {.pos = a->pos + 1,
                   .n_pos = a->n_pos - 1,
                   .kwnames = a->kwnames,
                   .kw = a->kw,
                   .n_kw = a->n_kw};
    for (size_t i = 0; i < n; i++)
        jlist_push(ctx, out.u.l, jinja_apply_filter(ctx, sc, line, filter, items[i], &fargs));
    return out;
}

static jv f_int(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc, (void)line;
    jv def = arg_or(a, 0, "default", jv_int(0));
    switch (v.t) {
    case JV_INT: return v;
    case JV_BOOL: return jv_int(v.u.b);
    case JV_FLOAT:
        if (isnan(v.u.f) || fabs(v.u.f) >= 9.2e18)
            return def;
        return jv_int((int64_t)v.u.f);
    case JV_STR: {
        const jstr *s = strip(ctx, v.u.s, NULL, true, true).u.s;
        char *end;
        long long i = strtoll(s->data, &end, 10);
        if (s->len && *end == '\0')
            return jv_int(i);
        double d = strtod(s->data, &end);
        if (s->len && *end == '\0' && isfinite(d) && fabs(d) < 9.2e18)
            return jv_int((int64_t)d);
        return def;
    }
    default: return def;
    }
}

static jv f_float(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc, (void)line;
    jv def = arg_or(a, 0, "default", jv_float(0.0));
    if (jv_is_number(v))
        return jv_float(jv_as_double(v));
    if (v.t == JV_STR) {
        const jstr *s = strip(ctx, v.u.s, NULL, true, true).u.s;
        char *end;
        double d = strtod(s->data, &end);
        if (s->len && *end == '\0')
            return jv_float(d);
    }
    return def;
}

static jv f_abs(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc, (void)a;
    if (v.t == JV_INT && v.u.i != INT64_MIN)
        return jv_int(v.u.i < 0 ? -v.u.i : v.u.i);
    if (v.t == JV_FLOAT)
        return jv_float(fabs(v.u.f));
    jx_fail(ctx, line, "abs: bad operand %s", jv_type_name(v));
}

static jv f_round(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc;
    if (!jv_is_number(v))
        jx_fail(ctx, line, "round: bad operand %s", jv_type_name(v));
    int64_t prec = want_int(ctx, line, "round", arg_or(a, 0, "precision", jv_int(0)));
    jv method = arg_or(a, 1, "method", jv_cstr(ctx, "common"));
    double scale = pow(10.0, (double)prec), x = jv_as_double(v) * scale;
    const char *m = jv_to_str(ctx, method)->data;
    double r = !strcmp(m, "floor") ? floor(x) : !strcmp(m, "ceil") ? ceil(x) : round(x);
    return jv_float(r / scale);
}

static jv f_sum(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc;
    jv attr = arg_or(a, 0, "attribute", jv_none());
    jv total = arg_or(a, 1, "start", jv_int(0));
    size_t n;
    const jv *items = seq_items(ctx, line, "sum", v, &n);
    for (size_t i = 0; i < n; i++) {
        jv x = attr.t == JV_NONE ? items[i] : lookup_attribute(ctx, items[i], jv_to_str(ctx, attr));
        if (!jv_is_number(x) || !jv_is_number(total))
            jx_fail(ctx, line, "sum: cannot add a %s", jv_type_name(x));
        if (x.t == JV_FLOAT || total.t == JV_FLOAT)
            total = jv_float(jv_as_double(total) + jv_as_double(x));
        else
            total = jv_int(total.u.i + (x.t == JV_BOOL ? x.u.b : x.u.i));
    }
    return total;
}

static jv min_max(jctx *ctx, int line, jv v, const jargs *a, bool want_max) {
    bool cs = jv_truthy(arg_or(a, 0, "case_sensitive", jv_bool(false)));
    jv attr = arg_or(a, 1, "attribute", jv_none());
    size_t n;
    const jv *items = seq_items(ctx, line, want_max ? "max" : "min", v, &n);
    if (n == 0)
        return jv_undef(want_max ? "max" : "min");
    size_t best = 0;
    jv best_key = jv_undef(NULL);
    for (size_t i = 0; i < n; i++) {
        jv k = attr.t == JV_NONE ? items[i] : lookup_attribute(ctx, items[i], jv_to_str(ctx, attr));
        k = lower_if_str(ctx, k, cs);
        if (i == 0 || (want_max ? jv_compare(ctx, line, k, best_key) > 0
                                : jv_compare(ctx, line, k, best_key) < 0)) {
            best = i;
            best_key = k;
        }
    }
    return items[best];
}

static jv f_max(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc;
    return min_max(ctx, line, v, a, true);
}
static jv f_min(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc;
    return min_max(ctx, line, v, a, false);
}

static jv f_attr(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc;
    jv name;
    if (!get_arg(a, 0, "name", &name))
        jx_fail(ctx, line, "attr needs a name");
    jv out = jv_undef(NULL);
    if (v.t == JV_DICT)
        jdict_get(v.u.d, name, &out);
    return out;
}

static jv f_indent(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc;
    static const char *const kw[] = {"width", "first", "blank", NULL};
    check_args(ctx, line, "indent", a, 3, kw);
    jv width = arg_or(a, 0, "width", jv_int(4));
    jsb ind = {0};
    if (width.t == JV_STR) {
        jsb_put(ctx, &ind, width.u.s->data, width.u.s->len);
    } else {
        int64_t w = want_int(ctx, line, "indent", width);
        for (int64_t i = 0; i < w && i < 256; i++)
            jsb_putc(ctx, &ind, ' ');
    }
    bool first = jv_truthy(arg_or(a, 1, "first", jv_bool(false)));
    bool blank = jv_truthy(arg_or(a, 2, "blank", jv_bool(false)));
    const jstr *s = jv_to_str(ctx, v);
    jsb sb = {0};
    if (first)
        jsb_put(ctx, &sb, ind.data, ind.len);
    /* Jinja splits s + "\n" into lines, which is splitting s at every "\n". */
    size_t pos = 0;
    for (bool first_line = true;; first_line = false) {
        const char *nl = memchr(s->data + pos, '\n', s->len - pos);
        size_t end = nl ? (size_t)(nl - s->data) : s->len;
        if (!first_line) {
            jsb_putc(ctx, &sb, '\n');
            if (blank || end > pos)
                jsb_put(ctx, &sb, ind.data, ind.len);
        }
        jsb_put(ctx, &sb, s->data + pos, end - pos);
        if (!nl)
            break;
        pos = end + 1;
    }
    return jsb_value(ctx, &sb);
}

static jv f_wordcount(jctx *ctx, jscope *sc, int line, jv v, const jargs *a) {
    (void)sc, (void)a;
    return jv_int((int64_t)str_split(ctx, jv_to_str(ctx, v), NULL, -1, line).u.l->len);
}

typedef struct filter_entry {
    const char *name;
    filter_fn fn;
} filter_entry;

static const filter_entry filters[] = {
    {"abs", f_abs},           {"attr", f_attr},       {"capitalize", f_capitalize},
    {"count", f_length},      {"d", f_default},       {"default", f_default},
    {"dictsort", f_dictsort}, {"e", f_escape},        {"escape", f_escape},
    {"first", f_first},       {"float", f_float},     {"indent", f_indent},
    {"int", f_int},           {"items", f_items},     {"join", f_join},
    {"last", f_last},         {"length", f_length},   {"list", f_list},
    {"lower", f_lower},       {"map", f_map},         {"max", f_max},
    {"min", f_min},           {"reject", f_reject},   {"rejectattr", f_rejectattr},
    {"replace", f_replace},   {"reverse", f_reverse}, {"round", f_round},
    {"safe", f_safe},         {"select", f_select},   {"selectattr", f_selectattr},
    {"sort", f_sort},         {"string", f_string},   {"sum", f_sum},
    {"title", f_title},       {"tojson", f_tojson},   {"trim", f_trim},
    {"unique", f_unique},     {"upper", f_upper},     {"wordcount", f_wordcount},
};

static const filter_entry *find_filter(const char *name) {
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(filters); i++)
        if (!strcmp(filters[i].name, name))
            return &filters[i];
    return NULL;
}

bool jinja_filter_exists(const char *name) {
    return find_filter(name) != NULL;
}

jv jinja_apply_filter(jctx *ctx, jscope *sc, int line, const char *name, jv v, const jargs *a) {
    const filter_entry *f = find_filter(name);
    if (!f)
        jx_fail(ctx, line, "unknown filter '%s'", name);
    return f->fn(ctx, sc, line, v, a);
}

/* ---- tests ---- */

typedef enum {
    T_DEFINED,
    T_UNDEFINED,
    T_NONE,
    T_BOOLEAN,
    T_FALSE,
    T_TRUE,
    T_INTEGER,
    T_FLOAT,
    T_NUMBER,
    T_STRING,
    T_MAPPING,
    T_ITERABLE,
    T_SEQUENCE,
    T_CALLABLE,
    T_SAMEAS,
    T_EQ,
    T_NE,
    T_LT,
    T_LE,
    T_GT,
    T_GE,
    T_IN,
    T_DIVISIBLEBY,
    T_EVEN,
    T_ODD,
    T_LOWER,
    T_UPPER,
    T_ESCAPED,
    T_FILTER,
    T_TEST,
} test_id;

typedef struct test_entry {
    const char *name;
    test_id id;
} test_entry;

static const test_entry tests[] = {
    {"defined", T_DEFINED},
    {"undefined", T_UNDEFINED},
    {"none", T_NONE},
    {"boolean", T_BOOLEAN},
    {"false", T_FALSE},
    {"true", T_TRUE},
    {"integer", T_INTEGER},
    {"float", T_FLOAT},
    {"number", T_NUMBER},
    {"string", T_STRING},
    {"mapping", T_MAPPING},
    {"iterable", T_ITERABLE},
    {"sequence", T_SEQUENCE},
    {"callable", T_CALLABLE},
    {"sameas", T_SAMEAS},
    {"eq", T_EQ},
    {"equalto", T_EQ},
    {"==", T_EQ},
    {"ne", T_NE},
    {"!=", T_NE},
    {"lt", T_LT},
    {"lessthan", T_LT},
    {"<", T_LT},
    {"le", T_LE},
    {"<=", T_LE},
    {"gt", T_GT},
    {"greaterthan", T_GT},
    {">", T_GT},
    {"ge", T_GE},
    {">=", T_GE},
    {"in", T_IN},
    {"divisibleby", T_DIVISIBLEBY},
    {"even", T_EVEN},
    {"odd", T_ODD},
    {"lower", T_LOWER},
    {"upper", T_UPPER},
    {"escaped", T_ESCAPED},
    {"filter", T_FILTER},
    {"test", T_TEST},
};

static const test_entry *find_test(const char *name) {
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(tests); i++)
        if (!strcmp(tests[i].name, name))
            return &tests[i];
    return NULL;
}

bool jinja_test_exists(const char *name) {
    return find_test(name) != NULL;
}

static jv test_arg(jctx *ctx, int line, const char *name, const jargs *a) {
    jv v;
    if (!get_arg(a, 0, NULL, &v))
        jx_fail(ctx, line, "test '%s' needs an argument", name);
    return v;
}

static bool same_object(jv x, jv y) {
    if (x.t != y.t)
        return false;
    switch (x.t) {
    case JV_NONE:
    case JV_UNDEF: return true;
    case JV_BOOL: return x.u.b == y.u.b;
    case JV_INT: return x.u.i == y.u.i;
    case JV_FLOAT: return x.u.f == y.u.f;
    case JV_STR: return x.u.s == y.u.s;
    case JV_LIST: return x.u.l == y.u.l;
    case JV_DICT: return x.u.d == y.u.d;
    default: return false;
    }
}

bool jinja_apply_test(jctx *ctx, jscope *sc, int line, const char *name, jv v, const jargs *a) {
    (void)sc;
    const test_entry *t = find_test(name);
    if (!t)
        jx_fail(ctx, line, "unknown test '%s'", name);
    switch (t->id) {
    case T_DEFINED: return v.t != JV_UNDEF;
    case T_UNDEFINED: return v.t == JV_UNDEF;
    case T_NONE: return v.t == JV_NONE;
    case T_BOOLEAN: return v.t == JV_BOOL;
    case T_FALSE: return v.t == JV_BOOL && !v.u.b;
    case T_TRUE: return v.t == JV_BOOL && v.u.b;
    case T_INTEGER: return v.t == JV_INT;
    case T_FLOAT: return v.t == JV_FLOAT;
    case T_NUMBER: return jv_is_number(v);
    case T_STRING: return v.t == JV_STR;
    case T_MAPPING: return v.t == JV_DICT && !v.u.d->is_namespace;
    case T_ITERABLE:
        return v.t == JV_STR || v.t == JV_LIST || (v.t == JV_DICT && !v.u.d->is_namespace) ||
               v.t == JV_UNDEF;
    case T_SEQUENCE:
        return v.t == JV_STR || v.t == JV_LIST || (v.t == JV_DICT && !v.u.d->is_namespace);
    case T_CALLABLE: return v.t == JV_MACRO || v.t == JV_FUNC;
    case T_SAMEAS: return same_object(v, test_arg(ctx, line, name, a));
    case T_EQ: return jv_equal(ctx, v, test_arg(ctx, line, name, a), 0);
    case T_NE: return !jv_equal(ctx, v, test_arg(ctx, line, name, a), 0);
    case T_LT: return jv_compare(ctx, line, v, test_arg(ctx, line, name, a)) < 0;
    case T_LE: return jv_compare(ctx, line, v, test_arg(ctx, line, name, a)) <= 0;
    case T_GT: return jv_compare(ctx, line, v, test_arg(ctx, line, name, a)) > 0;
    case T_GE: return jv_compare(ctx, line, v, test_arg(ctx, line, name, a)) >= 0;
    case T_IN: {
        jv hay = test_arg(ctx, line, name, a);
        if (hay.t == JV_LIST) {
            for (size_t i = 0; i < hay.u.l->len; i++)
                if (jv_equal(ctx, v, hay.u.l->items[i], 0))
                    return true;
            return false;
        }
        if (hay.t == JV_DICT) {
            jv unused;
            return jdict_get(hay.u.d, v, &unused);
        }
        if (hay.t == JV_STR && v.t == JV_STR)
            return find_sub(hay.u.s->data, hay.u.s->len, v.u.s->data, v.u.s->len) != NULL;
        jx_fail(ctx, line, "test 'in' needs a list, mapping or string");
    }
    case T_DIVISIBLEBY: {
        int64_t d = want_int(ctx, line, "divisibleby", test_arg(ctx, line, name, a));
        if (d == 0)
            jx_fail(ctx, line, "divisibleby 0");
        return want_int(ctx, line, "divisibleby", v) % d == 0;
    }
    case T_EVEN: return want_int(ctx, line, "even", v) % 2 == 0;
    case T_ODD: return want_int(ctx, line, "odd", v) % 2 != 0;
    case T_LOWER:
    case T_UPPER: {
        const jstr *s = jv_to_str(ctx, v);
        jv other = change_case(ctx, s, t->id == T_LOWER ? CASE_LOWER : CASE_UPPER);
        return other.u.s->len == s->len && memcmp(other.u.s->data, s->data, s->len) == 0;
    }
    case T_ESCAPED: return false;
    case T_FILTER: return v.t == JV_STR && jinja_filter_exists(v.u.s->data);
    case T_TEST: return v.t == JV_STR && jinja_test_exists(v.u.s->data);
    }
    return false;
}

/* ---- methods ---- */

static jv str_method(jctx *ctx, int line, const jstr *s, const char *m, const jargs *a,
                     bool *found) {
    *found = true;
    jv x;
    if (!strcmp(m, "strip") || !strcmp(m, "lstrip") || !strcmp(m, "rstrip")) {
        const jstr *chars =
            get_arg(a, 0, "chars", &x) && x.t != JV_NONE ? want_str(ctx, line, m, x) : NULL;
        return strip(ctx, s, chars, m[0] != 'r', m[0] != 'l');
    }
    if (!strcmp(m, "split")) {
        jv sep = arg_or(a, 0, "sep", jv_none());
        jv maxsplit = arg_or(a, 1, "maxsplit", jv_int(-1));
        return str_split(ctx, s, sep.t == JV_NONE ? NULL : want_str(ctx, line, m, sep),
                         want_int(ctx, line, m, maxsplit), line);
    }
    if (!strcmp(m, "startswith") || !strcmp(m, "endswith")) {
        if (!get_arg(a, 0, NULL, &x))
            jx_fail(ctx, line, "%s needs an argument", m);
        return jv_bool(starts_or_ends(ctx, line, s, x, m[0] == 'e'));
    }
    if (!strcmp(m, "replace")) {
        jv old, new_v;
        if (!get_arg(a, 0, NULL, &old) || !get_arg(a, 1, NULL, &new_v))
            jx_fail(ctx, line, "replace needs two arguments");
        jv count = arg_or(a, 2, "count", jv_int(-1));
        return str_replace(ctx, s, want_str(ctx, line, m, old), want_str(ctx, line, m, new_v),
                           want_int(ctx, line, m, count));
    }
    if (!strcmp(m, "upper"))
        return change_case(ctx, s, CASE_UPPER);
    if (!strcmp(m, "lower"))
        return change_case(ctx, s, CASE_LOWER);
    if (!strcmp(m, "title"))
        return change_case(ctx, s, CASE_PY_TITLE);
    if (!strcmp(m, "capitalize"))
        return change_case(ctx, s, CASE_CAPITALIZE);
    if (!strcmp(m, "find") || !strcmp(m, "count")) {
        if (!get_arg(a, 0, NULL, &x))
            jx_fail(ctx, line, "%s needs an argument", m);
        const jstr *sub = want_str(ctx, line, m, x);
        if (m[0] == 'f') {
            const char *hit = find_sub(s->data, s->len, sub->data, sub->len);
            if (!hit)
                return jv_int(-1);
            jstr prefix_len = {.len = (size_t)(hit - s->data)};
            size_t cps = 0;
            for (size_t i = 0; i < prefix_len.len; i++)
                cps += ((unsigned char)s->data[i] & 0xc0) != 0x80;
            return jv_int((int64_t)cps);
        }
        if (sub->len == 0)
            return jv_int((int64_t)jstr_cp_len(s) + 1);
        int64_t n = 0;
        for (const char *p = s->data;
             (p = find_sub(p, s->len - (size_t)(p - s->data), sub->data, sub->len)); p += sub->len)
            n++;
        return jv_int(n);
    }
    if (!strcmp(m, "join")) {
        if (!get_arg(a, 0, NULL, &x))
            jx_fail(ctx, line, "join needs an argument");
        size_t n;
        const jv *items = seq_items(ctx, line, "join", x, &n);
        jsb sb = {0};
        for (size_t i = 0; i < n; i++) {
            if (i)
                jsb_put(ctx, &sb, s->data, s->len);
            jsb_puts(ctx, &sb, want_str(ctx, line, "join", items[i])->data);
        }
        return jsb_value(ctx, &sb);
    }
    if (!strcmp(m, "splitlines")) {
        jv out = jv_list(ctx, 4);
        size_t pos = 0;
        while (pos < s->len) {
            const char *nl = memchr(s->data + pos, '\n', s->len - pos);
            size_t end = nl ? (size_t)(nl - s->data) : s->len;
            jlist_push(ctx, out.u.l, jv_strn(ctx, s->data + pos, end - pos));
            pos = end + 1;
        }
        return out;
    }
    if (!strcmp(m, "isdigit") || !strcmp(m, "isalpha") || !strcmp(m, "isalnum") ||
        !strcmp(m, "isspace") || !strcmp(m, "isupper") || !strcmp(m, "islower")) {
        if (s->len == 0)
            return jv_bool(false);
        bool ok = true, cased = false;
        for (size_t i = 0; i < s->len; i++) {
            unsigned char c = (unsigned char)s->data[i];
            switch (m[2]) {
            case 'd': ok &= isdigit(c) != 0; break;
            case 'a': ok &= (m[4] == 'n' ? isalnum(c) : isalpha(c)) != 0; break;
            case 's': ok &= isspace(c) != 0; break;
            case 'u':
                ok &= !islower(c);
                cased |= isupper(c) != 0;
                break;
            case 'l':
                ok &= !isupper(c);
                cased |= islower(c) != 0;
                break;
            }
        }
        return jv_bool(ok && (m[2] == 'u' || m[2] == 'l' ? cased : true));
    }
    *found = false;
    return jv_none();
}

static jv dict_method(jctx *ctx, int line, jdict *d, const char *m, const jargs *a, bool *found) {
    *found = true;
    if (!strcmp(m, "get")) {
        jv key, out;
        if (!get_arg(a, 0, "key", &key))
            jx_fail(ctx, line, "get needs a key");
        if (jdict_get(d, key, &out))
            return out;
        return arg_or(a, 1, "default", jv_none());
    }
    if (!strcmp(m, "items") || !strcmp(m, "keys") || !strcmp(m, "values")) {
        jv out = jv_list(ctx, d->len);
        for (size_t i = 0; i < d->len; i++)
            jlist_push(ctx, out.u.l,
                       m[0] == 'i'   ? pair(ctx, d->keys[i], d->vals[i])
                       : m[0] == 'k' ? d->keys[i]
                                     : d->vals[i]);
        return out;
    }
    *found = false;
    return jv_none();
}

static jv list_method(jctx *ctx, int line, jlist *l, const char *m, const jargs *a, bool *found) {
    *found = true;
    jv x;
    if (!strcmp(m, "append")) {
        if (!get_arg(a, 0, NULL, &x))
            jx_fail(ctx, line, "append needs an argument");
        jlist_push(ctx, l, x);
        return jv_none();
    }
    if (!strcmp(m, "pop")) {
        int64_t i = get_arg(a, 0, NULL, &x) ? want_int(ctx, line, m, x) : -1;
        if (i < 0)
            i += (int64_t)l->len;
        if (i < 0 || (uint64_t)i >= l->len)
            jx_fail(ctx, line, "pop index out of range");
        jv out = l->items[i];
        memmove(l->items + i, l->items + i + 1, (l->len - (size_t)i - 1) * sizeof(jv));
        l->len--;
        return out;
    }
    if (!strcmp(m, "index") || !strcmp(m, "count")) {
        if (!get_arg(a, 0, NULL, &x))
            jx_fail(ctx, line, "%s needs an argument", m);
        int64_t n = 0;
        for (size_t i = 0; i < l->len; i++)
            if (jv_equal(ctx, l->items[i], x, 0)) {
                if (m[0] == 'i')
                    return jv_int((int64_t)i);
                n++;
            }
        if (m[0] == 'i')
            jx_fail(ctx, line, "index: value is not in the list");
        return jv_int(n);
    }
    *found = false;
    return jv_none();
}

jv jinja_call_method(jctx *ctx, int line, jv obj, const char *name, const jargs *a, bool *found) {
    *found = false;
    switch (obj.t) {
    case JV_STR: return str_method(ctx, line, obj.u.s, name, a, found);
    case JV_DICT:
        if (obj.u.d->is_namespace)
            return jv_none();
        return dict_method(ctx, line, obj.u.d, name, a, found);
    case JV_LIST: return list_method(ctx, line, obj.u.l, name, a, found);
    case JV_LOOP:
        if (!strcmp(name, "cycle")) {
            *found = true;
            if (a->n_pos == 0)
                jx_fail(ctx, line, "loop.cycle needs arguments");
            return a->pos[obj.u.loop->index0 % a->n_pos];
        }
        return jv_none();
    default: return jv_none();
    }
}

/* ---- global functions ---- */

enum { G_RANGE, G_NAMESPACE, G_DICT, G_RAISE, G_STRFTIME };

static const char *const global_names[] = {"range", "namespace", "dict", "raise_exception",
                                           "strftime_now"};

int jinja_global_func(const char *name) {
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(global_names); i++)
        if (!strcmp(global_names[i], name))
            return (int)i;
    return -1;
}

static jv g_range(jctx *ctx, int line, const jargs *a) {
    int64_t start = 0, stop, step = 1;
    if (a->n_pos == 1) {
        stop = want_int(ctx, line, "range", a->pos[0]);
    } else if (a->n_pos == 2 || a->n_pos == 3) {
        start = want_int(ctx, line, "range", a->pos[0]);
        stop = want_int(ctx, line, "range", a->pos[1]);
        if (a->n_pos == 3)
            step = want_int(ctx, line, "range", a->pos[2]);
    } else {
        jx_fail(ctx, line, "range takes 1 to 3 arguments");
    }
    if (step == 0)
        jx_fail(ctx, line, "range step cannot be zero");
    double count = ceil(((double)stop - (double)start) / (double)step);
    if (count > JINJA_MAX_LIST)
        jx_fail(ctx, line, "range of more than %u elements", JINJA_MAX_LIST);
    jv out = jv_list(ctx, count > 0 ? (size_t)count : 0);
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
        jlist_push(ctx, out.u.l, jv_int(i));
    return out;
}

static jv g_mapping(jctx *ctx, int line, const jargs *a, bool is_namespace) {
    jv d = jv_dict(ctx, a->n_kw);
    d.u.d->is_namespace = is_namespace;
    for (size_t i = 0; i < a->n_pos; i++) { /* namespace({...}) / dict({...}) copy a mapping */
        jv src = a->pos[i];
        if (src.t != JV_DICT)
            jx_fail(ctx, line, "%s() takes a mapping or keyword arguments",
                    is_namespace ? "namespace" : "dict");
        for (size_t k = 0; k < src.u.d->len; k++)
            jdict_set(ctx, d.u.d, src.u.d->keys[k], src.u.d->vals[k]);
    }
    for (size_t i = 0; i < a->n_kw; i++)
        jdict_set_cstr(ctx, d.u.d, a->kwnames[i], a->kw[i]);
    return d;
}

/* Days since 1970-01-01 to a civil date (proleptic Gregorian), without gmtime's static
 * buffer. */
static void civil_from_days(int64_t z, int *y, int *m, int *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static jv g_strftime(jctx *ctx, int line, const jargs *a) {
    if (a->n_pos != 1)
        jx_fail(ctx, line, "strftime_now takes one format argument");
    const jstr *fmt = want_str(ctx, line, "strftime_now", a->pos[0]);
    int64_t t = ctx->now;
    int64_t days = (t >= 0 ? t : t - 86399) / 86400, secs = t - days * 86400;
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = m - 1;
    tm.tm_mday = d;
    tm.tm_hour = (int)(secs / 3600);
    tm.tm_min = (int)(secs / 60 % 60);
    tm.tm_sec = (int)(secs % 60);
    tm.tm_wday = (int)(((days % 7) + 11) % 7); /* 1970-01-01 was a Thursday */
    static const int cum[] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    tm.tm_yday = cum[m - 1] + d - 1 + (leap && m > 2);
    char buf[256];
    size_t n = fmt->len ? strftime(buf, sizeof buf, fmt->data, &tm) : 0;
    if (fmt->len && n == 0)
        jx_fail(ctx, line, "strftime_now: format result too long or empty");
    return jv_strn(ctx, buf, n);
}

jv jinja_call_func(jctx *ctx, int line, int func, const jargs *a) {
    switch (func) {
    case G_RANGE: return g_range(ctx, line, a);
    case G_NAMESPACE: return g_mapping(ctx, line, a, true);
    case G_DICT: return g_mapping(ctx, line, a, false);
    case G_RAISE: {
        jv msg;
        if (!get_arg(a, 0, "message", &msg))
            jx_fail(ctx, line, "raise_exception called without a message");
        /* The template's own message, verbatim: it is meant for the user. */
        jx_fail(ctx, 0, "%s", jv_to_str(ctx, msg)->data);
    }
    case G_STRFTIME: return g_strftime(ctx, line, a);
    default: jx_fail(ctx, line, "internal error: unknown function");
    }
}
