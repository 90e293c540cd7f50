/* libFuzzer target: chat templates (src/chat/jinja_*.c). The input is a template's source,
 * rendered with a fixed conversation (see jinja_fuzz_entry.h). Sanitizers catch memory
 * errors and leaks; a broken render contract traps; an unbounded render times out. */
#include <stdio.h>

#include "jinja_fuzz_entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cJSON *context = jinja_fuzz_context();
    if (!context) {
        abort();
    }
    cairn_err why = {{0}};
    int rc = jinja_fuzz_one(data, size, context, &why);
    cJSON_Delete(context);
    if (rc != 0) {
        fprintf(stderr, "jinja render contract broken: %s\n", why.msg);
        abort();
    }
    return 0;
}
