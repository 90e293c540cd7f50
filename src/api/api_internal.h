/* api: what the module's own files share; not for use outside src/api/. */
#ifndef CAIRN_API_INTERNAL_H
#define CAIRN_API_INTERNAL_H

#include <stddef.h>

/* Copies s into out (size > 0) with every character that is not printable UTF-8 replaced
 * by '?', cut on a character boundary to fit: text from the network must not reach a
 * terminal with its control characters (an escape sequence could drive the terminal). */
void api_printable_copy(char *out, size_t size, const char *s);

#endif
