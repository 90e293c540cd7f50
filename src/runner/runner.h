/*
 * runner: the process that serves one shard of one instance (`cairn runner ...`, started
 * by its node's worker with uv_spawn). It loads layers [first, last) of the model, links
 * with the runners of the neighbouring shards over TCP, and moves requests through the
 * pipeline: the first shard takes token ids, every shard passes hidden states to the next,
 * the last shard samples and sends each token round the ring to the first shard (which
 * feeds it back in) and, through the first shard, to the requester.
 *
 * It owns its shard, its KV slots (one per request in flight), its data-plane links and
 * its compute thread. It must never outlive its node: end of file on the control channel
 * (stdin) makes it exit at once. It never touches the cluster state; its worker reports
 * its lifecycle for it.
 *
 * ---- control channel (worker <-> runner) ----
 * stdin carries frames from the worker, stdout frames to the worker, both CRNW wire frames
 * of type CONTROL whose JSON object has an "op". stderr is the runner's log.
 *
 * worker -> runner
 *   {"op":"start","key":HEX}     first frame: the cluster key as 64 hex digits, or "" for
 *                                an open cluster (kept off the command line on purpose)
 *   {"op":"next","host":H,"port":P}
 *                                where the runner of the next shard listens (for the last
 *                                shard: the first shard's runner, closing the ring; a
 *                                single-shard instance gets its own port); sent once
 *   {"op":"shutdown"}            finish: the runner reports shutting_down and exits 0
 *
 * runner -> worker (each a step of the lifecycle in state.h, in this order)
 *   {"op":"listening","port":P}  the data-plane port is open          (-> connecting)
 *   {"op":"connected"}           the link to the next runner is up    (-> connected)
 *   {"op":"loading","done":D,"total":T}  layers loaded of total       (-> loading)
 *   {"op":"loaded"}                                                   (-> loaded)
 *   {"op":"warming_up"}                                               (-> warming_up)
 *   {"op":"ready"}               idle and able to serve               (-> ready)
 *   {"op":"running"}             serving at least one request         (-> running)
 *   {"op":"progress","steps":N}  compute steps done so far, at least once a second while
 *                                running: the worker's token-progress deadline
 *   {"op":"shutting_down"}
 *   {"op":"failed","reason":TEXT} then exits with status 1
 *
 * Test hooks (environment, for the test suite only): CAIRN_RUNNER_TEST_HANG=load|warmup
 * makes the runner stop making progress at that step, as a hung disk or driver would.
 *
 * ---- data plane (runner <-> runner, requester -> first runner) ----
 * Described in runner.c next to the code; the links authenticate and encrypt with the
 * cluster key like the node's cluster links.
 */
#ifndef CAIRN_RUNNER_H
#define CAIRN_RUNNER_H

/* The entry point of `cairn runner`: parses its arguments and runs until shut down or its
 * worker goes away. Returns the process exit status. */
int cairn_runner_main(int argc, char **argv);

#endif
