/* log: one line per event, see log.h. */
#include "util/log.h"

#include <ctype.h>
#include <inttypes.h>
#include <string.h>

#include "platform/platform.h"

#define MS_PER_DAY INT64_C(86400000)
#define TRUNCATION_MARKER "...[truncated]"

/* Upper case and padded to one width so messages start in the same column on every line. */
static const char *const level_labels[] = {"ERROR", "WARN ", "INFO ", "DEBUG", "TRACE"};
static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

static bool level_is_valid(cairn_log_level level) {
    return (unsigned)level < CAIRN_ARRAY_LEN(level_names);
}

/* A fixed-size line under construction: appends that do not fit are refused whole, so an
 * escape sequence or a UTF-8 character is never cut in half. */
typedef struct line_writer {
    char *data;
    size_t len;
    size_t limit; /* appends may fill data[0..limit) */
} line_writer;

static bool put(line_writer *w, const char *s, size_t n) {
    if (n > w->limit - w->len) {
        return false;
    }
    memcpy(w->data + w->len, s, n);
    w->len += n;
    return true;
}

static bool put_str(line_writer *w, const char *s) {
    return put(w, s, strlen(s));
}

static bool put_hex_escape(line_writer *w, unsigned char c) {
    static const char hex[] = "0123456789ABCDEF";
    const char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 0x0F]};
    return put(w, esc, sizeof esc);
}

static bool put_ascii(line_writer *w, unsigned char c) {
    switch (c) {
    case '\n': return put_str(w, "\\n");
    case '\r': return put_str(w, "\\r");
    case '\t': return put_str(w, "\\t");
    default: break;
    }
    if (c < 0x20 || c == 0x7F) {
        return put_hex_escape(w, c);
    }
    const char ch = (char)c;
    return put(w, &ch, 1);
}

/* Copies s[0..len) so that it cannot break the line: ASCII and C1 control characters and
 * bytes that are not UTF-8 become escapes, other UTF-8 passes through untouched. Backslashes
 * stay as they are (Windows paths must stay readable); the escapes are for the one-line rule,
 * not for reversibility. Returns false when it had to stop for lack of room. */
static bool put_escaped(line_writer *w, const char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        const unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            if (!put_ascii(w, c)) {
                return false;
            }
            i++;
            continue;
        }
        uint32_t cp = 0;
        const size_t n = (size_t)cairn_utf8_decode(s + i, len - i, &cp);
        const bool c1_control = cp >= 0x80 && cp <= 0x9F;
        if (n == 1 || c1_control) {
            /* All bytes of the unit or none, so a cut never leaves half an escape. */
            const size_t mark = w->len;
            for (size_t k = 0; k < n; k++) {
                if (!put_hex_escape(w, (unsigned char)s[i + k])) {
                    w->len = mark;
                    return false;
                }
            }
        } else if (!put(w, s + i, n)) {
            return false;
        }
        i += n;
    }
    return true;
}

void cairn_civil_from_days(int64_t days, int64_t *year, int *month, int *day) {
    /* Counts from 0000-03-01 in 400-year eras (146097 days each), so the leap day is the
     * last day of a "year" and the month lengths from March repeat as 31,30,31,30,31. */
    const int64_t z = days + 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const int64_t day_of_era = z - era * 146097;
    const int64_t year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
    const int64_t day_of_year =
        day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    const int64_t month_from_march = (5 * day_of_year + 2) / 153;
    *day = (int)(day_of_year - (153 * month_from_march + 2) / 5 + 1);
    *month = (int)(month_from_march < 10 ? month_from_march + 3 : month_from_march - 9);
    *year = year_of_era + era * 400 + (*month <= 2 ? 1 : 0);
}

void cairn_log_format_timestamp(int64_t unix_ms, char *out, size_t out_size) {
    int64_t days = unix_ms / MS_PER_DAY;
    int64_t ms_of_day = unix_ms % MS_PER_DAY;
    if (ms_of_day < 0) { /* floor, not truncation, for instants before 1970 */
        ms_of_day += MS_PER_DAY;
        days--;
    }
    int64_t year = 0;
    int month = 0;
    int day = 0;
    cairn_civil_from_days(days, &year, &month, &day);
    const int ms = (int)(ms_of_day % 1000);
    const int seconds = (int)(ms_of_day / 1000 % 60);
    const int minutes = (int)(ms_of_day / 60000 % 60);
    const int hours = (int)(ms_of_day / 3600000);
    snprintf(out, out_size, "%04" PRId64 "-%02d-%02dT%02d:%02d:%02d.%03dZ", year, month, day, hours,
             minutes, seconds, ms);
}

static void copy_node_id(char *dst, const char *src) {
    if (src == NULL || src[0] == '\0') {
        dst[0] = '-';
        dst[1] = '\0';
        return;
    }
    size_t n = 0;
    while (n < CAIRN_LOG_MAX_NODE_ID && src[n] != '\0') {
        n++;
    }
    n = cairn_utf8_complete_prefix(src, n);
    for (size_t i = 0; i < n; i++) {
        const unsigned char c = (unsigned char)src[i];
        /* The id sits between brackets: nothing in it may end the id or the line. */
        const bool unsafe = c < 0x20 || c == 0x7F || c == ']' || c == ' ';
        dst[i] = unsafe ? '_' : (char)c;
    }
    dst[n] = '\0';
}

void cairn_logger_init(cairn_logger *l, cairn_log_level min_level, const char *node_id, FILE *out) {
    memset(l, 0, sizeof *l);
    l->min_level = min_level;
    l->out = out;
    copy_node_id(l->node_id, node_id);
}

void cairn_log_set_node_id(cairn_logger *l, const char *node_id) {
    if (l != NULL) {
        copy_node_id(l->node_id, node_id);
    }
}

void cairn_log_set_level(cairn_logger *l, cairn_log_level min_level) {
    if (l != NULL) {
        l->min_level = min_level;
    }
}

void cairn_log_set_sink(cairn_logger *l, cairn_log_sink_fn sink, void *user) {
    if (l != NULL) {
        l->sink = sink;
        l->sink_user = user;
    }
}

void cairn_log_set_clock(cairn_logger *l, cairn_log_clock_fn clock, void *user) {
    if (l != NULL) {
        l->clock = clock;
        l->clock_user = user;
    }
}

bool cairn_log_enabled(const cairn_logger *l, cairn_log_level level) {
    return l != NULL && level_is_valid(level) && level <= l->min_level;
}

static void put_prefix(line_writer *w, const cairn_logger *l, cairn_log_level level) {
    char stamp[CAIRN_LOG_TIMESTAMP_SIZE + 16];
    const int64_t now = l->clock != NULL ? l->clock(l->clock_user) : cairn_wall_clock_ms();
    cairn_log_format_timestamp(now, stamp, sizeof stamp);
    put_str(w, stamp);
    put_str(w, " ");
    put_str(w, level_labels[level]);
    put_str(w, " [");
    put_str(w, l->node_id);
    put_str(w, "] ");
}

/* The message part of the line, at most CAIRN_LOG_MAX_MESSAGE bytes plus the marker. */
static void put_message(line_writer *w, const char *fmt, va_list ap) {
    char raw[CAIRN_LOG_MAX_MESSAGE + 1];
    const int n = vsnprintf(raw, sizeof raw, fmt, ap);
    if (n < 0) {
        put_str(w, "(unformattable log message)");
        return;
    }
    size_t raw_len = (size_t)n;
    bool truncated = raw_len > CAIRN_LOG_MAX_MESSAGE;
    if (truncated) {
        raw_len = cairn_utf8_complete_prefix(raw, CAIRN_LOG_MAX_MESSAGE);
    }
    const size_t full_limit = w->limit;
    w->limit = w->len + CAIRN_LOG_MAX_MESSAGE;
    if (!put_escaped(w, raw, raw_len)) {
        truncated = true;
    }
    w->limit = full_limit;
    if (truncated) {
        put_str(w, TRUNCATION_MARKER);
    }
}

void cairn_logv(cairn_logger *l, cairn_log_level level, const char *fmt, va_list ap) {
    if (!cairn_log_enabled(l, level) || fmt == NULL) {
        return;
    }
    /* Room for the prefix, the longest message, the marker, the newline and a NUL. */
    char line[CAIRN_LOG_TIMESTAMP_SIZE + 16 + 8 + CAIRN_LOG_MAX_NODE_ID + 4 +
              CAIRN_LOG_MAX_MESSAGE + sizeof TRUNCATION_MARKER + 2];
    line_writer w = {line, 0, sizeof line - 2};
    put_prefix(&w, l, level);
    put_message(&w, fmt, ap);
    line[w.len] = '\n';
    line[w.len + 1] = '\0';
    if (l->out != NULL) {
        /* One fwrite of the whole line, then a flush: the line leaves the process in one
         * piece, so lines of processes sharing the output do not interleave mid-line. */
        if (fwrite(line, 1, w.len + 1, l->out) == w.len + 1) {
            fflush(l->out);
        }
    }
    if (l->sink != NULL) {
        line[w.len] = '\0';
        l->sink(l->sink_user, level, line, w.len);
    }
}

void cairn_log(cairn_logger *l, cairn_log_level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    cairn_logv(l, level, fmt, ap);
    va_end(ap);
}

const char *cairn_log_level_name(cairn_log_level level) {
    return level_is_valid(level) ? level_names[level] : "?";
}

static bool equals_ignoring_case(const char *a, const char *b) {
    while (*a != '\0' && *b != '\0') {
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) {
            return false;
        }
        a++;
        b++;
    }
    return *a == *b;
}

int cairn_log_level_parse(const char *name, cairn_log_level *out, cairn_err *err) {
    if (name == NULL) {
        name = "";
    }
    for (size_t i = 0; i < CAIRN_ARRAY_LEN(level_names); i++) {
        if (equals_ignoring_case(name, level_names[i])) {
            *out = (cairn_log_level)i;
            return 0;
        }
    }
    if (equals_ignoring_case(name, "warning")) {
        *out = CAIRN_LOG_WARN;
        return 0;
    }
    return cairn_fail(
        err, "unknown log level \"%.64s\" (expected error, warn, info, debug or trace)", name);
}
