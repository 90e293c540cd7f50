/*
 * logits_file: the "CLGT" file that tools/oracle/cairn-oracle (llama.cpp) and
 * tools/cairn-logits (cairn) both write, so their logits can be compared position by
 * position. Pure C11 and header-only on purpose: it is compiled into both programs, which
 * share no library (the oracle never links cairn, cairn never links llama.cpp).
 *
 * Layout (little-endian, no padding):
 *   char     magic[4]      "CLGT"
 *   uint32   version       1
 *   uint32   n_vocab
 *   uint32   n_positions
 *   int32    tokens[n_positions]             the whole sequence: prompt, then generated
 *   float32  logits[n_positions][n_vocab]    row i: the logits after token i (they
 *                                            predict token i + 1)
 *
 * Errors are reported as a message in a caller's buffer, since the two programs report
 * errors in their own ways.
 */
#ifndef CAIRN_LOGITS_FILE_H
#define CAIRN_LOGITS_FILE_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLGT_VERSION 1u
#define CLGT_MAX_POSITIONS (1u << 20)
#define CLGT_MAX_VOCAB (1u << 24)

typedef struct clgt_file {
    uint32_t n_vocab;
    uint32_t n_positions;
    int32_t *tokens;
    float *logits; /* n_positions * n_vocab */
} clgt_file;

typedef struct clgt_msg {
    char text[256];
} clgt_msg;

static inline int clgt_fail(clgt_msg *m, const char *what, const char *path) {
    if (m) {
        snprintf(m->text, sizeof m->text, "%s: %s", path, what);
    }
    return -1;
}

/* The host must be little-endian: the format is that byte order, read and written as is. */
static inline int clgt_host_ok(void) {
    const uint32_t one = 1;
    unsigned char b[4];
    memcpy(b, &one, 4);
    return b[0] == 1;
}

static inline int clgt_write(const char *path, const clgt_file *f, clgt_msg *m) {
    if (!clgt_host_ok()) {
        return clgt_fail(m, "this host is not little-endian", path);
    }
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        return clgt_fail(m, strerror(errno), path);
    }
    uint32_t head[3] = {CLGT_VERSION, f->n_vocab, f->n_positions};
    size_t n_logits = (size_t)f->n_positions * f->n_vocab;
    int ok = fwrite("CLGT", 1, 4, fp) == 4 && fwrite(head, sizeof head, 1, fp) == 1 &&
             fwrite(f->tokens, sizeof(int32_t), f->n_positions, fp) == f->n_positions &&
             fwrite(f->logits, sizeof(float), n_logits, fp) == n_logits;
    ok = fclose(fp) == 0 && ok;
    return ok ? 0 : clgt_fail(m, "write failed", path);
}

static inline void clgt_free(clgt_file *f) {
    free(f->tokens);
    free(f->logits);
    memset(f, 0, sizeof *f);
}

static inline int clgt_read_body(FILE *fp, clgt_file *f) {
    size_t n_logits = (size_t)f->n_positions * f->n_vocab;
    f->tokens = malloc(sizeof(int32_t) * ((size_t)f->n_positions + 1));
    f->logits = malloc(sizeof(float) * (n_logits + 1));
    if (!f->tokens || !f->logits) {
        return -1;
    }
    return fread(f->tokens, sizeof(int32_t), f->n_positions, fp) == f->n_positions &&
                   fread(f->logits, sizeof(float), n_logits, fp) == n_logits && fgetc(fp) == EOF
               ? 0
               : -1;
}

static inline int clgt_read(const char *path, clgt_file *f, clgt_msg *m) {
    memset(f, 0, sizeof *f);
    if (!clgt_host_ok()) {
        return clgt_fail(m, "this host is not little-endian", path);
    }
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        return clgt_fail(m, strerror(errno), path);
    }
    char magic[4];
    uint32_t head[3];
    int ok = fread(magic, 1, 4, fp) == 4 && memcmp(magic, "CLGT", 4) == 0 &&
             fread(head, sizeof head, 1, fp) == 1 && head[0] == CLGT_VERSION && head[1] > 0 &&
             head[1] <= CLGT_MAX_VOCAB && head[2] <= CLGT_MAX_POSITIONS;
    if (ok) {
        f->n_vocab = head[1];
        f->n_positions = head[2];
        ok = clgt_read_body(fp, f) == 0;
    }
    fclose(fp);
    if (!ok) {
        clgt_free(f);
        return clgt_fail(m, "not a complete CLGT version 1 file", path);
    }
    return 0;
}

/* The greedy choice: the largest logit, ties to the lowest id (both tools use this one). */
static inline int32_t clgt_argmax(const float *row, uint32_t n_vocab) {
    uint32_t best = 0;
    for (uint32_t i = 1; i < n_vocab; i++) {
        if (row[i] > row[best]) {
            best = i;
        }
    }
    return (int32_t)best;
}

/* Parses "ID,ID,..." (non-negative ids); *out is malloc'd. Returns the count, or -1. */
static inline int clgt_parse_tokens(const char *s, int32_t **out) {
    size_t cap = 16, n = 0;
    int bad = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    while (ids && *s && !bad) {
        char *end = NULL;
        errno = 0;
        long v = strtol(s, &end, 10);
        bad = errno != 0 || end == s || v < 0 || v > INT32_MAX || (*end != ',' && *end != '\0');
        if (bad) {
            break;
        }
        if (n == cap) {
            int32_t *grown = realloc(ids, 2 * cap * sizeof *ids);
            if (!grown) {
                free(ids);
                return -1;
            }
            ids = grown;
            cap *= 2;
        }
        ids[n++] = (int32_t)v;
        s = *end == ',' ? end + 1 : end;
        bad = *end == ',' && *s == '\0'; /* a trailing comma */
    }
    if (!ids || bad || *s != '\0' || n == 0 || n > CLGT_MAX_POSITIONS) {
        free(ids);
        return -1;
    }
    *out = ids;
    return (int)n;
}

#endif
