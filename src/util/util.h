/*
 * util: the small pieces every module shares: error reporting, growable buffers, string and
 * UTF-8 helpers, whole-file reads and hashes, and the event logger (log.h).
 *
 * Owns no state of its own. Must never depend on another cairn module (but for platform's
 * UTF-8 fopen and wall clock), log by itself, or exit: it only reports failures to its caller
 * through cairn_err.
 */
#ifndef CAIRN_UTIL_H
#define CAIRN_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(CAIRN_PRINTF_ARCHETYPE)
/* The build names the printf dialect where the default one is not C99's (MinGW's C99 stdio
 * is checked as gnu_printf; plain "printf" there means msvcrt's rules). */
#define CAIRN_PRINTF(fmt_index, first_arg)                                                         \
    __attribute__((format(CAIRN_PRINTF_ARCHETYPE, fmt_index, first_arg)))
#elif defined(__GNUC__) || defined(__clang__)
#define CAIRN_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define CAIRN_PRINTF(fmt_index, first_arg)
#endif

#define CAIRN_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
/* A number macro as a string literal, for help texts that name a default. */
#define CAIRN_STRINGIFY_(x) #x
#define CAIRN_STRINGIFY(x) CAIRN_STRINGIFY_(x)

/* An error message travelling back to whoever can report it. Functions that can fail take a
 * `cairn_err *` (which may be NULL when the caller does not care) and return -1 or NULL. */
typedef struct cairn_err {
    char msg[512];
} cairn_err;

/* Formats the message into err (if not NULL) and returns -1, so `return cairn_fail(...)`. */
int cairn_fail(cairn_err *err, const char *fmt, ...) CAIRN_PRINTF(2, 3);
int cairn_failv(cairn_err *err, const char *fmt, va_list ap);
/* Prepends "prefix: " to an existing message; returns -1. */
int cairn_fail_prefix(cairn_err *err, const char *fmt, ...) CAIRN_PRINTF(2, 3);

/* A growable byte buffer, always NUL-terminated when non-empty. Owner frees with buf_free. */
typedef struct cairn_buf {
    char *data;
    size_t len;
    size_t cap;
} cairn_buf;

int cairn_buf_reserve(cairn_buf *b, size_t extra);
int cairn_buf_append(cairn_buf *b, const void *data, size_t len);
int cairn_buf_puts(cairn_buf *b, const char *s);
int cairn_buf_putc(cairn_buf *b, char c);
int cairn_buf_printf(cairn_buf *b, const char *fmt, ...) CAIRN_PRINTF(2, 3);
/* Hands the string to the caller (who frees it) and resets the buffer. Never NULL on success. */
char *cairn_buf_take(cairn_buf *b);
void cairn_buf_free(cairn_buf *b);

char *cairn_strdup(const char *s);
char *cairn_strndup(const char *s, size_t n);
bool cairn_str_starts_with(const char *s, const char *prefix);
bool cairn_str_ends_with(const char *s, const char *suffix);

/* Overflow-checked arithmetic for sizes that come from untrusted files. */
bool cairn_mul_overflows(uint64_t a, uint64_t b, uint64_t *out);
bool cairn_add_overflows(uint64_t a, uint64_t b, uint64_t *out);

/* UTF-8: length of the sequence that starts with byte c (1..4), or 0 for a stray byte. */
int cairn_utf8_seq_len(unsigned char c);
/* Number of bytes at the start of s[0..len) that form complete UTF-8 sequences; a trailing
 * incomplete sequence is excluded (invalid bytes count as complete, one byte each). */
size_t cairn_utf8_complete_prefix(const char *s, size_t len);
/* Decodes one code point; returns bytes consumed (>= 1), setting *cp to U+FFFD if invalid. */
int cairn_utf8_decode(const char *s, size_t len, uint32_t *cp);
/* Encodes cp into out (4 bytes room); returns the byte count. */
int cairn_utf8_encode(uint32_t cp, char out[4]);

/* Bytes of the character that starts s[0..len) when it is strict UTF-8 (no overlong forms,
 * surrogates or values past U+10FFFF; control characters allowed); 0 otherwise. */
size_t cairn_utf8_valid_len(const char *s, size_t len);
/* Characters (code points) in NUL-terminated valid UTF-8 text. */
size_t cairn_utf8_count(const char *s);
/* Appends s[0..len) to out as valid UTF-8, each byte that does not start a valid character
 * as U+FFFD (the replacement character). A model's token may hold part of a character, and
 * JSON text must not. Returns -1 when out of memory. */
int cairn_utf8_append_lossy(cairn_buf *out, const char *s, size_t len);

/* Bytes of the printable character that starts s[0..len): strict UTF-8 (no overlong forms,
 * surrogates or values past U+10FFFF) that is not a C0/C1 control character; 0 if the bytes
 * do not start one. Names that reach JSON, logs and terminals must be printable. */
size_t cairn_utf8_printable_len(const char *s, size_t len);
bool cairn_utf8_is_printable(const char *s, size_t len);
/* Copies src into dst[size] (size > 0) as printable UTF-8: each byte that does not start a
 * printable character becomes '?', and the copy stops at the last whole character that
 * fits. Text from the network must not reach a terminal or a log with control characters
 * (an escape sequence could drive the terminal). */
void cairn_utf8_printable_copy(char *dst, size_t size, const char *src);

/* A small seeded PRNG (xoshiro256**, seeded through splitmix64 as its authors recommend):
 * the same seed gives the same stream on every machine. */
typedef struct cairn_rng {
    uint64_t s[4];
} cairn_rng;

uint64_t cairn_splitmix64(uint64_t *state);
void cairn_rng_seed(cairn_rng *r, uint64_t seed);
uint64_t cairn_rng_next(cairn_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double cairn_rng_uniform(cairn_rng *r);

/* Parses "HOST:PORT", "[IPV6]:PORT", "HOST" or "[IPV6]" into host (without brackets,
 * NUL-terminated in host_size bytes) and *port (1..65535). Without a port in text, *port is
 * default_port; a default_port of 0 makes the port required. */
int cairn_parse_address(const char *text, uint16_t default_port, char *host, size_t host_size,
                        uint16_t *port, cairn_err *err);

/* Parses a byte size: digits with an optional fraction and an optional binary unit, K, M, G
 * or T, alone or as KiB, MiB, GiB, TiB (any case; B for bytes): "8G", "1.5GiB", "4096". */
int cairn_parse_size(const char *text, uint64_t *out, cairn_err *err);

/* Creates the directory path and any missing parents ('/' or '\\' separated); succeeds if
 * it is a directory already. */
int cairn_make_dirs(const char *path, cairn_err *err);

/* The SHA-256 of a whole file as 64 lowercase hex digits and a NUL (src/util/sha256.c). It
 * reads the file in chunks, so it takes long on large files: keep it off event loops. */
int cairn_file_sha256(const char *path, char hex[65], cairn_err *err);
/* The same, asking keep_going(user) before each chunk; when it says false, the hash stops
 * and fails (so a node that shuts down need not finish hashing a large file). */
int cairn_file_sha256_until(const char *path, char hex[65], bool (*keep_going)(void *user),
                            void *user, cairn_err *err);

/* Reads a whole file into a NUL-terminated buffer the caller frees. */
char *cairn_read_file(const char *path, size_t *len_out, cairn_err *err);

/* Parses "A:B" style integer lists like "2:4" into values; returns count or -1. */
int cairn_parse_int_list(const char *s, char sep, int *out, int max_out, cairn_err *err);

#endif
