/* A shard reads only its own tensors from the model file: after the file is evicted from the
 * page cache, loading layers [3, 5) of an 8-layer model brings exactly those layers' tensor
 * pages back, and none of the other layers', the embeddings' or the head's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define CAIRN_GENMODEL_NO_MAIN
#include "../tools/cairn-genmodel.c"

#include "engine/engine.h"
#include "model/model.h"
#include "platform/platform.h"

#define N_LAYERS 8
#define FIRST 3
#define LAST 5
#define PAGE 4096

static const char *model_path(void) {
    return CAIRN_BINARY_DIR "/test_shard_reads.gguf";
}

static int setup(void **state) {
    (void)state;
    /* tiny-llama-256 layers are about 2.3 MiB each in F32: many pages per tensor. */
    gm_options opt = {.shape = "tiny-llama-256",
                      .type = "F32",
                      .out_path = model_path(),
                      .n_layers = N_LAYERS,
                      .seed = 11};
    gm_stats stats;
    cairn_err err = {{0}};
    if (gm_generate(&opt, &stats, &err) != 0) {
        fprintf(stderr, "generating the model: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* The layer a tensor belongs to, or -1 for the embeddings, output norm and head. */
static int tensor_layer(const char *name) {
    int layer = -1;
    return sscanf(name, "blk.%d.", &layer) == 1 ? layer : -1;
}

/* Evicts the file, loads the shard, and checks every tensor's interior pages (its first and
 * last page may be shared with a neighbour) for residency. */
static void check_reads(bool use_mmap) {
    cairn_err err = {{0}};
    if (cairn_file_evict_cache(model_path(), &err) != 0) {
        skip(); /* listed in the README: not possible without administrator rights on Windows */
    }
    cairn_mapped_file map;
    assert_int_equal(cairn_map_file(model_path(), &map, &err), 0);
    cairn_model_file *m = NULL;
    assert_int_equal(cairn_model_open_metadata(model_path(), &m, &err), 0);
    const cairn_tensor_info *blk0 = cairn_model_tensor(m, "blk.0.ffn_up.weight");
    assert_non_null(blk0);
    assert_int_equal(cairn_mapped_resident_bytes(&map, blk0->offset + PAGE, PAGE * 4), 0);

    cairn_shard_config cfg = {.model_path = model_path(),
                              .first_layer = FIRST,
                              .last_layer = LAST,
                              .n_ctx = 16,
                              .n_threads = 1,
                              .use_mmap = use_mmap};
    cairn_shard *shard = NULL;
    if (cairn_shard_load_ggml(&cfg, &shard, &err) != 0) {
        fail_msg("loading the shard: %s", err.msg);
    }
    int own = 0, others = 0;
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const cairn_tensor_info *t = &m->tensors[i];
        if (t->size < 3 * PAGE) {
            continue; /* norms: no interior page */
        }
        uint64_t start = (t->offset + PAGE - 1) / PAGE * PAGE + PAGE;
        uint64_t end = (t->offset + t->size) / PAGE * PAGE - PAGE;
        int64_t resident = cairn_mapped_resident_bytes(&map, start, end - start);
        int layer = tensor_layer(t->name);
        if (layer >= FIRST && layer < LAST) {
            own++;
            if (resident != (int64_t)(end - start)) {
                fail_msg("%s (own layer): %lld of %llu interior bytes read", t->name,
                         (long long)resident, (unsigned long long)(end - start));
            }
        } else {
            others++;
            if (resident != 0) {
                fail_msg("%s (not this shard's): %lld bytes read", t->name, (long long)resident);
            }
        }
    }
    assert_int_equal(own, 2 * 7);                     /* 7 matrices per layer */
    assert_int_equal(others, (N_LAYERS - 2) * 7 + 2); /* + token_embd and output */
    cairn_shard_free(shard);
    cairn_model_close(m);
    cairn_unmap_file(&map);
}

static void test_copy_reads_only_own_tensors(void **state) {
    (void)state;
    check_reads(false);
}

static void test_mmap_reads_only_own_tensors(void **state) {
    (void)state;
    check_reads(true);
}

int main(void) {
    (void)gm_main; /* the generator's command line is tested by test_genmodel */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy_reads_only_own_tensors),
        cmocka_unit_test(test_mmap_reads_only_own_tensors),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
