/* Tests of placement (src/cluster/placement.h): which nodes a model goes to, how its layers
 * split over them, why a placement fails, and the master's check of proposed placements. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <cjson/cJSON.h>

#include "cluster/placement.h"
#include "cluster/secure.h"
#include "cluster/state.h"

#define SHA_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define SHA_B "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

typedef struct test_file {
    const char *name, *sha;
    uint32_t n_layers;
    uint64_t layer_bytes, embd_bytes, head_bytes;
} test_file;

/* ---- a state built through events, as a cluster would build it ---- */

static cairn_cluster_state *new_cluster(void) {
    cairn_err err = {{0}};
    cairn_cluster_state *s = cairn_state_new("test", &err);
    assert_non_null(s);
    return s;
}

/* As the master records an event: numbered, and a placement with its secret. */
static void apply(cairn_cluster_state *s, cairn_event *e) {
    e->index = s->last_index + 1;
    e->term = e->type == CAIRN_EVENT_MASTER_ELECTED ? s->term + 1 : s->term;
    cairn_err err = {{0}};
    if (e->type == CAIRN_EVENT_INSTANCE_PLACED) {
        assert_int_equal(cairn_instance_secret_new(e->as.instance_placed.secret,
                                                   sizeof e->as.instance_placed.secret, &err),
                         0);
    }
    if (cairn_state_apply(s, e, &err) != 0) {
        fail_msg("apply: %s", err.msg);
    }
}

/* Adds node id with avail bytes free and one model file. */
static void add_node(cairn_cluster_state *s, const char *id, uint64_t avail, const test_file *f) {
    cairn_event *e = calloc(1, sizeof *e);
    assert_non_null(e);
    if (s->term == 0) {
        e->type = CAIRN_EVENT_MASTER_ELECTED;
        snprintf(e->as.master_elected.master_id, CAIRN_STATE_ID_SIZE, "%s", id);
        apply(s, e);
        memset(e, 0, sizeof *e);
    }
    e->type = CAIRN_EVENT_NODE_JOINED;
    snprintf(e->as.node_joined.node_id, CAIRN_STATE_ID_SIZE, "%s", id);
    apply(s, e);
    memset(e, 0, sizeof *e);
    e->type = CAIRN_EVENT_NODE_PROFILE_UPDATED;
    snprintf(e->as.node_profile_updated.node_id, CAIRN_STATE_ID_SIZE, "%s", id);
    cairn_node_profile *p = &e->as.node_profile_updated.profile;
    p->memory_total = avail * 2;
    p->memory_available = avail;
    if (f) {
        p->n_model_files = 1;
        cairn_model_file *mf = &p->model_files[0];
        snprintf(mf->name, sizeof mf->name, "%s", f->name);
        snprintf(mf->sha256, sizeof mf->sha256, "%s", f->sha);
        mf->size = 1000;
        mf->n_layers = f->n_layers;
        mf->layer_bytes = f->layer_bytes;
        mf->embd_bytes = f->embd_bytes;
        mf->head_bytes = f->head_bytes;
    }
    apply(s, e);
    free(e);
}

static void set_connected(cairn_cluster_state *s, const char *id, bool up) {
    cairn_event e;
    memset(&e, 0, sizeof e);
    e.type = CAIRN_EVENT_NODE_CONNECTION_CHANGED;
    snprintf(e.as.node_connection_changed.node_id, CAIRN_STATE_ID_SIZE, "%s", id);
    e.as.node_connection_changed.connected = up;
    apply(s, &e);
}

static cairn_placement_request request(const char *model, uint32_t n_nodes) {
    cairn_placement_request r;
    memset(&r, 0, sizeof r);
    snprintf(r.model, sizeof r.model, "%s", model);
    r.n_nodes = n_nodes;
    return r;
}

static cairn_event *plan_ok(const cairn_cluster_state *s, const cairn_placement_request *r) {
    cairn_event *e = calloc(1, sizeof *e);
    assert_non_null(e);
    char reason[256] = "";
    if (cairn_placement_plan(s, r, "i-1", e, reason, sizeof reason) != 0) {
        fail_msg("plan: %s", reason);
    }
    assert_int_equal(e->type, CAIRN_EVENT_INSTANCE_PLACED);
    /* Whatever plan produces, the master's check accepts. */
    cairn_err err = {{0}};
    if (cairn_placement_check(s, e, &err) != 0) {
        fail_msg("check of a plan: %s", err.msg);
    }
    return e;
}

static void plan_fails(const cairn_cluster_state *s, const cairn_placement_request *r,
                       const char *expected) {
    cairn_event e;
    char reason[256] = "";
    assert_int_equal(cairn_placement_plan(s, r, "i-1", &e, reason, sizeof reason), -1);
    if (!strstr(reason, expected)) {
        fail_msg("reason \"%s\" lacks \"%s\"", reason, expected);
    }
}

/* Expects shards on the given nodes with the given layer counts, in order. */
static void expect_split(const cairn_event *e, uint32_t n, const char *const *nodes,
                         const uint32_t *layers) {
    assert_int_equal(e->as.instance_placed.n_shards, n);
    for (uint32_t k = 0; k < n; k++) {
        const cairn_shard_spec *sh = &e->as.instance_placed.shards[k];
        assert_string_equal(sh->node_id, nodes[k]);
        assert_int_equal(sh->layer_end - sh->layer_start, layers[k]);
    }
}

static const test_file PLAIN = {"m.gguf", SHA_A, 8, 100, 0, 0};

/* ---- splits ---- */

static void test_proportional_to_memory(void **unused) {
    (void)unused;
    cairn_cluster_state *s = new_cluster();
    add_node(s, "b", 200, &PLAIN);
    add_node(s, "a", 600, &PLAIN);
    cairn_placement_request r = request("m.gguf", 0);
    cairn_event *e = plan_ok(s, &r); /* neither holds 8 layers alone */
    expect_split(e, 2, (const char *const[]){"a", "b"}, (const uint32_t[]){6, 2});
    assert_string_equal(e->as.instance_placed.model, "m.gguf");
    assert_string_equal(e->as.instance_placed.model_sha256, SHA_A);
    assert_int_equal(e->as.instance_placed.n_layers, 8);
    free(e);
    free(s);
}

static void test_largest_remainder(void **unused) {
    (void)unused;
    const test_file f = {"m.gguf", SHA_A, 7, 10, 0, 0};
    cairn_cluster_state *s = new_cluster();
    add_node(s, "a", 500, &f);
    add_node(s, "b", 300, &f);
    add_node(s, "c", 200, &f);
    /* 7 x 5/10, 3/10, 2/10 = 3.5, 2.1, 1.4: the spare layer goes to the largest remainder. */
    cairn_placement_request r = request("m.gguf", 3);
    cairn_event *e = plan_ok(s, &r);
    expect_split(e, 3, (const char *const[]){"a", "b", "c"}, (const uint32_t[]){4, 2, 1});
    free(e);
    /* One node is enough when none is forced. */
    r.n_nodes = 0;
    e = plan_ok(s, &r);
    expect_split(e, 1, (const char *const[]){"a"}, (const uint32_t[]){7});
    free(e);
    free(s);
}

static void test_at_least_one_layer_each(void **unused) {
    (void)unused;
    const test_file f = {"m.gguf", SHA_A, 4, 10, 0, 0};
    cairn_cluster_state *s = new_cluster();
    add_node(s, "a", 10000, &f);
    add_node(s, "b", 10000, &f);
    add_node(s, "c", 15, &f); /* room for one layer, a tiny share of the memory */
    cairn_placement_request r = request("m.gguf", 3);
    cairn_event *e = plan_ok(s, &r);
    expect_split(e, 3, (const char *const[]){"a", "b", "c"}, (const uint32_t[]){1, 2, 1});
    free(e);
    free(s);
}

static void test_embeddings_and_head_counted(void **unused) {
    (void)unused;
    const test_file f = {"m.gguf", SHA_A, 4, 100, 250, 250};
    cairn_cluster_state *s = new_cluster();
    add_node(s, "a", 650, &f);
    add_node(s, "b", 650, &f);
    /* 4 layers (400) fit one node, but not with the embeddings and the head (900). */
    cairn_placement_request r = request("m.gguf", 0);
    cairn_event *e = plan_ok(s, &r);
    expect_split(e, 2, (const char *const[]){"a", "b"}, (const uint32_t[]){2, 2});
    cairn_err err = {{0}};
    cJSON *j = cairn_placement_json(s, e, &err);
    assert_non_null(j);
    cJSON *shards = cJSON_GetObjectItemCaseSensitive(j, "shards");
    assert_int_equal(cJSON_GetArraySize(shards), 2);
    cJSON *first = cJSON_GetArrayItem(shards, 0);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(first, "bytes")->valuedouble, 450);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(first, "available_bytes")->valuedouble, 650);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(first, "layers")->valuedouble, 2);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(first, "node")->valuestring, "a");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(j, "total_bytes")->valuedouble, 900);
    cJSON_Delete(j);
    free(e);
    /* A node with 650 bytes: 900 needed, 250 missing. */
    cairn_cluster_state *one = new_cluster();
    add_node(one, "a", 650, &f);
    plan_fails(one, &r,
               "model \"m.gguf\" needs 900 B; the 1 nodes that have it offer 650 B "
               "(250 B missing)");
    free(one);
    /* Enough in total, but the head fits nowhere next to a layer. */
    const test_file big_head = {"m.gguf", SHA_A, 2, 100, 0, 1000};
    cairn_cluster_state *odd = new_cluster();
    add_node(odd, "a", 700, &big_head);
    add_node(odd, "b", 700, &big_head);
    plan_fails(odd, &r, "does not split over them");
    free(odd);
    free(s);
}

static void test_does_not_fit_reason(void **unused) {
    (void)unused;
    const test_file f = {"big.gguf", SHA_A, 10, (uint64_t)120 << 20, 0, 0};
    cairn_cluster_state *s = new_cluster();
    add_node(s, "a", (uint64_t)400 << 20, &f);
    add_node(s, "b", (uint64_t)400 << 20, &f);
    add_node(s, "c", (uint64_t)900 << 20, NULL); /* lots of memory, not the model */
    cairn_placement_request r = request("big.gguf", 0);
    plan_fails(s, &r,
               "model \"big.gguf\" needs 1.2 GiB; the 2 nodes that have it offer 800.0 MiB "
               "(400.0 MiB missing)");
    r = request("other.gguf", 0);
    plan_fails(s, &r, "no connected node has model \"other.gguf\"");
    free(s);
}

/* ---- which nodes ---- */

static void test_hash_mismatch_excluded(void **unused) {
    (void)unused;
    const test_file other = {"m.gguf", SHA_B, 8, 100, 0, 0};
    cairn_cluster_state *s = new_cluster();
    add_node(s, "a", 500, &PLAIN);
    add_node(s, "b", 500, &PLAIN);
    add_node(s, "c", 900, &other); /* same name, another file: less memory than a + b */
    cairn_placement_request r = request("m.gguf", 0);
    cairn_event *e = plan_ok(s, &r);
    expect_split(e, 2, (const char *const[]){"a", "b"}, (const uint32_t[]){4, 4});
    assert_string_equal(e->as.instance_placed.model_sha256, SHA_A);
    free(e);
    /* Asked by hash, only the nodes with that file count. */
    r = request(SHA_B, 0);
    e = plan_ok(s, &r);
    expect_split(e, 1, (const char *const[]){"c"}, (const uint32_t[]){8});
    assert_string_equal(e->as.instance_placed.model, "m.gguf");
    free(e);
    r = request(SHA_B, 2);
    plan_fails(s, &r, "n_nodes 2 but only 1 connected nodes have model");
    free(s);
}

static void test_unready_and_disconnected_nodes(void **unused) {
    (void)unused;
    const test_file hashing = {"m.gguf", "", 0, 0, 0, 0};
    cairn_cluster_state *s = new_cluster();
    add_node(s, "a", 5000, &hashing);
    add_node(s, "b", 5000, &PLAIN);
    set_connected(s, "b", false);
    cairn_placement_request r = request("m.gguf", 0);
    plan_fails(s, &r, "1 still hashing it");
    set_connected(s, "b", true);
    cairn_event *e = plan_ok(s, &r);
    expect_split(e, 1, (const char *const[]){"b"}, (const uint32_t[]){8});
    free(e);
    free(s);
}

static void test_exclusions(void **unused) {
    (void)unused;
    cairn_cluster_state *s = new_cluster();
    add_node(s, "a", 5000, &PLAIN);
    add_node(s, "b", 1000, &PLAIN);
    add_node(s, "c", 300, &PLAIN);
    cairn_placement_request r = request("m.gguf", 0);
    cairn_event *e = plan_ok(s, &r);
    expect_split(e, 1, (const char *const[]){"a"}, (const uint32_t[]){8});
    free(e);
    snprintf(r.exclude[r.n_exclude++], CAIRN_STATE_ID_SIZE, "a");
    e = plan_ok(s, &r);
    expect_split(e, 1, (const char *const[]){"b"}, (const uint32_t[]){8});
    free(e);
    snprintf(r.exclude[r.n_exclude++], CAIRN_STATE_ID_SIZE, "b");
    plan_fails(s, &r, "the 1 nodes that have it offer 300 B (500 B missing)");
    snprintf(r.exclude[r.n_exclude++], CAIRN_STATE_ID_SIZE, "c");
    plan_fails(s, &r, "no connected node outside the excluded ones has model \"m.gguf\"");
    free(s);
}

static void test_n_nodes_forced(void **unused) {
    (void)unused;
    cairn_cluster_state *s = new_cluster();
    add_node(s, "c", 5000, &PLAIN);
    add_node(s, "a", 5000, &PLAIN);
    add_node(s, "b", 4000, &PLAIN);
    cairn_placement_request r = request("m.gguf", 2);
    cairn_event *e = plan_ok(s, &r); /* the two with the most memory, in id order */
    expect_split(e, 2, (const char *const[]){"a", "c"}, (const uint32_t[]){4, 4});
    free(e);
    r.n_nodes = 3;
    e = plan_ok(s, &r);
    expect_split(e, 3, (const char *const[]){"a", "b", "c"}, (const uint32_t[]){3, 2, 3});
    free(e);
    r.n_nodes = 5;
    plan_fails(s, &r, "n_nodes 5 but only 3 connected nodes have model \"m.gguf\"");
    const test_file two = {"two.gguf", SHA_B, 2, 100, 0, 0};
    add_node(s, "d", 5000, &two);
    add_node(s, "e", 5000, &two);
    add_node(s, "f", 5000, &two);
    r = request("two.gguf", 3);
    plan_fails(s, &r, "n_nodes 3 but model \"two.gguf\" splits into at most 2 shards");
    r.n_nodes = 2;
    e = plan_ok(s, &r);
    expect_split(e, 2, (const char *const[]){"d", "e"}, (const uint32_t[]){1, 1});
    free(e);
    free(s);
}

/* Shards already placed use memory: the next instance goes elsewhere. */
static void test_placed_shards_use_memory(void **unused) {
    (void)unused;
    const test_file f = {"m.gguf", SHA_A, 4, 100, 50, 60};
    cairn_cluster_state *s = new_cluster();
    add_node(s, "a", 1000, &f);
    add_node(s, "b", 900, &f);
    cairn_placement_request r = request("m.gguf", 0);
    cairn_event *e = plan_ok(s, &r);
    expect_split(e, 1, (const char *const[]){"a"}, (const uint32_t[]){4});
    apply(s, e);
    assert_int_equal(cairn_placement_available(s, "a"), 1000 - 510);
    free(e);
    e = plan_ok(s, &r);
    expect_split(e, 1, (const char *const[]){"b"}, (const uint32_t[]){4});
    free(e);
    free(s);
}

/* ---- the master's check ---- */

static void expect_refused(const cairn_cluster_state *s, const cairn_event *e,
                           const char *expected) {
    cairn_err err = {{0}};
    assert_int_equal(cairn_placement_check(s, e, &err), -1);
    if (!strstr(err.msg, expected)) {
        fail_msg("\"%s\" lacks \"%s\"", err.msg, expected);
    }
}

static void test_check_refuses_bad_proposals(void **unused) {
    (void)unused;
    const test_file other = {"m.gguf", SHA_B, 8, 100, 0, 0};
    const test_file fewer = {"n.gguf", SHA_A, 6, 100, 0, 0};
    cairn_cluster_state *s = new_cluster();
    add_node(s, "a", 500, &PLAIN);
    add_node(s, "b", 500, &PLAIN);
    add_node(s, "c", 900, &other); /* less memory than a + b: the name means SHA_A */
    add_node(s, "d", 5000, &fewer);
    add_node(s, "e", 5000, &PLAIN);
    set_connected(s, "e", false);
    cairn_placement_request r = request("m.gguf", 2);
    cairn_event *good = plan_ok(s, &r);
    expect_split(good, 2, (const char *const[]){"a", "b"}, (const uint32_t[]){4, 4});
    cairn_event e;

    e = *good;
    snprintf(e.as.instance_placed.shards[1].node_id, CAIRN_STATE_ID_SIZE, "c");
    expect_refused(s, &e, "node \"c\" has no model with sha256");
    e = *good;
    snprintf(e.as.instance_placed.shards[1].node_id, CAIRN_STATE_ID_SIZE, "d");
    expect_refused(s, &e, "counts 6 layers");
    e = *good;
    snprintf(e.as.instance_placed.shards[1].node_id, CAIRN_STATE_ID_SIZE, "e");
    expect_refused(s, &e, "not a connected member");
    e = *good;
    snprintf(e.as.instance_placed.shards[1].node_id, CAIRN_STATE_ID_SIZE, "zz");
    expect_refused(s, &e, "not a connected member");
    e = *good;
    snprintf(e.as.instance_placed.shards[1].node_id, CAIRN_STATE_ID_SIZE, "a");
    expect_refused(s, &e, "both on node \"a\"");
    e = *good; /* 6 layers of 100 on a node with 500 */
    e.as.instance_placed.shards[0].layer_end = 6;
    e.as.instance_placed.shards[1].layer_start = 6;
    expect_refused(s, &e, "shard 0 needs 600 B but node \"a\" has 500 B free");
    e = *good;
    e.type = CAIRN_EVENT_INSTANCE_DELETED;
    expect_refused(s, &e, "not a placement");
    free(good);
    free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proportional_to_memory),
        cmocka_unit_test(test_largest_remainder),
        cmocka_unit_test(test_at_least_one_layer_each),
        cmocka_unit_test(test_embeddings_and_head_counted),
        cmocka_unit_test(test_does_not_fit_reason),
        cmocka_unit_test(test_hash_mismatch_excluded),
        cmocka_unit_test(test_unready_and_disconnected_nodes),
        cmocka_unit_test(test_exclusions),
        cmocka_unit_test(test_n_nodes_forced),
        cmocka_unit_test(test_placed_shards_use_memory),
        cmocka_unit_test(test_check_refuses_bad_proposals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
