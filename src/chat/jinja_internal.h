/*
 * Internals of the chat module's Jinja interpreter, shared by its source files only.
 *
 * Memory: every value, AST node and scratch string of one render lives in one arena that is
 * freed whole when the render ends, so values need no ownership rules of their own.
 * Errors: a failure anywhere formats its message into the caller's cairn_err and longjmps
 * back to the render entry point; that keeps the evaluator free of error plumbing while the
 * public API still returns every error normally.
 */
#ifndef CAIRN_JINJA_INTERNAL_H
#define CAIRN_JINJA_INTERNAL_H

#include <cjson/cJSON.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

/* Limits against hostile templates: each one, when hit, is a clear error. */
#define JINJA_MAX_MEMORY ((size_t)512 << 20) /* arena bytes for one render */
#define JINJA_MAX_OUTPUT ((size_t)16 << 20)  /* rendered text */
#define JINJA_MAX_STRING ((size_t)16 << 20)  /* any one string value */
#define JINJA_MAX_ITERATIONS 1000000u        /* loop iterations, all loops together */
#define JINJA_MAX_CALL_DEPTH 100             /* nested macro calls */
#define JINJA_MAX_NESTING 200                /* parser nesting and nested data depth */
#define JINJA_MAX_LIST 1000000u              /* elements of one list (range, repeat) */

/* ---- arena ---- */

typedef struct jarena_block jarena_block;
typedef struct jarena {
    jarena_block *head;
    size_t total;
} jarena;

/* ---- render context (the longjmp target and everything one render owns) ---- */

typedef struct jscope jscope;
typedef struct jnode jnode;

typedef struct jctx {
    jarena arena;
    jmp_buf on_error;
    cairn_err *err;
    jscope *globals;     /* context values and template-level sets */
    uint64_t iterations; /* loop iterations so far, against JINJA_MAX_ITERATIONS */
    int call_depth;
    int64_t now;            /* Unix seconds that strftime_now formats */
    const char *block_text; /* the rendered body a {% filter %} / block {% set %} filters */
    size_t block_len;
} jctx;

/* Formats "line N: message" into ctx->err and jumps out of the render (line 0: no prefix). */
_Noreturn void jx_fail(jctx *ctx, int line, const char *fmt, ...) CAIRN_PRINTF(3, 4);
void *jx_alloc(jctx *ctx, size_t size);
void jarena_free(jarena *a);

/* ---- values ---- */

typedef enum {
    JV_UNDEF,
    JV_NONE,
    JV_BOOL,
    JV_INT,
    JV_FLOAT,
    JV_STR,
    JV_LIST,
    JV_DICT,
    JV_MACRO,
    JV_FUNC,
    JV_LOOP,
} jv_type;

typedef struct jstr {
    size_t len;
    char data[]; /* NUL-terminated */
} jstr;

typedef struct jv jv;
typedef struct jlist jlist;
typedef struct jdict jdict;
typedef struct jloop jloop;

struct jv {
    jv_type t;
    bool safe; /* a string marked safe (Jinja's Markup): "+" HTML-escapes a plain partner */
    union {
        bool b;
        int64_t i;
        double f;
        const jstr *s;
        jlist *l;
        jdict *d;
        const jnode *macro;
        int func; /* index of a global function (jinja_builtins.c) */
        jloop *loop;
        const char *undef_name; /* what was undefined, for error messages; may be NULL */
    } u;
};

struct jlist {
    jv *items;
    size_t len, cap;
    bool is_tuple; /* only changes how str() shows it: (a, b) */
};

struct jdict {
    jv *keys;
    jv *vals;
    size_t len, cap;
    bool is_namespace; /* only namespaces accept {% set ns.attr = ... %} */
};

struct jloop {
    const jv *items;
    size_t index0, length;
};

/* A growable string in the arena. */
typedef struct jsb {
    char *data;
    size_t len, cap;
} jsb;

void jsb_put(jctx *ctx, jsb *sb, const char *s, size_t n);
void jsb_puts(jctx *ctx, jsb *sb, const char *s);
void jsb_putc(jctx *ctx, jsb *sb, char c);
void jsb_printf(jctx *ctx, jsb *sb, const char *fmt, ...) CAIRN_PRINTF(3, 4);
jv jsb_value(jctx *ctx, const jsb *sb);

jv jv_undef(const char *name);
jv jv_none(void);
jv jv_bool(bool b);
jv jv_int(int64_t i);
jv jv_float(double f);
jv jv_strn(jctx *ctx, const char *s, size_t n);
jv jv_cstr(jctx *ctx, const char *s);
jv jv_list(jctx *ctx, size_t cap);
jv jv_dict(jctx *ctx, size_t cap);
void jlist_push(jctx *ctx, jlist *l, jv v);
/* Looks a key up; returns false if absent. */
bool jdict_get(const jdict *d, jv key, jv *out);
bool jdict_get_cstr(const jdict *d, const char *key, jv *out);
void jdict_set(jctx *ctx, jdict *d, jv key, jv val);
void jdict_set_cstr(jctx *ctx, jdict *d, const char *key, jv val);

jv jv_from_cjson(jctx *ctx, const cJSON *j, int depth);
const char *jv_type_name(jv v);
bool jv_truthy(jv v);
bool jv_is_number(jv v);
double jv_as_double(jv v);
bool jv_equal(jctx *ctx, jv a, jv b, int depth);
/* Orders two values like Python (numbers, strings, lists); fails for other pairs. */
int jv_compare(jctx *ctx, int line, jv a, jv b);
/* Jinja's escape(): HTML-escapes a string unless it is already marked safe. */
jv jv_html_escape(jctx *ctx, jv v);
/* Python's str(): what {{ v }} prints. */
const jstr *jv_to_str(jctx *ctx, jv v);
void jv_write_str(jctx *ctx, jsb *sb, jv v, int depth);

typedef struct jjson_opts {
    int indent; /* < 0: single line */
    bool ensure_ascii;
    bool sort_keys;
    const char *item_sep; /* NULL: Python's default for the indent mode */
    const char *key_sep;
} jjson_opts;
/* json.dumps with the given options. */
void jv_write_json(jctx *ctx, jsb *sb, jv v, const jjson_opts *o, int level, int line);

/* Number of code points; and the byte offset of each code point (plus one for the end). */
size_t jstr_cp_len(const jstr *s);
size_t *jstr_cp_offsets(jctx *ctx, const jstr *s, size_t *n_out);
/* The string's characters as one-character strings (iterating a string yields these). */
const jv *jstr_chars(jctx *ctx, const jstr *s, size_t *n_out);

/* ---- lexer ---- */

typedef enum {
    JT_TEXT,
    JT_VAR_BEGIN,
    JT_VAR_END,
    JT_BLOCK_BEGIN,
    JT_BLOCK_END,
    JT_NAME,
    JT_STRING,
    JT_INT,
    JT_FLOAT,
    JT_OP,
    JT_EOF,
} jtok_type;

typedef struct jtok {
    jtok_type t;
    int line;
    const char *s; /* text, name, unescaped string literal or operator; NUL-terminated */
    size_t len;
    int64_t i;
    double f;
} jtok;

typedef struct jtokens {
    jtok *v;
    size_t n, cap;
} jtokens;

/* Splits the template into tokens with HF's settings: trim_blocks and lstrip_blocks on,
 * one trailing newline dropped, newlines normalized. */
void jinja_lex(jctx *ctx, const char *src, jtokens *out);

/* ---- AST ---- */

typedef enum {
    /* expressions */
    JN_LITERAL,
    JN_NAME,
    JN_LIST,
    JN_DICT,
    JN_ATTR,
    JN_INDEX,
    JN_SLICE,
    JN_CALL,
    JN_FILTER,
    JN_TEST,
    JN_NEG,
    JN_POS,
    JN_NOT,
    JN_AND,
    JN_OR,
    JN_BINOP,
    JN_COMPARE,
    JN_COND,
    JN_BLOCK_VALUE, /* the body text a filter block or block set is filtering */
    /* statements */
    JN_TEXT,
    JN_OUTPUT,
    JN_IF,
    JN_FOR,
    JN_SET,
    JN_SET_ATTR,
    JN_SET_BLOCK,
    JN_MACRO,
    JN_BREAK,
    JN_CONTINUE,
    JN_FILTER_BLOCK,
    JN_SCOPE_BLOCK, /* {% generation %}: renders its body as is */
} jnode_kind;

typedef struct jnodes {
    jnode **v;
    size_t n, cap;
} jnodes;

/* One node type for everything; which fields mean what depends on kind (see the parser). */
struct jnode {
    jnode_kind kind;
    int line;
    const char *op;    /* operator, or the name of a variable/attribute/filter/test/macro */
    const char *name2; /* the attribute of JN_SET_ATTR */
    bool negated;      /* "is not", "not in" */
    bool is_tuple;     /* a JN_LIST written as (a, b) */
    jv lit;
    jnode *a, *b, *c;
    jnodes args;   /* call/filter/test arguments; list/dict items; for targets */
    jnodes kwargs; /* keyword argument values (names in kwnames); macro defaults */
    const char **kwnames;
    jnodes body, else_body;
};

jnodes jinja_parse(jctx *ctx, const jtokens *toks);

/* ---- evaluation ---- */

struct jscope {
    jdict *vars;
    jscope *parent;
};

jv jinja_eval(jctx *ctx, jscope *sc, const jnode *n);
/* Renders statements into out; returns 0, or JX_BREAK / JX_CONTINUE from a loop control. */
enum { JX_OK = 0, JX_BREAK = 1, JX_CONTINUE = 2 };
int jinja_exec(jctx *ctx, jscope *sc, const jnodes *body, jsb *out);
jv jinja_call_value(jctx *ctx, jscope *sc, int line, jv callee, const jv *args, size_t n_args,
                    const char **kwnames, const jv *kwargs, size_t n_kwargs, const char *what);

/* ---- builtins (jinja_builtins.c) ---- */

bool jinja_filter_exists(const char *name);
bool jinja_test_exists(const char *name);
/* Looks a global function (range, namespace, raise_exception, ...) up by name; -1 if none. */
int jinja_global_func(const char *name);

typedef struct jargs {
    const jv *pos;
    size_t n_pos;
    const char **kwnames;
    const jv *kw;
    size_t n_kw;
} jargs;

jv jinja_apply_filter(jctx *ctx, jscope *sc, int line, const char *name, jv v, const jargs *a);
bool jinja_apply_test(jctx *ctx, jscope *sc, int line, const char *name, jv v, const jargs *a);
jv jinja_call_func(jctx *ctx, int line, int func, const jargs *a);
/* obj.name(args); *found is false when the type has no such method. */
jv jinja_call_method(jctx *ctx, int line, jv obj, const char *name, const jargs *a, bool *found);

#endif
