#!/usr/bin/env bash
# Runs a Windows program under Wine, headless, in a Wine prefix of its own.
# Usage: wine-run.sh WINEPREFIX PROGRAM.exe [ARGS...]
# (the CMAKE_CROSSCOMPILING_EMULATOR of the Windows build; also usable by hand).
#
# The first call creates the prefix (about 15 s) and leaves one wineserver running for a
# while, warmed up with all output to /dev/null: without that, Wine's background services
# inherit the first program's stdout and whoever reads it (CTest) waits for them forever,
# and every program pays about 3 s for a server start of its own.
set -euo pipefail
prefix=${1:?usage: wine-run.sh WINEPREFIX PROGRAM [ARGS...]}
shift
export WINEPREFIX=${CAIRN_WINEPREFIX_OVERRIDE:-$prefix}
export WINEDEBUG=${WINEDEBUG:--all}
export WINEDLLOVERRIDES=${WINEDLLOVERRIDES:-mscoree,mshtml=}
unset DISPLAY WAYLAND_DISPLAY
command -v wine >/dev/null || { echo "wine-run: wine is not installed (apt-get install wine wine64)" >&2; exit 127; }

mkdir -p "$WINEPREFIX"
(
  flock 9
  # Exits at once with a non-zero status when this prefix's server already runs. A new one
  # stays up 10 minutes after the last Windows program exits. Its children must not
  # inherit the lock, as the server outlives this script.
  # A new prefix is initialised by a plain first start, before the long-lived server: set up
  # under a server started with -p (the other order), its service manager loses services
  # created later in the same session.
  if [ ! -f "$WINEPREFIX/system.reg" ]; then
    wine cmd /c exit </dev/null >/dev/null 2>&1 9>&- || true
    timeout 120 wineserver -w </dev/null >/dev/null 2>&1 9>&- || true
  fi
  if wineserver -p600 </dev/null >/dev/null 2>&1 9>&-; then
    wine cmd /c exit </dev/null >/dev/null 2>&1 9>&- || true
  fi
) 9>"$WINEPREFIX/.cairn-start.lock"
exec wine "$@"
