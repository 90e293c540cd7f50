/* util: the SHA-256 of a whole file, read in chunks (model files are tens of GB). */
#include "util/util.h"

#include "platform/platform.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

/* On the heap: the hash runs on worker threads, whose stacks may be small. */
#define SHA256_CHUNK ((size_t)256 << 10)

static int hash_stream(FILE *f, const char *path, bool (*keep_going)(void *), void *user,
                       unsigned char digest[32], cairn_err *err) {
    unsigned char *chunk = malloc(SHA256_CHUNK);
    if (!chunk) {
        return cairn_fail(err, "out of memory hashing %s", path);
    }
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    size_t n = 0;
    bool stopped = false;
    while (!(stopped = keep_going && !keep_going(user)) &&
           (n = fread(chunk, 1, SHA256_CHUNK, f)) > 0) {
        crypto_hash_sha256_update(&st, chunk, n);
    }
    free(chunk);
    if (stopped) {
        return cairn_fail(err, "hashing %s was stopped", path);
    }
    if (ferror(f)) {
        return cairn_fail(err, "cannot read %s", path);
    }
    crypto_hash_sha256_final(&st, digest);
    return 0;
}

int cairn_file_sha256_until(const char *path, char hex[65], bool (*keep_going)(void *user),
                            void *user, cairn_err *err) {
    if (sodium_init() < 0) {
        return cairn_fail(err, "libsodium failed to initialize");
    }
    FILE *f = cairn_fopen(path, "rb");
    if (!f) {
        return cairn_fail(err, "cannot open %s: %s", path, strerror(errno));
    }
    unsigned char digest[crypto_hash_sha256_BYTES];
    int rc = hash_stream(f, path, keep_going, user, digest, err);
    fclose(f);
    if (rc == 0) {
        sodium_bin2hex(hex, 65, digest, sizeof digest);
    }
    return rc;
}

int cairn_file_sha256(const char *path, char hex[65], cairn_err *err) {
    return cairn_file_sha256_until(path, hex, NULL, NULL, err);
}
