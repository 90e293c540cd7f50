/* Tests of the event logger: the one-line format, filtering, escaping, truncation, level
 * names, node ids, the sink and the calendar arithmetic behind the timestamps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "platform/platform.h"
#include "util/log.h"

/* 2026-11-22T16:40:01.123Z */
#define FIXED_MS INT64_C(1795365601123)
#define FIXED_PREFIX "2026-11-22T16:40:01.123Z "

typedef struct captured {
    int count;
    cairn_log_level level;
    char line[2 * CAIRN_LOG_MAX_MESSAGE];
    size_t len;
} captured;

static void capture_line(void *user, cairn_log_level level, const char *line, size_t len) {
    captured *c = user;
    assert_int_equal(strlen(line), len);
    assert_true(len < sizeof c->line);
    memcpy(c->line, line, len + 1);
    c->len = len;
    c->level = level;
    c->count++;
}

static int64_t fixed_clock(void *user) {
    (void)user;
    return FIXED_MS;
}

/* A logger that writes nowhere but into *c, at a pinned time. */
static void capturing_logger(cairn_logger *l, captured *c, cairn_log_level min_level,
                             const char *node_id) {
    memset(c, 0, sizeof *c);
    cairn_logger_init(l, min_level, node_id, NULL);
    cairn_log_set_sink(l, capture_line, c);
    cairn_log_set_clock(l, fixed_clock, NULL);
}

/* The message part of a captured line (after "] "). */
static const char *message_of(const captured *c) {
    const char *end = strstr(c->line, "] ");
    assert_non_null(end);
    return end + 2;
}

static bool matches(const char *pattern, const char *subject) {
    int code = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code, &offset, NULL);
    assert_non_null(re);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    assert_non_null(md);
    const int rc = pcre2_match(re, (PCRE2_SPTR)subject, strlen(subject), 0, 0, md, NULL);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return rc >= 0;
}

static void test_exact_line(void **state) {
    (void)state;
    cairn_logger l;
    captured c;
    capturing_logger(&l, &c, CAIRN_LOG_INFO, "node-a");
    cairn_log(&l, CAIRN_LOG_INFO, "hello %d %s", 42, "world");
    assert_int_equal(c.count, 1);
    assert_int_equal(c.level, CAIRN_LOG_INFO);
    assert_string_equal(c.line, FIXED_PREFIX "INFO  [node-a] hello 42 world");
}

static void test_wall_clock_line_shape(void **state) {
    (void)state;
    cairn_logger l;
    captured c;
    memset(&c, 0, sizeof c);
    cairn_logger_init(&l, CAIRN_LOG_TRACE, "node-a", NULL);
    cairn_log_set_sink(&l, capture_line, &c);
    const int64_t before = cairn_wall_clock_ms();
    cairn_log(&l, CAIRN_LOG_WARN, "disk almost full");
    const int64_t after = cairn_wall_clock_ms();
    assert_int_equal(c.count, 1);
    assert_true(matches("^\\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\\d|3[01])T([01]\\d|2[0-3]):[0-5]\\d:"
                        "[0-5]\\d\\.\\d{3}Z WARN  \\[node-a\\] disk almost full$",
                        c.line));
    /* The stamp is the wall clock's: ISO-8601 stamps of equal width sort like the instants. */
    assert_true(before > INT64_C(1577836800000)); /* after 2020-01-01 */
    char first[CAIRN_LOG_TIMESTAMP_SIZE];
    char last[CAIRN_LOG_TIMESTAMP_SIZE];
    char logged[CAIRN_LOG_TIMESTAMP_SIZE];
    cairn_log_format_timestamp(before, first, sizeof first);
    cairn_log_format_timestamp(after, last, sizeof last);
    memcpy(logged, c.line, CAIRN_LOG_TIMESTAMP_SIZE - 1);
    logged[CAIRN_LOG_TIMESTAMP_SIZE - 1] = '\0';
    assert_true(strcmp(first, logged) <= 0);
    assert_true(strcmp(logged, last) <= 0);
}

static void test_level_labels(void **state) {
    (void)state;
    static const char *const expected[] = {FIXED_PREFIX "ERROR [n] m", FIXED_PREFIX "WARN  [n] m",
                                           FIXED_PREFIX "INFO  [n] m", FIXED_PREFIX "DEBUG [n] m",
                                           FIXED_PREFIX "TRACE [n] m"};
    cairn_logger l;
    captured c;
    capturing_logger(&l, &c, CAIRN_LOG_TRACE, "n");
    for (int level = CAIRN_LOG_ERROR; level <= CAIRN_LOG_TRACE; level++) {
        cairn_log(&l, (cairn_log_level)level, "m");
        assert_string_equal(c.line, expected[level]);
        assert_int_equal(c.level, level);
    }
    assert_int_equal(c.count, 5);
}

static void test_level_filtering(void **state) {
    (void)state;
    cairn_logger l;
    captured c;
    capturing_logger(&l, &c, CAIRN_LOG_INFO, "n");
    cairn_log(&l, CAIRN_LOG_ERROR, "e");
    cairn_log(&l, CAIRN_LOG_WARN, "w");
    cairn_log(&l, CAIRN_LOG_INFO, "i");
    assert_int_equal(c.count, 3);
    cairn_log(&l, CAIRN_LOG_DEBUG, "d");
    cairn_log(&l, CAIRN_LOG_TRACE, "t");
    assert_int_equal(c.count, 3);
    assert_string_equal(message_of(&c), "i");
    assert_true(cairn_log_enabled(&l, CAIRN_LOG_INFO));
    assert_false(cairn_log_enabled(&l, CAIRN_LOG_DEBUG));
    assert_false(cairn_log_enabled(&l, (cairn_log_level)99));

    cairn_log_set_level(&l, CAIRN_LOG_ERROR);
    cairn_log(&l, CAIRN_LOG_WARN, "w");
    assert_int_equal(c.count, 3);
    cairn_log(&l, CAIRN_LOG_ERROR, "e2");
    assert_int_equal(c.count, 4);
    cairn_log_set_level(&l, CAIRN_LOG_TRACE);
    cairn_log(&l, CAIRN_LOG_TRACE, "t2");
    assert_int_equal(c.count, 5);
    assert_string_equal(message_of(&c), "t2");
}

static void test_escaping(void **state) {
    (void)state;
    cairn_logger l;
    captured c;
    capturing_logger(&l, &c, CAIRN_LOG_INFO, "n");
    cairn_log(&l, CAIRN_LOG_INFO, "a\nb\rc\td%ce\x1b[0m\x7f", 1);
    assert_string_equal(message_of(&c), "a\\nb\\rc\\td\\x01e\\x1B[0m\\x7F");
    assert_null(strchr(c.line, '\n'));

    /* UTF-8 passes through untouched; backslashes too. */
    cairn_log(&l, CAIRN_LOG_INFO, "caf\xc3\xa9 \xe6\xa8\xa1\xe5\x9e\x8b \xf0\x9f\x98\x80 C:\\x");
    assert_string_equal(message_of(&c),
                        "caf\xc3\xa9 \xe6\xa8\xa1\xe5\x9e\x8b \xf0\x9f\x98\x80 C:\\x");

    /* Bytes that are not UTF-8 and C1 controls (U+0085 is a line break to some tools). */
    cairn_log(&l, CAIRN_LOG_INFO, "x\xffy\xc3(z\xc2\x85w\xe6\xa8");
    assert_string_equal(message_of(&c), "x\\xFFy\\xC3(z\\xC2\\x85w\\xE6\\xA8");
}

static void test_truncation(void **state) {
    (void)state;
    cairn_logger l;
    captured c;
    capturing_logger(&l, &c, CAIRN_LOG_INFO, "n");
    const size_t big_size = (size_t)3 * CAIRN_LOG_MAX_MESSAGE;
    char *big = malloc(big_size);
    assert_non_null(big);

    memset(big, 'a', big_size - 1);
    big[big_size - 1] = '\0';
    cairn_log(&l, CAIRN_LOG_INFO, "%s", big);
    const char *msg = message_of(&c);
    assert_int_equal(strlen(msg), CAIRN_LOG_MAX_MESSAGE + strlen("...[truncated]"));
    assert_string_equal(msg + CAIRN_LOG_MAX_MESSAGE, "...[truncated]");
    assert_int_equal(strspn(msg, "a"), CAIRN_LOG_MAX_MESSAGE);

    /* Exactly the bound: no marker. */
    big[CAIRN_LOG_MAX_MESSAGE] = '\0';
    cairn_log(&l, CAIRN_LOG_INFO, "%s", big);
    assert_int_equal(strlen(message_of(&c)), CAIRN_LOG_MAX_MESSAGE);

    /* Escapes count against the bound and are never cut in half. */
    memset(big, '\n', CAIRN_LOG_MAX_MESSAGE - 1);
    big[CAIRN_LOG_MAX_MESSAGE - 1] = '\0';
    cairn_log(&l, CAIRN_LOG_INFO, "x%s", big);
    msg = message_of(&c);
    assert_int_equal(strlen(msg), 1 + 2 * ((CAIRN_LOG_MAX_MESSAGE - 1) / 2) + 14);
    assert_string_equal(msg + strlen(msg) - 16, "\\n...[truncated]");

    /* A cut inside a UTF-8 character drops the whole character. */
    memset(big, 'a', CAIRN_LOG_MAX_MESSAGE - 1);
    memcpy(big + CAIRN_LOG_MAX_MESSAGE - 1, "\xc3\xa9", 3);
    cairn_log(&l, CAIRN_LOG_INFO, "%s", big);
    msg = message_of(&c);
    assert_int_equal(strspn(msg, "a"), CAIRN_LOG_MAX_MESSAGE - 1);
    assert_string_equal(msg + CAIRN_LOG_MAX_MESSAGE - 1, "...[truncated]");
    assert_null(strchr(c.line, '\n'));
    free(big);
}

static void test_level_parse(void **state) {
    (void)state;
    static const struct {
        const char *name;
        cairn_log_level level;
    } cases[] = {{"error", CAIRN_LOG_ERROR}, {"warn", CAIRN_LOG_WARN},   {"info", CAIRN_LOG_INFO},
                 {"debug", CAIRN_LOG_DEBUG}, {"trace", CAIRN_LOG_TRACE}, {"ERROR", CAIRN_LOG_ERROR},
                 {"Warn", CAIRN_LOG_WARN},   {"INFO", CAIRN_LOG_INFO},   {"dEbUg", CAIRN_LOG_DEBUG},
                 {"TRACE", CAIRN_LOG_TRACE}, {"warning", CAIRN_LOG_WARN}};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(cases); i++) {
        cairn_log_level level = CAIRN_LOG_TRACE;
        cairn_err err = {{0}};
        assert_int_equal(cairn_log_level_parse(cases[i].name, &level, &err), 0);
        assert_int_equal(level, cases[i].level);
    }
    for (int level = CAIRN_LOG_ERROR; level <= CAIRN_LOG_TRACE; level++) {
        cairn_log_level back = CAIRN_LOG_ERROR;
        assert_int_equal(
            cairn_log_level_parse(cairn_log_level_name((cairn_log_level)level), &back, NULL), 0);
        assert_int_equal(back, level);
    }
    assert_string_equal(cairn_log_level_name((cairn_log_level)42), "?");

    static const char *const bad[] = {"verbose", "", "inf", "infoo", "info "};
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(bad); i++) {
        cairn_log_level level = CAIRN_LOG_DEBUG;
        cairn_err err = {{0}};
        assert_int_equal(cairn_log_level_parse(bad[i], &level, &err), -1);
        assert_int_equal(level, CAIRN_LOG_DEBUG); /* untouched on failure */
        assert_non_null(strstr(err.msg, "error, warn, info, debug or trace"));
    }
    cairn_err err = {{0}};
    assert_int_equal(cairn_log_level_parse("verbose", &(cairn_log_level){0}, &err), -1);
    assert_string_equal(
        err.msg, "unknown log level \"verbose\" (expected error, warn, info, debug or trace)");
    assert_int_equal(cairn_log_level_parse("verbose", &(cairn_log_level){0}, NULL), -1);
}

static void test_node_id(void **state) {
    (void)state;
    cairn_logger l;
    captured c;
    capturing_logger(&l, &c, CAIRN_LOG_INFO, NULL);
    cairn_log(&l, CAIRN_LOG_INFO, "starting");
    assert_string_equal(c.line, FIXED_PREFIX "INFO  [-] starting");

    cairn_log_set_node_id(&l, "12D3KooWabc");
    cairn_log(&l, CAIRN_LOG_INFO, "joined");
    assert_string_equal(c.line, FIXED_PREFIX "INFO  [12D3KooWabc] joined");

    cairn_log_set_node_id(&l, "");
    cairn_log(&l, CAIRN_LOG_INFO, "x");
    assert_string_equal(c.line, FIXED_PREFIX "INFO  [-] x");

    /* Nothing in an id can end the id or the line. */
    cairn_log_set_node_id(&l, "a b]c\nd");
    cairn_log(&l, CAIRN_LOG_INFO, "x");
    assert_string_equal(c.line, FIXED_PREFIX "INFO  [a_b_c_d] x");

    /* Long ids are cut to the bound, never inside a UTF-8 character. */
    char id[CAIRN_LOG_MAX_NODE_ID + 8];
    memset(id, 'n', CAIRN_LOG_MAX_NODE_ID - 1);
    memcpy(id + CAIRN_LOG_MAX_NODE_ID - 1, "\xc3\xa9zzz", 6);
    cairn_log_set_node_id(&l, id);
    assert_int_equal(strlen(l.node_id), CAIRN_LOG_MAX_NODE_ID - 1);
    assert_int_equal(strspn(l.node_id, "n"), CAIRN_LOG_MAX_NODE_ID - 1);
}

static void test_file_output(void **state) {
    (void)state;
    const char *path = CAIRN_BINARY_DIR "/test_log_output.log";
    FILE *f = cairn_fopen(path, "wb");
    assert_non_null(f);
    cairn_logger l;
    cairn_logger_init(&l, CAIRN_LOG_DEBUG, "node-f", f);
    cairn_log_set_clock(&l, fixed_clock, NULL);
    cairn_log(&l, CAIRN_LOG_INFO, "first\nline");
    cairn_log(&l, CAIRN_LOG_TRACE, "filtered");
    cairn_log(&l, CAIRN_LOG_DEBUG, "second");
    assert_int_equal(fclose(f), 0);

    size_t len = 0;
    char *text = cairn_read_file(path, &len, NULL);
    assert_non_null(text);
    assert_string_equal(text, FIXED_PREFIX "INFO  [node-f] first\\nline\n" FIXED_PREFIX
                                           "DEBUG [node-f] second\n");
    free(text);
    remove(path);
}

static void test_sink_and_file_together(void **state) {
    (void)state;
    const char *path = CAIRN_BINARY_DIR "/test_log_both.log";
    FILE *f = cairn_fopen(path, "wb");
    assert_non_null(f);
    cairn_logger l;
    captured c;
    memset(&c, 0, sizeof c);
    cairn_logger_init(&l, CAIRN_LOG_INFO, "node-s", f);
    cairn_log_set_clock(&l, fixed_clock, NULL);
    cairn_log_set_sink(&l, capture_line, &c);
    cairn_log(&l, CAIRN_LOG_ERROR, "boom %s", "now");
    assert_int_equal(c.count, 1);
    assert_int_equal(c.level, CAIRN_LOG_ERROR);
    assert_string_equal(c.line, FIXED_PREFIX "ERROR [node-s] boom now");

    cairn_log_set_sink(&l, NULL, NULL);
    cairn_log(&l, CAIRN_LOG_ERROR, "after");
    assert_int_equal(c.count, 1);
    assert_int_equal(fclose(f), 0);

    char *text = cairn_read_file(path, NULL, NULL);
    assert_non_null(text);
    assert_string_equal(text, FIXED_PREFIX "ERROR [node-s] boom now\n" FIXED_PREFIX
                                           "ERROR [node-s] after\n");
    free(text);
    remove(path);
}

static void test_null_logger(void **state) {
    (void)state;
    cairn_log(NULL, CAIRN_LOG_ERROR, "nobody listens %d", 1);
    assert_false(cairn_log_enabled(NULL, CAIRN_LOG_ERROR));
    cairn_log_set_node_id(NULL, "x");
    cairn_log_set_level(NULL, CAIRN_LOG_TRACE);
    cairn_log_set_sink(NULL, capture_line, NULL);
    cairn_log_set_clock(NULL, fixed_clock, NULL);

    /* A logger with neither FILE nor sink is fine too. */
    cairn_logger l;
    cairn_logger_init(&l, CAIRN_LOG_TRACE, "n", NULL);
    cairn_log(&l, CAIRN_LOG_INFO, "dropped");
}

static void assert_civil(int64_t days, int64_t year, int month, int day) {
    int64_t y = 0;
    int m = 0;
    int d = 0;
    cairn_civil_from_days(days, &y, &m, &d);
    assert_int_equal(y, year);
    assert_int_equal(m, month);
    assert_int_equal(d, day);
}

static void test_civil_from_days(void **state) {
    (void)state;
    assert_civil(0, 1970, 1, 1);
    assert_civil(11016, 2000, 2, 29);
    assert_civil(20779, 2026, 11, 22);
    assert_civil(47541, 2100, 3, 1); /* 2100 is not a leap year: the day before is Feb 28 */
    assert_civil(47540, 2100, 2, 28);
    assert_civil(-1, 1969, 12, 31);
    assert_civil(-135081, 1600, 2, 29);
    /* Every day of 1970..2400 follows the previous one in the calendar. */
    int64_t y = 0;
    int m = 0;
    int d = 0;
    cairn_civil_from_days(0, &y, &m, &d);
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    for (int64_t days = 1; days < 157000; days++) {
        const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        const int last = month_days[m - 1] + (m == 2 && leap ? 1 : 0);
        int64_t ny = 0;
        int nm = 0;
        int nd = 0;
        cairn_civil_from_days(days, &ny, &nm, &nd);
        if (d < last) {
            assert_true(ny == y && nm == m && nd == d + 1);
        } else if (m < 12) {
            assert_true(ny == y && nm == m + 1 && nd == 1);
        } else {
            assert_true(ny == y + 1 && nm == 1 && nd == 1);
        }
        y = ny;
        m = nm;
        d = nd;
    }
}

static void test_format_timestamp(void **state) {
    (void)state;
    char out[CAIRN_LOG_TIMESTAMP_SIZE];
    cairn_log_format_timestamp(0, out, sizeof out);
    assert_string_equal(out, "1970-01-01T00:00:00.000Z");
    cairn_log_format_timestamp(FIXED_MS, out, sizeof out);
    assert_string_equal(out, "2026-11-22T16:40:01.123Z");
    cairn_log_format_timestamp(-1, out, sizeof out);
    assert_string_equal(out, "1969-12-31T23:59:59.999Z");
    cairn_log_format_timestamp(INT64_C(951868799999), out, sizeof out);
    assert_string_equal(out, "2000-02-29T23:59:59.999Z");
    cairn_log_format_timestamp(INT64_C(4107542400000), out, sizeof out);
    assert_string_equal(out, "2100-03-01T00:00:00.000Z");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_line),       cmocka_unit_test(test_wall_clock_line_shape),
        cmocka_unit_test(test_level_labels),     cmocka_unit_test(test_level_filtering),
        cmocka_unit_test(test_escaping),         cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_level_parse),      cmocka_unit_test(test_node_id),
        cmocka_unit_test(test_file_output),      cmocka_unit_test(test_sink_and_file_together),
        cmocka_unit_test(test_null_logger),      cmocka_unit_test(test_civil_from_days),
        cmocka_unit_test(test_format_timestamp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
