/* Tests for the node profile (src/cluster/profile.h) and the platform pieces it reads: the
 * directory listing, free disk space and the OS description. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/profile.h"
#include "cluster/state.h"
#include "platform/platform.h"

#define EMPTY_DIR CAIRN_BINARY_DIR "/test_profile_empty"
#define LIST_DIR CAIRN_BINARY_DIR "/test_profile_list"
#define MANY_DIR CAIRN_BINARY_DIR "/test_profile_many"
#define UTF8_NAME "\xc3\xa9t\xc3\xa9_\xe6\xa8\xa1\xe5\x9e\x8b.gguf"
#define MANY_FILES (CAIRN_STATE_MAX_MODEL_FILES + 6)

static void make_dir(const char *path) {
    cairn_err err = {{0}};
    int rc = cairn_make_dir(path, &err);
    if (rc != 0) {
        fail_msg("%s", err.msg);
    }
}

/* Writes size bytes to dir/name, replacing what an earlier run left. */
static void write_file(const char *dir, const char *name, size_t size) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = cairn_fopen(path, "wb");
    assert_non_null(f);
    for (size_t i = 0; i < size; i++) {
        assert_int_equal(fputc('x', f), 'x');
    }
    assert_int_equal(fclose(f), 0);
}

static void make_list_dir(void) {
    make_dir(LIST_DIR);
    write_file(LIST_DIR, "a.gguf", 10);
    write_file(LIST_DIR, UTF8_NAME, 3);
    write_file(LIST_DIR, "notes.txt", 5);
    make_dir(LIST_DIR "/sub.gguf"); /* a directory, whatever its name says */
}

typedef struct seen_files {
    int count;
    uint64_t size_a, size_utf8, size_notes;
    int other;
} seen_files;

static int note_file(const char *name, uint64_t size, void *user, cairn_err *err) {
    seen_files *seen = user;
    seen->count++;
    if (strcmp(name, "a.gguf") == 0) {
        seen->size_a = size;
    } else if (strcmp(name, UTF8_NAME) == 0) {
        seen->size_utf8 = size;
    } else if (strcmp(name, "notes.txt") == 0) {
        seen->size_notes = size;
    } else {
        seen->other++;
    }
    return 0;
}

static int stop_listing(const char *name, uint64_t size, void *user, cairn_err *err) {
    return cairn_fail(err, "stopped at %s", name);
}

static void test_list_dir_finds_files_and_skips_directories(void **state) {
    make_list_dir();
    seen_files seen = {0};
    cairn_err err = {{0}};
    assert_int_equal(cairn_list_dir(LIST_DIR, note_file, &seen, &err), 0);
    assert_int_equal(seen.count, 3);
    assert_int_equal(seen.other, 0);
    assert_int_equal(seen.size_a, 10);
    assert_int_equal(seen.size_utf8, 3);
    assert_int_equal(seen.size_notes, 5);

    assert_int_equal(cairn_list_dir(LIST_DIR, stop_listing, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "stopped at"));

    assert_int_equal(cairn_list_dir(CAIRN_BINARY_DIR "/no-such-dir", note_file, &seen, &err), -1);
    assert_non_null(strstr(err.msg, "no-such-dir"));
}

static void test_disk_free(void **state) {
    uint64_t bytes = 0;
    cairn_err err = {{0}};
    assert_int_equal(cairn_disk_free(CAIRN_BINARY_DIR, &bytes, &err), 0);
    assert_true(bytes > 0);
    assert_int_equal(cairn_disk_free(CAIRN_BINARY_DIR "/no-such-dir", &bytes, &err), -1);
    assert_non_null(strstr(err.msg, "no-such-dir"));
}

static void test_os_description_is_cut_at_a_character(void **state) {
    char full[256];
    cairn_os_description(full, sizeof(full));
    assert_true(full[0] != '\0');
    char small[6];
    cairn_os_description(small, sizeof(small));
    assert_true(strlen(small) < sizeof(small));
    assert_memory_equal(small, full, strlen(small));
}

static void test_gather_is_plausible(void **state) {
    make_dir(EMPTY_DIR);
    cairn_node_profile *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    cairn_err err = {{0}};
    int rc = cairn_profile_gather(EMPTY_DIR, p, &err);
    if (rc != CAIRN_PROFILE_COMPLETE) {
        fail_msg("gather returned %d: %s", rc, err.msg);
    }
    assert_true(p->memory_available > 0);
    assert_true(p->memory_total >= p->memory_available);
    assert_true(p->cpu_cores >= 1);
    assert_true(p->cpu_model[0] != '\0');
    assert_true(p->os[0] != '\0');
    assert_true(p->disk_free > 0);
    assert_int_equal(p->n_model_files, 0);
    bool has_cpu = false;
    for (uint32_t i = 0; i < p->n_devices; i++) {
        assert_true(p->devices[i].name[0] != '\0');
        has_cpu = has_cpu || p->devices[i].type == CAIRN_DEVICE_CPU;
    }
    assert_true(has_cpu);
    free(p);
}

static void test_gather_lists_model_files(void **state) {
    make_list_dir();
    cairn_node_profile *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    cairn_err err = {{0}};
    assert_int_equal(cairn_profile_gather(LIST_DIR, p, &err), CAIRN_PROFILE_COMPLETE);
    /* Only .gguf files, by name; not notes.txt, not the directory sub.gguf. */
    assert_int_equal(p->n_model_files, 2);
    assert_string_equal(p->model_files[0].name, "a.gguf");
    assert_int_equal(p->model_files[0].size, 10);
    assert_string_equal(p->model_files[1].name, UTF8_NAME);
    assert_int_equal(p->model_files[1].size, 3);
    assert_string_equal(p->model_files[0].sha256, "");
    free(p);
}

static void test_missing_models_dir_is_an_error(void **state) {
    cairn_node_profile *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    cairn_err err = {{0}};
    assert_int_equal(cairn_profile_gather(CAIRN_BINARY_DIR "/no-such-models", p, &err), -1);
    assert_non_null(strstr(err.msg, "models directory"));
    assert_non_null(strstr(err.msg, "no-such-models"));
    free(p);
}

static void test_gather_truncates_and_says_so(void **state) {
    make_dir(MANY_DIR);
    for (int i = MANY_FILES - 1; i >= 0; i--) {
        char name[32];
        snprintf(name, sizeof(name), "m%03d.GGUF", i);
        write_file(MANY_DIR, name, (size_t)i % 4);
    }
    char long_name[CAIRN_STATE_NAME_SIZE + 8];
    memset(long_name, 'l', sizeof(long_name));
    memcpy(long_name + sizeof(long_name) - 6, ".gguf", 6);
    write_file(MANY_DIR, long_name, 1);

    cairn_node_profile *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    cairn_err err = {{0}};
    assert_int_equal(cairn_profile_gather(MANY_DIR, p, &err), CAIRN_PROFILE_TRUNCATED);
    assert_non_null(strstr(err.msg, "6 model files over the 64"));
    assert_non_null(strstr(err.msg, "1 model files named too long"));
    assert_int_equal(p->n_model_files, CAIRN_STATE_MAX_MODEL_FILES);
    assert_string_equal(p->model_files[0].name, "m000.GGUF");
    assert_string_equal(p->model_files[CAIRN_STATE_MAX_MODEL_FILES - 1].name, "m063.GGUF");
    assert_int_equal(p->model_files[3].size, 3);
    free(p);
}

static void apply_ok(cairn_cluster_state *s, const cairn_event *e) {
    cairn_err err = {{0}};
    int rc = cairn_state_apply(s, e, &err);
    if (rc != 0) {
        fail_msg("apply: %s", err.msg);
    }
}

static void test_profile_goes_into_an_event(void **state) {
    make_list_dir();
    cairn_err err = {{0}};
    cairn_cluster_state *s = cairn_state_new("test", &err);
    assert_non_null(s);
    cairn_event *e = calloc(1, sizeof(*e));
    assert_non_null(e);

    e->type = CAIRN_EVENT_MASTER_ELECTED;
    e->index = 1;
    e->term = 1;
    snprintf(e->as.master_elected.master_id, CAIRN_STATE_ID_SIZE, "n1");
    apply_ok(s, e);
    memset(e, 0, sizeof(*e));
    e->type = CAIRN_EVENT_NODE_JOINED;
    e->index = 2;
    e->term = 1;
    snprintf(e->as.node_joined.node_id, CAIRN_STATE_ID_SIZE, "n1");
    apply_ok(s, e);

    memset(e, 0, sizeof(*e));
    e->type = CAIRN_EVENT_NODE_PROFILE_UPDATED;
    e->index = 3;
    e->term = 1;
    snprintf(e->as.node_profile_updated.node_id, CAIRN_STATE_ID_SIZE, "n1");
    assert_int_equal(cairn_profile_gather(LIST_DIR, &e->as.node_profile_updated.profile, &err),
                     CAIRN_PROFILE_COMPLETE);
    if (cairn_event_check(e, &err) != 0) {
        fail_msg("check: %s", err.msg);
    }
    /* The wire form carries it too (what peers will decode). */
    char *json = cairn_event_to_json(e, &err);
    assert_non_null(json);
    cairn_event *decoded = calloc(1, sizeof(*decoded));
    assert_non_null(decoded);
    if (cairn_event_from_json(json, strlen(json), decoded, &err) != 0) {
        fail_msg("decode: %s", err.msg);
    }
    apply_ok(s, decoded);

    const cairn_node *n = cairn_state_find_node(s, "n1");
    assert_non_null(n);
    assert_int_equal(n->profile.n_model_files, 2);
    assert_string_equal(n->profile.os, e->as.node_profile_updated.profile.os);
    assert_true(n->profile.n_devices >= 1);
    free(json);
    free(decoded);
    free(e);
    free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_dir_finds_files_and_skips_directories),
        cmocka_unit_test(test_disk_free),
        cmocka_unit_test(test_os_description_is_cut_at_a_character),
        cmocka_unit_test(test_gather_is_plausible),
        cmocka_unit_test(test_gather_lists_model_files),
        cmocka_unit_test(test_missing_models_dir_is_an_error),
        cmocka_unit_test(test_gather_truncates_and_says_so),
        cmocka_unit_test(test_profile_goes_into_an_event),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
