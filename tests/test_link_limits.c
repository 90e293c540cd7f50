/* Which accepted cluster links a node takes (link_refusal in src/cluster/link.c): every slot
 * taken refuses everyone, one address gets only a few handshakes at once, and the last
 * slots are kept for hosts the node knows, so a flood of strangers cannot shut out a member. */
#define _POSIX_C_SOURCE 200809L /* pthread types in uv.h under strict C11 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/node_internal.h"

static const char *refusal(size_t open, size_t handshakes_from_host, bool known_host) {
    link_census c = {
        .open = open, .handshakes_from_host = handshakes_from_host, .known_host = known_host};
    return link_refusal(&c);
}

static void expect_refused(const char *why, const char *want) {
    assert_non_null(why);
    if (!strstr(why, want)) {
        fail_msg("refusal \"%s\" does not mention \"%s\"", why, want);
    }
}

static void test_quiet_node_takes_anyone(void **state) {
    (void)state;
    assert_null(refusal(0, 0, false));
    assert_null(refusal(0, 0, true));
    assert_null(refusal(10, NODE_MAX_HANDSHAKES_PER_HOST - 1, false));
}

static void test_every_slot_taken(void **state) {
    (void)state;
    expect_refused(refusal(NODE_MAX_LINKS, 0, true), "every link slot is taken");
    expect_refused(refusal(NODE_MAX_LINKS + 5, 0, false), "every link slot is taken");
    assert_null(refusal(NODE_MAX_LINKS - 1, 0, true));
}

static void test_handshakes_per_host(void **state) {
    (void)state;
    const char *why = "too many links from this address are in the handshake";
    expect_refused(refusal(NODE_MAX_HANDSHAKES_PER_HOST, NODE_MAX_HANDSHAKES_PER_HOST, false), why);
    /* Knowing the host does not lift it: a member's machine may be the one flooding. */
    expect_refused(refusal(40, NODE_MAX_HANDSHAKES_PER_HOST, true), why);
    assert_null(refusal(40, NODE_MAX_HANDSHAKES_PER_HOST - 1, true));
}

static void test_slots_kept_for_members(void **state) {
    (void)state;
    size_t stranger_slots = NODE_MAX_LINKS - NODE_LINKS_KEPT_FOR_MEMBERS;
    assert_true(NODE_LINKS_KEPT_FOR_MEMBERS > 0 && NODE_LINKS_KEPT_FOR_MEMBERS < NODE_MAX_LINKS);
    assert_null(refusal(stranger_slots - 1, 0, false));
    expect_refused(refusal(stranger_slots, 0, false), "kept for known members");
    expect_refused(refusal(NODE_MAX_LINKS - 1, 0, false), "kept for known members");
    assert_null(refusal(stranger_slots, 0, true));
    assert_null(refusal(NODE_MAX_LINKS - 1, 0, true));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quiet_node_takes_anyone),
        cmocka_unit_test(test_every_slot_taken),
        cmocka_unit_test(test_handshakes_per_host),
        cmocka_unit_test(test_slots_kept_for_members),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
