/* profile: this node's self-description for the cluster; see profile.h. */
#include "cluster/profile.h"

#include <stdlib.h>
#include <string.h>

#include <ggml-backend.h>

#include "platform/platform.h"

static uint64_t capped(uint64_t v) {
    return v > CAIRN_STATE_MAX_NUMBER ? CAIRN_STATE_MAX_NUMBER : v;
}

/* ---- machine ---- */

static void gather_machine(cairn_node_profile *p) {
    p->memory_total = capped(cairn_memory_total());
    p->memory_available = capped(cairn_memory_available());
    char text[256];
    cairn_cpu_model(text, sizeof(text));
    cairn_utf8_printable_copy(p->cpu_model, sizeof(p->cpu_model), text);
    int cores = cairn_cpu_count();
    p->cpu_cores = cores < 0                           ? 0
                   : cores > CAIRN_STATE_MAX_CPU_CORES ? CAIRN_STATE_MAX_CPU_CORES
                                                       : (uint32_t)cores;
    cairn_os_description(text, sizeof(text));
    cairn_utf8_printable_copy(p->os, sizeof(p->os), text);
}

/* ---- ggml devices ---- */

/* false for kinds a profile does not describe (ggml's META devices group others). */
static bool device_type_of(enum ggml_backend_dev_type t, cairn_device_type *out) {
    switch (t) {
    case GGML_BACKEND_DEVICE_TYPE_CPU: *out = CAIRN_DEVICE_CPU; return true;
    case GGML_BACKEND_DEVICE_TYPE_GPU: *out = CAIRN_DEVICE_GPU; return true;
    case GGML_BACKEND_DEVICE_TYPE_IGPU: *out = CAIRN_DEVICE_IGPU; return true;
    case GGML_BACKEND_DEVICE_TYPE_ACCEL: *out = CAIRN_DEVICE_ACCEL; return true;
    default: return false;
    }
}

static void describe_device(ggml_backend_dev_t dev, cairn_device_type type, cairn_device *d) {
    const char *name = ggml_backend_dev_name(dev);
    const char *description = ggml_backend_dev_description(dev);
    cairn_utf8_printable_copy(d->name, sizeof(d->name), name ? name : "");
    if (!d->name[0]) {
        cairn_utf8_printable_copy(d->name, sizeof(d->name), "unnamed");
    }
    cairn_utf8_printable_copy(d->description, sizeof(d->description),
                              description ? description : "");
    d->type = type;
    size_t free_bytes = 0, total_bytes = 0;
    ggml_backend_dev_memory(dev, &free_bytes, &total_bytes);
    d->memory_total = capped(total_bytes);
    d->memory_free = capped(free_bytes);
}

/* Returns how many devices did not fit. */
static uint32_t gather_devices(cairn_node_profile *p) {
    uint32_t left_out = 0;
    size_t count = ggml_backend_dev_count();
    for (size_t i = 0; i < count; i++) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        cairn_device_type type;
        if (!dev || !device_type_of(ggml_backend_dev_type(dev), &type)) {
            continue;
        }
        if (p->n_devices == CAIRN_STATE_MAX_DEVICES) {
            left_out++;
            continue;
        }
        describe_device(dev, type, &p->devices[p->n_devices++]);
    }
    return left_out;
}

/* ---- model files ---- */

typedef struct file_list {
    cairn_model_file *files;
    size_t count;
    size_t cap;
    uint32_t unnamable; /* model files whose names a profile cannot carry */
} file_list;

static bool is_model_name(const char *name) {
    static const char suffix[] = ".gguf";
    size_t len = strlen(name), n = sizeof(suffix) - 1;
    if (len < n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[len - n + i];
        if ((c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c) != suffix[i]) {
            return false;
        }
    }
    return true;
}

static int add_model_file(const char *name, uint64_t size, void *user, cairn_err *err) {
    file_list *list = user;
    if (!is_model_name(name)) {
        return 0;
    }
    if (strlen(name) >= CAIRN_STATE_NAME_SIZE || !cairn_utf8_is_printable(name, strlen(name))) {
        list->unnamable++; /* a cut or altered name would not name the file any more */
        return 0;
    }
    if (list->count == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 16;
        cairn_model_file *grown = realloc(list->files, cap * sizeof(*grown));
        if (!grown) {
            return cairn_fail(err, "out of memory");
        }
        list->files = grown;
        list->cap = cap;
    }
    cairn_model_file *f = &list->files[list->count++];
    memset(f, 0, sizeof(*f));
    memcpy(f->name, name, strlen(name) + 1);
    f->size = capped(size);
    return 0;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const cairn_model_file *)a)->name, ((const cairn_model_file *)b)->name);
}

/* Fills the profile's model files; *left_out counts those that did not fit. */
static int gather_model_files(const char *models_dir, cairn_node_profile *p, uint32_t *left_out,
                              uint32_t *unnamable, cairn_err *err) {
    file_list list = {0};
    if (cairn_list_dir(models_dir, add_model_file, &list, err) != 0) {
        free(list.files);
        return cairn_fail_prefix(err, "models directory");
    }
    size_t kept =
        list.count < CAIRN_STATE_MAX_MODEL_FILES ? list.count : CAIRN_STATE_MAX_MODEL_FILES;
    if (kept > 0) { /* files is NULL when there are none */
        qsort(list.files, list.count, sizeof(list.files[0]), by_name);
        memcpy(p->model_files, list.files, kept * sizeof(list.files[0]));
    }
    p->n_model_files = (uint32_t)kept;
    *left_out = (uint32_t)(list.count - kept);
    *unnamable = list.unnamable;
    free(list.files);
    return 0;
}

/* ---- the whole profile ---- */

static int report_truncation(uint32_t devices, uint32_t files, uint32_t unnamable, cairn_err *err) {
    if (devices == 0 && files == 0 && unnamable == 0) {
        return CAIRN_PROFILE_COMPLETE;
    }
    cairn_fail(err,
               "profile truncated: %u devices over the %d it holds, %u model files over the %d "
               "it holds, %u model files named too long (over %d bytes) or not printable UTF-8 "
               "left out",
               devices, CAIRN_STATE_MAX_DEVICES, files, CAIRN_STATE_MAX_MODEL_FILES, unnamable,
               CAIRN_STATE_NAME_SIZE - 1);
    return CAIRN_PROFILE_TRUNCATED;
}

int cairn_profile_gather(const char *models_dir, cairn_node_profile *out, cairn_err *err) {
    memset(out, 0, sizeof(*out));
    uint32_t files_left_out = 0, unnamable = 0;
    if (gather_model_files(models_dir, out, &files_left_out, &unnamable, err) != 0) {
        return -1;
    }
    uint64_t disk_free = 0;
    if (cairn_disk_free(models_dir, &disk_free, err) != 0) {
        return cairn_fail_prefix(err, "models directory");
    }
    out->disk_free = capped(disk_free);
    gather_machine(out);
    uint32_t devices_left_out = gather_devices(out);
    return report_truncation(devices_left_out, files_left_out, unnamable, err);
}

void cairn_profile_cap_memory(cairn_node_profile *p, uint64_t cap) {
    if (cap == 0) {
        return;
    }
    p->memory_total = p->memory_total < cap ? p->memory_total : cap;
    p->memory_available = p->memory_available < cap ? p->memory_available : cap;
}
