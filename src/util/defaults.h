/*
 * util: defaults that several layers must agree on (the placement's memory estimate, the
 * worker that starts runners, the runner, the engine, the command line), defined once.
 */
#ifndef CAIRN_DEFAULTS_H
#define CAIRN_DEFAULTS_H

/* Positions per sequence when none are asked for: the training context, at most this. */
#define CAIRN_DEFAULT_MAX_CTX 4096
/* KV slots (requests in flight) per runner when none are asked for. */
#define CAIRN_DEFAULT_SLOTS 4

#endif
