/* The chat module's public entry points: a render runs inside one arena and one error
 * landing point, so every failure deep in the interpreter returns here cleanly. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat/chat.h"
#include "chat/jinja_internal.h"

static const char default_template[] =
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

const char *cairn_chat_default_template(void) {
    return default_template;
}

/* Everything that may fail runs here, under the setjmp in cairn_jinja_render. */
static char *render(jctx *ctx, const char *src, const cJSON *context) {
    jscope *globals = jx_alloc(ctx, sizeof *globals);
    globals->parent = NULL;
    globals->vars = jv_dict(ctx, 0).u.d;
    ctx->globals = globals;
    if (context) {
        if (!cJSON_IsObject(context))
            jx_fail(ctx, 0, "template context must be a JSON object");
        jv vars = jv_from_cjson(ctx, context, 0);
        globals->vars = vars.u.d;
        const cJSON *now = cJSON_GetObjectItemCaseSensitive(context, "cairn_now");
        if (cJSON_IsNumber(now))
            ctx->now = (int64_t)now->valuedouble;
    }
    jtokens toks = {0};
    jinja_lex(ctx, src, &toks);
    jnodes body = jinja_parse(ctx, &toks);
    jsb out = {0};
    if (jinja_exec(ctx, globals, &body, &out) != JX_OK)
        jx_fail(ctx, 0, "'break' or 'continue' outside a loop");
    char *result = malloc(out.len + 1);
    if (!result)
        jx_fail(ctx, 0, "out of memory rendering the template");
    if (out.len)
        memcpy(result, out.data, out.len);
    result[out.len] = '\0';
    return result;
}

int cairn_jinja_render(const char *template_src, const cJSON *context, char **out, cairn_err *err) {
    if (out)
        *out = NULL;
    if (!template_src || !out)
        return cairn_fail(err, "cairn_jinja_render: template and output must not be NULL");
    jctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return cairn_fail(err, "out of memory rendering the template");
    ctx->err = err;
    ctx->now = (int64_t)time(NULL);
    if (setjmp(ctx->on_error)) {
        jarena_free(&ctx->arena);
        free(ctx);
        return -1;
    }
    char *result = render(ctx, template_src, context);
    jarena_free(&ctx->arena);
    free(ctx);
    *out = result;
    return 0;
}

int cairn_chat_render(const char *template_src, const cJSON *messages, bool add_generation_prompt,
                      const char *bos_token, const char *eos_token, char **out, cairn_err *err) {
    if (out)
        *out = NULL;
    if (!cJSON_IsArray(messages))
        return cairn_fail(err, "chat messages must be a JSON array");
    cJSON *context = cJSON_CreateObject();
    cJSON *copy = cJSON_Duplicate(messages, true);
    if (!context || !copy || !cJSON_AddItemToObject(context, "messages", copy) ||
        !cJSON_AddBoolToObject(context, "add_generation_prompt", add_generation_prompt) ||
        !cJSON_AddStringToObject(context, "bos_token", bos_token ? bos_token : "") ||
        !cJSON_AddStringToObject(context, "eos_token", eos_token ? eos_token : "")) {
        if (copy && (!context || cJSON_GetObjectItemCaseSensitive(context, "messages") != copy))
            cJSON_Delete(copy);
        cJSON_Delete(context);
        return cairn_fail(err, "out of memory building the chat context");
    }
    int rc = cairn_jinja_render(template_src, context, out, err);
    cJSON_Delete(context);
    return rc;
}
