/*
 * log: cairn's leveled event log. One event is always exactly one line,
 *   2026-11-22T16:40:01.123Z INFO  [node-id] message
 * (UTC, millisecond precision), so lines from many nodes can be merged, sorted and grepped.
 *
 * A cairn_logger is an ordinary object owned by whoever runs the node (main) and handed to the
 * modules that report events; there is no process-wide logger. A NULL logger logs nothing, so
 * library code can take one without caring whether anyone listens. The logger never fails
 * loudly: an output error loses the line, never the caller's work. It must never exit, abort
 * or allocate.
 */
#ifndef CAIRN_LOG_H
#define CAIRN_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util/util.h"

/* Most to least severe: a logger emits every record at or above its minimum severity. */
typedef enum cairn_log_level {
    CAIRN_LOG_ERROR,
    CAIRN_LOG_WARN,
    CAIRN_LOG_INFO,
    CAIRN_LOG_DEBUG,
    CAIRN_LOG_TRACE,
} cairn_log_level;

/* Formatted messages longer than this many bytes (after escaping) are cut, with a marker. */
#define CAIRN_LOG_MAX_MESSAGE 4096
/* Node ids longer than this many bytes are cut (on a UTF-8 boundary). */
#define CAIRN_LOG_MAX_NODE_ID 64
/* "YYYY-MM-DDTHH:MM:SS.mmmZ" and its NUL, for years 0000..9999. */
#define CAIRN_LOG_TIMESTAMP_SIZE 25

/* Receives each emitted line, without its trailing newline (line[len] is NUL). Called on the
 * logging thread, after the line went to the logger's FILE (if any). */
typedef void (*cairn_log_sink_fn)(void *user, cairn_log_level level, const char *line, size_t len);
/* Milliseconds since the Unix epoch; lets tests pin the timestamp. */
typedef int64_t (*cairn_log_clock_fn)(void *user);

typedef struct cairn_logger {
    cairn_log_level min_level;
    FILE *out; /* not owned; NULL when only the sink receives lines */
    cairn_log_sink_fn sink;
    void *sink_user;
    cairn_log_clock_fn clock;
    void *clock_user;
    char node_id[CAIRN_LOG_MAX_NODE_ID + 1];
} cairn_logger;

/* Sets up l to write records at min_level or more severe to out (which may be NULL).
 * node_id may be NULL or empty while the id is not known yet; lines then show "[-]". */
void cairn_logger_init(cairn_logger *l, cairn_log_level min_level, const char *node_id, FILE *out);
/* Changes the id on later lines. Not synchronised: call it before other threads log. */
void cairn_log_set_node_id(cairn_logger *l, const char *node_id);
void cairn_log_set_level(cairn_logger *l, cairn_log_level min_level);
/* Also hands every emitted line to sink (NULL removes it). */
void cairn_log_set_sink(cairn_logger *l, cairn_log_sink_fn sink, void *user);
/* Replaces the wall clock (NULL restores it). */
void cairn_log_set_clock(cairn_logger *l, cairn_log_clock_fn clock, void *user);

/* True when a record at level would be emitted: lets callers skip costly message arguments. */
bool cairn_log_enabled(const cairn_logger *l, cairn_log_level level);
void cairn_log(cairn_logger *l, cairn_log_level level, const char *fmt, ...) CAIRN_PRINTF(3, 4);
void cairn_logv(cairn_logger *l, cairn_log_level level, const char *fmt, va_list ap)
    CAIRN_PRINTF(3, 0);

/* "error", "warn", "info", "debug", "trace"; "?" for a value outside the enum. */
const char *cairn_log_level_name(cairn_log_level level);
/* Parses a level name as given to --log-level (case-insensitive; "warning" means warn). */
int cairn_log_level_parse(const char *name, cairn_log_level *out, cairn_err *err);

/* Exposed for tests. Formats unix_ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" (NUL-terminated, cut to
 * out_size). CAIRN_LOG_TIMESTAMP_SIZE bytes hold years 0..9999; others come out wider. */
void cairn_log_format_timestamp(int64_t unix_ms, char *out, size_t out_size);
/* Exposed for tests. The proleptic Gregorian date that lies days after 1970-01-01. */
void cairn_civil_from_days(int64_t days, int64_t *year, int *month, int *day);

#endif
