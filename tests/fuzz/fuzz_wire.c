/* libFuzzer target for the cluster wire decoder: the input is a peer's byte stream (after
 * two configuration bytes, see wire_fuzz_entry.h), fed in chunks, every frame parsed and
 * re-encoded. Sanitizers catch memory errors; a broken invariant traps. */
#include <stdio.h>

#include "wire_fuzz_entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cairn_err why = {{0}};
    if (wire_fuzz_one(data, size, &why) != 0) {
        fprintf(stderr, "wire invariant broken: %s\n", why.msg);
        abort();
    }
    return 0;
}
