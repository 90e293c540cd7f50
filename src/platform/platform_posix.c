/* platform on POSIX systems (Linux, macOS): see platform.h. */
#define _DEFAULT_SOURCE
#define _DARWIN_C_SOURCE
#include "platform/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#if defined(__APPLE__)
#include <sys/sysctl.h>
#endif

int cairn_map_file(const char *path, cairn_mapped_file *out, cairn_err *err) {
    memset(out, 0, sizeof(*out));
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        return cairn_fail(err, "cannot open %s: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return cairn_fail(err, "cannot stat %s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return cairn_fail(err, "%s is not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return cairn_fail(err, "%s is empty", path);
    }
    void *data = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd); /* the mapping keeps the file alive */
    if (data == MAP_FAILED) {
        return cairn_fail(err, "cannot map %s: %s", path, strerror(e));
    }
    out->data = data;
    out->size = (uint64_t)st.st_size;
    return 0;
}

void cairn_unmap_file(cairn_mapped_file *map) {
    if (map->data) {
        munmap((void *)map->data, (size_t)map->size);
    }
    memset(map, 0, sizeof(*map));
}

int64_t cairn_mapped_resident_bytes(const cairn_mapped_file *map, uint64_t offset, uint64_t len) {
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || offset > map->size) {
        return -1;
    }
    if (len > map->size - offset) {
        len = map->size - offset;
    }
    uint64_t start = offset / (uint64_t)page * (uint64_t)page;
    uint64_t end = offset + len;
    size_t pages = (size_t)((end - start + (uint64_t)page - 1) / (uint64_t)page);
    if (pages == 0) {
        return 0;
    }
#if defined(__APPLE__)
    char *vec = malloc(pages);
#else
    unsigned char *vec = malloc(pages);
#endif
    if (!vec) {
        return -1;
    }
    int64_t resident = -1;
    if (mincore((void *)(map->data + start), (size_t)(end - start), vec) == 0) {
        resident = 0;
        for (size_t i = 0; i < pages; i++) {
            if (vec[i] & 1) {
                resident += page;
            }
        }
    }
    free(vec);
    return resident;
}

void cairn_mapped_release(const cairn_mapped_file *map, uint64_t offset, uint64_t len) {
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || offset >= map->size) {
        return;
    }
    /* Only whole pages inside the range: a neighbour's bytes may share the edge pages. */
    uint64_t start = (offset + (uint64_t)page - 1) / (uint64_t)page * (uint64_t)page;
    uint64_t end = offset + len < map->size ? offset + len : map->size;
    end = end / (uint64_t)page * (uint64_t)page;
    if (end > start) {
        madvise((void *)(map->data + start), (size_t)(end - start), MADV_DONTNEED);
    }
}

void cairn_advise_huge_pages(void *ptr, size_t len) {
#if defined(MADV_HUGEPAGE)
    const uintptr_t huge = (uintptr_t)2 << 20;
    uintptr_t start = ((uintptr_t)ptr + huge - 1) & ~(huge - 1);
    uintptr_t end = ((uintptr_t)ptr + len) & ~(huge - 1);
    if (end > start) {
        madvise((void *)start, (size_t)(end - start), MADV_HUGEPAGE);
    }
#else
    (void)ptr;
    (void)len;
#endif
}

double cairn_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void cairn_sleep_ms(int ms) {
    if (ms <= 0) {
        return;
    }
    struct timespec left = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&left, &left) != 0 && errno == EINTR) {
    }
}

int cairn_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

uint64_t cairn_memory_total(void) {
#if defined(__APPLE__)
    uint64_t mem = 0;
    size_t len = sizeof(mem);
    return sysctlbyname("hw.memsize", &mem, &len, NULL, 0) == 0 ? mem : 0;
#else
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
#endif
}

/* Linux reports what can be allocated without swapping as MemAvailable; elsewhere free
 * pages are the best cheap estimate. */
uint64_t cairn_memory_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        unsigned long long kb = 0;
        while (fgets(line, sizeof(line), f)) {
            if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
                break;
            }
        }
        fclose(f);
        if (kb) {
            return (uint64_t)kb * 1024;
        }
    }
#if defined(_SC_AVPHYS_PAGES)
    long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
#else
    return 0;
#endif
}

uint64_t cairn_peak_rss(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) {
        return 0;
    }
#if defined(__APPLE__)
    return (uint64_t)ru.ru_maxrss; /* bytes on macOS */
#else
    return (uint64_t)ru.ru_maxrss * 1024; /* kilobytes on Linux */
#endif
}

void cairn_cpu_model(char *out, size_t out_len) {
    if (out_len == 0) {
        return;
    }
    out[0] = '\0';
#if defined(__APPLE__)
    size_t len = out_len;
    if (sysctlbyname("machdep.cpu.brand_string", out, &len, NULL, 0) != 0) {
        out[0] = '\0';
    }
#else
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) {
        return;
    }
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "model name", 10) == 0) {
            const char *colon = strchr(line, ':');
            if (colon) {
                colon++;
                while (*colon == ' ' || *colon == '\t') colon++;
                snprintf(out, out_len, "%s", colon);
                out[strcspn(out, "\n")] = '\0';
            }
            break;
        }
    }
    fclose(f);
#endif
}

bool cairn_is_terminal(FILE *stream) { return isatty(fileno(stream)) == 1; }

void cairn_console_init(void) {}
