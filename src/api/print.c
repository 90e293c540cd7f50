/* api: the `cairn nodes` table, from a GET /state answer (see api.h).
 *
 * The answer comes from the network, so nothing in it is trusted: every field may be
 * missing or of another type (it prints as "-"), and text is made printable before it
 * reaches a terminal (a control character could otherwise drive the user's terminal). */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api/api.h"
#include "util/json.h"

enum { COL_NODE, COL_ADDRESS, COL_LINK, COL_MEMORY, COL_CPU, COL_OS, COL_MODELS, N_COLS };

static const char *const col_names[N_COLS] = {"NODE", "ADDRESS", "LINK",  "MEMORY",
                                              "CPU",  "OS",      "MODELS"};
/* Widest a column may grow, in characters (0: as wide as its widest cell); longer text is
 * cut with "...", so one long CPU name does not push the table past a terminal's width. */
static const size_t col_max[N_COLS] = {0, 0, 0, 0, 30, 24, 0};

/* Room for any one cell: ids and hosts are at most 63 bytes in a valid state. */
#define CELL_SIZE 256

/* ---- reading fields ---- */

static const char *get_str(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A non-negative whole number below 2^53 (what JSON carries exactly); false otherwise. */
static bool get_u64(const cJSON *obj, const char *key, uint64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble >= 9007199254740992.0) {
        return false;
    }
    *out = (uint64_t)v->valuedouble;
    return true;
}

/* Cuts printable text to at most max characters, ending in "..." when cut. */
static void cut_text(char *s, size_t max) {
    if (max < 4 || cairn_utf8_count(s) <= max) {
        return;
    }
    size_t chars = 0, i = 0;
    for (; s[i]; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80 && chars++ == max - 3) {
            break;
        }
    }
    memcpy(s + i, "...", 4);
}

/* ---- cells ---- */

/* 11.2/23.4 GiB: both in the unit that suits the total. */
static void format_memory(const cJSON *profile, char *out, size_t size) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    uint64_t total = 0, avail = 0;
    if (!get_u64(profile, "memory_total", &total) || total == 0) {
        snprintf(out, size, "-");
        return;
    }
    size_t u = 0;
    double scale = 1.0;
    while (u + 1 < CAIRN_ARRAY_LEN(units) && (double)total >= scale * 1024.0) {
        scale *= 1024.0;
        u++;
    }
    if (get_u64(profile, "memory_available", &avail)) {
        snprintf(out, size, "%.1f/%.1f %s", (double)avail / scale, (double)total / scale, units[u]);
    } else {
        snprintf(out, size, "?/%.1f %s", (double)total / scale, units[u]);
    }
}

static void format_cpu(const cJSON *profile, char *out, size_t size) {
    uint64_t cores = 0;
    const char *model = get_str(profile, "cpu_model");
    bool has_cores = get_u64(profile, "cpu_cores", &cores) && cores > 0;
    char text[CELL_SIZE];
    if (has_cores && model && model[0]) {
        snprintf(text, sizeof text, "%" PRIu64 "x %s", cores, model);
    } else if (has_cores) {
        snprintf(text, sizeof text, "%" PRIu64 " cores", cores);
    } else {
        snprintf(text, sizeof text, "%s", model && model[0] ? model : "-");
    }
    cairn_utf8_printable_copy(out, size, text);
}

/* The first address as host:port ([host]:port for IPv6). */
static void format_address(const cJSON *node, char *out, size_t size) {
    const cJSON *addrs = cJSON_GetObjectItemCaseSensitive(node, "addresses");
    const cJSON *first = cJSON_IsArray(addrs) ? cJSON_GetArrayItem(addrs, 0) : NULL;
    const char *host = get_str(first, "host");
    uint64_t port = 0;
    if (!host || !host[0]) {
        snprintf(out, size, "-");
        return;
    }
    char text[CELL_SIZE];
    bool v6 = strchr(host, ':') != NULL;
    if (get_u64(first, "port", &port)) {
        snprintf(text, sizeof text, v6 ? "[%.200s]:%" PRIu64 : "%.200s:%" PRIu64, host, port);
    } else {
        snprintf(text, sizeof text, v6 ? "[%.200s]" : "%.200s", host);
    }
    cairn_utf8_printable_copy(out, size, text);
}

static void format_cell(const cJSON *node, const char *master, int col, char *out, size_t size) {
    const cJSON *profile = cJSON_GetObjectItemCaseSensitive(node, "profile");
    const cJSON *link = cJSON_GetObjectItemCaseSensitive(node, "connected");
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(profile, "model_files");
    const char *id = get_str(node, "id");
    const char *os = get_str(profile, "os");
    char text[CELL_SIZE];
    switch (col) {
    case COL_NODE:
        snprintf(text, sizeof text, "%.200s%s", id && id[0] ? id : "-",
                 id && master && id[0] && strcmp(id, master) == 0 ? " *" : "");
        cairn_utf8_printable_copy(out, size, text);
        break;
    case COL_ADDRESS: format_address(node, out, size); break;
    case COL_LINK:
        snprintf(out, size, "%s", !cJSON_IsBool(link) ? "-" : cJSON_IsTrue(link) ? "up" : "down");
        break;
    case COL_MEMORY: format_memory(profile, out, size); break;
    case COL_CPU: format_cpu(profile, out, size); break;
    case COL_OS: cairn_utf8_printable_copy(out, size, os && os[0] ? os : "-"); break;
    default:
        if (cJSON_IsArray(files)) {
            snprintf(out, size, "%d", cJSON_GetArraySize(files));
        } else {
            snprintf(out, size, "-");
        }
        break;
    }
    cut_text(out, col_max[col]);
}

/* ---- the table ---- */

static void print_row(FILE *out, const char cells[N_COLS][CELL_SIZE], const size_t *widths) {
    for (int c = 0; c < N_COLS; c++) {
        fputs(cells[c], out);
        if (c + 1 < N_COLS) {
            for (size_t w = cairn_utf8_count(cells[c]); w < widths[c] + 2; w++) {
                fputc(' ', out);
            }
        }
    }
    fputc('\n', out);
}

static void print_summary(const cJSON *root, size_t n_nodes, FILE *out) {
    char cluster[CELL_SIZE], master[CELL_SIZE];
    const char *c = get_str(root, "cluster");
    const char *m = get_str(root, "master");
    cairn_utf8_printable_copy(cluster, sizeof cluster, c && c[0] ? c : "-");
    cairn_utf8_printable_copy(master, sizeof master, m && m[0] ? m : "none elected");
    fprintf(out, "cluster %s, master %s", cluster, master);
    uint64_t term = 0, last = 0;
    if (get_u64(root, "term", &term)) {
        fprintf(out, ", term %" PRIu64, term);
    }
    if (get_u64(root, "last_index", &last)) {
        fprintf(out, ", last index %" PRIu64, last);
    }
    fprintf(out, ", %zu node%s\n", n_nodes, n_nodes == 1 ? "" : "s");
}

int cairn_api_print_nodes(const char *state_json, FILE *out, cairn_err *err) {
    cJSON *root = cairn_json_parse_str(state_json, "the cluster state", err);
    if (!root) {
        return -1;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return cairn_fail(err, "the cluster state is not a JSON object");
    }
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(root, "nodes");
    const char *master = get_str(root, "master");
    size_t n_nodes = cJSON_IsArray(nodes) ? (size_t)cJSON_GetArraySize(nodes) : 0;
    print_summary(root, n_nodes, out);
    if (n_nodes == 0) {
        cJSON_Delete(root);
        return 0;
    }
    /* Two passes over the nodes (measure, then print) keep memory constant however many
     * nodes the answer lists. */
    size_t widths[N_COLS];
    char cells[N_COLS][CELL_SIZE];
    for (int c = 0; c < N_COLS; c++) {
        widths[c] = strlen(col_names[c]);
    }
    const cJSON *node = NULL;
    cJSON_ArrayForEach(node, nodes) {
        for (int c = 0; c < N_COLS; c++) {
            format_cell(node, master, c, cells[c], CELL_SIZE);
            size_t w = cairn_utf8_count(cells[c]);
            widths[c] = w > widths[c] ? w : widths[c];
        }
    }
    for (int c = 0; c < N_COLS; c++) {
        snprintf(cells[c], CELL_SIZE, "%s", col_names[c]);
    }
    print_row(out, (const char(*)[CELL_SIZE])cells, widths);
    cJSON_ArrayForEach(node, nodes) {
        for (int c = 0; c < N_COLS; c++) {
            format_cell(node, master, c, cells[c], CELL_SIZE);
        }
        print_row(out, (const char(*)[CELL_SIZE])cells, widths);
    }
    cJSON_Delete(root);
    return 0;
}
