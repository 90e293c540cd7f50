#!/usr/bin/env bash
# Reads `objdump -p` of a Windows program on stdin and prints the DLLs it imports that are
# not part of Windows itself (one a line; nothing when there are none). cairn.exe is linked
# statically, so anything printed here would have to ship with it: packaging refuses it.
# crypt32 is Windows' certificate store, which curl's Schannel TLS reads.
set -euo pipefail
system='kernel32|advapi32|shell32|msvcrt|ws2_32|user32|psapi|bcrypt|iphlpapi|userenv|mswsock|ole32|crypt32'
sed -n 's/^\s*DLL Name: //p' | tr -d '\r' | grep -viE "^($system)\.dll$" || true
