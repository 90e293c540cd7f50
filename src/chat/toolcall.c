/* chat: the model's answer split into reasoning, content and tool calls as it streams
 * (chat.h). One scanner serves every family: in text it looks for the family's markers and
 * holds back any tail that may still begin one; a tool-call block is gathered whole up to
 * its closing marker (or the end of the answer) and only then parsed, so a call that does
 * not parse goes out as the content it was, and the events never depend on how the text
 * was split. Whitespace next to markers is the template's layout, not the answer's: it is
 * dropped. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"
#include "util/json.h"

/* A block or header longer than this is not a call: it goes out as content. */
#define MAX_BLOCK_BYTES (1u << 20)
#define MAX_HEADER_BYTES 512
#define MAX_NAME_BYTES 256
#define MAX_CALLS_PER_BLOCK 64

/* ---- formats ---- */

static const char *const syntax_names[] = {"none",    "hermes",   "llama3", "mistral",
                                           "gpt-oss", "deepseek", "glm"};

const char *cairn_tool_syntax_name(cairn_tool_syntax s) {
    return (size_t)s < CAIRN_ARRAY_LEN(syntax_names) ? syntax_names[s] : "none";
}

int cairn_tool_syntax_from_name(const char *name, cairn_tool_syntax *out) {
    for (size_t i = 0; name && i < CAIRN_ARRAY_LEN(syntax_names); i++) {
        if (strcmp(name, syntax_names[i]) == 0) {
            *out = (cairn_tool_syntax)i;
            return 0;
        }
    }
    return -1;
}

bool cairn_tool_syntax_needs_special(cairn_tool_syntax s) {
    return s == CAIRN_TOOLS_LLAMA3 || s == CAIRN_TOOLS_MISTRAL || s == CAIRN_TOOLS_GPT_OSS ||
           s == CAIRN_TOOLS_DEEPSEEK;
}

static const char *think_open(cairn_tool_syntax s) {
    return s == CAIRN_TOOLS_MISTRAL ? "[THINK]" : "<think>";
}

static const char *think_close(cairn_tool_syntax s) {
    return s == CAIRN_TOOLS_MISTRAL ? "[/THINK]" : "</think>";
}

static bool has(const char *src, const char *needle) {
    return strstr(src, needle) != NULL;
}

static cairn_tool_syntax detect_syntax(const char *src) {
    if (has(src, "<|channel|>")) {
        return CAIRN_TOOLS_GPT_OSS;
    }
    if (has(src, "tool\xE2\x96\x81"
                 "calls\xE2\x96\x81"
                 "begin")) {
        return CAIRN_TOOLS_DEEPSEEK;
    }
    if (has(src, "<arg_key>")) {
        return CAIRN_TOOLS_GLM;
    }
    if (has(src, "[TOOL_CALLS]")) {
        return CAIRN_TOOLS_MISTRAL;
    }
    if (has(src, "<tool_call>")) {
        return CAIRN_TOOLS_HERMES;
    }
    if (has(src, "<|start_header_id|>") && has(src, "\"parameters\"")) {
        return CAIRN_TOOLS_LLAMA3;
    }
    return CAIRN_TOOLS_NONE;
}

/* Whether the prompt ends inside an opened reasoning block (whitespace after it allowed). */
static bool ends_with_marker(const char *prompt, const char *marker) {
    size_t n = strlen(prompt), m = strlen(marker);
    while (n > 0 && isspace((unsigned char)prompt[n - 1])) {
        n--;
    }
    return n >= m && memcmp(prompt + n - m, marker, m) == 0;
}

cairn_chat_format cairn_chat_format_detect(const char *template_src, const char *prompt) {
    cairn_chat_format f = {CAIRN_TOOLS_NONE, true, false, false};
    if (!template_src) {
        return f;
    }
    f.tools = detect_syntax(template_src);
    f.reasoning = f.tools == CAIRN_TOOLS_GPT_OSS || has(template_src, think_open(f.tools));
    f.starts_in_reasoning = f.reasoning && f.tools != CAIRN_TOOLS_GPT_OSS && prompt &&
                            ends_with_marker(prompt, think_open(f.tools));
    return f;
}

/* ---- calls parsed from a block ---- */

typedef struct parsed_call {
    char *name;
    char *arguments; /* compact JSON */
} parsed_call;

typedef struct call_list {
    parsed_call calls[MAX_CALLS_PER_BLOCK];
    int n;
} call_list;

static void calls_free(call_list *l) {
    for (int i = 0; i < l->n; i++) {
        free(l->calls[i].name);
        free(l->calls[i].arguments);
    }
    l->n = 0;
}

/* Takes the arguments value: an object as compact JSON, or a string that holds JSON. */
static int add_call(call_list *l, const char *name, size_t name_len, const cJSON *args) {
    if (l->n == MAX_CALLS_PER_BLOCK || name_len == 0 || name_len > MAX_NAME_BYTES) {
        return -1;
    }
    char *text = NULL;
    if (!args) {
        text = cairn_strdup("{}");
    } else if (cJSON_IsObject(args)) {
        text = cJSON_PrintUnformatted(args);
    } else if (cJSON_IsString(args)) {
        cJSON *inner = cairn_json_parse_str(args->valuestring, "arguments", NULL);
        text = cJSON_IsObject(inner) ? cJSON_PrintUnformatted(inner) : NULL;
        cJSON_Delete(inner);
    }
    char *copy = text ? cairn_strndup(name, name_len) : NULL;
    if (!copy) {
        free(text);
        return -1;
    }
    l->calls[l->n++] = (parsed_call){copy, text};
    return 0;
}

static const char *skip_space(const char *s, const char *end) {
    while (s < end && isspace((unsigned char)*s)) {
        s++;
    }
    return s;
}

static const char *find(const char *s, size_t n, const char *needle) {
    size_t m = strlen(needle);
    for (size_t i = 0; m <= n && i <= n - m; i++) {
        if (memcmp(s + i, needle, m) == 0) {
            return s + i;
        }
    }
    return NULL;
}

/* {"name": N, ARGS_KEY: {...}} with ARGS_KEY "arguments" (or "parameters"). */
static int add_json_call(call_list *l, const cJSON *o) {
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "name"));
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(o, "arguments");
    if (!args) {
        args = cJSON_GetObjectItemCaseSensitive(o, "parameters");
    }
    if (!cJSON_IsObject(o) || !name) {
        return -1;
    }
    return add_call(l, name, strlen(name), args);
}

static int add_json_call_text(call_list *l, const char *s, size_t n) {
    cJSON *o = cairn_json_parse(s, n, "a tool call", NULL);
    int rc = o ? add_json_call(l, o) : -1;
    cJSON_Delete(o);
    return rc;
}

static int add_named_call_text(call_list *l, const char *name, size_t name_len, const char *s,
                               size_t n) {
    cJSON *args = cairn_json_parse(s, n, "a tool call", NULL);
    int rc = cJSON_IsObject(args) ? add_call(l, name, name_len, args) : -1;
    cJSON_Delete(args);
    return rc;
}

/* <tool_call>{"name": .., "arguments": {..}}</tool_call> */
static int parse_hermes(const char *s, size_t n, const char *name, call_list *l) {
    (void)name;
    return add_json_call_text(l, s, n);
}

/* One or more {"name", "parameters"} objects, apart by whitespace or ';'. */
static int parse_llama3(const char *s, size_t n, const char *name, call_list *l) {
    (void)name;
    const char *end = s + n;
    const char *p = skip_space(s, end);
    if (p == end) {
        return -1;
    }
    while (p < end) {
        const char *stop = NULL;
        cJSON *o = cJSON_ParseWithLengthOpts(p, (size_t)(end - p), &stop, false);
        int rc = o && cairn_json_check_shape(p, (size_t)(stop - p), CAIRN_JSON_MAX_DEPTH,
                                             CAIRN_JSON_MAX_VALUES, "a tool call", NULL) == 0
                     ? add_json_call(l, o)
                     : -1;
        cJSON_Delete(o);
        if (rc != 0) {
            return -1;
        }
        p = skip_space(stop, end);
        while (p < end && *p == ';') {
            p = skip_space(p + 1, end);
        }
    }
    return 0;
}

/* [{"name", "arguments"}...], or name[ARGS]{...} with [TOOL_CALLS] between calls. */
static int parse_mistral(const char *s, size_t n, const char *name, call_list *l) {
    (void)name;
    const char *end = s + n;
    const char *p = skip_space(s, end);
    if (p < end && *p == '[') {
        cJSON *arr = cairn_json_parse(p, (size_t)(end - p), "tool calls", NULL);
        int rc = cJSON_IsArray(arr) && cJSON_GetArraySize(arr) > 0 ? 0 : -1;
        const cJSON *item;
        cJSON_ArrayForEach(item, arr) {
            rc = rc == 0 ? add_json_call(l, item) : -1;
        }
        cJSON_Delete(arr);
        return rc;
    }
    while (p < end) {
        const char *next = find(p, (size_t)(end - p), "[TOOL_CALLS]");
        const char *call_end = next ? next : end;
        const char *args = find(p, (size_t)(call_end - p), "[ARGS]");
        if (!args || add_named_call_text(l, p, (size_t)(args - p), args + 6,
                                         (size_t)(call_end - args - 6)) != 0) {
            return -1;
        }
        p = next ? skip_space(next + strlen("[TOOL_CALLS]"), end) : end;
    }
    return l->n > 0 ? 0 : -1;
}

/* The body of a harmony call: its arguments; the header named the function. */
static int parse_gpt_oss(const char *s, size_t n, const char *name, call_list *l) {
    return add_named_call_text(l, name, strlen(name), s, n);
}

#define DS_CALL_BEGIN                                                                              \
    "<\xEF\xBD\x9Ctool\xE2\x96\x81"                                                                \
    "call\xE2\x96\x81"                                                                             \
    "begin\xEF\xBD\x9C>"
#define DS_CALL_END                                                                                \
    "<\xEF\xBD\x9Ctool\xE2\x96\x81"                                                                \
    "call\xE2\x96\x81"                                                                             \
    "end\xEF\xBD\x9C>"
#define DS_SEP                                                                                     \
    "<\xEF\xBD\x9Ctool\xE2\x96\x81"                                                                \
    "sep\xEF\xBD\x9C>"
#define DS_CALLS_BEGIN                                                                             \
    "<\xEF\xBD\x9Ctool\xE2\x96\x81"                                                                \
    "calls\xE2\x96\x81"                                                                            \
    "begin\xEF\xBD\x9C>"
#define DS_CALLS_END                                                                               \
    "<\xEF\xBD\x9Ctool\xE2\x96\x81"                                                                \
    "calls\xE2\x96\x81"                                                                            \
    "end\xEF\xBD\x9C>"

/* R1's "function<sep>NAME\n```json\n{..}\n```" or V3.1's "NAME<sep>{..}". */
static int parse_deepseek_call(const char *s, const char *end, call_list *l) {
    const char *sep = find(s, (size_t)(end - s), DS_SEP);
    if (!sep) {
        return -1;
    }
    const char *rest = sep + strlen(DS_SEP);
    if ((size_t)(sep - s) != 8 || memcmp(s, "function", 8) != 0) {
        return add_named_call_text(l, s, (size_t)(sep - s), rest, (size_t)(end - rest));
    }
    const char *nl = find(rest, (size_t)(end - rest), "\n");
    const char *fence = nl ? find(nl, (size_t)(end - nl), "```json") : NULL;
    const char *json = fence ? fence + 7 : NULL;
    const char *close = json ? find(json, (size_t)(end - json), "```") : NULL;
    if (!close || skip_space(close + 3, end) != end) {
        return -1;
    }
    return add_named_call_text(l, rest, (size_t)(nl - rest), json, (size_t)(close - json));
}

static int parse_deepseek(const char *s, size_t n, const char *name, call_list *l) {
    (void)name;
    const char *end = s + n;
    const char *p = skip_space(s, end);
    while (p < end) {
        size_t begin_len = strlen(DS_CALL_BEGIN);
        if ((size_t)(end - p) < begin_len || memcmp(p, DS_CALL_BEGIN, begin_len) != 0) {
            return -1;
        }
        p += begin_len;
        const char *call_end = find(p, (size_t)(end - p), DS_CALL_END);
        if (!call_end || parse_deepseek_call(p, call_end, l) != 0) {
            return -1;
        }
        p = skip_space(call_end + strlen(DS_CALL_END), end);
    }
    return l->n > 0 ? 0 : -1;
}

/* The text between open and close at *p (whitespace before open skipped), or NULL. */
static const char *tagged(const char **p, const char *end, const char *open, const char *close,
                          size_t *len) {
    const char *s = skip_space(*p, end);
    size_t m = strlen(open);
    if ((size_t)(end - s) < m || memcmp(s, open, m) != 0) {
        return NULL;
    }
    s += m;
    const char *e = find(s, (size_t)(end - s), close);
    if (!e) {
        return NULL;
    }
    *len = (size_t)(e - s);
    *p = e + strlen(close);
    return s;
}

/* A GLM value: JSON when it is a JSON number, object, array or literal, else the text. */
static cJSON *glm_value(const char *s, size_t n) {
    cJSON *v = cairn_json_parse(s, n, "a value", NULL);
    if (v && !cJSON_IsString(v)) {
        return v;
    }
    cJSON_Delete(v);
    char *text = cairn_strndup(s, n);
    v = text ? cJSON_CreateString(text) : NULL;
    free(text);
    return v;
}

/* NAME\n<arg_key>k</arg_key>\n<arg_value>v</arg_value>... */
static int parse_glm(const char *s, size_t n, const char *name, call_list *l) {
    (void)name;
    const char *end = s + n;
    const char *first = skip_space(s, end);
    const char *key = find(first, (size_t)(end - first), "<arg_key>");
    const char *name_end = key ? key : end;
    while (name_end > first && isspace((unsigned char)name_end[-1])) {
        name_end--;
    }
    cJSON *args = cJSON_CreateObject();
    const char *p = key ? key : end;
    int rc = args && name_end > first ? 0 : -1;
    while (rc == 0 && skip_space(p, end) < end) {
        size_t klen = 0, vlen = 0;
        const char *k = tagged(&p, end, "<arg_key>", "</arg_key>", &klen);
        const char *v = k ? tagged(&p, end, "<arg_value>", "</arg_value>", &vlen) : NULL;
        char *kcopy = v ? cairn_strndup(k, klen) : NULL;
        cJSON *value = kcopy ? glm_value(v, vlen) : NULL;
        if (!value || !cJSON_AddItemToObject(args, kcopy, value)) {
            cJSON_Delete(value);
            rc = -1;
        }
        free(kcopy);
    }
    if (rc == 0) {
        rc = add_call(l, first, (size_t)(name_end - first), args);
    }
    cJSON_Delete(args);
    return rc;
}

/* ---- the scanner ---- */

typedef int (*block_parse_fn)(const char *s, size_t n, const char *name, call_list *l);

typedef struct block_kind {
    const char *close; /* NULL: only the end of the answer closes it */
    bool end_closes;   /* the end of the answer closes it too */
    block_parse_fn parse;
} block_kind;

static const block_kind hermes_block = {"</tool_call>", false, parse_hermes};
static const block_kind glm_block = {"</tool_call>", false, parse_glm};
static const block_kind llama3_block = {NULL, true, parse_llama3};
static const block_kind mistral_block = {NULL, true, parse_mistral};
static const block_kind deepseek_block = {DS_CALLS_END, true, parse_deepseek};
static const block_kind gpt_oss_block = {"<|call|>", true, parse_gpt_oss};

typedef enum action {
    ACT_THINK_OPEN,
    ACT_THINK_CLOSE,
    ACT_BLOCK,      /* a tool-call block opens */
    ACT_HEADER,     /* harmony: a message header opens */
    ACT_END_MESSAGE /* harmony: a message ends */
} action;

typedef struct marker {
    const char *text;
    action act;
    const block_kind *block;
} marker;

#define MAX_MARKERS 8

typedef enum mode { MODE_TEXT, MODE_BLOCK, MODE_HEADER } mode;

struct cairn_chat_parser {
    cairn_chat_format f;
    cairn_chat_event_fn on_event;
    void *user;
    char id_prefix[64];
    cairn_buf pend; /* bytes not decided yet */
    mode mode;
    bool in_reasoning;
    bool skip_space; /* whitespace before the next text is layout */
    bool answered;   /* content or a call went out (a bare Llama call only opens an answer) */
    const block_kind *block;
    char opener[64];                /* the marker that opened the block or header */
    char call_name[MAX_NAME_BYTES]; /* harmony: the header's function */
    int n_calls;
    int stopped; /* the callback's non-zero */
};

static size_t active_markers(const cairn_chat_parser *p, marker *m) {
    size_t n = 0;
    cairn_tool_syntax s = p->f.tools;
    if (s == CAIRN_TOOLS_GPT_OSS) {
        m[n++] = (marker){"<|channel|>", ACT_HEADER, NULL};
        m[n++] = (marker){"<|start|>", ACT_HEADER, NULL};
        m[n++] = (marker){"<|end|>", ACT_END_MESSAGE, NULL};
        m[n++] = (marker){"<|return|>", ACT_END_MESSAGE, NULL};
        return n;
    }
    if (p->in_reasoning) {
        m[n++] = (marker){think_close(s), ACT_THINK_CLOSE, NULL};
        return n;
    }
    if (p->f.reasoning) {
        m[n++] = (marker){think_open(s), ACT_THINK_OPEN, NULL};
    }
    if (!p->f.parse_tools) {
        return n;
    }
    if (s == CAIRN_TOOLS_HERMES) {
        m[n++] = (marker){"<tool_call>", ACT_BLOCK, &hermes_block};
    } else if (s == CAIRN_TOOLS_GLM) {
        m[n++] = (marker){"<tool_call>", ACT_BLOCK, &glm_block};
    } else if (s == CAIRN_TOOLS_LLAMA3) {
        m[n++] = (marker){"<|python_tag|>", ACT_BLOCK, &llama3_block};
    } else if (s == CAIRN_TOOLS_MISTRAL) {
        m[n++] = (marker){"[TOOL_CALLS]", ACT_BLOCK, &mistral_block};
    } else if (s == CAIRN_TOOLS_DEEPSEEK) {
        m[n++] = (marker){DS_CALLS_BEGIN, ACT_BLOCK, &deepseek_block};
    }
    return n;
}

static int emit(cairn_chat_parser *p, const cairn_chat_event *e) {
    if (!p->stopped) {
        p->stopped = p->on_event(p->user, e);
    }
    return p->stopped;
}

/* Text to the client; before_marker: its trailing whitespace is layout. */
static void deliver_text(cairn_chat_parser *p, const char *s, size_t n, bool before_marker) {
    size_t start = 0;
    if (p->skip_space) {
        while (start < n && isspace((unsigned char)s[start])) {
            start++;
        }
        p->skip_space = start == n;
    }
    size_t end = n;
    while (before_marker && end > start && isspace((unsigned char)s[end - 1])) {
        end--;
    }
    if (end > start) {
        cairn_chat_event e = {p->in_reasoning ? CAIRN_CHAT_REASONING : CAIRN_CHAT_CONTENT,
                              s + start,
                              end - start,
                              0,
                              NULL,
                              NULL};
        p->answered = p->answered || !p->in_reasoning;
        emit(p, &e);
    }
}

static void consume(cairn_chat_parser *p, size_t n) {
    memmove(p->pend.data, p->pend.data + n, p->pend.len - n);
    p->pend.len -= n;
    if (p->pend.data) {
        p->pend.data[p->pend.len] = '\0';
    }
}

/* The longest tail of s that is a proper prefix of a marker. */
static size_t marker_prefix_tail(const char *s, size_t n, const marker *m, size_t n_markers) {
    size_t best = 0;
    for (size_t i = 0; i < n_markers; i++) {
        size_t len = strlen(m[i].text);
        for (size_t k = len - 1 < n ? len - 1 : n; k > best; k--) {
            if (memcmp(s + n - k, m[i].text, k) == 0) {
                best = k;
                break;
            }
        }
    }
    return best;
}

static void open_block(cairn_chat_parser *p, const block_kind *b, const char *opener) {
    p->mode = MODE_BLOCK;
    p->block = b;
    snprintf(p->opener, sizeof p->opener, "%s", opener);
}

static void apply(cairn_chat_parser *p, const marker *m) {
    switch (m->act) {
    case ACT_THINK_OPEN: p->in_reasoning = true; break;
    case ACT_THINK_CLOSE:
    case ACT_END_MESSAGE: p->in_reasoning = false; break;
    case ACT_BLOCK: open_block(p, m->block, m->text); break;
    case ACT_HEADER:
        p->mode = MODE_HEADER;
        snprintf(p->opener, sizeof p->opener, "%s", m->text);
        break;
    }
    p->skip_space = true;
}

/* Llama 3 answers a call with its JSON alone: an answer that opens with '{' is a block
 * the end closes. 1: opened, 0: not one, -1: undecided (only whitespace yet). */
static int bare_llama3_call(cairn_chat_parser *p) {
    if (p->f.tools != CAIRN_TOOLS_LLAMA3 || !p->f.parse_tools || p->answered) {
        return 0;
    }
    const char *s = p->pend.data, *end = s + p->pend.len;
    const char *first = skip_space(s, end);
    if (first == end) {
        return -1;
    }
    if (*first != '{') {
        return 0;
    }
    consume(p, (size_t)(first - s));
    open_block(p, &llama3_block, "");
    return 1;
}

/* One step in text; true when the mode or markers changed and scanning must go on. */
static bool text_step(cairn_chat_parser *p, bool final) {
    int bare = bare_llama3_call(p);
    if (bare == 1) {
        return true;
    }
    if (bare == -1 && !final) {
        return false;
    }
    marker m[MAX_MARKERS];
    size_t n_markers = active_markers(p, m);
    const char *s = p->pend.data;
    size_t n = p->pend.len;
    const marker *hit = NULL;
    size_t at = n;
    for (size_t i = 0; i < n_markers; i++) {
        const char *found = find(s, n, m[i].text);
        if (found && (size_t)(found - s) < at) {
            at = (size_t)(found - s);
            hit = &m[i];
        }
    }
    if (hit) {
        deliver_text(p, s, at, true);
        consume(p, at + strlen(hit->text));
        apply(p, hit);
        return true;
    }
    size_t ready = n;
    if (!final) {
        ready = n - marker_prefix_tail(s, n, m, n_markers);
        ready = cairn_utf8_complete_prefix(s, ready);
        while (ready > 0 && isspace((unsigned char)s[ready - 1])) {
            ready--; /* layout if a marker follows */
        }
    }
    deliver_text(p, s, ready, false);
    consume(p, ready);
    return false;
}

/* What a block or header held goes out as the content it was. */
static void give_back(cairn_chat_parser *p, size_t n, const char *closer) {
    bool reasoning = p->in_reasoning;
    p->in_reasoning = false;
    p->skip_space = false;
    cairn_buf raw = {0};
    if (cairn_buf_puts(&raw, p->opener) == 0 && cairn_buf_append(&raw, p->pend.data, n) == 0 &&
        (!closer || cairn_buf_puts(&raw, closer) == 0) && raw.len > 0) {
        deliver_text(p, raw.data, cairn_utf8_complete_prefix(raw.data, raw.len), false);
    }
    cairn_buf_free(&raw);
    p->in_reasoning = reasoning;
    p->mode = MODE_TEXT;
}

static void emit_calls(cairn_chat_parser *p, const call_list *l) {
    for (int i = 0; i < l->n; i++) {
        char id[96];
        snprintf(id, sizeof id, "%s%d", p->id_prefix, p->n_calls);
        const parsed_call *c = &l->calls[i];
        cairn_chat_event start = {CAIRN_CHAT_TOOL_START, NULL, 0, p->n_calls, id, c->name};
        cairn_chat_event args = {CAIRN_CHAT_TOOL_ARGS, c->arguments, strlen(c->arguments),
                                 p->n_calls,           NULL,         NULL};
        cairn_chat_event end = {CAIRN_CHAT_TOOL_END, NULL, 0, p->n_calls, NULL, NULL};
        emit(p, &start);
        emit(p, &args);
        emit(p, &end);
        p->n_calls++;
    }
    p->answered = true;
}

/* The block's body pend[0..n) is complete: its calls, or content when it does not parse. */
static void close_block(cairn_chat_parser *p, size_t n, size_t closer_len) {
    call_list l = {0};
    if (n <= MAX_BLOCK_BYTES && p->block->parse(p->pend.data, n, p->call_name, &l) == 0) {
        emit_calls(p, &l);
        p->mode = MODE_TEXT;
        p->skip_space = true;
    } else {
        give_back(p, n, closer_len ? p->block->close : NULL);
    }
    calls_free(&l);
    consume(p, n + closer_len);
}

static bool block_step(cairn_chat_parser *p, bool final) {
    const char *close = p->block->close;
    const char *found = close ? find(p->pend.data, p->pend.len, close) : NULL;
    if (found) {
        close_block(p, (size_t)(found - p->pend.data), strlen(close));
        return true;
    }
    if (final) {
        if (p->block->end_closes) {
            close_block(p, p->pend.len, 0);
        } else {
            give_back(p, p->pend.len, NULL);
            consume(p, p->pend.len);
        }
        return true;
    }
    if (p->pend.len > MAX_BLOCK_BYTES + (close ? strlen(close) : 0) && close) {
        give_back(p, p->pend.len, NULL);
        consume(p, p->pend.len);
        return true;
    }
    return false;
}

/* A harmony header: "assistant<|channel|>analysis", "commentary to=functions.NAME ...". */
static void take_header(cairn_chat_parser *p, const char *h, size_t n) {
    const char *to = find(h, n, "to=functions.");
    p->skip_space = true;
    if (to && p->f.parse_tools) {
        const char *name = to + strlen("to=functions."), *end = h + n, *e = name;
        while (e < end && !isspace((unsigned char)*e) && *e != '<') {
            e++;
        }
        size_t len =
            (size_t)(e - name) < sizeof p->call_name ? (size_t)(e - name) : sizeof p->call_name - 1;
        memcpy(p->call_name, name, len);
        p->call_name[len] = '\0';
        open_block(p, &gpt_oss_block, "");
        return;
    }
    p->mode = MODE_TEXT;
    p->in_reasoning = find(h, n, "analysis") != NULL;
}

static bool header_step(cairn_chat_parser *p, bool final) {
    const char *msg = "<|message|>";
    const char *found = find(p->pend.data, p->pend.len, msg);
    if (found && (size_t)(found - p->pend.data) <= MAX_HEADER_BYTES) {
        size_t n = (size_t)(found - p->pend.data);
        take_header(p, p->pend.data, n);
        consume(p, n + strlen(msg));
        return true;
    }
    if (final || found || p->pend.len > MAX_HEADER_BYTES + strlen(msg)) {
        give_back(p, p->pend.len, NULL);
        consume(p, p->pend.len);
        return true;
    }
    return false;
}

static int run(cairn_chat_parser *p, bool final) {
    bool more = true;
    while (more && !p->stopped) {
        more = p->mode == MODE_TEXT    ? text_step(p, final)
               : p->mode == MODE_BLOCK ? block_step(p, final)
                                       : header_step(p, final);
        more = more || (final && p->pend.len > 0);
    }
    return p->stopped;
}

cairn_chat_parser *cairn_chat_parser_new(const cairn_chat_format *format, const char *id_prefix,
                                         cairn_chat_event_fn on_event, void *user) {
    cairn_chat_parser *p = calloc(1, sizeof *p);
    if (!p) {
        return NULL;
    }
    p->f = *format;
    p->on_event = on_event;
    p->user = user;
    p->in_reasoning = format->reasoning && format->starts_in_reasoning;
    p->skip_space = p->in_reasoning;
    snprintf(p->id_prefix, sizeof p->id_prefix, "%s", id_prefix ? id_prefix : "call_");
    return p;
}

int cairn_chat_parser_feed(cairn_chat_parser *p, const char *text, size_t len, cairn_err *err) {
    if (p->stopped) {
        return p->stopped;
    }
    if (len == 0) {
        return 0;
    }
    if (cairn_buf_append(&p->pend, text, len) != 0) {
        return cairn_fail(err, "out of memory parsing the answer");
    }
    return run(p, false);
}

int cairn_chat_parser_finish(cairn_chat_parser *p, cairn_err *err) {
    (void)err;
    return p->stopped ? p->stopped : run(p, true);
}

void cairn_chat_parser_free(cairn_chat_parser *p) {
    if (p) {
        cairn_buf_free(&p->pend);
        free(p);
    }
}
