/* sampling: stop strings in streamed text (see sampling.h). */
#include "sampling/sampling.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct cairn_stop_matcher {
    char **stops;
    size_t *stop_lens;
    size_t n_stops;
    cairn_buf pending; /* received but not yet emitted */
    bool stopped;
    int matched; /* the stop string that matched, -1 before */
};

void cairn_stop_matcher_free(cairn_stop_matcher *m) {
    if (!m) {
        return;
    }
    for (size_t i = 0; i < m->n_stops; i++) {
        free(m->stops[i]);
    }
    free(m->stops);
    free(m->stop_lens);
    cairn_buf_free(&m->pending);
    free(m);
}

int cairn_stop_matcher_new(const char *const *stops, size_t n, cairn_stop_matcher **out,
                           cairn_err *err) {
    *out = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!stops[i] || stops[i][0] == '\0') {
            return cairn_fail(err, "stop string %zu is empty", i);
        }
    }
    cairn_stop_matcher *m = calloc(1, sizeof(*m));
    if (!m) {
        return cairn_fail(err, "out of memory for stop strings");
    }
    m->matched = -1;
    if (n > 0) {
        m->stops = calloc(n, sizeof(char *));
        m->stop_lens = calloc(n, sizeof(size_t));
        if (!m->stops || !m->stop_lens) {
            cairn_stop_matcher_free(m);
            return cairn_fail(err, "out of memory for stop strings");
        }
    }
    for (size_t i = 0; i < n; i++) {
        m->stops[i] = cairn_strdup(stops[i]);
        m->n_stops = i + 1; /* so free releases what was copied so far */
        if (!m->stops[i]) {
            cairn_stop_matcher_free(m);
            return cairn_fail(err, "out of memory for stop strings");
        }
        m->stop_lens[i] = strlen(stops[i]);
    }
    *out = m;
    return 0;
}

static bool match_at(const char *text, size_t len, size_t pos, const char *stop, size_t stop_len) {
    return stop_len <= len - pos && memcmp(text + pos, stop, stop_len) == 0;
}

/* Position of the earliest complete stop string in text (its index into *which), or len if
 * there is none. */
static size_t find_earliest(const cairn_stop_matcher *m, const char *text, size_t len, int *which) {
    for (size_t pos = 0; pos < len; pos++) {
        for (size_t i = 0; i < m->n_stops; i++) {
            if (match_at(text, len, pos, m->stops[i], m->stop_lens[i])) {
                *which = (int)i;
                return pos;
            }
        }
    }
    return len;
}

/* Length of the longest suffix of text that is a proper prefix of some stop string: the
 * part that must wait for more text before it can be called safe. */
static size_t held_suffix(const cairn_stop_matcher *m, const char *text, size_t len) {
    size_t best = 0;
    for (size_t i = 0; i < m->n_stops; i++) {
        size_t max = m->stop_lens[i] - 1;
        if (max > len) {
            max = len;
        }
        for (size_t h = max; h > best; h--) {
            if (memcmp(text + len - h, m->stops[i], h) == 0) {
                best = h;
                break;
            }
        }
    }
    return best;
}

static int emit(cairn_stop_matcher *m, size_t n, cairn_buf *out) {
    cairn_buf *p = &m->pending;
    if (n == 0) {
        return 0;
    }
    if (cairn_buf_append(out, p->data, n) != 0) {
        return -1;
    }
    memmove(p->data, p->data + n, p->len - n);
    p->len -= n;
    p->data[p->len] = '\0';
    return 0;
}

int cairn_stop_matcher_push(cairn_stop_matcher *m, const char *text, size_t len, cairn_buf *out) {
    if (m->stopped) {
        return 1;
    }
    if (len > 0 && cairn_buf_append(&m->pending, text, len) != 0) {
        return -1;
    }
    cairn_buf *p = &m->pending;
    size_t hit = find_earliest(m, p->data, p->len, &m->matched);
    if (hit < p->len) {
        m->stopped = true;
        if (emit(m, hit, out) != 0) {
            return -1;
        }
        p->len = 0;
        return 1;
    }
    size_t safe = p->len - held_suffix(m, p->data, p->len);
    /* Never end an emitted piece inside a UTF-8 character: the held part may begin mid-way
     * through one, or the text so far may end with an unfinished one. */
    safe = cairn_utf8_complete_prefix(p->data, safe);
    return emit(m, safe, out);
}

int cairn_stop_matcher_matched(const cairn_stop_matcher *m) {
    return m->matched;
}

int cairn_stop_matcher_flush(cairn_stop_matcher *m, cairn_buf *out) {
    if (m->stopped) {
        return 0;
    }
    return emit(m, m->pending.len, out);
}
