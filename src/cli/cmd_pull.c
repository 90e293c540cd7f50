/* cli: `cairn pull REPO[:FILE]`: a GGUF file from Hugging Face (or the endpoint in
 * CAIRN_HF_ENDPOINT) into this machine's models directory, resumable and checksummed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "cli/cli.h"
#include "platform/platform.h"

typedef struct pull_view {
    bool terminal;
    double started, last_shown;
} pull_view;

static void show_progress(void *user, uint64_t done, uint64_t total) {
    pull_view *v = user;
    double now = cairn_now_seconds();
    if (!v->terminal || (now - v->last_shown < 0.2 && done < total)) {
        return;
    }
    v->last_shown = now;
    double rate = done / 1048576.0 / (now - v->started > 0.001 ? now - v->started : 0.001);
    fprintf(stderr, "\r  %3d%%  %8.1f / %.1f MiB  %6.1f MiB/s ",
            total ? (int)(done * 100 / total) : 0, done / 1048576.0, total / 1048576.0, rate);
    fflush(stderr);
}

static void show_retry(void *user, const char *why) {
    (void)user;
    fprintf(stderr, "\ninterrupted (%s): resuming\n", why);
}

/* REPO without :FILE: the one .gguf file the repository lists. */
static int pick_file(const char *endpoint, const char *repo, char *file, size_t size,
                     const char *token) {
    cairn_err err = {{0}};
    if (cairn_hf_pick_gguf(endpoint, repo, token, file, size, &err) != 0) {
        cli_error("%s", err.msg);
        return CLI_ERROR;
    }
    return CLI_OK;
}

int cmd_pull(int argc, char **argv) {
    const char *models_dir = NULL;
    const cli_option options[] = {
        {"models-dir", 0, OPT_STR, &models_dir, "DIR", "where to put it (default: the node's)"},
    };
    const cli_command cmd = {"pull",
                             "usage: cairn pull REPO[:FILE] [--models-dir DIR]",
                             "Downloads a GGUF file from Hugging Face into the models "
                             "directory, resuming interrupted transfers and checking its "
                             "SHA-256. HF_TOKEN: a token for gated repositories; "
                             "CAIRN_HF_ENDPOINT: another server.",
                             options,
                             CAIRN_ARRAY_LEN(options),
                             1};
    const char *spec = NULL;
    int status;
    if (!cli_parse_args(&cmd, argc, argv, &spec, &status)) {
        return status;
    }
    const char *endpoint = cairn_hf_endpoint();
    const char *token = getenv("HF_TOKEN");
    char repo[512], file[512] = "";
    const char *colon = strchr(spec, ':');
    snprintf(repo, sizeof repo, "%.*s", colon ? (int)(colon - spec) : (int)strlen(spec), spec);
    if (!cairn_hf_repo_ok(repo) || (colon && !cairn_hf_file_ok(colon + 1))) {
        cli_error("give REPO[:FILE], e.g. org/model-GGUF:model-Q4_0.gguf");
        return CLI_USAGE;
    }
    if (colon) {
        snprintf(file, sizeof file, "%s", colon + 1);
    } else if ((status = pick_file(endpoint, repo, file, sizeof file, token)) != CLI_OK) {
        return status;
    }
    if (!cairn_hf_file_ok(file)) {
        cli_error("%s lists a file name that cannot be pulled", repo);
        return CLI_ERROR;
    }
    const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
    cairn_err err = {{0}};
    char *dir = models_dir ? cairn_strdup(models_dir) : cairn_default_models_dir(&err);
    if (!dir || cairn_make_dirs(dir, &err) != 0) {
        cli_error("models directory: %s", err.msg);
        free(dir);
        return CLI_ERROR;
    }
    char url[2048], path[4096];
    snprintf(url, sizeof url, "%s/%s/resolve/main/%s", endpoint, repo, file);
    snprintf(path, sizeof path, "%s/%s", dir, base);
    free(dir);
    pull_view view = {cairn_is_terminal(stderr), cairn_now_seconds(), 0};
    cairn_download_options opt = {token, show_progress, show_retry, &view};
    char sha[65] = "";
    int rc = cairn_download(url, path, &opt, sha, &err);
    if (view.terminal) {
        fputc('\n', stderr);
    }
    if (rc != 0) {
        cli_error("%s", err.msg);
        return CLI_ERROR;
    }
    printf("%s%s%s\n", path, sha[0] ? "  sha256 " : "  (the server named no checksum)", sha);
    return CLI_OK;
}
