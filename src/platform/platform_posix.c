/* platform on POSIX systems (Linux, macOS): see platform.h. */
#define _DEFAULT_SOURCE
#define _DARWIN_C_SOURCE
#include "platform/platform_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

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
    /* No read-around on faults: the kernel would otherwise read megabytes past what was
     * touched (other shards' layers); cairn_mapped_prefetch asks for exact ranges. */
    madvise(data, (size_t)st.st_size, MADV_RANDOM);
    out->data = data;
    out->size = (uint64_t)st.st_size;
    return 0;
}

void cairn_mapped_prefetch(const cairn_mapped_file *map, uint64_t offset, uint64_t len) {
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || offset >= map->size) {
        return;
    }
    uint64_t start = offset / (uint64_t)page * (uint64_t)page;
    uint64_t end = offset + len < map->size ? offset + len : map->size;
    madvise((void *)(map->data + start), (size_t)(end - start), MADV_WILLNEED);
}

int cairn_file_evict_cache(const char *path, cairn_err *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        return cairn_fail(err, "cannot open %s: %s", path, strerror(errno));
    }
    /* Dirty pages cannot be dropped: a freshly written file must reach the disk first. */
    int rc = fdatasync(fd) == 0 ? posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) : errno;
    close(fd);
    return rc == 0 ? 0
                   : cairn_fail(err, "cannot evict %s from the page cache: %s", path, strerror(rc));
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
    uintptr_t addr = (uintptr_t)ptr;
    uintptr_t start = (addr + huge - 1) & ~(huge - 1);
    uintptr_t end = (addr + len) & ~(huge - 1);
    if (end > start) {
        madvise((char *)ptr + (start - addr), (size_t)(end - start), MADV_HUGEPAGE);
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

int64_t cairn_wall_clock_ms(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
        return 0;
    }
    return (int64_t)ts.tv_sec * 1000 + (int64_t)(ts.tv_nsec / 1000000L);
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

/* The directory listing this process's descriptors: /proc/self/fd on Linux, /dev/fd on
 * macOS; NULL if neither opens. */
static DIR *open_descriptor_dir(void) {
    DIR *d = opendir("/proc/self/fd");
    return d ? d : opendir("/dev/fd");
}

int64_t cairn_open_handle_count(void) {
    DIR *d = open_descriptor_dir();
    if (!d) {
        return -1;
    }
    int64_t count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        count += e->d_name[0] != '.';
    }
    closedir(d);
    return count - 1; /* the directory stream's own descriptor */
}

/* The client of socket s, when s is connected and its local port is local_port. */
static bool socket_peer(int s, uint16_t local_port, cairn_socket_peer *out) {
    struct sockaddr_storage local, peer;
    socklen_t local_len = sizeof local, peer_len = sizeof peer;
    if (getsockname(s, (struct sockaddr *)&local, &local_len) != 0 ||
        platform_address_port(&local) != local_port ||
        getpeername(s, (struct sockaddr *)&peer, &peer_len) != 0) {
        return false;
    }
    int pending = 0;
    bool unread = ioctl(s, FIONREAD, &pending) == 0 && pending > 0;
    return platform_peer_named(&peer, (intptr_t)s, unread, out);
}

int cairn_socket_peers(uint16_t local_port, cairn_socket_peer *out, size_t max) {
    /* Only the open descriptors are tried (listed as for cairn_open_handle_count), not every
     * number up to the descriptor limit, which may be a million. */
    DIR *d = open_descriptor_dir();
    if (!d) {
        return -1;
    }
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        cairn_socket_peer peer;
        if (end != e->d_name && *end == '\0' && fd >= 0 && fd <= INT_MAX &&
            socket_peer((int)fd, local_port, &peer)) {
            platform_peer_add(&peer, out, max, &n);
        }
    }
    closedir(d);
    return n > INT_MAX ? INT_MAX : (int)n;
}

int cairn_socket_shutdown(intptr_t handle) {
    return shutdown((int)handle, SHUT_RD) == 0 ? 0 : -1;
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
                while (*colon == ' ' || *colon == '\t')
                    colon++;
                snprintf(out, out_len, "%s", colon);
                out[strcspn(out, "\n")] = '\0';
            }
            break;
        }
    }
    fclose(f);
#endif
}

bool cairn_is_terminal(FILE *stream) {
    return isatty(fileno(stream)) == 1;
}

void cairn_console_init(void) {}

const char *cairn_platform_name(void) {
#if defined(__APPLE__)
    return "macos";
#elif defined(__linux__)
    return "linux";
#else
    return "unix";
#endif
}

int cairn_args_utf8(int *argc, char ***argv, cairn_err *err) {
    (void)argc;
    (void)argv;
    (void)err;
    return 0;
}

int64_t cairn_file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

FILE *cairn_fopen(const char *path, const char *mode) {
    return fopen(path, mode);
}

int cairn_replace_file(const char *from, const char *to, cairn_err *err) {
    if (rename(from, to) != 0) {
        return cairn_fail(err, "cannot rename %s to %s: %s", from, to, strerror(errno));
    }
    return 0;
}

int cairn_make_dir(const char *path, cairn_err *err) {
    if (mkdir(path, 0777) == 0) {
        return 0;
    }
    int e = errno;
    struct stat st;
    if (e == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        return 0;
    }
    return cairn_fail(err, "cannot create directory %s: %s", path, strerror(e));
}

int cairn_disk_free(const char *dir, uint64_t *bytes, cairn_err *err) {
    struct statvfs vfs;
    if (statvfs(dir, &vfs) != 0) {
        return cairn_fail(err, "cannot query free space of %s: %s", dir, strerror(errno));
    }
    /* f_bavail, not f_bfree: blocks reserved for root are of no use to cairn. */
    *bytes = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
    return 0;
}

/* Stats dir/name; 1 with its size for a regular file (or a link to one), 0 to skip it. */
static int regular_file_size(const char *dir, const char *name, uint64_t *size, cairn_err *err) {
    cairn_buf path = {0};
    if (cairn_buf_printf(&path, "%s/%s", dir, name) != 0) {
        cairn_buf_free(&path);
        return cairn_fail(err, "out of memory");
    }
    struct stat st;
    int rc = stat(path.data, &st);
    cairn_buf_free(&path);
    if (rc != 0) {
        /* Removed since readdir saw it, or a dangling link: not a file to list. */
        return errno == ENOENT
                   ? 0
                   : cairn_fail(err, "cannot stat %s/%s: %s", dir, name, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        return 0;
    }
    *size = (uint64_t)st.st_size;
    return 1;
}

int cairn_list_dir(const char *dir, cairn_dir_file_fn fn, void *user, cairn_err *err) {
    DIR *d = opendir(dir);
    if (!d) {
        return cairn_fail(err, "cannot list %s: %s", dir, strerror(errno));
    }
    int rc = 0;
    struct dirent *entry;
    while (rc == 0 && (errno = 0, entry = readdir(d)) != NULL) {
        uint64_t size = 0;
        int found = regular_file_size(dir, entry->d_name, &size, err);
        rc = found < 0 ? -1 : found == 1 ? fn(entry->d_name, size, user, err) : 0;
    }
    if (rc == 0 && errno != 0) {
        rc = cairn_fail(err, "cannot list %s: %s", dir, strerror(errno));
    }
    closedir(d);
    return rc;
}

#if defined(__linux__)
/* The distribution's PRETTY_NAME from /etc/os-release (empty if absent), unquoted. */
static void linux_distribution(char *out, size_t out_len) {
    out[0] = '\0';
    FILE *f = fopen("/etc/os-release", "r");
    if (!f) {
        return;
    }
    char line[256];
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "PRETTY_NAME=", 12) == 0) {
            char *value = line + 12;
            value[strcspn(value, "\r\n")] = '\0';
            size_t len = strlen(value);
            if (len >= 2 && (value[0] == '"' || value[0] == '\'') && value[len - 1] == value[0]) {
                value[len - 1] = '\0';
                value++;
            }
            len = strlen(value) < out_len ? strlen(value) : out_len - 1;
            memcpy(out, value, len);
            out[len] = '\0';
            break;
        }
    }
    fclose(f);
}
#endif

/* snprintf cuts bytes; this keeps the cut at a character boundary. */
static void cut_utf8(char *s) {
    s[cairn_utf8_complete_prefix(s, strlen(s))] = '\0';
}

void cairn_os_description(char *out, size_t out_len) {
    if (out_len == 0) {
        return;
    }
    out[0] = '\0';
    struct utsname u;
    if (uname(&u) != 0) {
        return;
    }
    char product[128] = "";
#if defined(__APPLE__)
    char version[64] = "";
    size_t len = sizeof(version);
    if (sysctlbyname("kern.osproductversion", version, &len, NULL, 0) != 0) {
        version[0] = '\0';
    }
    snprintf(product, sizeof(product), "macOS%s%s", version[0] ? " " : "", version);
#elif defined(__linux__)
    linux_distribution(product, sizeof(product));
#endif
    if (product[0]) {
        snprintf(out, out_len, "%s (%s %s)", product, u.sysname, u.release);
    } else {
        snprintf(out, out_len, "%s %s", u.sysname, u.release);
    }
    cut_utf8(out);
}

/* Relative XDG values are invalid by the specification and are ignored. */
static const char *absolute_env(const char *name) {
    const char *v = getenv(name);
    return v && v[0] == '/' ? v : NULL;
}

char *cairn_default_models_dir(cairn_err *err) {
    cairn_buf path = {0};
    int rc;
#if defined(__APPLE__)
    const char *home = absolute_env("HOME");
    if (!home) {
        cairn_fail(err, "cannot find the models directory: HOME is not set");
        return NULL;
    }
    rc = cairn_buf_printf(&path, "%s/Library/Application Support/cairn/models", home);
#else
    const char *data = absolute_env("XDG_DATA_HOME");
    const char *home = absolute_env("HOME");
    if (data) {
        rc = cairn_buf_printf(&path, "%s/cairn/models", data);
    } else if (home) {
        rc = cairn_buf_printf(&path, "%s/.local/share/cairn/models", home);
    } else {
        cairn_fail(err, "cannot find the models directory: neither XDG_DATA_HOME nor HOME is set");
        return NULL;
    }
#endif
    if (rc != 0) {
        cairn_buf_free(&path);
        cairn_fail(err, "out of memory");
        return NULL;
    }
    return cairn_buf_take(&path);
}

int cairn_service_install(const char *name, const char *display_name, const char *args,
                          cairn_err *err) {
    (void)display_name;
    (void)args;
    return cairn_fail(err,
                      "cannot install service '%s': OS services are not supported on this OS "
                      "(%s); run 'cairn run' from your init system (e.g. a systemd unit)",
                      name, cairn_platform_name());
}

int cairn_service_uninstall(const char *name, cairn_err *err) {
    return cairn_fail(err,
                      "cannot remove service '%s': OS services are not supported on this OS (%s)",
                      name, cairn_platform_name());
}

int cairn_service_run(const char *name, int (*body)(void *user), void (*stop)(void *user),
                      void *user, cairn_err *err) {
    (void)body;
    (void)stop;
    (void)user;
    return cairn_fail(err,
                      "cannot run as service '%s': that is for the Windows Service Control "
                      "Manager; on %s, have systemd or launchd run 'cairn run'",
                      name, cairn_platform_name());
}

bool cairn_service_exists(const char *name) {
    (void)name;
    return false;
}

/* --- child process trees ------------------------------------------------------------- */

struct cairn_process_tree {
    pid_t pgid; /* the child's pid, which setsid made its group's id */
};

unsigned int cairn_process_spawn_flags(void) {
    return UV_PROCESS_DETACHED; /* setsid() in the child: a process group of its own */
}

int cairn_process_tree_attach(int pid, cairn_process_tree **out, cairn_err *err) {
    if (pid <= 0) {
        return cairn_fail(err, "no such process: %d", pid);
    }
    cairn_process_tree *t = calloc(1, sizeof *t);
    if (!t) {
        return cairn_fail(err, "out of memory");
    }
    t->pgid = (pid_t)pid;
    *out = t;
    return 0;
}

/* A group id is never handed to a new process while any member of the group lives (POSIX
 * requires it), so signalling the group after the leader was reaped reaches only its own
 * leftover children, or nobody. */
void cairn_process_tree_kill(cairn_process_tree *t) {
    if (!t) {
        return;
    }
    if (kill(-t->pgid, SIGKILL) != 0 && errno == ESRCH) {
        (void)kill(t->pgid, SIGKILL); /* not a group leader (yet): the child alone */
    }
}

void cairn_process_tree_free(cairn_process_tree *t) {
    free(t);
}

bool cairn_process_alive(int pid) {
    return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

void cairn_ignore_broken_pipes(void) {
    (void)signal(SIGPIPE, SIG_IGN);
}

void cairn_stdin_binary(void) {}
