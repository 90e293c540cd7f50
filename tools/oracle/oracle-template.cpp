// cairn-oracle's `template` command: renders a chat through llama.cpp's own chat-template
// engine (common/chat.h, its Jinja interpreter), the reference cairn's src/chat is checked
// against. C++ only because that engine is; the rest of the oracle is C.
//
// The template comes from the model's tokenizer.chat_template (-m) or a file (--template);
// MESSAGES.json is an OpenAI-style array of {"role","content"} objects. The rendered
// prompt is printed exactly, with no newline added.
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "chat.h"
#include "json.h"
#include "llama.h"

static bool read_text(const char *path, std::string &out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return false;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    out = ss.str();
    return true;
}

static int render(const llama_model *model, const std::string &tmpl, const std::string &messages,
                  bool add_generation_prompt, const char *bos, const char *eos) {
    auto tmpls = common_chat_templates_init(model, tmpl, bos ? bos : "", eos ? eos : "");
    common_chat_templates_inputs in;
    in.messages = common_chat_msgs_parse_oaicompat(common_json::parse(messages));
    in.add_generation_prompt = add_generation_prompt;
    in.use_jinja = true;
    const common_chat_params out = common_chat_templates_apply(tmpls.get(), in);
    fwrite(out.prompt.data(), 1, out.prompt.size(), stdout);
    return 0;
}

extern "C" int cairn_oracle_template(const char *model_path, const char *template_path,
                                     const char *messages_path, bool add_generation_prompt,
                                     const char *bos, const char *eos) {
    std::string tmpl, messages;
    if (!messages_path || (!model_path == !template_path)) {
        std::fprintf(stderr, "cairn-oracle: template needs --messages and one of -m, --template\n");
        return 2;
    }
    if (!read_text(messages_path, messages) || (template_path && !read_text(template_path, tmpl))) {
        std::fprintf(stderr, "cairn-oracle: cannot read %s\n",
                     template_path ? template_path : messages_path);
        return 1;
    }
    llama_model *model = nullptr;
    if (model_path) {
        llama_model_params mp = llama_model_default_params();
        mp.vocab_only = true;
        model = llama_model_load_from_file(model_path, mp);
        if (!model) {
            std::fprintf(stderr, "cairn-oracle: cannot load %s\n", model_path);
            return 1;
        }
    }
    int rc = 1;
    try {
        rc = render(model, tmpl, messages, add_generation_prompt, bos, eos);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "cairn-oracle: template: %s\n", e.what());
    }
    llama_model_free(model);
    return rc;
}
