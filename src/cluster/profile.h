/*
 * profile: what this node tells the cluster about itself (memory, CPU, OS, ggml devices, free
 * disk and the model files it holds), gathered straight into the state's cairn_node_profile
 * so it can go out as a NODE_PROFILE_UPDATED event. The node refreshes it periodically.
 *
 * Reads the machine only through platform and ggml-backend. Must never change anything on
 * disk, hash files (hashing tens of GB is slow: the node's model_files.c does it off the
 * loop) or keep state between calls.
 */
#ifndef CAIRN_CLUSTER_PROFILE_H
#define CAIRN_CLUSTER_PROFILE_H

#include "cluster/state.h"
#include "util/util.h"

/* cairn_profile_gather's result when the profile holds everything it found. */
#define CAIRN_PROFILE_COMPLETE 0
/* ... and when something was left out; err then says what. */
#define CAIRN_PROFILE_TRUNCATED 1

/*
 * Fills *out with this machine's profile; models_dir is where the node keeps its models.
 * Model files are the regular files directly in models_dir whose names end in ".gguf" (any
 * case), so partial downloads and other files are not offered; their sha256 is left empty.
 * Every field passes cairn_event_check(): text is cut at a character boundary and
 * non-printable characters become '?', numbers are capped at the protocol's limits.
 *
 * A missing or unreadable models_dir is an error (the node creates its models directory
 * before reporting), so a mistyped path never looks like "this node has no models".
 *
 * Returns CAIRN_PROFILE_COMPLETE, or CAIRN_PROFILE_TRUNCATED with a message in err (if not
 * NULL) when there were more devices or model files than a profile holds, or model files
 * whose names a profile cannot carry (over 127 bytes or not printable UTF-8); the files kept
 * are the first by name (byte order), so repeated gathers report the same ones. Returns -1
 * on failure, with *out undefined.
 */
int cairn_profile_gather(const char *models_dir, cairn_node_profile *out, cairn_err *err);

/* Reports at most cap bytes of memory (total and available alike, so they stay consistent),
 * for a node that must leave the rest of its machine alone; a cap of 0 changes nothing. */
void cairn_profile_cap_memory(cairn_node_profile *p, uint64_t cap);

#endif
