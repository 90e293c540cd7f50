/* cli: `cairn chat`: an interactive conversation with the model's chat template. The KV
 * cache keeps the conversation, so each turn only computes the tokens that are new. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"
#include "cli/cli.h"
#include "model/model.h"
#include "platform/platform.h"

typedef struct chat_session {
    cairn_tokenizer *tok;
    cairn_pipeline *pipeline;
    char *template_src;
    cJSON *messages;
    int32_t *history; /* the tokens the KV cache holds, in order */
    size_t n_history, cap_history;
    cairn_buf reply;
    bool interactive;
} chat_session;

static int read_line(cairn_buf *line) {
    line->len = 0;
    if (cairn_buf_reserve(line, 0) != 0) { /* data must be a string even for an empty line */
        return -1;
    }
    line->data[0] = '\0';
    int c;
    while ((c = fgetc(stdin)) != EOF && c != '\n') {
        if (cairn_buf_putc(line, (char)c) != 0) {
            return -1;
        }
    }
    if (line->len > 0 && line->data[line->len - 1] == '\r') {
        line->data[--line->len] = '\0';
    }
    return c == EOF && line->len == 0 ? -1 : 0;
}

static int history_push(chat_session *cs, const int32_t *ids, size_t n) {
    if (cs->n_history + n > cs->cap_history) {
        size_t cap = (cs->n_history + n) * 2;
        int32_t *h = realloc(cs->history, cap * sizeof(*h));
        if (!h) {
            return -1;
        }
        cs->history = h;
        cs->cap_history = cap;
    }
    memcpy(cs->history + cs->n_history, ids, n * sizeof(*ids));
    cs->n_history += n;
    return 0;
}

static int on_reply_token(void *user, int32_t token, const char *text, size_t len) {
    chat_session *cs = user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    cairn_buf_append(&cs->reply, text, len);
    if (token >= 0) {
        history_push(cs, &token, 1);
    }
    return 0;
}

static int load_template(chat_session *cs, const char *path) {
    cairn_err err = {{0}};
    if (cairn_chat_template_load(path, &cs->template_src, &err) != 0) {
        cli_error("%s", err.msg);
        return CLI_ERROR;
    }
    return CLI_OK;
}

static int render_prompt(chat_session *cs, int32_t **ids, size_t *n, cairn_err *err) {
    return cairn_chat_tokenize(cs->template_src, cs->messages, cs->tok, ids, n, err);
}

static size_t common_prefix(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    size_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) {
        i++;
    }
    return i;
}

static int take_turn(chat_session *cs, const cli_sampling_options *so, cairn_err *err) {
    int32_t *ids = NULL;
    size_t n = 0;
    if (render_prompt(cs, &ids, &n, err) != 0) {
        return -1;
    }
    /* Reuse the cached prefix; at least one token must be computed to get logits. */
    size_t keep = common_prefix(cs->history, cs->n_history, ids, n);
    if (keep == n) {
        keep = n - 1;
    }
    cairn_pipeline_seq_truncate(cs->pipeline, 0, (int)keep, NULL);
    cs->n_history = keep;
    const cairn_shard_info *info = cairn_pipeline_info(cs->pipeline);
    cairn_pipeline_seq ps = {cs->pipeline, 0};
    cairn_generation_target target = {cairn_pipeline_seq_forward, &ps, info->n_vocab, info->n_ctx,
                                      (int)keep};
    cs->reply.len = 0;
    int rc = history_push(cs, ids + keep, n - keep);
    if (rc == 0) {
        rc = cairn_generate(&target, cs->tok, ids + keep, (int)(n - keep), &so->gen, on_reply_token,
                            cs, NULL, err);
    }
    free(ids);
    /* The last sampled token may not have been computed yet. */
    int in_cache = cairn_pipeline_seq_len(cs->pipeline, 0);
    if ((size_t)in_cache < cs->n_history) {
        cs->n_history = (size_t)in_cache;
    }
    return rc;
}

static void add_message(cJSON *messages, const char *role, const char *content) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", role);
    cJSON_AddStringToObject(m, "content", content);
    cJSON_AddItemToArray(messages, m);
}

static void reset_conversation(chat_session *cs, const char *system) {
    cJSON_Delete(cs->messages);
    cs->messages = cJSON_CreateArray();
    if (system) {
        add_message(cs->messages, "system", system);
    }
}

static int converse(chat_session *cs, const cli_sampling_options *so, const char *system) {
    cairn_buf line = {0};
    reset_conversation(cs, system);
    if (cs->interactive) {
        fprintf(stderr, "Chatting with the model. /reset starts over, /exit or Ctrl-D ends.\n");
    }
    for (;;) {
        if (cs->interactive) {
            fputs("> ", stdout);
            fflush(stdout);
        }
        if (read_line(&line) != 0 || strcmp(line.data, "/exit") == 0) {
            break;
        }
        if (line.len == 0) {
            continue;
        }
        if (strcmp(line.data, "/reset") == 0) {
            reset_conversation(cs, system);
            continue;
        }
        add_message(cs->messages, "user", line.data);
        cairn_err err = {{0}};
        if (take_turn(cs, so, &err) != 0) {
            fputc('\n', stdout);
            cli_error("%s", err.msg);
            /* The turn failed: forget it so the conversation stays usable. */
            cJSON_DeleteItemFromArray(cs->messages, cJSON_GetArraySize(cs->messages) - 1);
            continue;
        }
        fputc('\n', stdout);
        add_message(cs->messages, "assistant", cs->reply.data ? cs->reply.data : "");
    }
    if (cs->interactive) {
        fputc('\n', stdout);
    }
    cairn_buf_free(&line);
    return CLI_OK;
}

int cmd_chat(int argc, char **argv) {
    cli_model_options mo = {0};
    cli_sampling_options so;
    cli_sampling_defaults(&so);
    const char *system = NULL;
    const cli_option options[] = {
        CLI_MODEL_OPTIONS(mo),
        {"system", 0, OPT_STR, &system, "TEXT", "a system message to start with"},
        CLI_SAMPLING_OPTIONS(so),
    };
    const cli_command cmd = {"chat",
                             "usage: cairn chat -m FILE [options]",
                             "Chats with the model, using its chat template; reads one user "
                             "message per line.",
                             options,
                             CAIRN_ARRAY_LEN(options),
                             0};
    int rc;
    if (!cli_parse_model_args(&cmd, argc, argv, &mo, &rc)) {
        return rc;
    }
    cli_sampling_finish(&so);
    chat_session cs = {0};
    cs.interactive = cairn_is_terminal(stdin);
    rc = cli_load_tokenizer(mo.model, &cs.tok);
    if (rc == CLI_OK) {
        rc = load_template(&cs, mo.model);
    }
    if (rc == CLI_OK) {
        rc = cli_load_pipeline(&mo, 1, &cs.pipeline);
    }
    if (rc == CLI_OK) {
        rc = converse(&cs, &so, system);
    }
    cJSON_Delete(cs.messages);
    free(cs.history);
    free(cs.template_src);
    cairn_buf_free(&cs.reply);
    cairn_pipeline_free(cs.pipeline);
    cairn_tokenizer_free(cs.tok);
    return rc;
}
