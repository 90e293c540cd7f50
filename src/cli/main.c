/* cli: the cairn command (placeholder until the commands land). */
#include <stdio.h>

int main(void) {
    puts("cairn " CAIRN_VERSION);
    return 0;
}
