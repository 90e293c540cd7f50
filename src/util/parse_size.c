/* util: byte sizes as people write them ("8G", "512MiB", "1.5GiB", "1048576"). */
#include "util/util.h"

#include <string.h>

/* Binary multiples, whatever the spelling: K, KiB and k are all 1024. */
static int unit_of(const char *s, uint64_t *mult) {
    static const char letters[] = "KMGT";
    if (*s == '\0') {
        *mult = 1;
        return 0;
    }
    if (strcmp(s, "B") == 0 || strcmp(s, "b") == 0) {
        *mult = 1;
        return 0;
    }
    char c = (char)(*s >= 'a' && *s <= 'z' ? *s - 'a' + 'A' : *s);
    const char *at = c ? strchr(letters, c) : NULL;
    if (!at || (s[1] != '\0' && strcmp(s + 1, "iB") != 0 && strcmp(s + 1, "ib") != 0)) {
        return -1;
    }
    *mult = (uint64_t)1 << (10 * (at - letters + 1));
    return 0;
}

int cairn_parse_size(const char *text, uint64_t *out, cairn_err *err) {
    const char *p = text;
    uint64_t whole = 0, frac = 0, scale = 1, mult = 1, v = 0;
    bool digits = false;
    for (; *p >= '0' && *p <= '9'; p++, digits = true) {
        if (cairn_mul_overflows(whole, 10, &whole) ||
            cairn_add_overflows(whole, (uint64_t)(*p - '0'), &whole)) {
            return cairn_fail(err, "size \"%s\" is too large", text);
        }
    }
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++, digits = true) {
            if (scale < UINT64_C(1000000000)) { /* further digits are below a byte */
                frac = frac * 10 + (uint64_t)(*p - '0');
                scale *= 10;
            }
        }
    }
    if (!digits || unit_of(p, &mult) != 0) {
        return cairn_fail(err,
                          "size \"%s\" is not a number of bytes with an optional K, M, G or "
                          "T (KiB, MiB, GiB, TiB) suffix",
                          text);
    }
    if (cairn_mul_overflows(whole, mult, &v) ||
        cairn_add_overflows(v, frac * (mult / scale) + frac * (mult % scale) / scale, &v)) {
        return cairn_fail(err, "size \"%s\" is too large", text);
    }
    *out = v;
    return 0;
}
