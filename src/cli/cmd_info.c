/* cli: `cairn info`: what a GGUF file is, without loading its weights. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "ggml.h"
#include "gguf.h"
#include "model/model.h"

static void print_hparams(const cairn_hparams *hp) {
    static const char *scaling[] = {"none", "linear", "yarn"};
    printf("architecture:   %s\n", hp->arch_name);
    printf("layers:         %d\n", hp->n_layer);
    printf("embedding:      %d\n", hp->n_embd);
    printf("heads:          %d (key/value heads %d, head size %d)\n", hp->n_head, hp->n_head_kv,
           hp->head_dim_k);
    printf("feed-forward:   %d\n", hp->n_ff);
    printf("vocabulary:     %d\n", hp->n_vocab);
    printf("context:        %d\n", hp->n_ctx_train);
    printf("rope:           %d dims, base %g, scaling %s%s\n", hp->rope_dims,
           (double)hp->rope_freq_base, scaling[hp->rope_scaling],
           hp->has_rope_freqs ? ", frequency factors" : "");
    printf("embeddings:     %s\n", hp->tied_embeddings ? "tied to the output head" : "separate");
    if (hp->n_expert > 0) {
        printf("experts:        %d, %d per token, expert size %d", hp->n_expert, hp->n_expert_used,
               hp->n_ff_exp);
        if (hp->n_expert_shared > 0) {
            printf(", %d shared", hp->n_expert_shared);
        }
        if (hp->n_layer_dense_lead > 0) {
            printf(", first %d layers dense", hp->n_layer_dense_lead);
        }
        if (hp->n_expert_groups > 1) {
            printf(", %d of %d groups", hp->n_group_used, hp->n_expert_groups);
        }
        printf("\n");
    }
    if (hp->n_swa > 0) {
        printf("sliding window: %d positions on %d of every %d layers (rope base %g)\n", hp->n_swa,
               hp->swa_period - 1, hp->swa_period, (double)hp->rope_freq_base_swa);
    }
}

/* llama.cpp's names of the mixes its quantizer writes (general.file_type), so a file is
 * described by the name it is published under. */
static const char *file_type_name(int64_t ft) {
    static const char *const names[] = {
        [0] = "F32",      [1] = "F16",      [2] = "Q4_0",       [3] = "Q4_1",    [7] = "Q8_0",
        [8] = "Q5_0",     [9] = "Q5_1",     [10] = "Q2_K",      [11] = "Q3_K_S", [12] = "Q3_K_M",
        [13] = "Q3_K_L",  [14] = "Q4_K_S",  [15] = "Q4_K_M",    [16] = "Q5_K_S", [17] = "Q5_K_M",
        [18] = "Q6_K",    [19] = "IQ2_XXS", [20] = "IQ2_XS",    [21] = "Q2_K_S", [22] = "IQ3_XS",
        [23] = "IQ3_XXS", [24] = "IQ1_S",   [25] = "IQ4_NL",    [26] = "IQ3_S",  [27] = "IQ3_M",
        [28] = "IQ2_S",   [29] = "IQ2_M",   [30] = "IQ4_XS",    [31] = "IQ1_M",  [32] = "BF16",
        [36] = "TQ1_0",   [37] = "TQ2_0",   [38] = "MXFP4_MOE",
    };
    return ft >= 0 && ft < (int64_t)CAIRN_ARRAY_LEN(names) && names[ft] ? names[ft] : NULL;
}

static void print_mix(const cairn_model_file *m) {
    int64_t ft = -1;
    if (cairn_meta_int(m->gguf, "general.file_type", &ft, NULL) != 1) {
        return;
    }
    const char *mix = file_type_name(ft);
    if (mix) {
        printf("mix:            %s\n", mix);
    } else {
        printf("mix:            file type %lld\n", (long long)ft);
    }
}

static void print_tensor_types(const cairn_model_file *m) {
    uint64_t bytes[GGML_TYPE_COUNT] = {0};
    int count[GGML_TYPE_COUNT] = {0};
    for (int64_t i = 0; i < m->n_tensors; i++) {
        int t = m->tensors[i].type;
        if (t >= 0 && t < GGML_TYPE_COUNT) {
            bytes[t] += m->tensors[i].size;
            count[t]++;
        }
    }
    printf("tensors:        %lld\n", (long long)m->n_tensors);
    for (int t = 0; t < GGML_TYPE_COUNT; t++) {
        if (count[t]) {
            printf("  %-6s %5d tensors, %10.2f MiB\n", ggml_type_name((enum ggml_type)t), count[t],
                   (double)bytes[t] / (1024.0 * 1024.0));
        }
    }
}

static void print_tokenizer(const cairn_model_file *m) {
    cairn_tokenizer *tok = NULL;
    cairn_err err = {{0}};
    const char *model = NULL, *pre = NULL, *tmpl = NULL;
    cairn_meta_str(m->gguf, "tokenizer.ggml.model", &model, NULL);
    cairn_meta_str(m->gguf, "tokenizer.ggml.pre", &pre, NULL);
    if (cairn_tokenizer_from_gguf(m->gguf, &tok, &err) != 0) {
        printf("tokenizer:      unusable: %s\n", err.msg);
    } else {
        printf("tokenizer:      %s%s%s, %d tokens, bos %d, eos %d\n", model ? model : "?",
               pre ? " / " : "", pre ? pre : "", cairn_tokenizer_n_vocab(tok),
               (int)cairn_tokenizer_bos(tok), (int)cairn_tokenizer_eos(tok));
        cairn_tokenizer_free(tok);
    }
    if (cairn_meta_str(m->gguf, "tokenizer.chat_template", &tmpl, NULL) == 1) {
        printf("chat template:  %zu bytes\n", strlen(tmpl));
    } else {
        printf("chat template:  none\n");
    }
}

int cmd_info(int argc, char **argv) {
    const cli_command cmd = {"info",
                             "usage: cairn info FILE",
                             "Describes a GGUF file: format, architecture, tensors, tokenizer.",
                             NULL,
                             0,
                             1};
    const char *path = NULL;
    int status;
    if (!cli_parse_args(&cmd, argc, argv, &path, &status)) {
        return status;
    }
    cairn_model_file *m = NULL;
    cairn_err err = {{0}}, load_err = {{0}};
    /* A file that is not a complete model (a vocabulary, say) is still described. */
    if (cairn_model_open(path, &m, &load_err) != 0 &&
        cairn_model_open_metadata(path, &m, &err) != 0) {
        cli_error("%s", err.msg);
        return CLI_ERROR;
    }
    const char *name = NULL;
    cairn_meta_str(m->gguf, "general.name", &name, NULL);
    printf("file:           %s (%llu bytes)\n", path, (unsigned long long)m->map.size);
    printf("format:         GGUF v%u, %lld metadata keys\n", (unsigned)gguf_get_version(m->gguf),
           (long long)gguf_get_n_kv(m->gguf));
    if (name) {
        printf("name:           %s\n", name);
    }
    if (m->has_hparams) {
        print_hparams(&m->hp);
    }
    if (!m->has_hparams) {
        printf("model:          not runnable: %s\n", load_err.msg);
    }
    print_mix(m);
    print_tensor_types(m);
    print_tokenizer(m);
    cairn_model_close(m);
    return CLI_OK;
}
