/*
 * cairn-template: renders a conversation through cairn's own chat-template interpreter,
 * with the same arguments as the oracle's `template` command, so tests can compare the
 * two renderings of each family's real template byte for byte.
 *
 *   cairn-template (-m MODEL | --template FILE.jinja) --messages FILE.json
 *                  [--add-generation-prompt] [--bos TEXT] [--eos TEXT]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"
#include "util/util.h"

typedef struct template_args {
    const char *model, *template_path, *messages, *bos, *eos;
    bool add_generation_prompt;
} template_args;

static int usage(void) {
    fprintf(stderr,
            "usage: cairn-template (-m MODEL | --template FILE.jinja) --messages FILE.json\n"
            "                      [--add-generation-prompt] [--bos TEXT] [--eos TEXT]\n");
    return 2;
}

static bool parse(int argc, char **argv, template_args *a) {
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "--add-generation-prompt") == 0) {
            a->add_generation_prompt = true;
            continue;
        }
        const char **dst = strcmp(o, "-m") == 0           ? &a->model
                           : strcmp(o, "--template") == 0 ? &a->template_path
                           : strcmp(o, "--messages") == 0 ? &a->messages
                           : strcmp(o, "--bos") == 0      ? &a->bos
                           : strcmp(o, "--eos") == 0      ? &a->eos
                                                          : NULL;
        if (!dst || i + 1 >= argc) {
            return false;
        }
        *dst = argv[++i];
    }
    return a->messages && (a->model != NULL) != (a->template_path != NULL);
}

static int render(const template_args *a, cairn_err *err) {
    char *tpl = NULL, *json = NULL, *out = NULL;
    size_t len = 0;
    int rc = -1;
    if (a->model) {
        cairn_chat_template_load(a->model, &tpl, err);
    } else {
        tpl = cairn_read_file(a->template_path, &len, err);
    }
    cJSON *messages = NULL;
    if (tpl && (json = cairn_read_file(a->messages, &len, err)) != NULL) {
        messages = cJSON_ParseWithLength(json, len);
        if (!cJSON_IsArray(messages)) {
            cairn_fail(err, "%s: not a JSON array of messages", a->messages);
        } else if (cairn_chat_render(tpl, messages, a->add_generation_prompt, a->bos, a->eos, &out,
                                     err) == 0) {
            fputs(out, stdout);
            rc = 0;
        }
    }
    cJSON_Delete(messages);
    free(out);
    free(json);
    free(tpl);
    return rc;
}

int main(int argc, char **argv) {
    template_args a;
    if (!parse(argc, argv, &a)) {
        return usage();
    }
    cairn_err err = {{0}};
    if (render(&a, &err) != 0) {
        fprintf(stderr, "cairn-template: %s\n", err.msg);
        return 1;
    }
    return 0;
}
