/* cli run: `cairn run` starts this machine's node: cluster links, discovery, the API port,
 * and a clean shutdown on Ctrl+C (SIGINT) or SIGTERM. */
#define _POSIX_C_SOURCE 200809L /* pthread types in uv.h under strict C11 */

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "api/api.h"
#include "cli/cli.h"
#include "cluster/node.h"
#include "platform/platform.h"
#include "util/defaults.h"
#include "util/log.h"

#define DEFAULT_API_PORT 52415

typedef struct run_options {
    const char *id, *name, *cluster, *listen, *api_host, *models_dir, *log_level, *api_key, *cors;
    const char *key, *key_file, *discovery_interface, *service, *memory_cap;
    int port, api_port, discovery_port, timeout_ms, heartbeat_ms, profile_ms;
    int runner_threads, slots, runner_ctx;
    int api_request_timeout_ms, api_client_connections, api_waiting_requests;
    float load_timeout_s;
    bool no_api, no_discovery, no_ipv6;
    cli_str_list peers, allowed_hosts;
} run_options;

typedef struct run_context {
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    uv_async_t stop_request; /* from another thread: the service manager's */
    cairn_local_node *node;
    cairn_api_server *api;
    cairn_logger *log;
    int signals_seen;
} run_context;

static char *api_state(void *user, cairn_err *err) {
    return cairn_node_state_json(user, err);
}

static char *api_node(void *user, cairn_err *err) {
    return cairn_node_info_json(user, err);
}

static void shut_down(run_context *ctx) {
    cairn_node_api_shutdown(ctx->node);
    cairn_api_server_stop(ctx->api);
    ctx->api = NULL;
    if (ctx->node) {
        cairn_node_close(ctx->node);
        ctx->node = NULL;
    }
    uv_close((uv_handle_t *)&ctx->sigint, NULL);
    uv_close((uv_handle_t *)&ctx->sigterm, NULL);
    uv_close((uv_handle_t *)&ctx->stop_request, NULL);
}

static void on_stop_request(uv_async_t *h) {
    run_context *ctx = h->data;
    if (ctx->signals_seen++ == 0) {
        cairn_log(ctx->log, CAIRN_LOG_INFO, "the service manager asks to stop: shutting down");
        shut_down(ctx);
    }
}

/* Called on the service manager's thread. */
static void request_stop(void *user) {
    run_context *ctx = user;
    uv_async_send(&ctx->stop_request);
}

static int run_loop(void *user) {
    run_context *ctx = user;
    uv_run(&ctx->loop, UV_RUN_DEFAULT);
    return 0;
}

static void on_signal(uv_signal_t *h, int signum) {
    run_context *ctx = h->data;
    if (++ctx->signals_seen > 1) {
        cairn_log(ctx->log, CAIRN_LOG_WARN, "second signal: exiting at once");
        exit(CLI_ERROR);
    }
    cairn_log(ctx->log, CAIRN_LOG_INFO, "%s received: shutting down",
              signum == SIGINT ? "interrupt" : "termination request");
    shut_down(ctx);
}

/* A readable default id: the host name cut to the id alphabet, plus a random suffix so two
 * nodes on one machine (or restarted ones) never collide. */
static void default_node_id(char *out, size_t size) {
    char host[64] = "node";
    size_t len = sizeof host;
    if (uv_os_gethostname(host, &len) != 0) {
        snprintf(host, sizeof host, "node");
    }
    for (char *c = host; *c; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '-' || *c == '.' || *c == '_';
        *c = ok ? *c : '-';
    }
    unsigned char r[3] = {0};
    uv_random(NULL, NULL, r, sizeof r, 0, NULL);
    snprintf(out, size, "%.48s-%02x%02x%02x", host, r[0], r[1], r[2]);
}

static int load_key(const run_options *o, cairn_cluster_key *key, bool *have, cairn_err *err) {
    const char *env = getenv("CAIRN_CLUSTER_KEY");
    *have = true;
    if (o->key && o->key_file) {
        return cairn_fail(err, "give --key or --key-file, not both");
    }
    if (o->key) {
        return cairn_cluster_key_from_secret(o->key, strlen(o->key), key, err);
    }
    if (o->key_file) {
        return cairn_cluster_key_from_file(o->key_file, key, err);
    }
    if (env && env[0]) {
        return cairn_cluster_key_from_secret(env, strlen(env), key, err);
    }
    *have = false;
    return 0;
}

static bool port_ok(int port, bool zero_ok) {
    return port >= (zero_ok ? 0 : 1) && port <= 65535;
}

static int check_options(const run_options *o, cairn_err *err) {
    if (!port_ok(o->port, true) || !port_ok(o->api_port, true) ||
        !port_ok(o->discovery_port, false)) {
        return cairn_fail(err, "ports must be in 1..65535 (0 for --port/--api-port: any free)");
    }
    if (o->timeout_ms < 200 || o->heartbeat_ms < 50 || o->profile_ms < 100) {
        return cairn_fail(err, "--timeout must be >= 200 ms, --heartbeat >= 50 ms, "
                               "--profile-interval >= 100 ms");
    }
    if (o->runner_threads < 0 || o->slots < 0 || o->runner_ctx < 0 || o->load_timeout_s < 0) {
        return cairn_fail(err, "--runner-threads, --slots, --runner-ctx and --load-timeout must "
                               "not be negative (0: the default)");
    }
    uint64_t cap = 0;
    if (o->memory_cap && cairn_parse_size(o->memory_cap, &cap, err) != 0) {
        return cairn_fail_prefix(err, "--memory-cap");
    }
    return 0;
}

static int start_api(run_context *ctx, const run_options *o, cairn_err *err) {
    if (o->no_api) {
        return 0;
    }
    cairn_api_config api = {.host = o->api_host,
                            .port = (uint16_t)o->api_port,
                            .log = ctx->log,
                            .state_json = api_state,
                            .node_json = api_node,
                            .handler = cairn_node_api_handler,
                            .api_key = cli_api_key(o->api_key),
                            .cors = o->cors,
                            .allowed_hosts = o->allowed_hosts.items,
                            .n_allowed_hosts = o->allowed_hosts.n,
                            .request_timeout_ms = o->api_request_timeout_ms,
                            .client_connections = o->api_client_connections,
                            .waiting_requests = o->api_waiting_requests,
                            .user = ctx->node};
    if (cairn_api_server_start(&api, &ctx->api, err) != 0) {
        return -1;
    }
    const char *host = o->api_host ? o->api_host : "127.0.0.1";
    if (strcmp(host, "127.0.0.1") != 0 && strcmp(host, "localhost") != 0 &&
        strcmp(host, "::1") != 0) {
        cairn_log(ctx->log, CAIRN_LOG_WARN, "the API on %s is open to the network", host);
    }
    cairn_log(ctx->log, CAIRN_LOG_INFO, "API on http://%s:%u/ (GET /state, GET /node)", host,
              (unsigned)cairn_api_server_port(ctx->api));
    return 0;
}

static int run_node(run_context *ctx, const run_options *o, const cairn_cluster_key *key,
                    cairn_err *err) {
    char id[64];
    if (o->id) {
        snprintf(id, sizeof id, "%s", o->id);
    } else {
        default_node_id(id, sizeof id);
    }
    cairn_log_set_node_id(ctx->log, id);
    cairn_node_config cfg = {
        .node_id = id,
        .name = o->name,
        .cluster = o->cluster,
        .listen_host = o->listen,
        .cluster_port = (uint16_t)o->port,
        .api_port = o->no_api ? 0 : (uint16_t)o->api_port,
        .peers = o->peers.items,
        .n_peers = o->peers.n,
        .discovery = !o->no_discovery,
        .discovery_config = {.port = (uint16_t)o->discovery_port,
                             .interface_v4 = o->discovery_interface,
                             .ipv4 = true,
                             .ipv6 = !o->no_ipv6},
        .key = key,
        .models_dir = o->models_dir,
        .heartbeat_ms = (uint32_t)o->heartbeat_ms,
        .timeout_ms = (uint32_t)o->timeout_ms,
        .profile_ms = (uint32_t)o->profile_ms,
        .log = ctx->log,
        .runner_threads = o->runner_threads,
        .runner_slots = o->slots,
        .runner_ctx = o->runner_ctx,
        .load_timeout_s = o->load_timeout_s,
    };
    if (o->memory_cap && cairn_parse_size(o->memory_cap, &cfg.memory_cap, err) != 0) {
        return cairn_fail_prefix(err, "--memory-cap"); /* checked already by check_options */
    }
    if (cairn_node_start(&ctx->loop, &cfg, &ctx->node, err) != 0) {
        return -1;
    }
    if (start_api(ctx, o, err) != 0) {
        return -1;
    }
    ctx->sigint.data = ctx->sigterm.data = ctx;
    uv_signal_start(&ctx->sigint, on_signal, SIGINT);
    uv_signal_start(&ctx->sigterm, on_signal, SIGTERM); /* not delivered on Windows: harmless */
    return 0;
}

int cmd_run(int argc, char **argv) {
    run_options o = {.port = CAIRN_NODE_DEFAULT_CLUSTER_PORT,
                     .api_port = DEFAULT_API_PORT,
                     .discovery_port = CAIRN_DISCOVERY_PORT,
                     .timeout_ms = CAIRN_NODE_DEFAULT_TIMEOUT_MS,
                     .heartbeat_ms = CAIRN_NODE_DEFAULT_HEARTBEAT_MS,
                     .profile_ms = CAIRN_NODE_DEFAULT_PROFILE_MS,
                     .api_request_timeout_ms = CAIRN_API_DEFAULT_REQUEST_TIMEOUT_MS,
                     .api_client_connections = CAIRN_API_DEFAULT_CLIENT_CONNECTIONS,
                     .api_waiting_requests = CAIRN_API_DEFAULT_WAITING_REQUESTS,
                     .log_level = "info"};
    const cli_option options[] = {
        {"id", 0, OPT_STR, &o.id, "ID", "node id, 1..63 of [A-Za-z0-9._:-] (default: host name)"},
        {"name", 0, OPT_STR, &o.name, "TEXT", "human-readable node name"},
        {"cluster", 0, OPT_STR, &o.cluster, "NAME", "cluster to join (default: cairn)"},
        {"listen", 0, OPT_STR, &o.listen, "ADDR", "address for cluster links (default: 0.0.0.0)"},
        {"port", 0, OPT_INT, &o.port, "PORT", "TCP port for cluster links (default: 52416)"},
        {"peer", 0, OPT_STR_LIST, &o.peers, "HOST:PORT",
         "a node to link with even without discovery (repeatable)"},
        {"no-discovery", 0, OPT_FLAG, &o.no_discovery, NULL, "no multicast discovery"},
        {"discovery-port", 0, OPT_INT, &o.discovery_port, "PORT",
         "UDP port of discovery (default: 52417)"},
        {"discovery-interface", 0, OPT_STR, &o.discovery_interface, "ADDR",
         "IPv4 address of the interface to discover on (127.0.0.1: this machine only)"},
        {"no-ipv6", 0, OPT_FLAG, &o.no_ipv6, NULL, "discover over IPv4 only"},
        {"key", 0, OPT_STR, &o.key, "SECRET",
         "cluster key: links must prove it and are encrypted (or CAIRN_CLUSTER_KEY)"},
        {"key-file", 0, OPT_STR, &o.key_file, "FILE", "read the cluster key from a file"},
        {"host", 0, OPT_STR, &o.api_host, "ADDR", "address of the API (default: 127.0.0.1)"},
        {"api-port", 0, OPT_INT, &o.api_port, "PORT", "HTTP API port (default: 52415)"},
        {"no-api", 0, OPT_FLAG, &o.no_api, NULL, "serve no HTTP API"},
        {"cors", 0, OPT_STR, &o.cors, "ORIGIN",
         "let web pages from ORIGIN (or * for any) call the API"},
        {"allowed-host", 0, OPT_STR_LIST, &o.allowed_hosts, "NAME",
         "a host name the API answers to besides its addresses, localhost and this machine's "
         "name (repeatable)"},
        {"api-key", 0, OPT_STR, &o.api_key, "KEY",
         "every API request needs Authorization: Bearer KEY (or CAIRN_API_KEY)"},
        {"api-request-timeout", 0, OPT_INT, &o.api_request_timeout_ms, "MS",
         "an API request's head and body must arrive within this (default: " CAIRN_STRINGIFY(
             CAIRN_API_DEFAULT_REQUEST_TIMEOUT_MS) ")"},
        {"api-client-connections", 0, OPT_INT, &o.api_client_connections, "N",
         "API connections one client address may hold (default: " CAIRN_STRINGIFY(
             CAIRN_API_DEFAULT_CLIENT_CONNECTIONS) ")"},
        {"api-waiting-requests", 0, OPT_INT, &o.api_waiting_requests, "N",
         "API connections whose request has not arrived, at most; past it the oldest is "
         "closed (default: " CAIRN_STRINGIFY(CAIRN_API_DEFAULT_WAITING_REQUESTS) ")"},
        {"models-dir", 0, OPT_STR, &o.models_dir, "DIR", "where this node keeps models"},
        {"memory-cap", 0, OPT_STR, &o.memory_cap, "SIZE",
         "offer at most this much memory to the cluster, e.g. 8G or 512MiB (default: all)"},
        {"timeout", 0, OPT_INT, &o.timeout_ms, "MS",
         "a peer silent this long is gone (default: 3000)"},
        {"heartbeat", 0, OPT_INT, &o.heartbeat_ms, "MS", "heartbeat interval (default: 500)"},
        {"profile-interval", 0, OPT_INT, &o.profile_ms, "MS",
         "how often the node reports its resources (default: 10000)"},
        {"runner-threads", 0, OPT_INT, &o.runner_threads, "N",
         "compute threads per runner (default: by shard size, at most the CPUs)"},
        {"slots", 0, OPT_INT, &o.slots, "N",
         "requests in flight per runner (default: " CAIRN_STRINGIFY(CAIRN_DEFAULT_SLOTS) ")"},
        {"runner-ctx", 0, OPT_INT, &o.runner_ctx, "N",
         "context positions per slot (default: the model's, at most 4096)"},
        {"load-timeout", 0, OPT_FLOAT, &o.load_timeout_s, "SECONDS",
         "deadline of a shard's load (default: 30 s + 1 s per 64 MiB)"},
        {"log-level", 0, OPT_STR, &o.log_level, "LEVEL", "error, warn, info, debug or trace"},
        {"service", 0, OPT_STR, &o.service, "NAME",
         "run as the Windows service NAME (what 'cairn service install' registers)"},
    };
    const cli_command cmd = {"run",
                             "usage: cairn run [options]",
                             "Starts this machine's node and joins (or founds) the cluster.",
                             options,
                             CAIRN_ARRAY_LEN(options),
                             0};
    int status;
    if (!cli_parse_args(&cmd, argc, argv, NULL, &status)) {
        return status;
    }
    cairn_err err = {{0}};
    cairn_log_level level;
    if (cairn_log_level_parse(o.log_level, &level, &err) != 0 || check_options(&o, &err) != 0) {
        cli_error("%s", err.msg);
        return CLI_USAGE;
    }
    cairn_logger log;
    cairn_logger_init(&log, level, NULL, stderr);
    cairn_cluster_key key;
    bool keyed = false;
    if (load_key(&o, &key, &keyed, &err) != 0) {
        cli_error("%s", err.msg);
        return CLI_ERROR;
    }
    run_context ctx = {.log = &log};
    uv_loop_init(&ctx.loop);
    uv_signal_init(&ctx.loop, &ctx.sigint);
    uv_signal_init(&ctx.loop, &ctx.sigterm);
    uv_async_init(&ctx.loop, &ctx.stop_request, on_stop_request);
    ctx.stop_request.data = &ctx;
    int rc = run_node(&ctx, &o, keyed ? &key : NULL, &err);
    cairn_cluster_key_wipe(&key);
    if (rc == 0 && o.service) {
        rc = cairn_service_run(o.service, run_loop, request_stop, &ctx, &err);
    }
    if (rc != 0) {
        cli_error("%s", err.msg);
        shut_down(&ctx);
    }
    run_loop(&ctx);
    uv_loop_close(&ctx.loop);
    if (rc == 0) {
        cairn_log(&log, CAIRN_LOG_INFO, "stopped");
    }
    return rc == 0 ? CLI_OK : CLI_ERROR;
}
