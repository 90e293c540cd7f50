/*
 * cluster node internals, shared by node.c (lifecycle, timers, dialing, published views),
 * link.c (TCP links: handshake, framing, heartbeats), election.c (ranks and the choice of a
 * master), replication.c (events, snapshots, proposals), model_files.c (hashes of model
 * files) and instances.c (the master's care of instances). Nothing outside src/cluster/
 * includes this header.
 */
#ifndef CAIRN_CLUSTER_NODE_INTERNAL_H
#define CAIRN_CLUSTER_NODE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "cluster/node.h"
#include "cluster/state.h"
#include "cluster/wire.h"
#include "worker/worker.h"

/* Read buffer of a link: one libuv read at most. */
#define NODE_READ_CHUNK 65536
/* Links beyond this many (hostile floods, misconfigured scripts) are refused at accept. */
#define NODE_MAX_LINKS 160
/* Of those, the last this many take only links from known hosts (a member's address in the
 * state, a dial target's, a linked peer's): strangers holding every other slot cannot shut
 * out a member. */
#define NODE_LINKS_KEPT_FOR_MEMBERS 32
/* Accepted links from one address still in the handshake, at most: one host cannot hold
 * the slots by opening links that never say HELLO. */
#define NODE_MAX_HANDSHAKES_PER_HOST 8
/* A link that has not proven the key and exchanged HELLO this long after it opened is
 * closed, however busily it trickles bytes. */
#define NODE_HANDSHAKE_DEADLINE_S 5.0
/* Links refused at accept are logged as a warning at most this often (a flood brings
 * thousands), with the count since the last warning. */
#define NODE_REFUSAL_LOG_S 10.0
/* Dial targets kept at most; the oldest learned ones make room for new ones. */
#define NODE_MAX_TARGETS 256
/* Bytes queued for one peer before it counts as not reading: a stuck peer must not make the
 * node buffer without bound. */
#define NODE_MAX_QUEUED ((size_t)256 << 20)
/* Seniority of a node that is not a member of its own state (it ranks after members). */
#define NODE_NO_SENIORITY CAIRN_STATE_MAX_NUMBER

/* How a node ranks as a master candidate: lower is better, compared field by field. */
typedef struct node_rank {
    char id[CAIRN_STATE_ID_SIZE];
    bool has_state;   /* nodes with a cluster state first */
    uint64_t born_ms; /* then the older lineage (when its first master founded it) */
    char founder[CAIRN_STATE_ID_SIZE];
    uint64_t seniority; /* then seniority in it */
} node_rank;

typedef enum link_phase {
    LINK_CONNECTING, /* dialing */
    LINK_AUTH,       /* proving the cluster key */
    LINK_HELLO,      /* exchanging HELLO / HELLO_ACK */
    LINK_UP,         /* the peer is known and heard */
    LINK_CLOSING,    /* closed or closing: ignore everything, wait for the close callback */
} link_phase;

typedef struct dial_target dial_target;
typedef struct model_files model_files; /* model_files.c */
typedef struct relay relay;             /* serve.c */

typedef struct node_link {
    struct node_link *next;
    cairn_local_node *node;
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    link_phase phase;
    bool dialer;
    dial_target *target; /* what this link was dialed for; NULL when accepted */
    uint64_t serial;     /* names the link in logs before the peer's id is known */
    char remote[CAIRN_STATE_HOST_SIZE + 8]; /* "host:port" of the socket's other end */
    char remote_host[CAIRN_STATE_HOST_SIZE];
    cairn_wire_hello hello; /* the peer's, once received */
    cairn_wire_decoder *decoder;
    cairn_secure_link *secure; /* keyed clusters only */
    cairn_buf plain;           /* decrypted bytes on their way to the decoder */
    cairn_buf out;             /* scratch for outgoing frames */
    double opened_at, up_at, last_heard, last_heartbeat, closing_at;
    size_t queued;
    bool has_rank;
    node_rank rank;    /* the peer's own, from its heartbeats */
    bool has_follows;  /* the peer follows a master (itself when it is one) */
    node_rank follows; /* that master's rank as the peer reports it */
    bool follower;     /* master side: the peer follows this node and has its snapshot */
    char read_buf[NODE_READ_CHUNK];
} node_link;

struct dial_target {
    dial_target *next;
    char host[CAIRN_STATE_HOST_SIZE];
    uint16_t port;
    char id[CAIRN_STATE_ID_SIZE]; /* the node there, once known ("" before) */
    bool is_static;               /* from --peer: never forgotten */
    double created, last_learned, next_attempt;
    uint32_t backoff_ms;
    node_link *link; /* dialed for this target and not closed yet */
};

typedef enum node_role { ROLE_NONE, ROLE_FOLLOWER, ROLE_MASTER } node_role;

/* ---- instances.c: the master's care of instances (types here: the node holds one) ---- */

/* Runner failures on a node after which placements leave it out. */
#define CARE_NODE_FAILURE_LIMIT 3
/* A node's failure count halves each time this long passes without another failure, so a
 * node left out is tried again later; the model's backoff spaces those tries. */
#define CARE_FAILURE_HALF_LIFE_S 30.0
#define CARE_MAX_INTENTS (2 * CAIRN_STATE_MAX_INSTANCES)
#define CARE_MAX_COUNTS CAIRN_STATE_MAX_NODES

typedef struct care_count {
    char key[CAIRN_STATE_SHA256_SIZE]; /* a model's sha256 */
    uint32_t count;
} care_count;

/* The failed runners of one node, and what forgives them. */
typedef struct care_node {
    char id[CAIRN_STATE_ID_SIZE];
    uint32_t failures;
    double decays_at; /* when failures halve, unless another failure comes first */
    /* A runner of the node seen serving (RUNNING): once it is READY again it has served a
     * request, and the node's failures are forgiven. "" when none is watched. */
    char serving[CAIRN_STATE_ID_SIZE];
    uint32_t serving_shard;
} care_node;

/* A model to place again. */
typedef struct care_intent {
    char model[CAIRN_STATE_NAME_SIZE]; /* for logs */
    char sha256[CAIRN_STATE_SHA256_SIZE];
    uint32_t n_nodes; /* 0: the fewest that fit */
    double next_attempt;
    double backoff_s;                      /* before the attempt after next */
    char blocked[CAIRN_STATE_REASON_SIZE]; /* why the last attempt failed; "" before one */
} care_intent;

typedef struct instance_care {
    care_intent intents[CARE_MAX_INTENTS];
    uint32_t n_intents;
    care_node node_failures[CARE_MAX_COUNTS];
    uint32_t n_node_failures;
    care_count model_failures[CARE_MAX_COUNTS]; /* failures in a row per model */
    uint32_t n_model_failures;
} instance_care;

/* Emits one event the way the master does (numbers, applies, sends). */
typedef int (*care_emit_fn)(void *user, cairn_event *e, cairn_err *err);

void care_init(instance_care *c);
/* Deletes instances with failed runners (to place them again after a backoff) and places
 * what is due, emitting through emit; s is the state emit changes. */
void care_tick(instance_care *c, const cairn_cluster_state *s, double now, cairn_rng *rng,
               cairn_logger *log, care_emit_fn emit, void *user);
/* Before a NODE_LEFT for node_id: the instances it takes down are placed again. */
void care_node_leaving(instance_care *c, const cairn_cluster_state *s, const char *node_id,
                       double now, cairn_logger *log);
uint32_t care_node_failures(const instance_care *c, const char *node_id);
/* Why the model (a name or a sha256) waiting to be placed again could not be at its last
 * attempt, or NULL when it is not waiting or was not tried yet. */
const char *care_placement_blocked(const instance_care *c, const char *model);

/* Master side: since when a member has had no link (NODE_LEFT after the timeout). */
typedef struct absent_member {
    char id[CAIRN_STATE_ID_SIZE];
    double since;
} absent_member;

struct cairn_local_node {
    uv_loop_t *loop;
    cairn_logger *log;
    /* configuration, copied */
    char id[CAIRN_STATE_ID_SIZE];
    char name[CAIRN_STATE_NAME_SIZE];
    char cluster[CAIRN_STATE_NAME_SIZE];
    char listen_host[CAIRN_STATE_HOST_SIZE];
    char *models_dir;
    uint16_t cluster_port, api_port;
    uint64_t incarnation; /* drawn at start, sent in HELLO: tells nodes sharing an id apart */
    bool keyed;
    cairn_cluster_key key;
    double heartbeat_s, timeout_s, profile_s;
    uint32_t n_addresses; /* where peers can reach this node */
    cairn_address addresses[CAIRN_STATE_MAX_ADDRESSES];

    uv_tcp_t listener;
    uv_timer_t tick;
    cairn_discovery *discovery;
    int open_handles; /* listener and timer until closed */
    bool closing;
    node_link *links;
    size_t n_links;
    uint64_t links_refused; /* at accept, since the last warning about it */
    double refusal_warned_at;
    dial_target *targets;
    size_t n_targets;
    uint64_t next_serial;
    cairn_rng rng;
    double started_at;

    /* replicated state */
    cairn_cluster_state *state;
    bool has_state;
    uint64_t born_ms;
    char founder[CAIRN_STATE_ID_SIZE];
    cairn_event_log events; /* master: what followers may ask for again */
    node_role role;
    node_link *master_link; /* follower: the link to the master */
    bool synced;            /* follower: holds the current master's snapshot */
    double follow_sent_at;
    absent_member absent[CAIRN_STATE_MAX_NODES];
    uint32_t n_absent;
    instance_care care; /* master: failed and orphaned instances */

    /* the runners of this node's shards; synced on the tick after the state changed */
    cairn_worker *worker;
    bool worker_stale;

    /* own profile */
    model_files *model_files;

    /* serve.c: API calls handed to the loop, and the generation requests relayed */
    bool serve_ready;
    uv_async_t call_async;
    uv_mutex_t call_lock; /* guards calls, calls_closed and every relay's shared part */
    uv_cond_t call_cond;
    struct node_call *calls;
    bool calls_closed;
    relay *relays;
    struct event_watch *watches;    /* GET /events subscribers, under call_lock */
    struct cancel_ask *cancel_asks; /* cancels asked of the peers (serve_cancel.c) */
    uint64_t cancel_serial;
    /* GET /metrics counters, kept on the loop */
    uint64_t metric_requests, metric_failed, metric_tokens, metric_resumed;
    uint64_t metric_first_tokens;
    double metric_ttft_sum; /* seconds from a request's start to its first token */
    uint64_t memory_cap;    /* 0: none */
    double next_profile;
    bool profile_reported;
    cairn_node_profile last_profile;

    /* views for the HTTP threads */
    uv_mutex_t view_lock;
    char *view_state;
    char *view_info;
    uint64_t view_index; /* last_index the state view was built at (+1: none yet) */
    bool view_dirty;
    double view_built_at;
    uint8_t state_hash[CAIRN_STATE_HASH_SIZE];
};

/* ---- serve.c ---- */
int serve_init(cairn_local_node *n, cairn_err *err); /* before the loop's handles start */
void serve_tick(cairn_local_node *n, double now);
void serve_close(cairn_local_node *n); /* ends every relay; the async handle is node.c's */
void serve_free(cairn_local_node *n);
/* serve_cancel.c: a peer's CONTROL message on a cluster link (a cancel asked of this node,
 * or the answer to one it asked); and freeing the asks when the node goes. */
int serve_peer_control(node_link *l, const cJSON *msg, cairn_err *err);
void serve_cancel_free(cairn_local_node *n);
/* Every event this node applies goes to the GET /events subscribers. */
void serve_event_applied(cairn_local_node *n, const cairn_event *e);

/* ---- model_files.c: hashes and footprints of the node's model files ---- */

/* KV slots per runner when the configuration says 0 (cairn_node_config.runner_slots). */

/* A cache for the model files in dir, measured for runners of n_ctx positions (0: the
 * model's, at most 4096) and n_seq slots (0: CAIRN_DEFAULT_SLOTS). on_ready(user) runs
 * on the loop each time a file's hash becomes known. NULL when out of memory. */
model_files *model_files_new(uv_loop_t *loop, const char *dir, int n_ctx, int n_seq,
                             cairn_logger *log, void (*on_ready)(void *user), void *user);
/* Fills the sha256 and footprint of the profile's files from the cache, and queues the
 * files not hashed yet (one at a time, off the loop). */
void model_files_fill(model_files *mf, cairn_node_profile *p);
/* Stops hashing and frees the cache (from the hash's callback when one is in flight). */
void model_files_close(model_files *mf);

/* ---- link.c ---- */

/* What decides whether the node takes one more accepted link, counted without it. */
typedef struct link_census {
    size_t open;                 /* the node's links, in any phase */
    size_t handshakes_from_host; /* accepted from the new link's address and not up yet */
    bool known_host;             /* the address is a member's, a dial target's or a peer's */
} link_census;
/* Why a new accepted link is refused, or NULL when it may stay. */
const char *link_refusal(const link_census *c);

int link_accept(cairn_local_node *n, uv_stream_t *server);
void link_dial(cairn_local_node *n, dial_target *t);
/* Closes the link (idempotent). reason is logged; with send_error the peer gets an ERROR
 * frame with it first, as far as the socket still takes it. */
void link_close(node_link *l, const char *reason, bool send_error);
/* Queues one wire frame (encrypted on keyed links). Failures close the link. */
void link_send_frame(node_link *l, const cairn_buf *frame);
void link_send_json(node_link *l, cairn_wire_type type, const cJSON *obj);
void link_send_heartbeat(node_link *l);
/* Checks heartbeats due and silence of every link. */
void links_tick(cairn_local_node *n, double now);
/* The live link to a node id, or NULL. */
node_link *link_find_up(cairn_local_node *n, const char *node_id);
const char *link_name(const node_link *l); /* peer id, or the remote address before HELLO */

/* ---- election.c ---- */
void node_self_rank(const cairn_local_node *n, node_rank *out);
int rank_compare(const node_rank *a, const node_rank *b);
cJSON *rank_to_json(const node_rank *r);
int rank_from_json(const cJSON *o, node_rank *out, cairn_err *err);
/* The heartbeat every link carries: own rank, the master followed, term and index. */
cJSON *heartbeat_json(const cairn_local_node *n);
int heartbeat_apply(node_link *l, const cJSON *hb, cairn_err *err);
/* Re-evaluates who is master after anything that may change it. */
void election_update(cairn_local_node *n);

/* ---- replication.c ---- */
void become_master(cairn_local_node *n);
void step_down(cairn_local_node *n);
void follow(cairn_local_node *n, node_link *master);
void send_follow_request(cairn_local_node *n);
/* Frame handlers; return -1 with err to close the link as a protocol error. */
int on_event_request(node_link *l, const cJSON *msg, cairn_err *err);
int on_event_ack(node_link *l, const cJSON *msg, cairn_err *err);
int on_snapshot(node_link *l, const cJSON *msg, cairn_err *err);
int on_event(node_link *l, const cairn_wire_frame *f, cairn_err *err);
int on_propose(node_link *l, const cairn_wire_frame *f, cairn_err *err);
/* Master: numbers, applies, logs and sends an event to every follower. */
int master_emit(cairn_local_node *n, cairn_event *e, cairn_err *err);
/* Master: membership and connectivity of members follow the links. */
void master_tick(cairn_local_node *n, double now);
/* A follower's own changes go to the master; the master emits them itself. */
void node_report(cairn_local_node *n, cairn_event *e);
void node_link_lost(cairn_local_node *n, node_link *l);

/* ---- node.c ---- */
void node_mark_dirty(cairn_local_node *n);
void node_target_learn(cairn_local_node *n, const char *host, uint16_t port, const char *id,
                       bool is_static);
void node_handle_closed(cairn_local_node *n); /* one of the node's own handles finished closing */

#endif
