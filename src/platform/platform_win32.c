/* platform on Windows 10/11 through the Win32 API: see platform.h.
 * cairn speaks UTF-8 everywhere; text crosses into Win32 as UTF-16 (the W functions), never
 * through the ANSI code page, so any file name and any argument works. */
#undef _WIN32_WINNT
#define _WIN32_WINNT 0x0A00 /* Windows 10 */
#define WIN32_LEAN_AND_MEAN
#define NOMINMAX
#include <windows.h>

#include <fcntl.h>
#include <io.h>
#include <psapi.h>
#include <shellapi.h>

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "platform/platform_internal.h"

/* --- text conversion and error messages --------------------------------------------- */

/* Newly allocated UTF-16 copy of a UTF-8 string; NULL if s is not valid UTF-8 or memory
 * runs out. */
static wchar_t *utf8_to_wide(const char *s) {
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
    if (n <= 0) {
        return NULL;
    }
    wchar_t *w = malloc((size_t)n * sizeof(*w));
    if (w && MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n) != n) {
        free(w);
        w = NULL;
    }
    return w;
}

/* Writes the UTF-8 form of w into out (truncated to whole characters, always terminated). */
static void wide_to_utf8_into(const wchar_t *w, char *out, size_t out_len) {
    if (out_len == 0) {
        return;
    }
    int cap = out_len > INT_MAX ? INT_MAX : (int)out_len;
    int n = WideCharToMultiByte(CP_UTF8, 0, w, -1, out, cap, NULL, NULL);
    if (n <= 0) {
        /* Too long: convert a prefix and cut it at a character boundary. */
        n = WideCharToMultiByte(CP_UTF8, 0, w, (int)wcslen(w), out, cap - 1, NULL, NULL);
        n = n > 0 ? n : 0;
        n = (int)cairn_utf8_complete_prefix(out, (size_t)n);
        out[n] = '\0';
    }
}

/* Newly allocated UTF-8 copy of a UTF-16 string (NULL when memory runs out). */
static char *wide_to_utf8(const wchar_t *w) {
    int n = WideCharToMultiByte(CP_UTF8, 0, w, -1, NULL, 0, NULL, NULL);
    if (n <= 0) {
        return NULL;
    }
    char *s = malloc((size_t)n);
    if (s && WideCharToMultiByte(CP_UTF8, 0, w, -1, s, n, NULL, NULL) != n) {
        free(s);
        s = NULL;
    }
    return s;
}

/* The system's own one-line description of a Win32 error code, in UTF-8. */
static void win32_message(DWORD code, char *out, size_t out_len) {
    wchar_t text[256];
    DWORD n = FormatMessageW(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, code,
                             0, text, (DWORD)CAIRN_ARRAY_LEN(text), NULL);
    while (n > 0 && (text[n - 1] == L'\r' || text[n - 1] == L'\n' || text[n - 1] == L'.' ||
                     text[n - 1] == L' ')) {
        n--;
    }
    if (n == 0) {
        snprintf(out, out_len, "Windows error %lu", (unsigned long)code);
        return;
    }
    text[n] = L'\0';
    wide_to_utf8_into(text, out, out_len);
}

/* cairn_fail with "what: <system message>" for a Win32 error code. */
static int fail_win32(cairn_err *err, DWORD code, const char *what) {
    char msg[256];
    win32_message(code, msg, sizeof(msg));
    return cairn_fail(err, "%s: %s", what, msg);
}

static int fail_path(cairn_err *err, DWORD code, const char *verb, const char *path) {
    char what[400];
    snprintf(what, sizeof(what), "cannot %s %s", verb, path);
    return fail_win32(err, code, what);
}

/* --- files ---------------------------------------------------------------------------- */

int cairn_map_file(const char *path, cairn_mapped_file *out, cairn_err *err) {
    memset(out, 0, sizeof(*out));
    wchar_t *wpath = utf8_to_wide(path);
    if (!wpath) {
        return cairn_fail(err, "cannot open %s: the path is not valid UTF-8", path);
    }
    DWORD attributes = GetFileAttributesW(wpath);
    if (attributes != INVALID_FILE_ATTRIBUTES && (attributes & FILE_ATTRIBUTE_DIRECTORY)) {
        free(wpath);
        return cairn_fail(err, "%s is not a regular file", path);
    }
    /* Others may read, rewrite or replace the file meanwhile, as POSIX allows. */
    HANDLE file =
        CreateFileW(wpath, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                    NULL, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
    free(wpath);
    if (file == INVALID_HANDLE_VALUE) {
        return fail_path(err, GetLastError(), "open", path);
    }
    LARGE_INTEGER size;
    if (GetFileType(file) != FILE_TYPE_DISK) {
        CloseHandle(file);
        return cairn_fail(err, "%s is not a regular file", path);
    }
    if (!GetFileSizeEx(file, &size)) {
        DWORD e = GetLastError();
        CloseHandle(file);
        return fail_path(err, e, "stat", path);
    }
    if (size.QuadPart == 0) {
        CloseHandle(file);
        return cairn_fail(err, "%s is empty", path);
    }
    if ((uint64_t)size.QuadPart > (uint64_t)SIZE_MAX) {
        CloseHandle(file);
        return cairn_fail(err, "%s is too large to map", path);
    }
    HANDLE mapping = CreateFileMappingW(file, NULL, PAGE_READONLY, 0, 0, NULL);
    DWORD e = GetLastError();
    CloseHandle(file); /* the mapping keeps the file open */
    if (!mapping) {
        return fail_path(err, e, "map", path);
    }
    void *data = MapViewOfFile(mapping, FILE_MAP_READ, 0, 0, 0);
    if (!data) {
        e = GetLastError();
        CloseHandle(mapping);
        return fail_path(err, e, "map", path);
    }
    out->data = data;
    out->size = (uint64_t)size.QuadPart;
    out->os_handle = mapping;
    return 0;
}

void cairn_unmap_file(cairn_mapped_file *map) {
    if (map->data) {
        UnmapViewOfFile(map->data);
    }
    if (map->os_handle) {
        CloseHandle(map->os_handle);
    }
    memset(map, 0, sizeof(*map));
}

/* Windows tells which pages are in this process's working set, which is what a shard
 * touched (pages only in the system's file cache are not counted). */
int64_t cairn_mapped_resident_bytes(const cairn_mapped_file *map, uint64_t offset, uint64_t len) {
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    uint64_t page = si.dwPageSize;
    if (page == 0 || offset > map->size) {
        return -1;
    }
    if (len > map->size - offset) {
        len = map->size - offset;
    }
    uint64_t start = offset / page * page;
    uint64_t end = offset + len;
    size_t pages = (size_t)((end - start + page - 1) / page);
    if (pages == 0) {
        return 0;
    }
    PSAPI_WORKING_SET_EX_INFORMATION *info = calloc(pages, sizeof(*info));
    if (!info) {
        return -1;
    }
    for (size_t i = 0; i < pages; i++) {
        info[i].VirtualAddress = (PVOID)(map->data + start + i * page);
    }
    int64_t resident = -1;
    if (pages <= MAXDWORD / sizeof(*info) &&
        QueryWorkingSetEx(GetCurrentProcess(), info, (DWORD)(pages * sizeof(*info)))) {
        resident = 0;
        for (size_t i = 0; i < pages; i++) {
            if (info[i].VirtualAttributes.Valid) {
                resident += (int64_t)page;
            }
        }
    }
    free(info);
    return resident;
}

/* Windows reads mapped files in its own clusters; an exact-range hint
 * (PrefetchVirtualMemory) would only help cold loads, so none is given. */
void cairn_mapped_prefetch(const cairn_mapped_file *map, uint64_t offset, uint64_t len) {
    (void)map;
    (void)offset;
    (void)len;
}

/* Evicting one file's pages from the standby list needs administrator rights on Windows. */
int cairn_file_evict_cache(const char *path, cairn_err *err) {
    return cairn_fail(err, "cannot evict %s from the file cache on Windows", path);
}

/* VirtualUnlock on pages that were never locked is documented to take them out of the
 * working set, which is exactly the request; it then reports ERROR_NOT_LOCKED. */
void cairn_mapped_release(const cairn_mapped_file *map, uint64_t offset, uint64_t len) {
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    uint64_t page = si.dwPageSize;
    if (page == 0 || offset >= map->size) {
        return;
    }
    /* Only whole pages inside the range: a neighbour's bytes may share the edge pages. */
    uint64_t start = (offset + page - 1) / page * page;
    uint64_t end = offset + len < map->size ? offset + len : map->size;
    end = end / page * page;
    if (end > start) {
        VirtualUnlock((void *)(map->data + start), (SIZE_T)(end - start));
    }
}

/* Windows gives large pages only to allocations made with MEM_LARGE_PAGES by an account
 * holding the "Lock pages in memory" right; memory cannot be switched afterwards. */
void cairn_advise_huge_pages(void *ptr, size_t len) {
    (void)ptr;
    (void)len;
}

int64_t cairn_file_size(const char *path) {
    wchar_t *wpath = utf8_to_wide(path);
    WIN32_FILE_ATTRIBUTE_DATA info;
    BOOL ok = wpath && GetFileAttributesExW(wpath, GetFileExInfoStandard, &info);
    free(wpath);
    if (!ok) {
        return -1;
    }
    return (int64_t)(((uint64_t)info.nFileSizeHigh << 32) | info.nFileSizeLow);
}

FILE *cairn_fopen(const char *path, const char *mode) {
    wchar_t *wpath = utf8_to_wide(path);
    wchar_t *wmode = utf8_to_wide(mode);
    FILE *f = NULL;
    if (wpath && wmode) {
        f = _wfopen(wpath, wmode);
    } else {
        errno = EINVAL;
    }
    free(wpath);
    free(wmode);
    return f;
}

int cairn_replace_file(const char *from, const char *to, cairn_err *err) {
    wchar_t *wfrom = utf8_to_wide(from);
    wchar_t *wto = utf8_to_wide(to);
    int rc = 0;
    if (!wfrom || !wto) {
        rc = cairn_fail(err, "cannot rename %s to %s: the path is not valid UTF-8", from, to);
    } else if (!MoveFileExW(wfrom, wto, MOVEFILE_REPLACE_EXISTING)) {
        char what[600];
        snprintf(what, sizeof(what), "cannot rename %s to %s", from, to);
        rc = fail_win32(err, GetLastError(), what);
    }
    free(wfrom);
    free(wto);
    return rc;
}

/* --- clocks, CPU, memory ------------------------------------------------------------ */

double cairn_now_seconds(void) {
    LARGE_INTEGER count, frequency;
    QueryPerformanceCounter(&count);
    QueryPerformanceFrequency(&frequency);
    return (double)count.QuadPart / (double)frequency.QuadPart;
}

int64_t cairn_wall_clock_ms(void) {
    /* FILETIME counts 100 ns ticks since 1601-01-01; the Unix epoch is 11644473600 s later. */
    const int64_t ticks_per_ms = 10000;
    const int64_t epoch_offset_ms = INT64_C(11644473600) * 1000;
    FILETIME ft;
    GetSystemTimePreciseAsFileTime(&ft);
    ULARGE_INTEGER ticks;
    ticks.LowPart = ft.dwLowDateTime;
    ticks.HighPart = ft.dwHighDateTime;
    return (int64_t)(ticks.QuadPart / (ULONGLONG)ticks_per_ms) - epoch_offset_ms;
}

void cairn_sleep_ms(int ms) {
    if (ms > 0) {
        Sleep((DWORD)ms);
    }
}

int cairn_cpu_count(void) {
    DWORD_PTR process_mask = 0, system_mask = 0;
    if (GetProcessAffinityMask(GetCurrentProcess(), &process_mask, &system_mask) &&
        process_mask != system_mask) {
        int n = 0;
        for (; process_mask; process_mask &= process_mask - 1) {
            n++;
        }
        return n > 0 ? n : 1;
    }
    /* Unrestricted: every processor group counts (Windows 11 spreads threads over them). */
    DWORD n = GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
    return n > 0 ? (int)n : 1;
}

uint64_t cairn_memory_total(void) {
    MEMORYSTATUSEX status = {.dwLength = sizeof(status)};
    return GlobalMemoryStatusEx(&status) ? status.ullTotalPhys : 0;
}

uint64_t cairn_memory_available(void) {
    MEMORYSTATUSEX status = {.dwLength = sizeof(status)};
    return GlobalMemoryStatusEx(&status) ? status.ullAvailPhys : 0;
}

uint64_t cairn_peak_rss(void) {
    PROCESS_MEMORY_COUNTERS counters = {.cb = sizeof(counters)};
    if (!GetProcessMemoryInfo(GetCurrentProcess(), &counters, sizeof(counters))) {
        return 0;
    }
    return (uint64_t)counters.PeakWorkingSetSize;
}

int64_t cairn_open_handle_count(void) {
    DWORD count = 0;
    return GetProcessHandleCount(GetCurrentProcess(), &count) ? (int64_t)count : -1;
}

/* Past this handle value, cairn_socket_peers looks no further. */
#define SOCKET_HANDLE_SCAN_LIMIT 0x10000

/* The client of socket s, when s is connected and its local port is local_port. */
static bool socket_peer(SOCKET s, uint16_t local_port, cairn_socket_peer *out) {
    struct sockaddr_storage local, peer;
    int local_len = sizeof local, peer_len = sizeof peer;
    if (getsockname(s, (struct sockaddr *)&local, &local_len) != 0 ||
        platform_address_port(&local) != local_port ||
        getpeername(s, (struct sockaddr *)&peer, &peer_len) != 0) {
        return false;
    }
    u_long pending = 0;
    bool unread = ioctlsocket(s, FIONREAD, &pending) == 0 && pending > 0;
    return platform_peer_named(&peer, (intptr_t)s, unread, out);
}

int cairn_socket_peers(uint16_t local_port, cairn_socket_peer *out, size_t max) {
    /* Windows lists no process's sockets: try the handle values sockets take (multiples of
     * 4); a handle that is no socket fails getsockname. Freed values are reused lowest
     * first, so the open handles lie below about 4 times their number: twice that, for
     * holes left by a peak. */
    DWORD handles = 0;
    uintptr_t limit = SOCKET_HANDLE_SCAN_LIMIT;
    if (GetProcessHandleCount(GetCurrentProcess(), &handles) &&
        8 * ((uintptr_t)handles + 256) < limit) {
        limit = 8 * ((uintptr_t)handles + 256);
    }
    size_t n = 0;
    for (uintptr_t h = 4; h < limit; h += 4) {
        cairn_socket_peer peer;
        if (socket_peer((SOCKET)h, local_port, &peer)) {
            platform_peer_add(&peer, out, max, &n);
        }
    }
    return n > INT_MAX ? INT_MAX : (int)n;
}

int cairn_socket_shutdown(intptr_t handle) {
    return shutdown((SOCKET)handle, SD_BOTH) == 0 ? 0 : -1;
}

void cairn_cpu_model(char *out, size_t out_len) {
    if (out_len == 0) {
        return;
    }
    out[0] = '\0';
    wchar_t name[256];
    DWORD size = sizeof(name);
    LSTATUS rc =
        RegGetValueW(HKEY_LOCAL_MACHINE, L"HARDWARE\\DESCRIPTION\\System\\CentralProcessor\\0",
                     L"ProcessorNameString", RRF_RT_REG_SZ, NULL, name, &size);
    if (rc != ERROR_SUCCESS) {
        return;
    }
    const wchar_t *start = name;
    while (*start == L' ') {
        start++; /* some CPUs pad their brand string on the left */
    }
    wide_to_utf8_into(start, out, out_len);
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == ' ') {
        out[--n] = '\0';
    }
}

/* --- disks, directories and the OS version ------------------------------------------- */

int cairn_make_dir(const char *path, cairn_err *err) {
    wchar_t *wpath = utf8_to_wide(path);
    if (!wpath) {
        return cairn_fail(err, "cannot create directory %s: the path is not valid UTF-8", path);
    }
    DWORD code = CreateDirectoryW(wpath, NULL) ? ERROR_SUCCESS : GetLastError();
    DWORD attributes = GetFileAttributesW(wpath);
    free(wpath);
    if (code == ERROR_SUCCESS ||
        (code == ERROR_ALREADY_EXISTS && attributes != INVALID_FILE_ATTRIBUTES &&
         (attributes & FILE_ATTRIBUTE_DIRECTORY))) {
        return 0;
    }
    return fail_path(err, code, "create directory", path);
}

int cairn_disk_free(const char *dir, uint64_t *bytes, cairn_err *err) {
    wchar_t *wdir = utf8_to_wide(dir);
    if (!wdir) {
        return cairn_fail(err, "cannot query free space of %s: the path is not valid UTF-8", dir);
    }
    /* The first value honours per-user quotas, unlike the volume's total free bytes. */
    ULARGE_INTEGER available;
    BOOL ok = GetDiskFreeSpaceExW(wdir, &available, NULL, NULL);
    free(wdir);
    if (!ok) {
        return fail_path(err, GetLastError(), "query free space of", dir);
    }
    *bytes = (uint64_t)available.QuadPart;
    return 0;
}

/* Whether a FindFirstFile entry is a file (links to directories count as directories). */
static bool is_listed_file(const WIN32_FIND_DATAW *found) {
    const DWORD skip = FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_DEVICE;
    return (found->dwFileAttributes & skip) == 0;
}

static int list_found_file(const WIN32_FIND_DATAW *found, cairn_dir_file_fn fn, void *user,
                           cairn_err *err) {
    char *name = wide_to_utf8(found->cFileName);
    if (!name) {
        return cairn_fail(err, "out of memory");
    }
    uint64_t size = ((uint64_t)found->nFileSizeHigh << 32) | found->nFileSizeLow;
    int rc = fn(name, size, user, err);
    free(name);
    return rc;
}

int cairn_list_dir(const char *dir, cairn_dir_file_fn fn, void *user, cairn_err *err) {
    cairn_buf pattern = {0};
    if (cairn_buf_printf(&pattern, "%s\\*", dir) != 0) {
        cairn_buf_free(&pattern);
        return cairn_fail(err, "out of memory");
    }
    wchar_t *wpattern = utf8_to_wide(pattern.data);
    cairn_buf_free(&pattern);
    if (!wpattern) {
        return cairn_fail(err, "cannot list %s: the path is not valid UTF-8", dir);
    }
    WIN32_FIND_DATAW found;
    HANDLE h = FindFirstFileExW(wpattern, FindExInfoBasic, &found, FindExSearchNameMatch, NULL,
                                FIND_FIRST_EX_LARGE_FETCH);
    free(wpattern);
    if (h == INVALID_HANDLE_VALUE) {
        return fail_path(err, GetLastError(), "list", dir);
    }
    int rc = 0;
    do {
        rc = is_listed_file(&found) ? list_found_file(&found, fn, user, err) : 0;
    } while (rc == 0 && FindNextFileW(h, &found));
    DWORD last = GetLastError();
    FindClose(h);
    if (rc == 0 && last != ERROR_NO_MORE_FILES) {
        return fail_path(err, last, "list", dir);
    }
    return rc;
}

/* One string value of the key that describes the installed Windows, in UTF-8 (empty if
 * absent). */
static void read_version_value(const wchar_t *name, char *out, size_t out_len) {
    wchar_t value[128];
    DWORD size = sizeof(value);
    LSTATUS rc =
        RegGetValueW(HKEY_LOCAL_MACHINE, L"SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion", name,
                     RRF_RT_REG_SZ, NULL, value, &size);
    if (rc != ERROR_SUCCESS) {
        value[0] = L'\0';
    }
    wide_to_utf8_into(value, out, out_len);
}

void cairn_os_description(char *out, size_t out_len) {
    if (out_len == 0) {
        return;
    }
    char product[128], display[64], build[32];
    read_version_value(L"ProductName", product, sizeof(product));
    read_version_value(L"DisplayVersion", display, sizeof(display));
    read_version_value(L"CurrentBuild", build, sizeof(build));
    if (!product[0]) {
        snprintf(product, sizeof(product), "Windows");
    }
    /* Windows 11 kept "Windows 10" as its ProductName; its builds start at 22000. */
    if (strtoul(build, NULL, 10) >= 22000 && strncmp(product, "Windows 10", 10) == 0) {
        product[9] = '1';
    }
    snprintf(out, out_len, "%s%s%s%s%s%s", product, display[0] ? " " : "", display,
             build[0] ? " (build " : "", build, build[0] ? ")" : "");
    out[cairn_utf8_complete_prefix(out, strlen(out))] = '\0';
}

/* --- console and command line ---------------------------------------------------------- */

/* A console, not merely a character device: the NUL device is one too. */
bool cairn_is_terminal(FILE *stream) {
    HANDLE h = (HANDLE)_get_osfhandle(_fileno(stream));
    DWORD mode;
    return h != INVALID_HANDLE_VALUE && GetFileType(h) == FILE_TYPE_CHAR &&
           GetConsoleMode(h, &mode);
}

static void enable_escape_sequences(DWORD which) {
    HANDLE h = GetStdHandle(which);
    DWORD mode;
    if (h != INVALID_HANDLE_VALUE && GetConsoleMode(h, &mode)) {
        SetConsoleMode(h, mode | ENABLE_VIRTUAL_TERMINAL_PROCESSING);
    }
}

void cairn_console_init(void) {
    SetConsoleOutputCP(CP_UTF8);
    SetConsoleCP(CP_UTF8);
    enable_escape_sequences(STD_OUTPUT_HANDLE);
    enable_escape_sequences(STD_ERROR_HANDLE);
    /* Output is UTF-8 text with "\n" line ends on every platform; the C runtime's text mode
     * would add "\r" before each. stdin keeps text mode so "\r\n" input reads as lines. */
    fflush(stdout);
    fflush(stderr);
    _setmode(_fileno(stdout), _O_BINARY);
    _setmode(_fileno(stderr), _O_BINARY);
}

const char *cairn_platform_name(void) {
    return "windows";
}

int cairn_args_utf8(int *argc, char ***argv, cairn_err *err) {
    int n = 0;
    wchar_t **wide = CommandLineToArgvW(GetCommandLineW(), &n);
    if (!wide) {
        return fail_win32(err, GetLastError(), "cannot read the command line");
    }
    /* One block: the pointer array, then the strings it points to. */
    size_t total = ((size_t)n + 1) * sizeof(char *);
    for (int i = 0; i < n; i++) {
        total += (size_t)WideCharToMultiByte(CP_UTF8, 0, wide[i], -1, NULL, 0, NULL, NULL);
    }
    char **utf8 = malloc(total);
    if (!utf8) {
        LocalFree(wide);
        return cairn_fail(err, "out of memory");
    }
    char *text = (char *)(utf8 + n + 1);
    char *text_end = (char *)utf8 + total;
    for (int i = 0; i < n; i++) {
        int len =
            WideCharToMultiByte(CP_UTF8, 0, wide[i], -1, text, (int)(text_end - text), NULL, NULL);
        if (len <= 0) {
            DWORD e = GetLastError();
            LocalFree(wide);
            free(utf8);
            return fail_win32(err, e, "cannot convert the command line to UTF-8");
        }
        utf8[i] = text;
        text += len;
    }
    utf8[n] = NULL;
    LocalFree(wide);
    *argc = n;
    *argv = utf8;
    return 0;
}

/* --- per-user directories --------------------------------------------------------------- */

char *cairn_default_models_dir(cairn_err *err) {
    wchar_t base[MAX_PATH * 2];
    DWORD n = GetEnvironmentVariableW(L"LOCALAPPDATA", base, (DWORD)CAIRN_ARRAY_LEN(base));
    if (n == 0 || n >= CAIRN_ARRAY_LEN(base)) {
        cairn_fail(err, "cannot find the models directory: LOCALAPPDATA is not set");
        return NULL;
    }
    char *base_utf8 = wide_to_utf8(base);
    cairn_buf path = {0};
    if (!base_utf8 || cairn_buf_printf(&path, "%s\\cairn\\models", base_utf8) != 0) {
        free(base_utf8);
        cairn_buf_free(&path);
        cairn_fail(err, "out of memory");
        return NULL;
    }
    free(base_utf8);
    return cairn_buf_take(&path);
}

/* --- Windows services ------------------------------------------------------------------ */

/* This executable's full path (newly allocated), however long. */
static wchar_t *own_executable(void) {
    for (DWORD cap = MAX_PATH;; cap *= 2) {
        wchar_t *path = malloc((size_t)cap * sizeof(*path));
        if (!path) {
            return NULL;
        }
        DWORD n = GetModuleFileNameW(NULL, path, cap);
        if (n > 0 && n < cap) {
            return path;
        }
        free(path);
        if (n == 0 || cap > 32768) {
            return NULL;
        }
    }
}

static int open_service_manager(DWORD access, SC_HANDLE *out, cairn_err *err) {
    *out = OpenSCManagerW(NULL, NULL, access);
    if (*out) {
        return 0;
    }
    DWORD e = GetLastError();
    if (e == ERROR_ACCESS_DENIED) {
        return cairn_fail(err, "the Service Control Manager refused access: run this from a "
                               "PowerShell started as Administrator");
    }
    return fail_win32(err, e, "cannot open the Service Control Manager");
}

/* "\"C:\\path\\cairn.exe\" ARGS": the command line the service manager starts. */
static wchar_t *service_command_line(const char *args) {
    wchar_t *exe = own_executable();
    wchar_t *wargs = utf8_to_wide(args ? args : "");
    wchar_t *line = NULL;
    if (exe && wargs) {
        size_t len = wcslen(exe) + wcslen(wargs) + 4;
        line = malloc(len * sizeof(*line));
        if (line) {
            _snwprintf(line, len, L"\"%ls\"%ls%ls", exe, wargs[0] ? L" " : L"", wargs);
            line[len - 1] = L'\0';
        }
    }
    free(exe);
    free(wargs);
    return line;
}

static int create_service(SC_HANDLE manager, const char *name, const char *display_name,
                          const char *args, cairn_err *err) {
    wchar_t *wname = utf8_to_wide(name);
    wchar_t *wdisplay = utf8_to_wide(display_name ? display_name : name);
    wchar_t *command = service_command_line(args);
    int rc = 0;
    if (!wname || !wdisplay || !command) {
        rc = cairn_fail(err, "cannot install service '%s': invalid name or out of memory", name);
    } else {
        SC_HANDLE service = CreateServiceW(
            manager, wname, wdisplay, SERVICE_ALL_ACCESS, SERVICE_WIN32_OWN_PROCESS,
            SERVICE_AUTO_START, SERVICE_ERROR_NORMAL, command, NULL, NULL, NULL, NULL, NULL);
        if (!service) {
            DWORD e = GetLastError();
            if (e == ERROR_SERVICE_EXISTS || e == ERROR_DUPLICATE_SERVICE_NAME) {
                rc = cairn_fail(err, "service '%s' is already installed", name);
            } else {
                char what[300];
                snprintf(what, sizeof(what), "cannot install service '%s'", name);
                rc = fail_win32(err, e, what);
            }
        } else {
            wchar_t description[] = L"cairn node: pools this computer into a cairn cluster";
            SERVICE_DESCRIPTIONW info = {.lpDescription = description};
            ChangeServiceConfig2W(service, SERVICE_CONFIG_DESCRIPTION, &info);
            CloseServiceHandle(service);
        }
    }
    free(wname);
    free(wdisplay);
    free(command);
    return rc;
}

int cairn_service_install(const char *name, const char *display_name, const char *args,
                          cairn_err *err) {
    SC_HANDLE manager;
    if (open_service_manager(SC_MANAGER_CONNECT | SC_MANAGER_CREATE_SERVICE, &manager, err) != 0) {
        return -1;
    }
    int rc = create_service(manager, name, display_name, args, err);
    CloseServiceHandle(manager);
    return rc;
}

/* Asks a running service to stop and waits a little for it; deletion alone would only mark
 * it for removal once it stops. */
static void stop_service(SC_HANDLE service) {
    SERVICE_STATUS status;
    if (!ControlService(service, SERVICE_CONTROL_STOP, &status)) {
        return;
    }
    for (int i = 0; i < 50 && status.dwCurrentState != SERVICE_STOPPED; i++) {
        Sleep(100);
        if (!QueryServiceStatus(service, &status)) {
            return;
        }
    }
}

int cairn_service_uninstall(const char *name, cairn_err *err) {
    wchar_t *wname = utf8_to_wide(name);
    if (!wname) {
        return cairn_fail(err, "cannot remove service '%s': the name is not valid UTF-8", name);
    }
    SC_HANDLE manager;
    if (open_service_manager(SC_MANAGER_CONNECT, &manager, err) != 0) {
        free(wname);
        return -1;
    }
    int rc = 0;
    SC_HANDLE service = OpenServiceW(manager, wname, DELETE | SERVICE_STOP | SERVICE_QUERY_STATUS);
    if (!service) {
        DWORD e = GetLastError();
        if (e == ERROR_SERVICE_DOES_NOT_EXIST) {
            rc = cairn_fail(err, "service '%s' is not installed", name);
        } else {
            char what[300];
            snprintf(what, sizeof(what), "cannot open service '%s'", name);
            rc = fail_win32(err, e, what);
        }
    } else {
        stop_service(service);
        if (!DeleteService(service)) {
            char what[300];
            snprintf(what, sizeof(what), "cannot remove service '%s'", name);
            rc = fail_win32(err, GetLastError(), what);
        }
        CloseServiceHandle(service);
    }
    CloseServiceHandle(manager);
    free(wname);
    return rc;
}

/* What the Service Control Manager's callbacks need. ServiceMain gets no user pointer, so the
 * one running service is reachable through this pointer: the only mutable global, set only
 * while cairn_service_run dispatches. */
typedef struct service_run {
    const wchar_t *name;
    int (*body)(void *user);
    void (*stop)(void *user);
    void *user;
    SERVICE_STATUS_HANDLE handle;
    int result;
} service_run;
static service_run *running_service;

static void report_service(service_run *r, DWORD state, DWORD exit_code) {
    SERVICE_STATUS st = {.dwServiceType = SERVICE_WIN32_OWN_PROCESS,
                         .dwCurrentState = state,
                         .dwWin32ExitCode = exit_code,
                         .dwWaitHint = state == SERVICE_STOP_PENDING ? 10000 : 0};
    if (state == SERVICE_RUNNING) {
        st.dwControlsAccepted = SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN;
    }
    SetServiceStatus(r->handle, &st);
}

static DWORD WINAPI service_control(DWORD control, DWORD type, LPVOID data, LPVOID context) {
    (void)type;
    (void)data;
    service_run *r = context;
    switch (control) {
    case SERVICE_CONTROL_STOP:
    case SERVICE_CONTROL_SHUTDOWN:
        report_service(r, SERVICE_STOP_PENDING, NO_ERROR);
        r->stop(r->user);
        return NO_ERROR;
    case SERVICE_CONTROL_INTERROGATE: return NO_ERROR;
    default: return ERROR_CALL_NOT_IMPLEMENTED;
    }
}

static void WINAPI service_main(DWORD argc, LPWSTR *argv) {
    (void)argc;
    (void)argv;
    service_run *r = running_service;
    r->handle = RegisterServiceCtrlHandlerExW(r->name, service_control, r);
    if (!r->handle) {
        r->result = -1;
        return;
    }
    report_service(r, SERVICE_RUNNING, NO_ERROR);
    r->result = r->body(r->user);
    report_service(r, SERVICE_STOPPED, r->result == 0 ? NO_ERROR : ERROR_SERVICE_SPECIFIC_ERROR);
}

int cairn_service_run(const char *name, int (*body)(void *user), void (*stop)(void *user),
                      void *user, cairn_err *err) {
    wchar_t *wname = utf8_to_wide(name);
    if (!wname) {
        return cairn_fail(err, "service name '%s' is not valid UTF-8", name);
    }
    service_run r = {.name = wname, .body = body, .stop = stop, .user = user, .result = -1};
    SERVICE_TABLE_ENTRYW table[] = {{wname, service_main}, {NULL, NULL}};
    running_service = &r;
    BOOL ok = StartServiceCtrlDispatcherW(table);
    DWORD code = ok ? 0 : GetLastError();
    running_service = NULL;
    free(wname);
    if (!ok) {
        return cairn_fail(err, "cannot run as service '%s': %s", name,
                          code == ERROR_FAILED_SERVICE_CONTROLLER_CONNECT
                              ? "this process was not started by the Service Control Manager "
                                "(install it with 'cairn service install')"
                              : "the Service Control Manager refused to connect");
    }
    return r.result;
}

bool cairn_service_exists(const char *name) {
    wchar_t *wname = utf8_to_wide(name);
    SC_HANDLE manager = wname ? OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT) : NULL;
    SC_HANDLE service = manager ? OpenServiceW(manager, wname, SERVICE_QUERY_STATUS) : NULL;
    bool exists = service != NULL;
    if (service) {
        CloseServiceHandle(service);
    }
    if (manager) {
        CloseServiceHandle(manager);
    }
    free(wname);
    return exists;
}

/* --- child process trees ------------------------------------------------------------- */

/* A job object that kills its processes when its last handle closes. A runner that
 * started children before being put in the job would leave them out; runners start none
 * while they load, and assignment happens right after the spawn. */
struct cairn_process_tree {
    HANDLE job;     /* NULL when the job could not be set up: then the process alone */
    HANDLE process; /* the child, for TerminateProcess without a job */
};

unsigned int cairn_process_spawn_flags(void) {
    /* Not UV_PROCESS_DETACHED: that would also take the child out of libuv's own job, which
     * kills children when this process dies. Jobs nest on Windows 8 and newer. */
    return UV_PROCESS_WINDOWS_HIDE;
}

static HANDLE new_kill_on_close_job(void) {
    HANDLE job = CreateJobObjectW(NULL, NULL);
    if (!job) {
        return NULL;
    }
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION info;
    memset(&info, 0, sizeof info);
    info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
    if (!SetInformationJobObject(job, JobObjectExtendedLimitInformation, &info, sizeof info)) {
        CloseHandle(job);
        return NULL;
    }
    return job;
}

int cairn_process_tree_attach(int pid, cairn_process_tree **out, cairn_err *err) {
    cairn_process_tree *t = calloc(1, sizeof *t);
    if (!t) {
        return cairn_fail(err, "out of memory");
    }
    t->process = OpenProcess(PROCESS_SET_QUOTA | PROCESS_TERMINATE | SYNCHRONIZE |
                                 PROCESS_QUERY_LIMITED_INFORMATION,
                             FALSE, (DWORD)pid);
    if (!t->process) {
        DWORD code = GetLastError();
        free(t);
        return fail_win32(err, code, "cannot open the child process");
    }
    t->job = new_kill_on_close_job();
    if (t->job && !AssignProcessToJobObject(t->job, t->process)) {
        CloseHandle(t->job); /* e.g. a job that forbids nesting: the process alone, then */
        t->job = NULL;
    }
    *out = t;
    return 0;
}

void cairn_process_tree_kill(cairn_process_tree *t) {
    if (!t) {
        return;
    }
    if (!t->job || !TerminateJobObject(t->job, 1)) {
        TerminateProcess(t->process, 1);
    }
}

void cairn_process_tree_free(cairn_process_tree *t) {
    if (!t) {
        return;
    }
    if (t->job) {
        CloseHandle(t->job);
    }
    CloseHandle(t->process);
    free(t);
}

bool cairn_process_alive(int pid) {
    HANDLE h = OpenProcess(SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION, FALSE, (DWORD)pid);
    if (!h) {
        return false;
    }
    bool alive = WaitForSingleObject(h, 0) == WAIT_TIMEOUT;
    CloseHandle(h);
    return alive;
}

void cairn_ignore_broken_pipes(void) {}

void cairn_stdin_binary(void) {
    _setmode(_fileno(stdin), _O_BINARY);
}
