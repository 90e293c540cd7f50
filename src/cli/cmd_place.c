/* cli: `cairn place` and `cairn delete`: model instances of the running cluster, through a
 * node's API (POST /instance, GET /instance/previews, DELETE /instance/ID). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api/api.h"
#include "cli/cli.h"
#include "util/json.h"

/* Placing waits for the master to record the instance (the node bounds that at 10 s). */
#define PLACE_TIMEOUT_MS 30000

/* A placement's JSON as lines: the instance, then one line per shard. */
static void print_placement(const char *json) {
    cJSON *o = cairn_json_parse_str(json, "the placement", NULL);
    const cJSON *shards = cJSON_GetObjectItemCaseSensitive(o, "shards");
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "instance"));
    const char *model = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "model"));
    printf("instance %s of %s\n", id ? id : "?", model ? model : "?");
    const cJSON *s;
    cJSON_ArrayForEach(s, shards) {
        const char *node = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(s, "node"));
        double start = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(s, "layer_start"));
        double end = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(s, "layer_end"));
        double bytes = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(s, "bytes"));
        double avail = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(s, "available_bytes"));
        printf("  %-24s layers %3.0f..%-3.0f %10.1f MiB of %10.1f MiB free\n", node ? node : "?",
               start, end, bytes / 1048576.0, avail / 1048576.0);
    }
    cJSON_Delete(o);
}

int cmd_place(int argc, char **argv) {
    const char *address = CAIRN_API_DEFAULT_ADDRESS, *key = NULL;
    int nodes = 0;
    bool preview = false, json = false;
    const cli_option options[] = {
        CLI_API_OPTIONS(address, key),
        {"nodes", 0, OPT_INT, &nodes, "N",
         "spread over exactly N nodes (default: fewest that fit)"},
        {"preview", 0, OPT_FLAG, &preview, NULL, "show the plan without placing it"},
        {"json", 0, OPT_FLAG, &json, NULL, "print the placement as JSON"},
    };
    const cli_command cmd = {
        "place",
        "usage: cairn place MODEL [--nodes N] [--preview] [--api HOST:PORT] [--api-key KEY]",
        "Places an instance of MODEL (a file name in the nodes' models "
        "directories, or its sha256) on the nodes that hold it.",
        options,
        CAIRN_ARRAY_LEN(options),
        1};
    const char *model = NULL;
    int status;
    if (!cli_parse_args(&cmd, argc, argv, &model, &status)) {
        return status;
    }
    if (nodes < 0) {
        cli_error("--nodes must not be negative");
        return CLI_USAGE;
    }
    cli_api api;
    if ((status = cli_api_target(address, key, &api)) != CLI_OK) {
        return status;
    }
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "model", model);
    cJSON_AddNumberToObject(req, "nodes", nodes);
    char *body_json = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    char path[400];
    if (preview) {
        char *escaped = cairn_api_url_escape(model);
        snprintf(path, sizeof path, "/instance/previews?model=%s&nodes=%d", escaped ? escaped : "",
                 nodes);
        free(escaped);
    } else {
        snprintf(path, sizeof path, "/instance");
    }
    char *body = NULL;
    long code = 0;
    cairn_err err = {{0}};
    int rc = cairn_api_send(api.host, api.port, api.key, preview ? "GET" : "POST", path,
                            preview ? NULL : body_json, CAIRN_API_MAX_STATE_BYTES, PLACE_TIMEOUT_MS,
                            NULL, NULL, &body, &code, &err);
    free(body_json);
    if (rc != 0 || cairn_api_answer_ok(api.host, api.port, path, code, &body, &err) != 0) {
        cli_error("%s", err.msg);
        return CLI_ERROR;
    }
    if (json) {
        printf("%s\n", body);
    } else {
        print_placement(body);
    }
    free(body);
    return CLI_OK;
}

int cmd_delete(int argc, char **argv) {
    const char *address = CAIRN_API_DEFAULT_ADDRESS, *key = NULL;
    const cli_option options[] = {
        CLI_API_OPTIONS(address, key),
    };
    const cli_command cmd = {"delete",
                             "usage: cairn delete INSTANCE [--api HOST:PORT] [--api-key KEY]",
                             "Deletes a model instance: its runners shut down on every node.",
                             options,
                             CAIRN_ARRAY_LEN(options),
                             1};
    const char *id = NULL;
    int status;
    if (!cli_parse_args(&cmd, argc, argv, &id, &status)) {
        return status;
    }
    cli_api api;
    if ((status = cli_api_target(address, key, &api)) != CLI_OK) {
        return status;
    }
    char path[200];
    snprintf(path, sizeof path, "/instance/%.100s", id);
    char *body = NULL;
    long code = 0;
    cairn_err err = {{0}};
    if (cairn_api_send(api.host, api.port, api.key, "DELETE", path, NULL, 65536, PLACE_TIMEOUT_MS,
                       NULL, NULL, &body, &code, &err) != 0 ||
        cairn_api_answer_ok(api.host, api.port, path, code, &body, &err) != 0) {
        cli_error("%s", err.msg);
        return CLI_ERROR;
    }
    printf("deleted %s\n", id);
    free(body);
    return CLI_OK;
}
