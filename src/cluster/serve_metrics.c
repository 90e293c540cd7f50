/*
 * serve_metrics: GET /metrics, the node's figures in Prometheus' text format: the requests
 * this node relayed (started, failed, resumed after a lost pipeline), the tokens it
 * streamed and the time to their first token, the requests in flight here, and from the
 * cluster state the runners by state and each node's memory.
 *
 * Reads everything on the loop; owns nothing.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>

#include "cluster/serve_internal.h"

static void counter(cairn_buf *b, const char *name, const char *help, const char *type,
                    double value) {
    cairn_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name,
                     value);
}

static void runner_states(cairn_buf *b, const cairn_cluster_state *s) {
    uint32_t count[CAIRN_RUNNER_STATE_COUNT] = {0};
    for (uint32_t i = 0; i < s->n_instances; i++) {
        for (uint32_t k = 0; k < s->instances[i].n_shards; k++) {
            count[s->instances[i].shards[k].runner.state]++;
        }
    }
    cairn_buf_puts(b, "# HELP cairn_runners Runners of the cluster's instances by state.\n"
                      "# TYPE cairn_runners gauge\n");
    for (int st = 0; st < CAIRN_RUNNER_STATE_COUNT; st++) {
        cairn_buf_printf(b, "cairn_runners{state=\"%s\"} %u\n",
                         cairn_runner_state_name((cairn_runner_state)st), count[st]);
    }
}

/* Node ids are [A-Za-z0-9._:-], so they need no escaping in a label. */
static void node_memory(cairn_buf *b, const cairn_cluster_state *s) {
    cairn_buf_puts(b, "# HELP cairn_node_memory_bytes Memory each node reports (capped by "
                      "--memory-cap).\n# TYPE cairn_node_memory_bytes gauge\n");
    for (uint32_t i = 0; i < s->n_nodes; i++) {
        const cairn_node *node = &s->nodes[i];
        cairn_buf_printf(b, "cairn_node_memory_bytes{node=\"%s\",kind=\"total\"} %llu\n", node->id,
                         (unsigned long long)node->profile.memory_total);
        cairn_buf_printf(b, "cairn_node_memory_bytes{node=\"%s\",kind=\"available\"} %llu\n",
                         node->id, (unsigned long long)node->profile.memory_available);
    }
}

static void gather(cairn_local_node *n, void *arg) {
    cairn_buf *b = arg;
    size_t in_flight = 0;
    for (const relay *r = n->relays; r; r = r->next) {
        in_flight++;
    }
    counter(b, "cairn_requests_total", "Generation requests this node relayed.", "counter",
            (double)n->metric_requests);
    counter(b, "cairn_request_errors_total", "Requests that ended with an error.", "counter",
            (double)n->metric_failed);
    counter(b, "cairn_requests_resumed_total",
            "Times a request resumed on a new placement after losing its pipeline.", "counter",
            (double)n->metric_resumed);
    counter(b, "cairn_requests_in_flight", "Requests this node relays now (queued included).",
            "gauge", (double)in_flight);
    counter(b, "cairn_completion_tokens_total", "Tokens streamed to clients.", "counter",
            (double)n->metric_tokens);
    cairn_buf_printf(b,
                     "# HELP cairn_time_to_first_token_seconds From a request's arrival to "
                     "its first token.\n# TYPE cairn_time_to_first_token_seconds summary\n"
                     "cairn_time_to_first_token_seconds_sum %.6f\n"
                     "cairn_time_to_first_token_seconds_count %llu\n",
                     n->metric_ttft_sum, (unsigned long long)n->metric_first_tokens);
    if (n->has_state) {
        runner_states(b, n->state);
        node_memory(b, n->state);
    }
}

void serve_metrics(cairn_local_node *n, const cairn_api_call *call) {
    cairn_buf b = {0};
    if (run_on_loop(n, gather, &b) != 0 || cairn_buf_putc(&b, '\0') != 0) {
        cairn_buf_free(&b);
        cairn_api_reply_error(call->reply, 503, "unavailable", "the node is shutting down", NULL);
        return;
    }
    if (cairn_api_stream_begin(call->reply, "text/plain; version=0.0.4") == 0) {
        cairn_api_stream_write(call->reply, b.data, b.len - 1);
    }
    cairn_buf_free(&b);
}
