#!/usr/bin/env bash
# The Windows package's DLL check (scripts/windows/foreign-dlls.sh): the DLLs cairn.exe
# imports from Windows itself pass, crypt32 (curl's Schannel TLS reads the certificate
# store through it) among them, in any case; any other DLL is named, so the packaging
# refuses to build a zip that would miss it.
here=$(dirname "$0")
source "$here/common.bash"
check=$here/../../scripts/windows/foreign-dlls.sh

imports() { # DLL...: lines as objdump -p prints a program's imports
  for dll in "$@"; do printf '\tDLL Name: %s\r\n' "$dll"; done
}
out=$(imports KERNEL32.dll ADVAPI32.dll CRYPT32.dll crypt32.dll bcrypt.dll WS2_32.dll \
  msvcrt.dll USER32.dll | bash "$check")
expect_eq "Windows' own DLLs" "$out" ""
out=$(imports KERNEL32.dll libcurl-4.dll CRYPT32.dll libwinpthread-1.dll | bash "$check")
expect_eq "DLLs that would have to ship" "$out" "libcurl-4.dll
libwinpthread-1.dll"
finish
