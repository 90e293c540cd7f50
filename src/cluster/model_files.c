/*
 * model_files: the SHA-256 and memory footprint of each model file in the node's models
 * directory, for its profile. Hashing reads the whole file (tens of GB), so it runs on
 * libuv's thread pool, one file at a time, and the results are cached by (name, size,
 * modification time): a file is hashed once, and again only when it changes. Until its
 * hash is known, a file is reported with an empty sha256 and no footprint.
 *
 * Everything but the work function runs on the node's loop. The cache outlives the node
 * while a hash is in flight: closing it only asks the hash to stop, and the last callback
 * frees it.
 */
#define _POSIX_C_SOURCE 200809L /* pthread types in uv.h under strict C11 */

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/model_measure.h"
#include "cluster/node_internal.h"
#include "util/defaults.h"
#include "util/log.h"

/* Files remembered at most: what a profile holds, plus one being replaced. */
#define MAX_ENTRIES (CAIRN_STATE_MAX_MODEL_FILES + 1)

typedef enum entry_status { ENTRY_PENDING, ENTRY_RUNNING, ENTRY_DONE } entry_status;

typedef struct file_key {
    uint64_t size;
    int64_t mtime_sec;
    int64_t mtime_nsec;
} file_key;

typedef struct file_entry {
    char name[CAIRN_STATE_NAME_SIZE];
    file_key key;
    entry_status status;
    bool seen;             /* listed by the latest gather */
    model_measure measure; /* sha256 empty until hashed */
} file_entry;

/* One hash in flight: everything the worker thread touches, and nothing else. */
typedef struct hash_job {
    uv_work_t req;
    model_files *owner;
    char *path;
    char name[CAIRN_STATE_NAME_SIZE];
    file_key key;
    int n_ctx, n_seq;
    /* results */
    int rc;
    cairn_err err;
    model_measure measure;
} hash_job;

struct model_files {
    uv_loop_t *loop;
    cairn_logger *log;
    char *dir;
    int n_ctx, n_seq;
    void (*on_ready)(void *user);
    void *user;
    file_entry entries[MAX_ENTRIES];
    uint32_t n_entries;
    hash_job *job;      /* in flight, or NULL */
    atomic_bool cancel; /* asks the job to stop */
    bool closing;
};

static char *join_path(const char *dir, const char *name) {
    cairn_buf b = {0};
    if (cairn_buf_printf(&b, "%s/%s", dir, name) != 0) {
        cairn_buf_free(&b);
        return NULL;
    }
    return cairn_buf_take(&b);
}

/* Size and modification time; -1 when the file cannot be read. Sync uv_fs_stat: a stat is
 * quick, and libuv takes UTF-8 paths on every system. */
static int stat_key(const char *path, file_key *out) {
    uv_fs_t req;
    int rc = uv_fs_stat(NULL, &req, path, NULL);
    if (rc == 0) {
        out->size = req.statbuf.st_size;
        out->mtime_sec = req.statbuf.st_mtim.tv_sec;
        out->mtime_nsec = req.statbuf.st_mtim.tv_nsec;
    }
    uv_fs_req_cleanup(&req);
    return rc == 0 ? 0 : -1;
}

static bool same_key(const file_key *a, const file_key *b) {
    return a->size == b->size && a->mtime_sec == b->mtime_sec && a->mtime_nsec == b->mtime_nsec;
}

/* ---- the worker thread ---- */

static bool keep_hashing(void *user) {
    return !atomic_load(&((model_files *)user)->cancel);
}

static void hash_work(uv_work_t *req) {
    hash_job *job = req->data;
    job->rc = model_measure_file(job->path, job->n_ctx, job->n_seq, keep_hashing, job->owner,
                                 &job->measure, &job->err);
    if (job->rc != 0) {
        return;
    }
    /* A file rewritten while it was read has a hash of neither version. */
    file_key after;
    if (stat_key(job->path, &after) != 0 || !same_key(&after, &job->key)) {
        job->rc = cairn_fail(&job->err, "%s changed while it was hashed", job->path);
    }
}

/* ---- the loop ---- */

static file_entry *find_entry(model_files *mf, const char *name) {
    for (uint32_t i = 0; i < mf->n_entries; i++) {
        if (strcmp(mf->entries[i].name, name) == 0) {
            return &mf->entries[i];
        }
    }
    return NULL;
}

static void free_job(hash_job *job) {
    free(job->path);
    free(job);
}

static void model_files_free(model_files *mf) {
    free(mf->dir);
    free(mf);
}

static void record_result(model_files *mf, hash_job *job) {
    file_entry *e = find_entry(mf, job->name);
    if (!e || e->status != ENTRY_RUNNING || !same_key(&e->key, &job->key)) {
        return; /* gone or changed meanwhile: the next gather queues it again */
    }
    if (job->rc != 0) {
        /* Reported without a hash; tried again when the file changes. */
        cairn_log(mf->log, CAIRN_LOG_WARN, "cannot hash model file %s: %s", job->name,
                  job->err.msg);
        e->status = ENTRY_DONE;
        return;
    }
    e->measure = job->measure;
    e->status = ENTRY_DONE;
    cairn_log(mf->log, CAIRN_LOG_INFO, "model file %s: sha256 %s, %u layers", e->name,
              e->measure.sha256, e->measure.n_layers);
    if (mf->on_ready) {
        mf->on_ready(mf->user);
    }
}

static void start_next(model_files *mf);

static void hash_done(uv_work_t *req, int status) {
    hash_job *job = req->data;
    model_files *mf = job->owner;
    mf->job = NULL;
    if (mf->closing) {
        free_job(job);
        model_files_free(mf);
        return;
    }
    if (status == 0) {
        record_result(mf, job);
    }
    free_job(job);
    start_next(mf);
}

static void start_next(model_files *mf) {
    file_entry *e = NULL;
    for (uint32_t i = 0; !e && i < mf->n_entries; i++) {
        e = mf->entries[i].status == ENTRY_PENDING && mf->entries[i].seen ? &mf->entries[i] : NULL;
    }
    if (!e || mf->job || mf->closing) {
        return;
    }
    hash_job *job = calloc(1, sizeof *job);
    char *path = job ? join_path(mf->dir, e->name) : NULL;
    if (!path) {
        free(job);
        return; /* out of memory: tried again at the next gather */
    }
    job->req.data = job;
    job->owner = mf;
    job->path = path;
    memcpy(job->name, e->name, sizeof job->name);
    job->key = e->key;
    job->n_ctx = mf->n_ctx;
    job->n_seq = mf->n_seq;
    if (uv_queue_work(mf->loop, &job->req, hash_work, hash_done) != 0) {
        free_job(job);
        return;
    }
    e->status = ENTRY_RUNNING;
    mf->job = job;
}

/* Drops what the gather did not list (but the one being hashed: its callback needs it). */
static void prune(model_files *mf) {
    uint32_t kept = 0;
    for (uint32_t i = 0; i < mf->n_entries; i++) {
        if (mf->entries[i].seen || mf->entries[i].status == ENTRY_RUNNING) {
            mf->entries[kept++] = mf->entries[i];
        }
    }
    mf->n_entries = kept;
}

/* The entry for a listed file, new or reset when the file changed; NULL when full. */
static file_entry *entry_for(model_files *mf, const char *name, const file_key *key) {
    file_entry *e = find_entry(mf, name);
    if (e && !same_key(&e->key, key)) {
        memset(e, 0, sizeof *e); /* a running hash of the old version is dropped on return */
    }
    if (!e) {
        if (mf->n_entries == MAX_ENTRIES) {
            return NULL;
        }
        e = &mf->entries[mf->n_entries++];
        memset(e, 0, sizeof *e);
    }
    if (e->name[0] == '\0') {
        snprintf(e->name, sizeof e->name, "%s", name);
        e->key = *key;
        e->status = ENTRY_PENDING;
    }
    return e;
}

static void fill_file(cairn_model_file *f, const file_entry *e) {
    if (e->status != ENTRY_DONE) {
        return;
    }
    memcpy(f->sha256, e->measure.sha256, sizeof f->sha256);
    if (e->measure.sha256[0] && e->measure.n_layers > 0) {
        f->n_layers = e->measure.n_layers;
        f->layer_bytes = e->measure.layer_bytes;
        f->embd_bytes = e->measure.embd_bytes;
        f->head_bytes = e->measure.head_bytes;
    }
}

/* Footprints that a profile cannot carry are left out, as for a file that is no model. */
static void drop_oversized(cairn_model_file *f) {
    uint64_t total = 0;
    if (f->n_layers > CAIRN_STATE_MAX_LAYERS ||
        cairn_mul_overflows(f->n_layers, f->layer_bytes, &total) ||
        cairn_add_overflows(total, f->embd_bytes, &total) ||
        cairn_add_overflows(total, f->head_bytes, &total) || total > CAIRN_STATE_MAX_NUMBER) {
        f->n_layers = 0;
        f->layer_bytes = f->embd_bytes = f->head_bytes = 0;
    }
}

void model_files_fill(model_files *mf, cairn_node_profile *p) {
    for (uint32_t i = 0; i < mf->n_entries; i++) {
        mf->entries[i].seen = false;
    }
    for (uint32_t i = 0; i < p->n_model_files && i < CAIRN_STATE_MAX_MODEL_FILES; i++) {
        cairn_model_file *f = &p->model_files[i];
        char *path = join_path(mf->dir, f->name);
        file_key key;
        bool known = path && stat_key(path, &key) == 0;
        free(path);
        file_entry *e = known ? entry_for(mf, f->name, &key) : NULL;
        if (e) {
            e->seen = true;
            fill_file(f, e);
            drop_oversized(f);
        }
    }
    prune(mf);
    start_next(mf);
}

model_files *model_files_new(uv_loop_t *loop, const char *dir, int n_ctx, int n_seq,
                             cairn_logger *log, void (*on_ready)(void *user), void *user) {
    model_files *mf = calloc(1, sizeof *mf);
    if (!mf || !(mf->dir = cairn_strdup(dir))) {
        free(mf);
        return NULL;
    }
    mf->loop = loop;
    mf->log = log;
    mf->n_ctx = n_ctx;
    mf->n_seq = n_seq > 0 ? n_seq : CAIRN_DEFAULT_SLOTS;
    mf->on_ready = on_ready;
    mf->user = user;
    atomic_init(&mf->cancel, false);
    return mf;
}

void model_files_close(model_files *mf) {
    if (!mf) {
        return;
    }
    if (!mf->job) {
        model_files_free(mf);
        return;
    }
    mf->closing = true;
    atomic_store(&mf->cancel, true);
    uv_cancel((uv_req_t *)&mf->job->req); /* fails harmlessly once the work has started */
}
