/* util: errors, buffers, strings, UTF-8 and file helpers (see util.h). */
#include "util/util.h"

#include "platform/platform.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cairn_failv(cairn_err *err, const char *fmt, va_list ap) {
    if (err) {
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    }
    return -1;
}

int cairn_fail(cairn_err *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    cairn_failv(err, fmt, ap);
    va_end(ap);
    return -1;
}

int cairn_fail_prefix(cairn_err *err, const char *fmt, ...) {
    if (!err) {
        return -1;
    }
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    char old[sizeof(err->msg)];
    memcpy(old, err->msg, sizeof(old));
    size_t n = strlen(prefix);
    if (n + 2 >= sizeof(err->msg)) {
        n = sizeof(err->msg) - 3;
    }
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, ": ", 2);
    size_t room = sizeof(err->msg) - n - 3;
    const char *old_end = memchr(old, '\0', sizeof(old));
    size_t old_len = old_end ? (size_t)(old_end - old) : sizeof(old) - 1;
    if (old_len > room) {
        old_len = room;
    }
    memcpy(err->msg + n + 2, old, old_len);
    err->msg[n + 2 + old_len] = '\0';
    return -1;
}

int cairn_buf_reserve(cairn_buf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) {
        return 0;
    }
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2) {
            return -1;
        }
        cap *= 2;
    }
    char *data = realloc(b->data, cap);
    if (!data) {
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

int cairn_buf_append(cairn_buf *b, const void *data, size_t len) {
    if (cairn_buf_reserve(b, len) != 0) {
        return -1;
    }
    if (len) {
        memcpy(b->data + b->len, data, len);
    }
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int cairn_buf_puts(cairn_buf *b, const char *s) {
    return cairn_buf_append(b, s, strlen(s));
}

int cairn_buf_putc(cairn_buf *b, char c) {
    return cairn_buf_append(b, &c, 1);
}

int cairn_buf_printf(cairn_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0 || cairn_buf_reserve(b, (size_t)n) != 0) {
        va_end(ap);
        return -1;
    }
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

char *cairn_buf_take(cairn_buf *b) {
    if (!b->data && cairn_buf_reserve(b, 0) != 0) {
        return NULL;
    }
    b->data[b->len] = '\0';
    char *s = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return s;
}

void cairn_buf_free(cairn_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *cairn_strndup(const char *s, size_t n) {
    char *copy = malloc(n + 1);
    if (copy) {
        memcpy(copy, s, n);
        copy[n] = '\0';
    }
    return copy;
}

char *cairn_strdup(const char *s) {
    return cairn_strndup(s, strlen(s));
}

bool cairn_str_starts_with(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool cairn_str_ends_with(const char *s, const char *suffix) {
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && memcmp(s + ls - lx, suffix, lx) == 0;
}

bool cairn_mul_overflows(uint64_t a, uint64_t b, uint64_t *out) {
    if (a != 0 && b > UINT64_MAX / a) {
        return true;
    }
    *out = a * b;
    return false;
}

bool cairn_add_overflows(uint64_t a, uint64_t b, uint64_t *out) {
    if (b > UINT64_MAX - a) {
        return true;
    }
    *out = a + b;
    return false;
}

int cairn_utf8_seq_len(unsigned char c) {
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0)
        return 2;
    if ((c & 0xF0) == 0xE0)
        return 3;
    if ((c & 0xF8) == 0xF0)
        return 4;
    return 0;
}

size_t cairn_utf8_complete_prefix(const char *s, size_t len) {
    /* Only the last 3 bytes can start an unfinished sequence. */
    size_t start = len > 3 ? len - 3 : 0;
    for (size_t i = len; i > start; i--) {
        unsigned char c = (unsigned char)s[i - 1];
        if ((c & 0xC0) == 0x80) {
            continue; /* continuation byte: keep looking for the lead */
        }
        int need = cairn_utf8_seq_len(c);
        if (need > 1 && (size_t)need > len - (i - 1)) {
            return i - 1;
        }
        return len;
    }
    return len;
}

int cairn_utf8_decode(const char *str, size_t len, uint32_t *cp) {
    const unsigned char *s = (const unsigned char *)str;
    int n = cairn_utf8_seq_len(s[0]);
    if (n == 0 || (size_t)n > len) {
        *cp = 0xFFFD;
        return 1;
    }
    uint32_t v = n == 1 ? s[0] : n == 2 ? (s[0] & 0x1Fu) : n == 3 ? (s[0] & 0x0Fu) : (s[0] & 0x07u);
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = 0xFFFD;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3Fu);
    }
    *cp = v;
    return n;
}

int cairn_utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t cairn_utf8_valid_len(const char *s, size_t len) {
    static const uint32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (len == 0) {
        return 0;
    }
    int need = cairn_utf8_seq_len((unsigned char)s[0]);
    uint32_t cp = 0;
    if (need == 0 || (size_t)need > len || cairn_utf8_decode(s, len, &cp) != need) {
        return 0;
    }
    if (cp < min_for_len[need] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
        return 0;
    }
    return (size_t)need;
}

size_t cairn_utf8_count(const char *s) {
    size_t n = 0;
    for (; *s; s++) {
        n += ((unsigned char)*s & 0xC0) != 0x80; /* every byte but a continuation byte */
    }
    return n;
}

int cairn_utf8_append_lossy(cairn_buf *out, const char *s, size_t len) {
    for (size_t i = 0; i < len;) {
        size_t n = cairn_utf8_valid_len(s + i, len - i);
        if (cairn_buf_append(out, n ? s + i : "\xEF\xBF\xBD", n ? n : 3) != 0) {
            return -1;
        }
        i += n ? n : 1;
    }
    return 0;
}

size_t cairn_utf8_printable_len(const char *s, size_t len) {
    size_t n = cairn_utf8_valid_len(s, len);
    uint32_t cp = 0;
    if (n == 0 || cairn_utf8_decode(s, len, &cp) != (int)n || cp < 0x20 ||
        (cp >= 0x7F && cp <= 0x9F)) {
        return 0;
    }
    return n;
}

void cairn_utf8_printable_copy(char *dst, size_t size, const char *src) {
    size_t len = strlen(src), out = 0;
    for (size_t i = 0; i < len;) {
        size_t n = cairn_utf8_printable_len(src + i, len - i);
        const char *piece = n ? src + i : "?";
        size_t piece_len = n ? n : 1;
        if (out + piece_len >= size) {
            break;
        }
        memcpy(dst + out, piece, piece_len);
        out += piece_len;
        i += piece_len;
    }
    dst[out] = '\0';
}

bool cairn_utf8_is_printable(const char *s, size_t len) {
    for (size_t i = 0; i < len;) {
        size_t n = cairn_utf8_printable_len(s + i, len - i);
        if (n == 0) {
            return false;
        }
        i += n;
    }
    return true;
}

uint64_t cairn_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void cairn_rng_seed(cairn_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) {
        r->s[i] = cairn_splitmix64(&seed);
    }
}

static uint64_t rotl64(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

uint64_t cairn_rng_next(cairn_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

double cairn_rng_uniform(cairn_rng *r) {
    return (double)(cairn_rng_next(r) >> 11) * 0x1.0p-53;
}

char *cairn_read_file(const char *path, size_t *len_out, cairn_err *err) {
    FILE *f = cairn_fopen(path, "rb");
    if (!f) {
        cairn_fail(err, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    cairn_buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (cairn_buf_append(&b, chunk, n) != 0) {
            cairn_buf_free(&b);
            fclose(f);
            cairn_fail(err, "out of memory reading %s", path);
            return NULL;
        }
    }
    bool failed = ferror(f);
    fclose(f);
    if (failed) {
        cairn_buf_free(&b);
        cairn_fail(err, "cannot read %s", path);
        return NULL;
    }
    if (len_out) {
        *len_out = b.len;
    }
    return cairn_buf_take(&b);
}

int cairn_parse_int_list(const char *s, char sep, int *out, int max_out, cairn_err *err) {
    int count = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno != 0 || v < INT_MIN || v > INT_MAX) {
            return cairn_fail(err, "'%s' is not a list of integers separated by '%c'", s, sep);
        }
        if (count == max_out) {
            return cairn_fail(err, "'%s' has more than %d values", s, max_out);
        }
        out[count++] = (int)v;
        if (*end == sep && end[1] != '\0') {
            p = end + 1;
        } else if (*end == '\0') {
            p = end;
        } else {
            return cairn_fail(err, "'%s' is not a list of integers separated by '%c'", s, sep);
        }
    }
    if (count == 0) {
        return cairn_fail(err, "empty list");
    }
    return count;
}

static int parse_port(const char *text, uint16_t *port, cairn_err *err) {
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end || errno || v < 1 || v > 65535) {
        return cairn_fail(err, "'%s' is not a port (1..65535)", text);
    }
    *port = (uint16_t)v;
    return 0;
}

static int copy_host(const char *start, size_t len, char *host, size_t host_size, cairn_err *err) {
    if (len == 0) {
        return cairn_fail(err, "no host given");
    }
    if (len >= host_size) {
        return cairn_fail(err, "host name too long (at most %zu bytes)", host_size - 1);
    }
    memcpy(host, start, len);
    host[len] = '\0';
    return 0;
}

int cairn_parse_address(const char *text, uint16_t default_port, char *host, size_t host_size,
                        uint16_t *port, cairn_err *err) {
    const char *port_text = NULL;
    const char *start = text;
    size_t len;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || (close[1] != '\0' && close[1] != ':')) {
            return cairn_fail(err, "'%s': expected [IPV6]:PORT", text);
        }
        start = text + 1;
        len = (size_t)(close - start);
        port_text = close[1] == ':' ? close + 2 : NULL;
    } else {
        const char *colon = strchr(text, ':');
        if (colon && strchr(colon + 1, ':')) {
            return cairn_fail(err, "'%s': write an IPv6 address in brackets, [ADDRESS]:PORT", text);
        }
        len = colon ? (size_t)(colon - text) : strlen(text);
        port_text = colon ? colon + 1 : NULL;
    }
    if (copy_host(start, len, host, host_size, err) != 0) {
        return cairn_fail_prefix(err, "'%s'", text);
    }
    if (!port_text && default_port == 0) {
        return cairn_fail(err, "'%s': expected HOST:PORT (IPv6 as [ADDRESS]:PORT)", text);
    }
    *port = default_port;
    if (port_text && parse_port(port_text, port, err) != 0) {
        return -1;
    }
    return 0;
}

int cairn_make_dirs(const char *path, cairn_err *err) {
    char *prefix = cairn_strdup(path);
    if (!prefix) {
        return cairn_fail(err, "out of memory");
    }
    /* Parents first; their own failures show up as the failure of the last step. Roots
     * ("/", "C:") and empty prefixes are skipped. */
    for (size_t i = 1; prefix[i]; i++) {
        if ((prefix[i] == '/' || prefix[i] == '\\') && prefix[i - 1] != ':' &&
            prefix[i - 1] != '/' && prefix[i - 1] != '\\') {
            prefix[i] = '\0';
            cairn_make_dir(prefix, NULL);
            prefix[i] = path[i];
        }
    }
    free(prefix);
    return cairn_make_dir(path, err);
}
