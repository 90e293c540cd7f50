/* placement: nodes and layer splits for model instances; see placement.h. */
#include "cluster/placement.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cluster/json_fields.h"

/* ---- arithmetic that saturates instead of wrapping (sizes come from peers) ---- */

static uint64_t sat_add(uint64_t a, uint64_t b) {
    uint64_t r = 0;
    return cairn_add_overflows(a, b, &r) ? UINT64_MAX : r;
}

static uint64_t sat_mul(uint64_t a, uint64_t b) {
    uint64_t r = 0;
    return cairn_mul_overflows(a, b, &r) ? UINT64_MAX : r;
}

static uint64_t sat_sub(uint64_t a, uint64_t b) {
    return a > b ? a - b : 0;
}

/* "812 B", "800.0 MiB", "1.2 GiB". */
static const char *format_bytes(uint64_t v, char *buf, size_t size) {
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    if (v < 1024) {
        snprintf(buf, size, "%llu B", (unsigned long long)v);
        return buf;
    }
    double x = (double)v / 1024.0;
    size_t u = 0;
    while (x >= 1024.0 && u + 1 < CAIRN_ARRAY_LEN(units)) {
        x /= 1024.0;
        u++;
    }
    snprintf(buf, size, "%.1f %s", x, units[u]);
    return buf;
}

/* ---- files and costs ---- */

static bool is_sha256(const char *s) {
    size_t n = 0;
    for (; s[n]; n++) {
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f'))) {
            return false;
        }
    }
    return n == 64;
}

static bool file_ready(const cairn_model_file *f) {
    return f->sha256[0] != '\0' && f->n_layers > 0;
}

/* The node's hashed file with a footprint that matches name (or, when sha is set, that
 * hash; name may then be NULL). Files are sorted by name, so the first match is stable. */
static const cairn_model_file *node_file(const cairn_node *n, const char *name, const char *sha) {
    for (uint32_t i = 0; i < n->profile.n_model_files && i < CAIRN_STATE_MAX_MODEL_FILES; i++) {
        const cairn_model_file *f = &n->profile.model_files[i];
        if (file_ready(f) && (!name || strcmp(f->name, name) == 0) &&
            (!sha || strcmp(f->sha256, sha) == 0)) {
            return f;
        }
    }
    return NULL;
}

/* What layers [start, end) of a model cost on a node with footprint f. */
static uint64_t shard_cost(const cairn_model_file *f, uint32_t layers, bool first, bool last) {
    uint64_t cost = sat_mul(layers, f->layer_bytes);
    cost = first ? sat_add(cost, f->embd_bytes) : cost;
    return last ? sat_add(cost, f->head_bytes) : cost;
}

/* The footprint to charge for an instance's shard on node n: the node's own, else any
 * member's for that hash (the node may have deleted the file), else none. */
static const cairn_model_file *instance_file(const cairn_cluster_state *s, const cairn_node *n,
                                             const cairn_instance *in) {
    const cairn_model_file *f = node_file(n, NULL, in->model_sha256);
    for (uint32_t i = 0; !f && i < s->n_nodes; i++) {
        f = node_file(&s->nodes[i], NULL, in->model_sha256);
    }
    return f;
}

static uint64_t used_on(const cairn_cluster_state *s, const cairn_node *n) {
    uint64_t used = 0;
    for (uint32_t i = 0; i < s->n_instances; i++) {
        const cairn_instance *in = &s->instances[i];
        for (uint32_t k = 0; k < in->n_shards; k++) {
            const cairn_shard *sh = &in->shards[k];
            const cairn_model_file *f = NULL;
            if (strcmp(sh->node_id, n->id) != 0 || !(f = instance_file(s, n, in))) {
                continue;
            }
            used = sat_add(used, shard_cost(f, sh->layer_end - sh->layer_start, k == 0,
                                            k + 1 == in->n_shards));
        }
    }
    return used;
}

static uint64_t node_available(const cairn_cluster_state *s, const cairn_node *n) {
    return sat_sub(n->profile.memory_available, used_on(s, n));
}

uint64_t cairn_placement_available(const cairn_cluster_state *s, const char *node_id) {
    const cairn_node *n = cairn_state_find_node(s, node_id);
    return n ? node_available(s, n) : 0;
}

/* ---- candidates ---- */

typedef struct candidate {
    const cairn_node *node;
    const cairn_model_file *file;
    uint64_t available;
} candidate;

typedef struct plan_ctx {
    const cairn_cluster_state *s;
    const cairn_placement_request *req;
    candidate cand[CAIRN_STATE_MAX_NODES];
    uint32_t n_cand;
    uint32_t hashing; /* nodes with the name that have not hashed it yet */
} plan_ctx;

static bool excluded(const cairn_placement_request *req, const char *id) {
    for (uint32_t i = 0; i < req->n_exclude && i < CAIRN_STATE_MAX_NODES; i++) {
        if (strncmp(req->exclude[i], id, CAIRN_STATE_ID_SIZE) == 0) {
            return true;
        }
    }
    return false;
}

static bool has_unready(const cairn_node *n, const char *name) {
    for (uint32_t i = 0; i < n->profile.n_model_files && i < CAIRN_STATE_MAX_MODEL_FILES; i++) {
        const cairn_model_file *f = &n->profile.model_files[i];
        if (strcmp(f->name, name) == 0 && !file_ready(f)) {
            return true;
        }
    }
    return false;
}

static void collect(plan_ctx *c) {
    bool by_sha = is_sha256(c->req->model);
    for (uint32_t i = 0; i < c->s->n_nodes; i++) {
        const cairn_node *n = &c->s->nodes[i];
        if (!n->connected || excluded(c->req, n->id)) {
            continue;
        }
        const cairn_model_file *f =
            by_sha ? node_file(n, NULL, c->req->model) : node_file(n, c->req->model, NULL);
        if (f) {
            c->cand[c->n_cand++] = (candidate){n, f, node_available(c->s, n)};
        } else if (!by_sha && has_unready(n, c->req->model)) {
            c->hashing++;
        }
    }
}

/* Keeps the candidates of the hash held by the most free memory (ties: the lower hash). */
static void keep_one_hash(plan_ctx *c) {
    const char *best = NULL;
    uint64_t best_sum = 0;
    for (uint32_t i = 0; i < c->n_cand; i++) {
        const char *sha = c->cand[i].file->sha256;
        uint64_t sum = 0;
        for (uint32_t j = 0; j < c->n_cand; j++) {
            if (strcmp(c->cand[j].file->sha256, sha) == 0 &&
                c->cand[j].file->n_layers == c->cand[i].file->n_layers) {
                sum = sat_add(sum, c->cand[j].available);
            }
        }
        if (!best || sum > best_sum || (sum == best_sum && strcmp(sha, best) < 0)) {
            best = c->cand[i].file->sha256;
            best_sum = sum;
        }
    }
    uint32_t kept = 0;
    uint32_t n_layers = 0;
    for (uint32_t i = 0; i < c->n_cand; i++) {
        if (strcmp(c->cand[i].file->sha256, best) == 0 &&
            (kept == 0 || c->cand[i].file->n_layers == n_layers)) {
            n_layers = c->cand[i].file->n_layers;
            c->cand[kept++] = c->cand[i];
        }
    }
    c->n_cand = kept;
}

/* Most free memory first, then by id. Insertion sort: at most 64. */
static bool before_by_memory(const candidate *a, const candidate *b) {
    return a->available != b->available ? a->available > b->available
                                        : strcmp(a->node->id, b->node->id) < 0;
}

static void sort_candidates(candidate *c, uint32_t n, bool by_id) {
    for (uint32_t i = 1; i < n; i++) {
        candidate x = c[i];
        uint32_t j = i;
        while (j > 0 && (by_id ? strcmp(x.node->id, c[j - 1].node->id) < 0
                               : before_by_memory(&x, &c[j - 1]))) {
            c[j] = c[j - 1];
            j--;
        }
        c[j] = x;
    }
}

/* ---- the split ---- */

typedef struct split {
    uint32_t k;
    candidate nodes[CAIRN_STATE_MAX_SHARDS]; /* pipeline order */
    uint64_t room[CAIRN_STATE_MAX_SHARDS];   /* bytes left for layers */
    uint32_t cap[CAIRN_STATE_MAX_SHARDS];    /* layers that fit */
    uint32_t layers[CAIRN_STATE_MAX_SHARDS];
} split;

static void measure(split *sp, uint32_t n_layers) {
    for (uint32_t i = 0; i < sp->k; i++) {
        const candidate *c = &sp->nodes[i];
        uint64_t fixed = 0;
        fixed = i == 0 ? sat_add(fixed, c->file->embd_bytes) : fixed;
        fixed = i + 1 == sp->k ? sat_add(fixed, c->file->head_bytes) : fixed;
        sp->room[i] = c->available >= fixed ? c->available - fixed : 0;
        uint64_t fit = c->file->layer_bytes ? sp->room[i] / c->file->layer_bytes : n_layers;
        if (c->available < fixed) {
            fit = 0;
        }
        sp->cap[i] = fit > n_layers ? n_layers : (uint32_t)fit;
    }
}

/* Largest remainder: n * w_i / W each, the leftover layers to the largest remainders. */
static void proportional(split *sp, uint32_t n) {
    uint64_t w[CAIRN_STATE_MAX_SHARDS], total = 0;
    for (uint32_t i = 0; i < sp->k; i++) {
        w[i] = sp->room[i];
        total = sat_add(total, w[i]);
    }
    while (total > UINT64_MAX / n) { /* keep n * w exact */
        total = 0;
        for (uint32_t i = 0; i < sp->k; i++) {
            w[i] >>= 1;
            total += w[i];
        }
    }
    if (total == 0) {
        for (uint32_t i = 0; i < sp->k; i++) {
            w[i] = 1;
        }
        total = sp->k;
    }
    uint64_t rem[CAIRN_STATE_MAX_SHARDS];
    uint32_t given = 0;
    for (uint32_t i = 0; i < sp->k; i++) {
        sp->layers[i] = (uint32_t)(n * w[i] / total);
        rem[i] = n * w[i] % total;
        given += sp->layers[i];
    }
    for (; given < n; given++) {
        uint32_t best = 0;
        for (uint32_t i = 1; i < sp->k; i++) {
            best = rem[i] > rem[best] ? i : best;
        }
        sp->layers[best]++;
        rem[best] = 0;
    }
}

/* The node with the most of `value - other` (ties: the first); UINT32_MAX when none has
 * more than `floor`. */
static uint32_t most(const split *sp, bool spare, uint32_t floor) {
    uint32_t best = UINT32_MAX;
    uint64_t best_v = floor;
    for (uint32_t i = 0; i < sp->k; i++) {
        uint64_t v =
            spare ? (sp->cap[i] > sp->layers[i] ? sp->cap[i] - sp->layers[i] : 0) : sp->layers[i];
        if (v > best_v) {
            best = i;
            best_v = v;
        }
    }
    return best;
}

/* At least one layer each, then no node over what it holds. Returns false when the layers
 * cannot fit however they are split. */
static bool settle(split *sp, uint32_t n) {
    uint64_t total_cap = 0;
    for (uint32_t i = 0; i < sp->k; i++) {
        if (sp->cap[i] == 0) {
            return false;
        }
        total_cap += sp->cap[i];
    }
    if (total_cap < n) {
        return false;
    }
    for (uint32_t i = 0; i < sp->k; i++) {
        if (sp->layers[i] == 0) {
            sp->layers[most(sp, false, 1)]--; /* n >= k: someone has two */
            sp->layers[i] = 1;
        }
    }
    for (uint32_t i = 0; i < sp->k; i++) {
        while (sp->layers[i] > sp->cap[i]) {
            sp->layers[most(sp, true, 0)]++; /* total_cap >= n: someone has room */
            sp->layers[i]--;
        }
    }
    return true;
}

/* Splits over the first k candidates (by memory); true when every shard fits. */
static bool try_split(const plan_ctx *c, uint32_t k, split *sp) {
    uint32_t n_layers = c->cand[0].file->n_layers;
    memset(sp, 0, sizeof *sp);
    sp->k = k;
    memcpy(sp->nodes, c->cand, k * sizeof c->cand[0]);
    sort_candidates(sp->nodes, k, true);
    measure(sp, n_layers);
    proportional(sp, n_layers);
    return settle(sp, n_layers);
}

/* ---- plan ---- */

static void fill_event(const plan_ctx *c, const split *sp, const char *instance_id,
                       cairn_event *out) {
    memset(out, 0, sizeof *out);
    out->type = CAIRN_EVENT_INSTANCE_PLACED;
    snprintf(out->as.instance_placed.instance_id, CAIRN_STATE_ID_SIZE, "%s", instance_id);
    snprintf(out->as.instance_placed.model, CAIRN_STATE_NAME_SIZE, "%s", sp->nodes[0].file->name);
    snprintf(out->as.instance_placed.model_sha256, CAIRN_STATE_SHA256_SIZE, "%s",
             c->cand[0].file->sha256);
    out->as.instance_placed.n_layers = c->cand[0].file->n_layers;
    out->as.instance_placed.n_shards = sp->k;
    uint32_t start = 0;
    for (uint32_t i = 0; i < sp->k; i++) {
        cairn_shard_spec *sh = &out->as.instance_placed.shards[i];
        snprintf(sh->node_id, sizeof sh->node_id, "%s", sp->nodes[i].node->id);
        sh->layer_start = start;
        start += sp->layers[i];
        sh->layer_end = start;
    }
}

static void no_nodes_reason(const plan_ctx *c, char *reason, size_t size) {
    const char *model = c->req->model;
    const char *outside = c->req->n_exclude ? " outside the excluded ones" : "";
    if (c->hashing > 0) {
        snprintf(reason, size,
                 "no connected node%s has model \"%s\" ready: %u still hashing it or cannot "
                 "read it as a model",
                 outside, model, c->hashing);
    } else {
        snprintf(reason, size, "no connected node%s has model \"%s\"", outside, model);
    }
}

/* need: the model on the node with the most memory; offer: the first k candidates. */
static void short_reason(const plan_ctx *c, uint32_t k, bool forced, char *reason, size_t size) {
    const cairn_model_file *f = c->cand[0].file;
    uint64_t need = shard_cost(f, f->n_layers, true, true), offer = 0;
    for (uint32_t i = 0; i < k; i++) {
        offer = sat_add(offer, c->cand[i].available);
    }
    char a[32], b[32], d[32], l[32], h[32];
    const char *who = forced ? "chosen" : "that have it";
    if (offer < need) {
        snprintf(reason, size, "model \"%s\" needs %s; the %u nodes %s offer %s (%s missing)",
                 c->req->model, format_bytes(need, a, sizeof a), k, who,
                 format_bytes(offer, b, sizeof b), format_bytes(need - offer, d, sizeof d));
    } else {
        snprintf(reason, size,
                 "model \"%s\" needs %s and the %u nodes %s offer %s, but it does not split "
                 "over them (layers of %s, %s of embeddings on the first node, %s of head on "
                 "the last)",
                 c->req->model, format_bytes(need, a, sizeof a), k, who,
                 format_bytes(offer, b, sizeof b), format_bytes(f->layer_bytes, l, sizeof l),
                 format_bytes(f->embd_bytes, d, sizeof d),
                 format_bytes(f->head_bytes, h, sizeof h));
    }
}

static int plan_counts(const plan_ctx *c, uint32_t *lo, uint32_t *hi, char *reason, size_t size) {
    uint32_t n_layers = c->cand[0].file->n_layers;
    uint32_t max = c->n_cand < CAIRN_STATE_MAX_SHARDS ? c->n_cand : CAIRN_STATE_MAX_SHARDS;
    max = max < n_layers ? max : n_layers;
    uint32_t want = c->req->n_nodes;
    if (want == 0) {
        *lo = 1;
        *hi = max;
        return 0;
    }
    if (want > c->n_cand) {
        snprintf(reason, size, "n_nodes %u but only %u connected nodes have model \"%s\"", want,
                 c->n_cand, c->req->model);
        return -1;
    }
    if (want > max) {
        snprintf(reason, size, "n_nodes %u but model \"%s\" splits into at most %u shards", want,
                 c->req->model, max);
        return -1;
    }
    *lo = *hi = want;
    return 0;
}

int cairn_placement_plan(const cairn_cluster_state *s, const cairn_placement_request *req,
                         const char *instance_id, cairn_event *out, char *reason,
                         size_t reason_size) {
    plan_ctx c;
    memset(&c, 0, sizeof c);
    c.s = s;
    c.req = req;
    collect(&c);
    if (c.n_cand == 0) {
        no_nodes_reason(&c, reason, reason_size);
        return -1;
    }
    keep_one_hash(&c);
    sort_candidates(c.cand, c.n_cand, false);
    uint32_t lo = 0, hi = 0;
    if (plan_counts(&c, &lo, &hi, reason, reason_size) != 0) {
        return -1;
    }
    split sp;
    for (uint32_t k = lo; k <= hi; k++) {
        if (try_split(&c, k, &sp)) {
            fill_event(&c, &sp, instance_id, out);
            return 0;
        }
    }
    short_reason(&c, hi, req->n_nodes != 0, reason, reason_size);
    return -1;
}

/* ---- check ---- */

static int check_shard(const cairn_cluster_state *s, const cairn_event *e, uint32_t k,
                       cairn_err *err) {
    const cairn_shard_spec *sh = &e->as.instance_placed.shards[k];
    const cairn_node *n = cairn_state_find_node(s, sh->node_id);
    if (!n || !n->connected) {
        return cairn_fail(err, "shard %u: node \"%s\" is not a connected member", k, sh->node_id);
    }
    /* By hash: the same file may go by different names on different nodes. */
    const cairn_model_file *f = node_file(n, NULL, e->as.instance_placed.model_sha256);
    if (!f) {
        return cairn_fail(err, "shard %u: node \"%s\" has no model with sha256 %.12s...", k, n->id,
                          e->as.instance_placed.model_sha256);
    }
    if (f->n_layers != e->as.instance_placed.n_layers) {
        return cairn_fail(err, "shard %u: node \"%s\" counts %u layers in \"%s\", not %u", k, n->id,
                          f->n_layers, f->name, e->as.instance_placed.n_layers);
    }
    for (uint32_t j = 0; j < k; j++) {
        if (strcmp(e->as.instance_placed.shards[j].node_id, sh->node_id) == 0) {
            return cairn_fail(err, "shards %u and %u are both on node \"%s\"", j, k, n->id);
        }
    }
    uint64_t need = shard_cost(f, sh->layer_end - sh->layer_start, k == 0,
                               k + 1 == e->as.instance_placed.n_shards);
    uint64_t available = node_available(s, n);
    if (need > available) {
        char a[32], b[32];
        return cairn_fail(err, "shard %u needs %s but node \"%s\" has %s free", k,
                          format_bytes(need, a, sizeof a), n->id,
                          format_bytes(available, b, sizeof b));
    }
    return 0;
}

int cairn_placement_check(const cairn_cluster_state *s, const cairn_event *placed, cairn_err *err) {
    if (placed->type != CAIRN_EVENT_INSTANCE_PLACED) {
        return cairn_fail(err, "not a placement");
    }
    if (placed->as.instance_placed.n_shards > CAIRN_STATE_MAX_SHARDS) {
        return cairn_fail(err, "%u shards (at most %d)", placed->as.instance_placed.n_shards,
                          CAIRN_STATE_MAX_SHARDS);
    }
    for (uint32_t k = 0; k < placed->as.instance_placed.n_shards; k++) {
        if (check_shard(s, placed, k, err) != 0) {
            return cairn_fail_prefix(err, "placement of \"%s\"",
                                     placed->as.instance_placed.instance_id);
        }
    }
    return 0;
}

/* ---- preview JSON ---- */

static cJSON *shard_json(const cairn_cluster_state *s, const cairn_event *e, uint32_t k,
                         uint64_t *total) {
    const cairn_shard_spec *sh = &e->as.instance_placed.shards[k];
    const cairn_node *n = cairn_state_find_node(s, sh->node_id);
    const cairn_model_file *f = n ? node_file(n, NULL, e->as.instance_placed.model_sha256) : NULL;
    uint32_t layers = sh->layer_end - sh->layer_start;
    uint64_t bytes = f ? shard_cost(f, layers, k == 0, k + 1 == e->as.instance_placed.n_shards) : 0;
    *total = sat_add(*total, bytes);
    cJSON *o = cJSON_CreateObject();
    bool ok = o && cJSON_AddStringToObject(o, "node", sh->node_id) &&
              cJSON_AddNumberToObject(o, "layer_start", sh->layer_start) &&
              cJSON_AddNumberToObject(o, "layer_end", sh->layer_end) &&
              cJSON_AddNumberToObject(o, "layers", layers) &&
              cJSON_AddNumberToObject(o, "bytes", (double)bytes) &&
              cJSON_AddNumberToObject(o, "available_bytes", (double)(n ? node_available(s, n) : 0));
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

cJSON *cairn_placement_json(const cairn_cluster_state *s, const cairn_event *placed,
                            cairn_err *err) {
    if (placed->type != CAIRN_EVENT_INSTANCE_PLACED ||
        placed->as.instance_placed.n_shards > CAIRN_STATE_MAX_SHARDS) {
        cairn_fail(err, "not a placement");
        return NULL;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *shards = cJSON_CreateArray();
    uint64_t total = 0;
    bool ok = o && shards;
    for (uint32_t k = 0; ok && k < placed->as.instance_placed.n_shards; k++) {
        cJSON *sh = shard_json(s, placed, k, &total);
        ok = sh && cJSON_AddItemToArray(shards, sh);
        if (!ok) {
            cJSON_Delete(sh);
        }
    }
    ok = ok && cJSON_AddStringToObject(o, "instance", placed->as.instance_placed.instance_id) &&
         cJSON_AddStringToObject(o, "model", placed->as.instance_placed.model) &&
         cJSON_AddStringToObject(o, "model_sha256", placed->as.instance_placed.model_sha256) &&
         cJSON_AddNumberToObject(o, "n_layers", placed->as.instance_placed.n_layers) &&
         cJSON_AddNumberToObject(o, "total_bytes", (double)total);
    if (!ok || !cairn_json_add_child(o, "shards", shards)) {
        if (!ok) {
            cJSON_Delete(shards);
        }
        cJSON_Delete(o);
        cairn_fail(err, "out of memory describing a placement");
        return NULL;
    }
    return o;
}
