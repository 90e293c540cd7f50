/* The Jinja evaluator: expressions to values, statements to text. Scoping follows Jinja: a
 * for loop and a macro call open a scope, so a plain {% set %} inside them is not seen after
 * them (templates use namespace() for that); if blocks do not open one. Macros see the
 * template's top-level scope plus their arguments. */
#include <math.h>
#include <string.h>

#include "chat/jinja_internal.h"

static jscope *scope_new(jctx *ctx, jscope *parent) {
    jscope *sc = jx_alloc(ctx, sizeof *sc);
    sc->vars = jv_dict(ctx, 0).u.d;
    sc->parent = parent;
    return sc;
}

static bool scope_lookup(const jscope *sc, const char *name, jv *out) {
    for (; sc; sc = sc->parent)
        if (jdict_get_cstr(sc->vars, name, out))
            return true;
    return false;
}

static void scope_set(jctx *ctx, jscope *sc, const char *name, jv v) {
    jdict_set_cstr(ctx, sc->vars, name, v);
}

static _Noreturn void fail_undefined(jctx *ctx, int line, jv v) {
    if (v.u.undef_name)
        jx_fail(ctx, line, "'%s' is undefined", v.u.undef_name);
    jx_fail(ctx, line, "value is undefined");
}

/* ---- attribute and item access ---- */

static jv loop_attr(jctx *ctx, int line, const jloop *lp, const char *name) {
    int64_t i = (int64_t)lp->index0, n = (int64_t)lp->length;
    if (!strcmp(name, "index"))
        return jv_int(i + 1);
    if (!strcmp(name, "index0"))
        return jv_int(i);
    if (!strcmp(name, "first"))
        return jv_bool(i == 0);
    if (!strcmp(name, "last"))
        return jv_bool(i == n - 1);
    if (!strcmp(name, "length"))
        return jv_int(n);
    if (!strcmp(name, "revindex"))
        return jv_int(n - i);
    if (!strcmp(name, "revindex0"))
        return jv_int(n - i - 1);
    if (!strcmp(name, "previtem"))
        return i > 0 ? lp->items[i - 1] : jv_undef("loop.previtem");
    if (!strcmp(name, "nextitem"))
        return i + 1 < n ? lp->items[i + 1] : jv_undef("loop.nextitem");
    if (!strcmp(name, "depth"))
        return jv_int(1);
    if (!strcmp(name, "depth0"))
        return jv_int(0);
    jx_fail(ctx, line, "unknown loop attribute 'loop.%s'", name);
}

static jv get_attr(jctx *ctx, int line, jv obj, const char *name) {
    jv out;
    switch (obj.t) {
    case JV_UNDEF: fail_undefined(ctx, line, obj);
    case JV_DICT:
        if (jdict_get_cstr(obj.u.d, name, &out))
            return out;
        return jv_undef(name);
    case JV_LOOP: return loop_attr(ctx, line, obj.u.loop, name);
    default: return jv_undef(name);
    }
}

static bool list_index(int64_t i, size_t len, size_t *out) {
    if (i < 0)
        i += (int64_t)len;
    if (i < 0 || (uint64_t)i >= len)
        return false;
    *out = (size_t)i;
    return true;
}

static jv get_item(jctx *ctx, int line, jv obj, jv key) {
    size_t idx;
    jv out;
    switch (obj.t) {
    case JV_UNDEF: fail_undefined(ctx, line, obj);
    case JV_DICT:
        if (jdict_get(obj.u.d, key, &out))
            return out;
        return jv_undef(key.t == JV_STR ? key.u.s->data : "item");
    case JV_LIST:
        if (key.t != JV_INT && key.t != JV_BOOL)
            jx_fail(ctx, line, "list indices must be integers, not %s", jv_type_name(key));
        if (list_index(key.t == JV_INT ? key.u.i : key.u.b, obj.u.l->len, &idx))
            return obj.u.l->items[idx];
        return jv_undef("list item");
    case JV_STR: {
        if (key.t != JV_INT)
            jx_fail(ctx, line, "string indices must be integers, not %s", jv_type_name(key));
        size_t n;
        size_t *off = jstr_cp_offsets(ctx, obj.u.s, &n);
        if (list_index(key.u.i, n, &idx))
            return jv_strn(ctx, obj.u.s->data + off[idx], off[idx + 1] - off[idx]);
        return jv_undef("string item");
    }
    case JV_LOOP:
        if (key.t == JV_STR)
            return loop_attr(ctx, line, obj.u.loop, key.u.s->data);
        return jv_undef("loop item");
    default: return jv_undef("item");
    }
}

/* Python's slice.indices(): clamps start/stop and counts the selected elements. */
static size_t slice_indices(jctx *ctx, int line, size_t len, jv start_v, jv stop_v, jv step_v,
                            int64_t *start, int64_t *step) {
    int64_t n = (int64_t)len;
    *step = 1;
    if (step_v.t == JV_INT)
        *step = step_v.u.i;
    else if (step_v.t != JV_NONE && step_v.t != JV_UNDEF)
        jx_fail(ctx, line, "slice step must be an integer");
    if (*step == 0)
        jx_fail(ctx, line, "slice step cannot be zero");
    int64_t lower = *step > 0 ? 0 : -1, upper = *step > 0 ? n : n - 1;
    int64_t b[2];
    jv parts[2] = {start_v, stop_v};
    for (int k = 0; k < 2; k++) {
        if (parts[k].t == JV_NONE || parts[k].t == JV_UNDEF) {
            b[k] = (k == 0) == (*step > 0) ? lower : upper;
            continue;
        }
        if (parts[k].t != JV_INT)
            jx_fail(ctx, line, "slice indices must be integers");
        int64_t v = parts[k].u.i;
        if (v < 0) {
            v += n;
            if (v < lower)
                v = lower;
        } else if (v > upper) {
            v = upper;
        }
        b[k] = v;
    }
    *start = b[0];
    if (*step > 0)
        return b[1] > b[0] ? (size_t)((b[1] - b[0] + *step - 1) / *step) : 0;
    return b[0] > b[1] ? (size_t)((b[0] - b[1] - *step - 1) / -*step) : 0;
}

static jv eval_slice(jctx *ctx, jscope *sc, const jnode *n) {
    jv obj = jinja_eval(ctx, sc, n->a);
    jv start = n->b ? jinja_eval(ctx, sc, n->b) : jv_none();
    jv stop = n->c ? jinja_eval(ctx, sc, n->c) : jv_none();
    jv step = n->args.v[0] ? jinja_eval(ctx, sc, n->args.v[0]) : jv_none();
    int64_t first, stride;
    if (obj.t == JV_LIST) {
        size_t count =
            slice_indices(ctx, n->line, obj.u.l->len, start, stop, step, &first, &stride);
        jv out = jv_list(ctx, count);
        for (size_t i = 0; i < count; i++)
            jlist_push(ctx, out.u.l, obj.u.l->items[first + (int64_t)i * stride]);
        return out;
    }
    if (obj.t == JV_STR) {
        size_t len;
        size_t *off = jstr_cp_offsets(ctx, obj.u.s, &len);
        size_t count = slice_indices(ctx, n->line, len, start, stop, step, &first, &stride);
        if (stride == 1)
            return jv_strn(ctx, obj.u.s->data + off[first],
                           off[first + (int64_t)count] - off[first]);
        jsb sb = {0};
        for (size_t i = 0; i < count; i++) {
            int64_t k = first + (int64_t)i * stride;
            jsb_put(ctx, &sb, obj.u.s->data + off[k], off[k + 1] - off[k]);
        }
        return jsb_value(ctx, &sb);
    }
    if (obj.t == JV_UNDEF)
        fail_undefined(ctx, n->line, obj);
    jx_fail(ctx, n->line, "cannot slice a %s", jv_type_name(obj));
}

/* ---- operators ---- */

static _Noreturn void fail_operands(jctx *ctx, int line, const char *op, jv a, jv b) {
    if (a.t == JV_UNDEF)
        fail_undefined(ctx, line, a);
    if (b.t == JV_UNDEF)
        fail_undefined(ctx, line, b);
    jx_fail(ctx, line, "unsupported operand types for %s: %s and %s", op, jv_type_name(a),
            jv_type_name(b));
}

static jv repeat(jctx *ctx, int line, jv seq, int64_t times) {
    if (times < 0)
        times = 0;
    if (seq.t == JV_STR) {
        if (seq.u.s->len && (uint64_t)times > JINJA_MAX_STRING / seq.u.s->len)
            jx_fail(ctx, line, "string repetition too large");
        jsb sb = {0};
        for (int64_t i = 0; i < times; i++)
            jsb_put(ctx, &sb, seq.u.s->data, seq.u.s->len);
        return jsb_value(ctx, &sb);
    }
    if (seq.u.l->len && (uint64_t)times > JINJA_MAX_LIST / seq.u.l->len)
        jx_fail(ctx, line, "list repetition too large");
    jv out = jv_list(ctx, 0);
    for (int64_t i = 0; i < times; i++)
        for (size_t k = 0; k < seq.u.l->len; k++)
            jlist_push(ctx, out.u.l, seq.u.l->items[k]);
    return out;
}

static int64_t int_of(jv v) {
    return v.t == JV_BOOL ? v.u.b : v.u.i;
}

static jv int_arith(jctx *ctx, int line, char op, int64_t x, int64_t y) {
    int64_t r = 0;
    bool overflow = false;
    switch (op) {
    case '+':
        overflow = (y > 0 && x > INT64_MAX - y) || (y < 0 && x < INT64_MIN - y);
        r = x + (overflow ? 0 : y);
        break;
    case '-':
        overflow = (y < 0 && x > INT64_MAX + y) || (y > 0 && x < INT64_MIN + y);
        r = x - (overflow ? 0 : y);
        break;
    case '*':
        if (x != 0 && y != 0) {
            overflow = (x == -1 && y == INT64_MIN) || (y == -1 && x == INT64_MIN) ||
                       (x != -1 && y != -1 &&
                        (x > 0 ? (y > 0 ? x > INT64_MAX / y : y < INT64_MIN / x)
                               : (y > 0 ? x < INT64_MIN / y : x < INT64_MAX / y)));
            r = overflow ? 0 : x * y;
        }
        break;
    case 'f': /* floor division */
    case '%':
        if (y == 0)
            jx_fail(ctx, line, "integer division or modulo by zero");
        if (x == INT64_MIN && y == -1) {
            overflow = true;
            break;
        }
        r = op == 'f' ? x / y : x % y;
        if ((x % y != 0) && ((x < 0) != (y < 0)))
            r = op == 'f' ? r - 1 : r + y;
        break;
    }
    if (overflow)
        jx_fail(ctx, line, "integer overflow");
    return jv_int(r);
}

static jv arith(jctx *ctx, int line, const char *op, jv a, jv b) {
    bool nums = jv_is_number(a) && jv_is_number(b);
    bool ints = nums && a.t != JV_FLOAT && b.t != JV_FLOAT;
    if (!strcmp(op, "+")) {
        if (ints)
            return int_arith(ctx, line, '+', int_of(a), int_of(b));
        if (nums)
            return jv_float(jv_as_double(a) + jv_as_double(b));
        if (a.t == JV_STR && b.t == JV_STR) {
            bool safe = a.safe || b.safe;
            if (safe) { /* Markup + str escapes the str, as Jinja's Markup does */
                a = jv_html_escape(ctx, a);
                b = jv_html_escape(ctx, b);
            }
            jsb sb = {0};
            jsb_put(ctx, &sb, a.u.s->data, a.u.s->len);
            jsb_put(ctx, &sb, b.u.s->data, b.u.s->len);
            jv out = jsb_value(ctx, &sb);
            out.safe = safe;
            return out;
        }
        if (a.t == JV_LIST && b.t == JV_LIST) {
            jv out = jv_list(ctx, a.u.l->len + b.u.l->len);
            for (size_t i = 0; i < a.u.l->len; i++)
                jlist_push(ctx, out.u.l, a.u.l->items[i]);
            for (size_t i = 0; i < b.u.l->len; i++)
                jlist_push(ctx, out.u.l, b.u.l->items[i]);
            return out;
        }
        fail_operands(ctx, line, op, a, b);
    }
    if (!strcmp(op, "*")) {
        if (ints)
            return int_arith(ctx, line, '*', int_of(a), int_of(b));
        if (nums)
            return jv_float(jv_as_double(a) * jv_as_double(b));
        if ((a.t == JV_STR || a.t == JV_LIST) && (b.t == JV_INT || b.t == JV_BOOL))
            return repeat(ctx, line, a, int_of(b));
        if ((b.t == JV_STR || b.t == JV_LIST) && (a.t == JV_INT || a.t == JV_BOOL))
            return repeat(ctx, line, b, int_of(a));
        fail_operands(ctx, line, op, a, b);
    }
    if (!nums) {
        if (!strcmp(op, "%") && a.t == JV_STR)
            jx_fail(ctx, line, "unsupported construct: string formatting with '%%'");
        fail_operands(ctx, line, op, a, b);
    }
    double x = jv_as_double(a), y = jv_as_double(b);
    if (!strcmp(op, "-"))
        return ints ? int_arith(ctx, line, '-', int_of(a), int_of(b)) : jv_float(x - y);
    if (!strcmp(op, "/")) {
        if (y == 0)
            jx_fail(ctx, line, "division by zero");
        return jv_float(x / y);
    }
    if (!strcmp(op, "//")) {
        if (ints)
            return int_arith(ctx, line, 'f', int_of(a), int_of(b));
        if (y == 0)
            jx_fail(ctx, line, "division by zero");
        return jv_float(floor(x / y));
    }
    if (!strcmp(op, "%")) {
        if (ints)
            return int_arith(ctx, line, '%', int_of(a), int_of(b));
        if (y == 0)
            jx_fail(ctx, line, "modulo by zero");
        double r = fmod(x, y);
        if (r != 0 && ((r < 0) != (y < 0)))
            r += y;
        return jv_float(r);
    }
    /* ** */
    if (ints && int_of(b) >= 0) {
        int64_t base = int_of(a), e = int_of(b), r = 1;
        for (int64_t i = 0; i < e; i++) {
            r = int_arith(ctx, line, '*', r, base).u.i;
            if (r == 0 || r == 1)
                break;
        }
        return jv_int(r);
    }
    return jv_float(pow(x, y));
}

static bool contains(jctx *ctx, int line, jv needle, jv hay) {
    switch (hay.t) {
    case JV_STR:
        if (needle.t != JV_STR)
            jx_fail(ctx, line, "'in <string>' requires a string on the left, not %s",
                    jv_type_name(needle));
        if (needle.u.s->len == 0)
            return true;
        for (size_t i = 0; i + needle.u.s->len <= hay.u.s->len; i++)
            if (!memcmp(hay.u.s->data + i, needle.u.s->data, needle.u.s->len))
                return true;
        return false;
    case JV_LIST:
        for (size_t i = 0; i < hay.u.l->len; i++)
            if (jv_equal(ctx, needle, hay.u.l->items[i], 0))
                return true;
        return false;
    case JV_DICT: {
        jv unused;
        return jdict_get(hay.u.d, needle, &unused);
    }
    case JV_UNDEF: return false;
    default: jx_fail(ctx, line, "'in' needs a string, list or mapping, not %s", jv_type_name(hay));
    }
}

static jv eval_compare(jctx *ctx, jscope *sc, const jnode *n) {
    jv a = jinja_eval(ctx, sc, n->a), b = jinja_eval(ctx, sc, n->b);
    const char *op = n->op;
    if (!strcmp(op, "=="))
        return jv_bool(jv_equal(ctx, a, b, 0));
    if (!strcmp(op, "!="))
        return jv_bool(!jv_equal(ctx, a, b, 0));
    if (!strcmp(op, "in"))
        return jv_bool(contains(ctx, n->line, a, b) != n->negated);
    if (a.t == JV_UNDEF)
        fail_undefined(ctx, n->line, a);
    if (b.t == JV_UNDEF)
        fail_undefined(ctx, n->line, b);
    int c = jv_compare(ctx, n->line, a, b);
    if (!strcmp(op, "<"))
        return jv_bool(c < 0);
    if (!strcmp(op, "<="))
        return jv_bool(c <= 0);
    if (!strcmp(op, ">"))
        return jv_bool(c > 0);
    return jv_bool(c >= 0);
}

/* ---- calls ---- */

static void eval_args(jctx *ctx, jscope *sc, const jnode *n, jargs *a) {
    memset(a, 0, sizeof *a);
    if (n->args.n) {
        jv *pos = jx_alloc(ctx, n->args.n * sizeof *pos);
        for (size_t i = 0; i < n->args.n; i++)
            pos[i] = jinja_eval(ctx, sc, n->args.v[i]);
        a->pos = pos;
        a->n_pos = n->args.n;
    }
    if (n->kwargs.n) {
        jv *kw = jx_alloc(ctx, n->kwargs.n * sizeof *kw);
        for (size_t i = 0; i < n->kwargs.n; i++)
            kw[i] = jinja_eval(ctx, sc, n->kwargs.v[i]);
        a->kw = kw;
        a->n_kw = n->kwargs.n;
        a->kwnames = n->kwnames;
    }
}

static jv call_macro(jctx *ctx, int line, const jnode *m, const jargs *a) {
    if (ctx->call_depth >= JINJA_MAX_CALL_DEPTH)
        jx_fail(ctx, line, "macro calls nested deeper than %d levels", JINJA_MAX_CALL_DEPTH);
    size_t n_params = m->args.n;
    if (a->n_pos > n_params)
        jx_fail(ctx, line, "macro '%s' takes %zu arguments, %zu given", m->op, n_params, a->n_pos);
    jscope *sc = scope_new(ctx, ctx->globals);
    bool *bound = jx_alloc(ctx, (n_params ? n_params : 1) * sizeof *bound);
    for (size_t i = 0; i < n_params; i++)
        bound[i] = i < a->n_pos;
    for (size_t i = 0; i < a->n_pos; i++)
        scope_set(ctx, sc, m->args.v[i]->op, a->pos[i]);
    for (size_t k = 0; k < a->n_kw; k++) {
        size_t i = 0;
        while (i < n_params && strcmp(m->args.v[i]->op, a->kwnames[k]) != 0)
            i++;
        if (i == n_params)
            jx_fail(ctx, line, "macro '%s' has no argument '%s'", m->op, a->kwnames[k]);
        scope_set(ctx, sc, a->kwnames[k], a->kw[k]);
        bound[i] = true;
    }
    for (size_t i = 0; i < n_params; i++)
        if (!bound[i])
            scope_set(ctx, sc, m->args.v[i]->op,
                      m->kwargs.v[i] ? jinja_eval(ctx, sc, m->kwargs.v[i])
                                     : jv_undef(m->args.v[i]->op));
    ctx->call_depth++;
    jsb out = {0};
    if (jinja_exec(ctx, sc, &m->body, &out) != JX_OK)
        jx_fail(ctx, line, "'break' or 'continue' outside a loop");
    ctx->call_depth--;
    return jsb_value(ctx, &out);
}

jv jinja_call_value(jctx *ctx, jscope *sc, int line, jv callee, const jv *args, size_t n_args,
                    const char **kwnames, const jv *kwargs, size_t n_kwargs, const char *what) {
    (void)sc;
    jargs a = {.pos = args, .n_pos = n_args, .kwnames = kwnames, .kw = kwargs, .n_kw = n_kwargs};
    if (callee.t == JV_MACRO)
        return call_macro(ctx, line, callee.u.macro, &a);
    if (callee.t == JV_FUNC)
        return jinja_call_func(ctx, line, callee.u.func, &a);
    if (callee.t == JV_UNDEF)
        jx_fail(ctx, line, "'%s' is undefined", what ? what : "function");
    jx_fail(ctx, line, "'%s' is not callable (it is a %s)", what ? what : "value",
            jv_type_name(callee));
}

static jv eval_call(jctx *ctx, jscope *sc, const jnode *n) {
    jargs a;
    const jnode *callee = n->a;
    if (callee->kind == JN_ATTR) {
        jv obj = jinja_eval(ctx, sc, callee->a);
        if (obj.t == JV_UNDEF)
            fail_undefined(ctx, n->line, obj);
        eval_args(ctx, sc, n, &a);
        bool found = false;
        jv r = jinja_call_method(ctx, n->line, obj, callee->op, &a, &found);
        if (found)
            return r;
        jv member;
        if (obj.t == JV_DICT && jdict_get_cstr(obj.u.d, callee->op, &member))
            return jinja_call_value(ctx, sc, n->line, member, a.pos, a.n_pos, a.kwnames, a.kw,
                                    a.n_kw, callee->op);
        jx_fail(ctx, n->line, "unknown method '%s' of %s", callee->op, jv_type_name(obj));
    }
    jv f = jinja_eval(ctx, sc, callee);
    eval_args(ctx, sc, n, &a);
    return jinja_call_value(ctx, sc, n->line, f, a.pos, a.n_pos, a.kwnames, a.kw, a.n_kw,
                            callee->kind == JN_NAME ? callee->op : NULL);
}

/* ---- expressions ---- */

jv jinja_eval(jctx *ctx, jscope *sc, const jnode *n) {
    jv v, w;
    jargs a;
    switch (n->kind) {
    case JN_LITERAL: return n->lit;
    case JN_NAME: {
        if (scope_lookup(sc, n->op, &v))
            return v;
        int f = jinja_global_func(n->op);
        if (f >= 0) {
            v = (jv){.t = JV_FUNC};
            v.u.func = f;
            return v;
        }
        return jv_undef(n->op);
    }
    case JN_LIST:
        v = jv_list(ctx, n->args.n);
        v.u.l->is_tuple = n->is_tuple;
        for (size_t i = 0; i < n->args.n; i++)
            jlist_push(ctx, v.u.l, jinja_eval(ctx, sc, n->args.v[i]));
        return v;
    case JN_DICT:
        v = jv_dict(ctx, n->args.n);
        for (size_t i = 0; i < n->args.n; i++)
            jdict_set(ctx, v.u.d, jinja_eval(ctx, sc, n->args.v[i]),
                      jinja_eval(ctx, sc, n->kwargs.v[i]));
        return v;
    case JN_ATTR: return get_attr(ctx, n->line, jinja_eval(ctx, sc, n->a), n->op);
    case JN_INDEX:
        v = jinja_eval(ctx, sc, n->a);
        return get_item(ctx, n->line, v, jinja_eval(ctx, sc, n->b));
    case JN_SLICE: return eval_slice(ctx, sc, n);
    case JN_CALL: return eval_call(ctx, sc, n);
    case JN_FILTER:
        v = jinja_eval(ctx, sc, n->a);
        eval_args(ctx, sc, n, &a);
        return jinja_apply_filter(ctx, sc, n->line, n->op, v, &a);
    case JN_TEST:
        v = jinja_eval(ctx, sc, n->a);
        eval_args(ctx, sc, n, &a);
        return jv_bool(jinja_apply_test(ctx, sc, n->line, n->op, v, &a) != n->negated);
    case JN_NEG:
    case JN_POS:
        v = jinja_eval(ctx, sc, n->a);
        if (v.t == JV_BOOL)
            v = jv_int(v.u.b);
        if (v.t == JV_INT)
            return n->kind == JN_NEG ? int_arith(ctx, n->line, '-', 0, v.u.i) : v;
        if (v.t == JV_FLOAT)
            return jv_float(n->kind == JN_NEG ? -v.u.f : v.u.f);
        if (v.t == JV_UNDEF)
            fail_undefined(ctx, n->line, v);
        jx_fail(ctx, n->line, "bad operand type for unary %s: %s", n->kind == JN_NEG ? "-" : "+",
                jv_type_name(v));
    case JN_NOT: return jv_bool(!jv_truthy(jinja_eval(ctx, sc, n->a)));
    case JN_AND: v = jinja_eval(ctx, sc, n->a); return jv_truthy(v) ? jinja_eval(ctx, sc, n->b) : v;
    case JN_OR: v = jinja_eval(ctx, sc, n->a); return jv_truthy(v) ? v : jinja_eval(ctx, sc, n->b);
    case JN_BINOP:
        v = jinja_eval(ctx, sc, n->a);
        w = jinja_eval(ctx, sc, n->b);
        if (!strcmp(n->op, "~")) {
            jsb sb = {0};
            jv_write_str(ctx, &sb, v, 0);
            jv_write_str(ctx, &sb, w, 0);
            return jsb_value(ctx, &sb);
        }
        return arith(ctx, n->line, n->op, v, w);
    case JN_COMPARE: return eval_compare(ctx, sc, n);
    case JN_COND:
        if (jv_truthy(jinja_eval(ctx, sc, n->a)))
            return jinja_eval(ctx, sc, n->b);
        return n->c ? jinja_eval(ctx, sc, n->c) : jv_undef("conditional expression");
    case JN_BLOCK_VALUE:
        return jv_strn(ctx, ctx->block_text ? ctx->block_text : "", ctx->block_len);
    default: jx_fail(ctx, n->line, "internal error: statement used as an expression");
    }
}

/* ---- statements ---- */

static void emit(jctx *ctx, jsb *out, jv v, int line) {
    jv_write_str(ctx, out, v, 0);
    if (out->len > JINJA_MAX_OUTPUT)
        jx_fail(ctx, line, "template output exceeds %zu MiB", JINJA_MAX_OUTPUT >> 20);
}

/* The elements a for loop walks: list items, mapping keys or string characters. */
static const jv *iteration_items(jctx *ctx, int line, jv v, size_t *n) {
    switch (v.t) {
    case JV_LIST: *n = v.u.l->len; return v.u.l->items;
    case JV_DICT: *n = v.u.d->is_namespace ? 0 : v.u.d->len; return v.u.d->keys;
    case JV_UNDEF: *n = 0; return NULL;
    case JV_STR: return jstr_chars(ctx, v.u.s, n);
    default: jx_fail(ctx, line, "cannot loop over a value of type %s", jv_type_name(v));
    }
}

static void assign_targets(jctx *ctx, jscope *sc, int line, const jnodes *targets, jv v) {
    if (targets->n == 1) {
        scope_set(ctx, sc, targets->v[0]->op, v);
        return;
    }
    if (v.t != JV_LIST)
        jx_fail(ctx, line, "cannot unpack a %s into %zu names", jv_type_name(v), targets->n);
    if (v.u.l->len != targets->n)
        jx_fail(ctx, line, "cannot unpack %zu values into %zu names", v.u.l->len, targets->n);
    for (size_t i = 0; i < targets->n; i++)
        scope_set(ctx, sc, targets->v[i]->op, v.u.l->items[i]);
}

static void count_iteration(jctx *ctx, int line) {
    if (++ctx->iterations > JINJA_MAX_ITERATIONS)
        jx_fail(ctx, line, "template ran more than %u loop iterations", JINJA_MAX_ITERATIONS);
}

static void exec_for(jctx *ctx, jscope *sc, const jnode *n, jsb *out) {
    size_t count;
    const jv *items = iteration_items(ctx, n->line, jinja_eval(ctx, sc, n->a), &count);
    jscope *inner = scope_new(ctx, sc);
    if (n->b) { /* "for x in xs if cond": the loop sees only the items that pass */
        jv *kept = jx_alloc(ctx, (count ? count : 1) * sizeof *kept);
        size_t k = 0;
        for (size_t i = 0; i < count; i++) {
            count_iteration(ctx, n->line);
            assign_targets(ctx, inner, n->line, &n->args, items[i]);
            if (jv_truthy(jinja_eval(ctx, inner, n->b)))
                kept[k++] = items[i];
        }
        items = kept;
        count = k;
    }
    if (count == 0) {
        if (jinja_exec(ctx, sc, &n->else_body, out) != JX_OK)
            jx_fail(ctx, n->line, "'break' or 'continue' outside a loop");
        return;
    }
    jloop *lp = jx_alloc(ctx, sizeof *lp);
    lp->items = items;
    lp->length = count;
    jv loop_v = {.t = JV_LOOP};
    loop_v.u.loop = lp;
    for (size_t i = 0; i < count; i++) {
        count_iteration(ctx, n->line);
        lp->index0 = i;
        inner->vars->len = 0; /* each iteration starts afresh: sets do not carry over */
        scope_set(ctx, inner, "loop", loop_v);
        assign_targets(ctx, inner, n->line, &n->args, items[i]);
        if (jinja_exec(ctx, inner, &n->body, out) == JX_BREAK)
            break;
    }
}

static void exec_set_attr(jctx *ctx, jscope *sc, const jnode *n) {
    jv ns;
    if (!scope_lookup(sc, n->op, &ns))
        jx_fail(ctx, n->line, "'%s' is undefined", n->op);
    if (ns.t != JV_DICT || !ns.u.d->is_namespace)
        jx_fail(ctx, n->line, "cannot assign attribute '%s' on '%s': it is a %s, not a namespace",
                n->name2, n->op, jv_type_name(ns));
    jdict_set_cstr(ctx, ns.u.d, n->name2, jinja_eval(ctx, sc, n->a));
}

/* Renders body and passes its text through the filter chain in n->a (if any). */
static jv filtered_block(jctx *ctx, jscope *sc, const jnode *n) {
    jsb body = {0};
    if (jinja_exec(ctx, sc, &n->body, &body) != JX_OK)
        jx_fail(ctx, n->line, "'break' or 'continue' inside a block is not supported");
    if (!n->a)
        return jsb_value(ctx, &body);
    const char *saved = ctx->block_text;
    size_t saved_len = ctx->block_len;
    ctx->block_text = body.data;
    ctx->block_len = body.len;
    jv v = jinja_eval(ctx, sc, n->a);
    ctx->block_text = saved;
    ctx->block_len = saved_len;
    return v;
}

static int exec_one(jctx *ctx, jscope *sc, const jnode *n, jsb *out) {
    switch (n->kind) {
    case JN_TEXT: emit(ctx, out, n->lit, n->line); return JX_OK;
    case JN_OUTPUT: emit(ctx, out, jinja_eval(ctx, sc, n->a), n->line); return JX_OK;
    case JN_IF:
        if (jv_truthy(jinja_eval(ctx, sc, n->a)))
            return jinja_exec(ctx, sc, &n->body, out);
        return jinja_exec(ctx, sc, &n->else_body, out);
    case JN_FOR: exec_for(ctx, sc, n, out); return JX_OK;
    case JN_SET:
        assign_targets(ctx, sc, n->line, &n->args, jinja_eval(ctx, sc, n->a));
        return JX_OK;
    case JN_SET_ATTR: exec_set_attr(ctx, sc, n); return JX_OK;
    case JN_SET_BLOCK: scope_set(ctx, sc, n->op, filtered_block(ctx, sc, n)); return JX_OK;
    case JN_MACRO: {
        jv m = {.t = JV_MACRO};
        m.u.macro = n;
        scope_set(ctx, sc, n->op, m);
        return JX_OK;
    }
    case JN_BREAK: return JX_BREAK;
    case JN_CONTINUE: return JX_CONTINUE;
    case JN_FILTER_BLOCK: emit(ctx, out, filtered_block(ctx, sc, n), n->line); return JX_OK;
    case JN_SCOPE_BLOCK: return jinja_exec(ctx, sc, &n->body, out);
    default: emit(ctx, out, jinja_eval(ctx, sc, n), n->line); return JX_OK;
    }
}

int jinja_exec(jctx *ctx, jscope *sc, const jnodes *body, jsb *out) {
    for (size_t i = 0; i < body->n; i++) {
        int r = exec_one(ctx, sc, body->v[i], out);
        if (r != JX_OK)
            return r;
    }
    return JX_OK;
}
