/*
 * platform: everything that differs between Windows, macOS and Linux, behind one API:
 * read-only file mappings, files by UTF-8 name, clocks, CPU and memory facts, terminals,
 * command-line arguments, per-user data directories, OS service registration, and the
 * containment of child process trees. Sockets, pipes, timers and spawning processes are not
 * here: they go through libuv everywhere (save finding a connection another library owns).
 *
 * Each function has one implementation per platform family (platform_posix.c,
 * platform_win32.c). No other module may use an OS header or an #ifdef for the platform.
 */
#ifndef CAIRN_PLATFORM_H
#define CAIRN_PLATFORM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "util/util.h"

/* A whole file mapped read-only. Pages are read only when touched, so a shard that uses a
 * few tensors of a large file reads only those. */
typedef struct cairn_mapped_file {
    const uint8_t *data;
    uint64_t size;
    void *os_handle; /* platform-specific; NULL on POSIX */
} cairn_mapped_file;

int cairn_map_file(const char *path, cairn_mapped_file *out, cairn_err *err);
void cairn_unmap_file(cairn_mapped_file *map);
/* Counts the pages of [offset, offset+len) that are resident in memory (for tests and
 * benchmarks that check what a shard touched); -1 where the OS cannot tell. */
int64_t cairn_mapped_resident_bytes(const cairn_mapped_file *map, uint64_t offset, uint64_t len);
/* Tells the OS this process is done reading [offset, offset+len) of the mapping, so those
 * pages stop counting against it (the file is untouched; a later read maps them again). */
void cairn_mapped_release(const cairn_mapped_file *map, uint64_t offset, uint64_t len);
/* Starts reading exactly [offset, offset+len) of the mapping from disk, so a shard's load
 * streams its tensors (mappings are otherwise random access: no read-around into other
 * shards' data). A hint: a no-op where unsupported. */
void cairn_mapped_prefetch(const cairn_mapped_file *map, uint64_t offset, uint64_t len);
/* Drops a file's pages from the OS file cache (for tests of what a load reads); -1 where the
 * OS does not allow it. */
int cairn_file_evict_cache(const char *path, cairn_err *err);
/* Asks for large pages behind [ptr, ptr+len) of fresh anonymous memory, before it is first
 * written. Streaming gigabytes of weights through 4 KiB pages costs a TLB miss per page,
 * which some virtual machines make very expensive. A hint: ignored where unsupported. */
void cairn_advise_huge_pages(void *ptr, size_t len);

/* Seconds from an arbitrary start, monotonic, sub-microsecond resolution. */
double cairn_now_seconds(void);
/* Wall-clock time: milliseconds since 1970-01-01T00:00:00Z (for log timestamps; it may jump,
 * so never use it to measure durations). */
int64_t cairn_wall_clock_ms(void);
/* Blocks the calling thread for at least ms milliseconds (no-op for ms <= 0). */
void cairn_sleep_ms(int ms);
/* Logical CPUs this process may run on. */
int cairn_cpu_count(void);
/* Total and currently available physical memory in bytes (0 if unknown). */
uint64_t cairn_memory_total(void);
uint64_t cairn_memory_available(void);
/* Peak resident set size of this process in bytes (0 if unknown). */
uint64_t cairn_peak_rss(void);
/* Files, sockets and other OS handles this process holds open (-1 if unknown): a figure
 * for finding leaks in long runs. */
int64_t cairn_open_handle_count(void);
/* CPU model name into out (empty if unknown). */
void cairn_cpu_model(char *out, size_t out_len);
/* One of this process's TCP connections, as seen from its server end. */
typedef struct cairn_socket_peer {
    char host[64]; /* the client's IP address as text */
    uint16_t port; /* the client's port */
    intptr_t handle;
    bool unread; /* it holds received bytes no one has read yet */
} cairn_socket_peer;
/* This process's connected TCP sockets whose local port is local_port, i.e. the clients of
 * a server on it, into out[max]: for a server library that keeps its sockets to itself (the
 * API's civetweb). Returns how many there are (only the first max are written), -1 when
 * the OS cannot tell. */
int cairn_socket_peers(uint16_t local_port, cairn_socket_peer *out, size_t max);
/* Ends receiving on a socket cairn_socket_peers listed, so the thread blocked reading it
 * wakes at once; a last answer may still be sent where the OS allows (POSIX; Windows shuts
 * both ways). Returns 0 or -1. */
int cairn_socket_shutdown(intptr_t handle);

bool cairn_is_terminal(FILE *stream);
/* Makes stdout/stderr accept UTF-8 and write exactly the bytes the program prints, so output
 * is byte-identical on every platform (no "\r\n" translation on Windows). Call once, first. */
void cairn_console_init(void);

/* Makes stdin read bytes exactly as sent (no "\r\n" translation and no end of file at
 * byte 0x1A on Windows), for programs that take binary frames on stdin. */
void cairn_stdin_binary(void);

/* "linux", "windows", "macos" or "unix": for messages and version output. */
const char *cairn_platform_name(void);

/* Replaces argc/argv with the command line in UTF-8 (Windows hands main() the arguments in
 * the ANSI code page; elsewhere they already are UTF-8 and nothing changes). The new argv
 * lives until the process exits. Call at the top of main(). */
int cairn_args_utf8(int *argc, char ***argv, cairn_err *err);

/* fopen() for a UTF-8 path (on Windows a plain fopen() takes the ANSI code page).
 * Returns NULL with errno set, like fopen(). */
FILE *cairn_fopen(const char *path, const char *mode);
/* The size of a file in bytes (64-bit everywhere); -1 when it cannot be read. */
int64_t cairn_file_size(const char *path);
/* Renames from to to, replacing an existing to (rename() refuses that on Windows). */
int cairn_replace_file(const char *from, const char *to, cairn_err *err);

/* Creates the directory path (its parent must exist); succeeds if it is a directory already. */
int cairn_make_dir(const char *path, cairn_err *err);
/* Bytes this user may still write on the file system that holds dir. */
int cairn_disk_free(const char *dir, uint64_t *bytes, cairn_err *err);

/* Called by cairn_list_dir for one regular file: its UTF-8 name (no directory part) and its
 * size in bytes. Returning -1 (with err set) stops the listing, which then returns -1. */
typedef int (*cairn_dir_file_fn)(const char *name, uint64_t size, void *user, cairn_err *err);
/* Calls fn for every regular file directly in dir, in no particular order: subdirectories
 * and other non-files are skipped, never entered. A symbolic link counts as what it points
 * to, so a model linked into the directory is listed with the target's size. */
int cairn_list_dir(const char *dir, cairn_dir_file_fn fn, void *user, cairn_err *err);

/* The OS with its version, for people: e.g. "Ubuntu 24.04.1 LTS (Linux 6.8.0-45-generic)",
 * "macOS (Darwin 23.4.0)", "Windows 11 Pro 23H2 (build 22631)". Empty if unknown; cut to
 * out_len at a character boundary. */
void cairn_os_description(char *out, size_t out_len);

/* Where models live by default, as a newly allocated UTF-8 path the caller frees:
 * %LOCALAPPDATA%\cairn\models on Windows, ~/Library/Application Support/cairn/models on
 * macOS, $XDG_DATA_HOME/cairn/models (default ~/.local/share/cairn/models) elsewhere.
 * Only computes the path; nothing is created. */
char *cairn_default_models_dir(cairn_err *err);

/* Registers this executable as an OS service that runs `<this exe> ARGS` at boot (Windows:
 * the Service Control Manager, automatic start, as LocalSystem), or removes it again.
 * Fails with a clear message where the OS has no such service manager support in cairn. */
int cairn_service_install(const char *name, const char *display_name, const char *args,
                          cairn_err *err);
int cairn_service_uninstall(const char *name, cairn_err *err);
/* Runs body(user) as the service `name` when the OS service manager started this process
 * (Windows: connects to the Service Control Manager, reports the service running, and calls
 * stop(user) from the manager's thread when it is asked to stop or the machine shuts down;
 * stop must be thread-safe and make body return). Returns body's status, or -1 with a message
 * when this process was not started by the service manager. */
int cairn_service_run(const char *name, int (*body)(void *user), void (*stop)(void *user),
                      void *user, cairn_err *err);
/* True when a service of that name is registered (false also where unsupported). */
bool cairn_service_exists(const char *name);

/* ---- child process trees ----
 *
 * A child spawned with libuv (uv_spawn with cairn_process_spawn_flags()) is contained with
 * cairn_process_tree_attach() right after the spawn, so that killing it also kills whatever
 * it started: on POSIX the child leads a process group of its own (UV_PROCESS_DETACHED makes
 * it call setsid), on Windows it is put in a job object. */
typedef struct cairn_process_tree cairn_process_tree;

/* The uv_process_flags bits a contained child needs (beyond the caller's own). */
unsigned int cairn_process_spawn_flags(void);
/* Takes charge of the tree of the child pid, spawned a moment ago with the flags above. */
int cairn_process_tree_attach(int pid, cairn_process_tree **out, cairn_err *err);
/* Kills every process of the tree at once (SIGKILL / TerminateJobObject), the child
 * included. Safe to call again, and after the child exited (the rest of its tree dies). */
void cairn_process_tree_kill(cairn_process_tree *t);
/* Forgets the tree; on Windows, what is left of it dies (the job kills on close). Call it
 * once the child has exited and been reaped. NULL is fine. */
void cairn_process_tree_free(cairn_process_tree *t);
/* Whether a process with this id exists (a child not reaped yet counts): for tests and
 * leak checks. */
bool cairn_process_alive(int pid);
/* Makes a write to a pipe whose reader is gone fail with EPIPE instead of killing this
 * process with SIGPIPE (process-wide; nothing on Windows, which has no such signal). */
void cairn_ignore_broken_pipes(void);

#endif
