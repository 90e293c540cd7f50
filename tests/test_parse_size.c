/* Tests of cairn_parse_size (src/util/parse_size.c), the parser behind --memory-cap, and of
 * the profile's memory cap (src/cluster/profile.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/profile.h"
#include "util/util.h"

static void expect_size(const char *text, uint64_t expected) {
    uint64_t v = 0;
    cairn_err err = {{0}};
    if (cairn_parse_size(text, &v, &err) != 0) {
        fail_msg("\"%s\": %s", text, err.msg);
    }
    assert_int_equal(v, expected);
}

static void expect_bad(const char *text) {
    uint64_t v = 7;
    cairn_err err = {{0}};
    if (cairn_parse_size(text, &v, &err) == 0) {
        fail_msg("\"%s\" was accepted", text);
    }
    assert_true(err.msg[0] != '\0');
    assert_int_equal(v, 7);
}

static void test_sizes(void **unused) {
    (void)unused;
    expect_size("0", 0);
    expect_size("1048576", 1048576);
    expect_size("12B", 12);
    expect_size("8K", 8192);
    expect_size("8KiB", 8192);
    expect_size("512M", UINT64_C(512) << 20);
    expect_size("512MiB", UINT64_C(512) << 20);
    expect_size("512m", UINT64_C(512) << 20);
    expect_size("4G", UINT64_C(4) << 30);
    expect_size("4GiB", UINT64_C(4) << 30);
    expect_size("1.5GiB", UINT64_C(3) << 29);
    expect_size("0.25K", 256);
    expect_size("2T", UINT64_C(2) << 40);
}

static void test_bad_sizes(void **unused) {
    (void)unused;
    expect_bad("");
    expect_bad("G");
    expect_bad("-1");
    expect_bad("4X");
    expect_bad("4GB");
    expect_bad("4 G");
    expect_bad("4Gi");
    expect_bad("1.2.3");
    expect_bad("99999999999999999999");
    expect_bad("20000000T");
}

static void test_memory_cap(void **unused) {
    (void)unused;
    cairn_node_profile p;
    memset(&p, 0, sizeof p);
    p.memory_total = 16000;
    p.memory_available = 9000;
    cairn_profile_cap_memory(&p, 0);
    assert_int_equal(p.memory_total, 16000);
    assert_int_equal(p.memory_available, 9000);
    cairn_profile_cap_memory(&p, 12000);
    assert_int_equal(p.memory_total, 12000);
    assert_int_equal(p.memory_available, 9000);
    cairn_profile_cap_memory(&p, 4000);
    assert_int_equal(p.memory_total, 4000);
    assert_int_equal(p.memory_available, 4000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_bad_sizes),
        cmocka_unit_test(test_memory_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
