/* chat: a conversation's prompt tokens, with the template a model file carries (chat.h). */
#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"
#include "model/model.h"

int cairn_chat_template_load(const char *gguf_path, char **out, cairn_err *err) {
    cairn_model_file *m = NULL;
    if (cairn_model_open_metadata(gguf_path, &m, err) != 0) {
        return -1;
    }
    const char *src = NULL;
    int found = cairn_meta_str(m->gguf, "tokenizer.chat_template", &src, err);
    *out = found < 0 ? NULL : cairn_strdup(found ? src : cairn_chat_default_template());
    cairn_model_close(m);
    if (found < 0) {
        return cairn_fail_prefix(err, "%s", gguf_path);
    }
    return *out ? 0 : cairn_fail(err, "out of memory");
}

static const char *token_text_or_empty(const cairn_tokenizer *tok, int32_t id) {
    const char *text = id >= 0 ? cairn_tokenizer_token_text(tok, id) : NULL;
    return text ? text : "";
}

int cairn_chat_tokenize(const char *template_src, const cJSON *messages, const cairn_tokenizer *tok,
                        int32_t **ids, size_t *n, cairn_err *err) {
    const char *bos = token_text_or_empty(tok, cairn_tokenizer_bos(tok));
    const char *eos = token_text_or_empty(tok, cairn_tokenizer_eos(tok));
    char *text = NULL;
    if (cairn_chat_render(template_src, messages, true, bos, eos, &text, err) != 0) {
        return -1;
    }
    bool has_bos = *bos && cairn_str_starts_with(text, bos);
    int rc = cairn_tokenize(tok, text, strlen(text), !has_bos, true, ids, n, err);
    free(text);
    return rc;
}
