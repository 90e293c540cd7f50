#!/usr/bin/env bash
# Checks the Windows installer under Wine, in a Wine prefix of its own (created afresh):
# a silent install (/S) puts cairn.exe in Program Files and registers its uninstaller; the
# installed cairn.exe generates on stories260K exactly what the native build generates; a
# silent uninstall leaves no file, Start menu entry or registry key of cairn behind.
# Usage: check-windows-installer.sh SETUP.exe NATIVE_CAIRN SHARED_DIR PREFIX_DIR
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
setup=$1 native=$2 shared=$3 prefix=$4
wine_run=$root/scripts/windows/wine-run.sh
fail() { echo "check-windows-installer: $*" >&2; exit 1; }
# polls COMMAND... for up to 60 s (the uninstaller finishes from a copy of itself, after
# the program that started it has exited)
eventually() {
  for _ in $(seq 1 120); do "$@" && return 0; sleep 0.5; done
  return 1
}
no_cairn_keys() { ! grep -qi '\\cairn\]' "$prefix/system.reg"; }

mkdir -p "$prefix" # Wine takes only absolute prefixes
prefix=$(cd "$prefix" && pwd) setup=$(cd "$(dirname "$setup")" && pwd)/$(basename "$setup")
WINEPREFIX=$prefix wineserver -k >/dev/null 2>&1 || true
rm -rf "$prefix"
trap 'WINEPREFIX="$prefix" wineserver -k >/dev/null 2>&1 || true' EXIT
dir=$prefix/drive_c/Program\ Files/cairn
menu=$prefix/drive_c/ProgramData/Microsoft/Windows/Start\ Menu/Programs/cairn

timeout 300 "$wine_run" "$prefix" "$setup" /S || fail "the silent install failed"
eventually test -f "$dir/cairn.exe" || fail "no cairn.exe in Program Files after the install"
[ -f "$dir/uninstall.exe" ] || fail "no uninstaller in Program Files"
eventually grep -qi 'Uninstall\\\\cairn\]' "$prefix/system.reg" ||
  fail "the uninstaller is not registered"

prompt="Once upon a time"
want=$("$native" generate -m "$shared/models/stories260K.gguf" -p "$prompt" -n 16 --temp 0 -t 1 --ids)
got=$(timeout 300 "$wine_run" "$prefix" "$dir/cairn.exe" generate \
  -m "Z:$shared/models/stories260K.gguf" -p "$prompt" -n 16 --temp 0 -t 1 --ids | tr -d '\r') ||
  fail "the installed cairn.exe did not generate"
[ "$got" = "$want" ] || fail "the installed cairn.exe generated [$got], expected [$want]"

timeout 300 "$wine_run" "$prefix" "$dir/uninstall.exe" /S || fail "the silent uninstall failed"
eventually test ! -e "$dir" || fail "Program Files still holds: $(ls "$dir")"
[ ! -e "$menu" ] || fail "the Start menu still holds cairn's entries"
eventually no_cairn_keys || fail "registry keys of cairn remain"
echo "check-windows-installer: installed, generated [$got], uninstalled without a trace"
