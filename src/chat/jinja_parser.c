/* The Jinja parser: tokens to AST, with Jinja's operator precedence (lowest first):
 * conditional expression, or, and, not, comparisons and in, + -, ~, * / // %, **, unary
 * minus, then primaries with their postfixes, filters and tests. Unknown tags fail here;
 * unknown filters and tests fail when a render reaches them, as in Jinja 3.1, so a template
 * whose exotic branch is not taken still renders. */
#include <stdio.h>
#include <string.h>

#include "chat/jinja_internal.h"

typedef struct parser {
    jctx *ctx;
    const jtokens *toks;
    size_t pos;
    int depth;
    int loop_depth; /* for loops around the current statement (break/continue need one) */
} parser;

static const jtok *peek(const parser *p) {
    return &p->toks->v[p->pos];
}
static const jtok *peek_at(const parser *p, size_t k) {
    size_t i = p->pos + k;
    return &p->toks->v[i < p->toks->n ? i : p->toks->n - 1];
}
static const jtok *next(parser *p) {
    const jtok *t = peek(p);
    if (t->t != JT_EOF)
        p->pos++;
    return t;
}

static bool tok_is_op(const jtok *t, const char *op) {
    return t->t == JT_OP && strcmp(t->s, op) == 0;
}
static bool tok_is_name(const jtok *t, const char *name) {
    return t->t == JT_NAME && strcmp(t->s, name) == 0;
}

static const char *describe(const jtok *t) {
    switch (t->t) {
    case JT_EOF: return "end of template";
    case JT_BLOCK_END: return "'%}'";
    case JT_VAR_END: return "'}}'";
    case JT_TEXT: return "text";
    default: return t->s;
    }
}

static _Noreturn void fail_at(parser *p, const jtok *t, const char *what) {
    jx_fail(p->ctx, t->line, "expected %s, found %s%s%s", what, t->t == JT_STRING ? "'" : "",
            describe(t), t->t == JT_STRING ? "'" : "");
}

static void expect_op(parser *p, const char *op) {
    if (!tok_is_op(peek(p), op)) {
        char what[16];
        snprintf(what, sizeof what, "'%s'", op);
        fail_at(p, peek(p), what);
    }
    next(p);
}

static const char *expect_name(parser *p) {
    const jtok *t = peek(p);
    if (t->t != JT_NAME)
        fail_at(p, t, "a name");
    next(p);
    return t->s;
}

static void expect_block_end(parser *p) {
    if (peek(p)->t != JT_BLOCK_END)
        fail_at(p, peek(p), "'%}'");
    next(p);
}

static jnode *new_node(parser *p, jnode_kind kind, int line) {
    jnode *n = jx_alloc(p->ctx, sizeof *n);
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->line = line;
    return n;
}

static void nodes_push(jctx *ctx, jnodes *l, jnode *n) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        jnode **v = jx_alloc(ctx, cap * sizeof(jnode *));
        if (l->n)
            memcpy(v, l->v, l->n * sizeof(jnode *));
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = n;
}

static void enter(parser *p, int line) {
    if (++p->depth > JINJA_MAX_NESTING)
        jx_fail(p->ctx, line, "template nested deeper than %d levels", JINJA_MAX_NESTING);
}

static jnode *parse_expr(parser *p);
static jnode *parse_or(parser *p);
static jnode *parse_unary(parser *p, bool with_filter);

/* ---- expressions ---- */

/* "(" args ")" with keyword arguments; the "(" is current. */
static void parse_call_args(parser *p, jnode *n) {
    expect_op(p, "(");
    const char *names[64];
    jnodes kw = {0};
    while (!tok_is_op(peek(p), ")")) {
        if (peek(p)->t == JT_NAME && tok_is_op(peek_at(p, 1), "=")) {
            if (kw.n >= CAIRN_ARRAY_LEN(names))
                jx_fail(p->ctx, peek(p)->line, "too many keyword arguments");
            names[kw.n] = next(p)->s;
            next(p);
            nodes_push(p->ctx, &kw, parse_expr(p));
        } else {
            if (kw.n)
                jx_fail(p->ctx, peek(p)->line, "positional argument after keyword argument");
            nodes_push(p->ctx, &n->args, parse_expr(p));
        }
        if (!tok_is_op(peek(p), ","))
            break;
        next(p);
    }
    expect_op(p, ")");
    n->kwargs = kw;
    if (kw.n) {
        n->kwnames = jx_alloc(p->ctx, kw.n * sizeof *n->kwnames);
        memcpy(n->kwnames, names, kw.n * sizeof *n->kwnames);
    }
}

static jnode *parse_literal_seq(parser *p, const char *close, int line) {
    jnode *n = new_node(p, JN_LIST, line);
    while (!tok_is_op(peek(p), close)) {
        nodes_push(p->ctx, &n->args, parse_expr(p));
        if (!tok_is_op(peek(p), ","))
            break;
        next(p);
    }
    expect_op(p, close);
    return n;
}

static jnode *parse_primary(parser *p) {
    const jtok *t = next(p);
    jnode *n;
    switch (t->t) {
    case JT_NAME:
        if (!strcmp(t->s, "true") || !strcmp(t->s, "True") || !strcmp(t->s, "false") ||
            !strcmp(t->s, "False")) {
            n = new_node(p, JN_LITERAL, t->line);
            n->lit = jv_bool(t->s[0] == 't' || t->s[0] == 'T');
        } else if (!strcmp(t->s, "none") || !strcmp(t->s, "None")) {
            n = new_node(p, JN_LITERAL, t->line);
            n->lit = jv_none();
        } else {
            n = new_node(p, JN_NAME, t->line);
            n->op = t->s;
        }
        return n;
    case JT_STRING: {
        jsb sb = {0};
        jsb_put(p->ctx, &sb, t->s, t->len);
        while (peek(p)->t == JT_STRING) { /* adjacent literals concatenate */
            const jtok *u = next(p);
            jsb_put(p->ctx, &sb, u->s, u->len);
        }
        n = new_node(p, JN_LITERAL, t->line);
        n->lit = jsb_value(p->ctx, &sb);
        return n;
    }
    case JT_INT:
        n = new_node(p, JN_LITERAL, t->line);
        n->lit = jv_int(t->i);
        return n;
    case JT_FLOAT:
        n = new_node(p, JN_LITERAL, t->line);
        n->lit = jv_float(t->f);
        return n;
    case JT_OP:
        if (!strcmp(t->s, "(")) {
            if (tok_is_op(peek(p), ")")) {
                next(p);
                return new_node(p, JN_LIST, t->line);
            }
            jnode *e = parse_expr(p);
            if (tok_is_op(peek(p), ",")) { /* a tuple: a list will do */
                next(p);
                n = parse_literal_seq(p, ")", t->line);
                jnodes items = {0};
                nodes_push(p->ctx, &items, e);
                for (size_t i = 0; i < n->args.n; i++)
                    nodes_push(p->ctx, &items, n->args.v[i]);
                n->args = items;
                n->is_tuple = true;
                return n;
            }
            expect_op(p, ")");
            return e;
        }
        if (!strcmp(t->s, "["))
            return parse_literal_seq(p, "]", t->line);
        if (!strcmp(t->s, "{")) {
            n = new_node(p, JN_DICT, t->line);
            while (!tok_is_op(peek(p), "}")) {
                nodes_push(p->ctx, &n->args, parse_expr(p));
                expect_op(p, ":");
                nodes_push(p->ctx, &n->kwargs, parse_expr(p));
                if (!tok_is_op(peek(p), ","))
                    break;
                next(p);
            }
            expect_op(p, "}");
            return n;
        }
        break;
    default: break;
    }
    p->pos--;
    fail_at(p, t, "an expression");
}

static jnode *parse_subscript(parser *p, jnode *obj, int line) {
    jnode *parts[3] = {NULL, NULL, NULL};
    int k = 0;
    bool is_slice = false;
    for (;;) {
        if (!tok_is_op(peek(p), ":") && !tok_is_op(peek(p), "]"))
            parts[k] = parse_expr(p);
        if (tok_is_op(peek(p), ":") && k < 2) {
            next(p);
            is_slice = true;
            k++;
            continue;
        }
        break;
    }
    expect_op(p, "]");
    jnode *n = new_node(p, is_slice ? JN_SLICE : JN_INDEX, line);
    n->a = obj;
    if (is_slice) {
        n->b = parts[0];
        n->c = parts[1];
        nodes_push(p->ctx, &n->args, parts[2]); /* the step, maybe NULL */
    } else {
        if (!parts[0])
            jx_fail(p->ctx, line, "empty subscript");
        n->b = parts[0];
    }
    return n;
}

static jnode *parse_postfix(parser *p, jnode *n) {
    for (;;) {
        const jtok *t = peek(p);
        if (tok_is_op(t, ".")) {
            next(p);
            const jtok *a = next(p);
            jnode *m;
            if (a->t == JT_NAME) {
                m = new_node(p, JN_ATTR, a->line);
                m->op = a->s;
            } else if (a->t == JT_INT) {
                m = new_node(p, JN_INDEX, a->line);
                m->b = new_node(p, JN_LITERAL, a->line);
                m->b->lit = jv_int(a->i);
            } else {
                p->pos--;
                fail_at(p, a, "an attribute name");
            }
            m->a = n;
            n = m;
        } else if (tok_is_op(t, "[")) {
            next(p);
            n = parse_subscript(p, n, t->line);
        } else if (tok_is_op(t, "(")) {
            jnode *c = new_node(p, JN_CALL, t->line);
            c->a = n;
            parse_call_args(p, c);
            n = c;
        } else {
            return n;
        }
    }
}

static jnode *parse_filter(parser *p, jnode *obj) {
    const jtok *t = peek(p);
    jsb name = {0};
    jsb_puts(p->ctx, &name, expect_name(p));
    while (tok_is_op(peek(p), ".")) {
        next(p);
        jsb_putc(p->ctx, &name, '.');
        jsb_puts(p->ctx, &name, expect_name(p));
    }
    jnode *f = new_node(p, JN_FILTER, t->line);
    f->op = name.data;
    f->a = obj;
    if (tok_is_op(peek(p), "("))
        parse_call_args(p, f);
    return f;
}

static bool starts_test_arg(const jtok *t) {
    if (t->t == JT_NAME)
        return !tok_is_name(t, "else") && !tok_is_name(t, "or") && !tok_is_name(t, "and");
    return t->t == JT_STRING || t->t == JT_INT || t->t == JT_FLOAT || tok_is_op(t, "[") ||
           tok_is_op(t, "{");
}

static jnode *parse_test(parser *p, jnode *obj) {
    const jtok *t = next(p); /* "is" */
    jnode *n = new_node(p, JN_TEST, t->line);
    n->a = obj;
    if (tok_is_name(peek(p), "not")) {
        next(p);
        n->negated = true;
    }
    n->op = expect_name(p);
    if (tok_is_op(peek(p), "(")) {
        parse_call_args(p, n);
    } else if (starts_test_arg(peek(p))) {
        if (tok_is_name(peek(p), "is"))
            jx_fail(p->ctx, t->line, "tests cannot be chained with 'is'");
        nodes_push(p->ctx, &n->args, parse_postfix(p, parse_primary(p)));
    }
    return n;
}

static jnode *parse_filters_and_tests(parser *p, jnode *n) {
    for (;;) {
        const jtok *t = peek(p);
        if (tok_is_op(t, "|")) {
            next(p);
            n = parse_filter(p, n);
        } else if (tok_is_name(t, "is")) {
            n = parse_test(p, n);
        } else if (tok_is_op(t, "(")) {
            n = parse_postfix(p, n);
        } else {
            return n;
        }
    }
}

static jnode *parse_unary(parser *p, bool with_filter) {
    const jtok *t = peek(p);
    enter(p, t->line);
    jnode *n;
    if (tok_is_op(t, "-") || tok_is_op(t, "+")) {
        next(p);
        n = new_node(p, t->s[0] == '-' ? JN_NEG : JN_POS, t->line);
        n->a = parse_unary(p, false);
    } else {
        n = parse_primary(p);
    }
    n = parse_postfix(p, n);
    if (with_filter)
        n = parse_filters_and_tests(p, n);
    p->depth--;
    return n;
}

static jnode *binop(parser *p, const jtok *t, jnode *a, jnode *b) {
    jnode *n = new_node(p, JN_BINOP, t->line);
    n->op = t->s;
    n->a = a;
    n->b = b;
    return n;
}

static jnode *parse_pow(parser *p) {
    jnode *a = parse_unary(p, true);
    while (tok_is_op(peek(p), "**")) {
        const jtok *t = next(p);
        a = binop(p, t, a, parse_unary(p, true));
    }
    return a;
}

static jnode *parse_math2(parser *p) {
    jnode *a = parse_pow(p);
    for (;;) {
        const jtok *t = peek(p);
        if (!tok_is_op(t, "*") && !tok_is_op(t, "/") && !tok_is_op(t, "//") && !tok_is_op(t, "%"))
            return a;
        next(p);
        a = binop(p, t, a, parse_pow(p));
    }
}

static jnode *parse_concat(parser *p) {
    jnode *a = parse_math2(p);
    while (tok_is_op(peek(p), "~")) {
        const jtok *t = next(p);
        a = binop(p, t, a, parse_math2(p));
    }
    return a;
}

static jnode *parse_math1(parser *p) {
    jnode *a = parse_concat(p);
    for (;;) {
        const jtok *t = peek(p);
        if (!tok_is_op(t, "+") && !tok_is_op(t, "-"))
            return a;
        next(p);
        a = binop(p, t, a, parse_concat(p));
    }
}

static const char *compare_op(parser *p, bool *negated) {
    const jtok *t = peek(p);
    static const char *const ops[] = {"==", "!=", "<", "<=", ">", ">="};
    *negated = false;
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(ops); i++)
        if (tok_is_op(t, ops[i])) {
            next(p);
            return ops[i];
        }
    if (tok_is_name(t, "in")) {
        next(p);
        return "in";
    }
    if (tok_is_name(t, "not") && tok_is_name(peek_at(p, 1), "in")) {
        next(p);
        next(p);
        *negated = true;
        return "in";
    }
    return NULL;
}

static jnode *parse_compare(parser *p) {
    jnode *a = parse_math1(p);
    jnode *result = NULL;
    for (;;) {
        int line = peek(p)->line;
        bool negated;
        const char *op = compare_op(p, &negated);
        if (!op)
            break;
        jnode *b = parse_math1(p);
        jnode *c = new_node(p, JN_COMPARE, line);
        c->op = op;
        c->negated = negated;
        c->a = a;
        c->b = b;
        if (result) { /* a < b < c means a < b and b < c */
            jnode *both = new_node(p, JN_AND, line);
            both->a = result;
            both->b = c;
            result = both;
        } else {
            result = c;
        }
        a = b;
    }
    return result ? result : a;
}

static jnode *parse_not(parser *p) {
    const jtok *t = peek(p);
    if (tok_is_name(t, "not")) {
        next(p);
        enter(p, t->line);
        jnode *n = new_node(p, JN_NOT, t->line);
        n->a = parse_not(p);
        p->depth--;
        return n;
    }
    return parse_compare(p);
}

static jnode *parse_and(parser *p) {
    jnode *a = parse_not(p);
    while (tok_is_name(peek(p), "and")) {
        const jtok *t = next(p);
        jnode *n = new_node(p, JN_AND, t->line);
        n->a = a;
        n->b = parse_not(p);
        a = n;
    }
    return a;
}

static jnode *parse_or(parser *p) {
    jnode *a = parse_and(p);
    while (tok_is_name(peek(p), "or")) {
        const jtok *t = next(p);
        jnode *n = new_node(p, JN_OR, t->line);
        n->a = a;
        n->b = parse_and(p);
        a = n;
    }
    return a;
}

/* "a if cond else b"; a missing else gives undefined. */
static jnode *parse_expr(parser *p) {
    enter(p, peek(p)->line);
    jnode *a = parse_or(p);
    while (tok_is_name(peek(p), "if")) {
        const jtok *t = next(p);
        jnode *n = new_node(p, JN_COND, t->line);
        n->a = parse_or(p);
        n->b = a;
        if (tok_is_name(peek(p), "else")) {
            next(p);
            n->c = parse_expr(p);
        }
        a = n;
    }
    p->depth--;
    return a;
}

/* An expression that may be a bare tuple "a, b" (the right side of set). */
static jnode *parse_tuple_expr(parser *p) {
    jnode *first = parse_expr(p);
    if (!tok_is_op(peek(p), ","))
        return first;
    jnode *n = new_node(p, JN_LIST, first->line);
    n->is_tuple = true;
    nodes_push(p->ctx, &n->args, first);
    while (tok_is_op(peek(p), ",")) {
        next(p);
        if (peek(p)->t == JT_BLOCK_END)
            break;
        nodes_push(p->ctx, &n->args, parse_expr(p));
    }
    return n;
}

/* ---- statements ---- */

static jnodes parse_body(parser *p, const char *const *ends, const char **which, const char *opener,
                         int opener_line);

static bool in_list(const char *name, const char *const *list) {
    for (; list && *list; list++)
        if (!strcmp(name, *list))
            return true;
    return false;
}

static void parse_targets(parser *p, jnodes *targets) {
    for (;;) {
        const jtok *t = peek(p);
        jnode *n = new_node(p, JN_NAME, t->line);
        n->op = expect_name(p);
        nodes_push(p->ctx, targets, n);
        if (!tok_is_op(peek(p), ","))
            return;
        next(p);
    }
}

static jnode *parse_if(parser *p, int line) {
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    jnode *n = new_node(p, JN_IF, line);
    n->a = parse_expr(p);
    expect_block_end(p);
    const char *which;
    n->body = parse_body(p, ends, &which, "if", line);
    if (!strcmp(which, "elif")) {
        jnode *elif = parse_if(p, peek(p)->line);
        nodes_push(p->ctx, &n->else_body, elif);
        return n;
    }
    if (!strcmp(which, "else")) {
        static const char *const end_only[] = {"endif", NULL};
        expect_block_end(p);
        n->else_body = parse_body(p, end_only, &which, "if", line);
    }
    expect_block_end(p);
    return n;
}

static jnode *parse_for(parser *p, int line) {
    static const char *const ends[] = {"else", "endfor", NULL};
    jnode *n = new_node(p, JN_FOR, line);
    parse_targets(p, &n->args);
    if (!tok_is_name(peek(p), "in"))
        fail_at(p, peek(p), "'in'");
    next(p);
    n->a = parse_or(p);
    if (tok_is_op(peek(p), ",")) { /* for x in a, b */
        jnode *l = new_node(p, JN_LIST, line);
        nodes_push(p->ctx, &l->args, n->a);
        while (tok_is_op(peek(p), ",")) {
            next(p);
            nodes_push(p->ctx, &l->args, parse_or(p));
        }
        n->a = l;
    }
    if (tok_is_name(peek(p), "if")) {
        next(p);
        n->b = parse_expr(p);
    }
    if (tok_is_name(peek(p), "recursive"))
        jx_fail(p->ctx, line, "unsupported construct: recursive for loops");
    expect_block_end(p);
    const char *which;
    p->loop_depth++;
    n->body = parse_body(p, ends, &which, "for", line);
    p->loop_depth--;
    if (!strcmp(which, "else")) {
        static const char *const end_only[] = {"endfor", NULL};
        expect_block_end(p);
        n->else_body = parse_body(p, end_only, &which, "for", line);
    }
    expect_block_end(p);
    return n;
}

/* The "| f | g" chain of a filter block or block set, applied to the block's text. */
static jnode *parse_filter_chain(parser *p, int line, bool leading_bar) {
    jnode *n = new_node(p, JN_BLOCK_VALUE, line);
    if (!leading_bar)
        n = parse_filter(p, n);
    while (tok_is_op(peek(p), "|")) {
        next(p);
        n = parse_filter(p, n);
    }
    return n;
}

static jnode *parse_set(parser *p, int line) {
    const char *name = expect_name(p);
    if (tok_is_op(peek(p), ".")) {
        next(p);
        jnode *n = new_node(p, JN_SET_ATTR, line);
        n->op = name;
        n->name2 = expect_name(p);
        expect_op(p, "=");
        n->a = parse_tuple_expr(p);
        expect_block_end(p);
        return n;
    }
    if (tok_is_op(peek(p), "=") || tok_is_op(peek(p), ",")) {
        jnode *n = new_node(p, JN_SET, line);
        jnode *t = new_node(p, JN_NAME, line);
        t->op = name;
        nodes_push(p->ctx, &n->args, t);
        if (tok_is_op(peek(p), ",")) {
            next(p);
            parse_targets(p, &n->args);
        }
        expect_op(p, "=");
        n->a = parse_tuple_expr(p);
        expect_block_end(p);
        return n;
    }
    static const char *const ends[] = {"endset", NULL};
    jnode *n = new_node(p, JN_SET_BLOCK, line);
    n->op = name;
    if (tok_is_op(peek(p), "|"))
        n->a = parse_filter_chain(p, line, true);
    expect_block_end(p);
    const char *which;
    n->body = parse_body(p, ends, &which, "set", line);
    expect_block_end(p);
    return n;
}

static jnode *parse_macro(parser *p, int line) {
    static const char *const ends[] = {"endmacro", NULL};
    jnode *n = new_node(p, JN_MACRO, line);
    n->op = expect_name(p);
    expect_op(p, "(");
    while (!tok_is_op(peek(p), ")")) {
        jnode *param = new_node(p, JN_NAME, peek(p)->line);
        param->op = expect_name(p);
        nodes_push(p->ctx, &n->args, param);
        jnode *def = NULL;
        if (tok_is_op(peek(p), "=")) {
            next(p);
            def = parse_expr(p);
        }
        nodes_push(p->ctx, &n->kwargs, def);
        if (!tok_is_op(peek(p), ","))
            break;
        next(p);
    }
    expect_op(p, ")");
    expect_block_end(p);
    const char *which;
    int saved_loops = p->loop_depth; /* a macro body is outside any caller's loop */
    p->loop_depth = 0;
    n->body = parse_body(p, ends, &which, "macro", line);
    p->loop_depth = saved_loops;
    if (peek(p)->t == JT_NAME) /* {% endmacro name %} */
        next(p);
    expect_block_end(p);
    return n;
}

static jnode *parse_statement(parser *p) {
    const jtok *t = peek(p);
    if (t->t != JT_NAME)
        fail_at(p, t, "a tag name");
    next(p);
    int line = t->line;
    const char *tag = t->s;
    if (!strcmp(tag, "if"))
        return parse_if(p, line);
    if (!strcmp(tag, "for"))
        return parse_for(p, line);
    if (!strcmp(tag, "set"))
        return parse_set(p, line);
    if (!strcmp(tag, "macro"))
        return parse_macro(p, line);
    if (!strcmp(tag, "break") || !strcmp(tag, "continue")) {
        if (p->loop_depth == 0)
            jx_fail(p->ctx, line, "'%s' outside a for loop", tag);
        expect_block_end(p);
        return new_node(p, tag[0] == 'b' ? JN_BREAK : JN_CONTINUE, line);
    }
    if (!strcmp(tag, "filter")) {
        static const char *const ends[] = {"endfilter", NULL};
        jnode *n = new_node(p, JN_FILTER_BLOCK, line);
        n->a = parse_filter_chain(p, line, false);
        expect_block_end(p);
        const char *which;
        n->body = parse_body(p, ends, &which, "filter", line);
        expect_block_end(p);
        return n;
    }
    if (!strcmp(tag, "generation")) {
        static const char *const ends[] = {"endgeneration", NULL};
        jnode *n = new_node(p, JN_SCOPE_BLOCK, line);
        expect_block_end(p);
        const char *which;
        n->body = parse_body(p, ends, &which, "generation", line);
        expect_block_end(p);
        return n;
    }
    jx_fail(p->ctx, line, "unknown tag '%s'", tag);
}

static bool is_end_tag(const char *name) {
    return !strncmp(name, "end", 3) || !strcmp(name, "elif") || !strcmp(name, "else");
}

/* Statements until one of the end tags (whose name is consumed and returned in *which; the
 * caller reads the rest of that tag), or until the end of the template when ends is NULL. */
static jnodes parse_body(parser *p, const char *const *ends, const char **which, const char *opener,
                         int opener_line) {
    jnodes body = {0};
    enter(p, opener_line);
    for (;;) {
        const jtok *t = peek(p);
        if (t->t == JT_EOF) {
            if (ends) {
                const char *const *last = ends;
                while (last[1])
                    last++;
                jx_fail(p->ctx, opener_line, "unclosed '{%% %s %%}' (missing '{%% %s %%}')", opener,
                        *last);
            }
            break;
        }
        if (t->t == JT_TEXT) {
            next(p);
            jnode *n = new_node(p, JN_TEXT, t->line);
            n->lit = jv_strn(p->ctx, t->s, t->len);
            nodes_push(p->ctx, &body, n);
            continue;
        }
        if (t->t == JT_VAR_BEGIN) {
            next(p);
            jnode *n = new_node(p, JN_OUTPUT, t->line);
            n->a = parse_expr(p);
            if (peek(p)->t != JT_VAR_END)
                fail_at(p, peek(p), "'}}'");
            next(p);
            nodes_push(p->ctx, &body, n);
            continue;
        }
        if (t->t != JT_BLOCK_BEGIN)
            fail_at(p, t, "text or a tag");
        const jtok *name = peek_at(p, 1);
        if (name->t == JT_NAME && in_list(name->s, ends)) {
            next(p);
            next(p);
            *which = name->s;
            break;
        }
        if (name->t == JT_NAME && is_end_tag(name->s)) {
            if (ends)
                jx_fail(p->ctx, name->line,
                        "unexpected '{%% %s %%}' inside '{%% %s %%}' of line %d", name->s, opener,
                        opener_line);
            jx_fail(p->ctx, name->line, "unexpected '{%% %s %%}'", name->s);
        }
        next(p);
        nodes_push(p->ctx, &body, parse_statement(p));
    }
    p->depth--;
    return body;
}

jnodes jinja_parse(jctx *ctx, const jtokens *toks) {
    parser p = {.ctx = ctx, .toks = toks};
    const char *which = NULL;
    return parse_body(&p, NULL, &which, "", 0);
}
