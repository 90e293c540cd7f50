/* model_measure: a model file's hash and footprint; see model_measure.h. */
#include "cluster/model_measure.h"

#include <string.h>

#include "model/model.h"

int model_measure_file(const char *path, int n_ctx, int n_seq, bool (*keep_going)(void *user),
                       void *user, model_measure *out, cairn_err *err) {
    memset(out, 0, sizeof *out);
    if (cairn_file_sha256_until(path, out->sha256, keep_going, user, err) != 0) {
        return -1;
    }
    cairn_footprint fp;
    cairn_err ignored = {{0}}; /* a file that is no model simply has no footprint */
    if (cairn_model_footprint(path, n_ctx, n_seq, &fp, &ignored) == 0) {
        out->n_layers = fp.n_layers;
        out->layer_bytes = fp.layer_bytes;
        out->embd_bytes = fp.embd_bytes;
        out->head_bytes = fp.head_bytes;
    }
    return 0;
}
