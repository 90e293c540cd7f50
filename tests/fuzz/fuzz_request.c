/* libFuzzer target: API request bodies (src/api/request.c). The first byte picks the API
 * flavour, the rest is the body. Whatever parses must stay within the request's bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "api/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) {
        return 0;
    }
    cairn_api_generation g;
    cairn_err err = {{0}};
    if (cairn_api_parse_generation((const char *)data + 1, size - 1,
                                   (cairn_api_flavor)(data[0] % CAIRN_API_FLAVORS), &g,
                                   &err) == 0 &&
        (!g.model[0] || (g.prompt == NULL) == (g.messages == NULL) ||
         g.gen.n_stop > CAIRN_API_MAX_STOPS || g.gen.max_tokens < 0 || g.gen.top_logprobs < 0 ||
         g.gen.top_logprobs > CAIRN_MAX_TOP_LOGPROBS)) {
        abort();
    }
    cairn_api_generation_free(&g);
    return 0;
}
