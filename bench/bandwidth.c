/*
 * bandwidth: sustained memory READ bandwidth of this machine, with 1 thread and with N.
 *
 * Token-by-token decoding reads every weight once per token, so its ceiling is
 * bandwidth / bytes read per token (see bench/README.md). This probe measures the
 * bandwidth side of that ratio the way decoding uses memory: long sequential reads of an
 * array far larger than the caches.
 *
 * Each repeat sums the whole array (split into one contiguous slice per thread) and checks
 * the sum against its closed form, so the compiler cannot drop the reads and a wrong result
 * is caught. The inner loop keeps 8 independent integer accumulators, which compilers turn
 * into vector adds without any target-specific code or fast-math flags.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>

#include "platform/platform.h"
#include "util/util.h"

#define BW_LANES 8
#define BW_MAX_THREADS 256

typedef struct bw_slice {
    uint64_t *data;
    size_t first; /* index of data[0] in the whole array */
    size_t n;
    uint64_t sum;
} bw_slice;

typedef struct bw_config {
    int threads;
    size_t mib;
    int repeats;
} bw_config;

typedef struct bw_result {
    double best_gbs;
    double median_gbs;
} bw_result;

static uint64_t bw_sum(const uint64_t *p, size_t n) {
    uint64_t acc[BW_LANES] = {0};
    size_t i = 0;
    for (; i + BW_LANES <= n; i += BW_LANES) {
        for (int j = 0; j < BW_LANES; j++) {
            acc[j] += p[i + (size_t)j];
        }
    }
    uint64_t total = 0;
    for (; i < n; i++) {
        total += p[i];
    }
    for (int j = 0; j < BW_LANES; j++) {
        total += acc[j];
    }
    return total;
}

static int bw_sum_thread(void *arg) {
    bw_slice *s = arg;
    s->sum = bw_sum(s->data, s->n);
    return 0;
}

/* Writing the array from the threads that will read it places its pages near them on
 * machines with several memory nodes. */
static int bw_fill_thread(void *arg) {
    bw_slice *s = arg;
    for (size_t i = 0; i < s->n; i++) {
        s->data[i] = s->first + i;
    }
    return 0;
}

/* Splits [0, n) into equal lane-aligned slices; the last takes the remainder. */
static void bw_split(uint64_t *data, size_t n, int threads, bw_slice *slices) {
    size_t per = n / (size_t)threads / BW_LANES * BW_LANES;
    for (int t = 0; t < threads; t++) {
        slices[t].data = data + per * (size_t)t;
        slices[t].first = per * (size_t)t;
        slices[t].n = t == threads - 1 ? n - per * (size_t)t : per;
        slices[t].sum = 0;
    }
}

static int bw_run_threads(bw_slice *slices, int threads, thrd_start_t fn, cairn_err *err) {
    thrd_t ids[BW_MAX_THREADS];
    int started = 0;
    for (; started < threads; started++) {
        if (thrd_create(&ids[started], fn, &slices[started]) != thrd_success) {
            break;
        }
    }
    for (int t = 0; t < started; t++) {
        thrd_join(ids[t], NULL);
    }
    return started == threads ? 0 : cairn_fail(err, "cannot start %d threads", threads);
}

static int bw_fill(uint64_t *data, size_t n, int threads, cairn_err *err) {
    bw_slice slices[BW_MAX_THREADS];
    bw_split(data, n, threads, slices);
    return bw_run_threads(slices, threads, bw_fill_thread, err);
}

static int bw_compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int bw_measure(uint64_t *data, size_t n, const bw_config *cfg, int threads, bw_result *out,
                      cairn_err *err) {
    const uint64_t expected = (uint64_t)n * (uint64_t)(n - 1) / 2; /* 0 + 1 + ... + n-1 */
    double *gbs = calloc((size_t)cfg->repeats, sizeof *gbs);
    if (gbs == NULL) {
        return cairn_fail(err, "out of memory");
    }
    bw_slice slices[BW_MAX_THREADS];
    int rc = 0;
    for (int r = 0; rc == 0 && r < cfg->repeats; r++) {
        bw_split(data, n, threads, slices);
        double start = cairn_now_seconds();
        rc = bw_run_threads(slices, threads, bw_sum_thread, err);
        double seconds = cairn_now_seconds() - start;
        uint64_t sum = 0;
        for (int t = 0; t < threads; t++) {
            sum += slices[t].sum;
        }
        if (rc == 0 && sum != expected) {
            rc = cairn_fail(err, "wrong sum %llu (expected %llu)", (unsigned long long)sum,
                            (unsigned long long)expected);
        }
        gbs[r] = (double)n * sizeof *data / seconds / 1e9;
    }
    if (rc == 0) {
        qsort(gbs, (size_t)cfg->repeats, sizeof *gbs, bw_compare);
        out->best_gbs = gbs[cfg->repeats - 1];
        out->median_gbs = gbs[cfg->repeats / 2];
    }
    free(gbs);
    return rc;
}

static int bw_parse_int(const char *flag, const char *s, long max, long *out, cairn_err *err) {
    char *end = NULL;
    errno = 0;
    long v = s != NULL ? strtol(s, &end, 10) : 0;
    if (s == NULL || errno != 0 || end == s || *end != '\0' || v < 1 || v > max) {
        return cairn_fail(err, "%s needs an integer in 1..%ld", flag, max);
    }
    *out = v;
    return 0;
}

static void bw_usage(FILE *f) {
    fprintf(f, "usage: bandwidth [-t THREADS] [-s MiB] [-r REPEATS]\n"
               "Measures sustained memory read bandwidth (sum over one large array) with 1 thread\n"
               "and with THREADS (default: all logical CPUs). Defaults: -s 1024 -r 7.\n");
}

/* Returns 1 for --help, 0 to run, -1 on a bad argument. */
static int bw_parse_args(int argc, char **argv, bw_config *cfg, cairn_err *err) {
    cfg->threads = cairn_cpu_count() > 0 ? cairn_cpu_count() : 1;
    cfg->mib = 1024;
    cfg->repeats = 7;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n = 0;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            return 1;
        } else if (strcmp(a, "-t") == 0 && bw_parse_int(a, v, BW_MAX_THREADS, &n, err) == 0) {
            cfg->threads = (int)n;
        } else if (strcmp(a, "-s") == 0 && bw_parse_int(a, v, 1L << 20, &n, err) == 0) {
            cfg->mib = (size_t)n;
        } else if (strcmp(a, "-r") == 0 && bw_parse_int(a, v, 1000, &n, err) == 0) {
            cfg->repeats = (int)n;
        } else {
            if (strcmp(a, "-t") != 0 && strcmp(a, "-s") != 0 && strcmp(a, "-r") != 0) {
                cairn_fail(err, "unknown option %.64s (see --help)", a);
            }
            return -1;
        }
        i++;
    }
    return 0;
}

static int bw_report(uint64_t *data, size_t n, const bw_config *cfg, cairn_err *err) {
    char cpu[128];
    cairn_cpu_model(cpu, sizeof cpu);
    printf("memory read bandwidth: %zu MiB array, %d repeats, CPU: %s (%d logical)\n", cfg->mib,
           cfg->repeats, cpu[0] ? cpu : "unknown", cairn_cpu_count());
    printf("threads  best GB/s  median GB/s\n");
    int counts[2] = {1, cfg->threads};
    for (int i = 0; i < (cfg->threads > 1 ? 2 : 1); i++) {
        bw_result r;
        if (bw_measure(data, n, cfg, counts[i], &r, err) != 0) {
            return -1;
        }
        printf("%7d  %9.1f  %11.1f\n", counts[i], r.best_gbs, r.median_gbs);
        fflush(stdout);
    }
    return 0;
}

int main(int argc, char **argv) {
    bw_config cfg;
    cairn_err err = {{0}};
    int parsed = bw_parse_args(argc, argv, &cfg, &err);
    if (parsed != 0) {
        bw_usage(parsed > 0 ? stdout : stderr);
        if (parsed < 0) {
            fprintf(stderr, "bandwidth: %s\n", err.msg);
        }
        return parsed > 0 ? 0 : 2;
    }
    size_t n = cfg.mib * 1024 * 1024 / sizeof(uint64_t);
    uint64_t *data = malloc(n * sizeof *data);
    int rc = data != NULL ? 0 : cairn_fail(&err, "cannot allocate %zu MiB", cfg.mib);
    if (rc == 0) {
        rc = bw_fill(data, n, cfg.threads, &err);
    }
    if (rc == 0) {
        rc = bw_report(data, n, &cfg, &err);
    }
    free(data);
    if (rc != 0) {
        fprintf(stderr, "bandwidth: %s\n", err.msg);
        return 1;
    }
    return 0;
}
