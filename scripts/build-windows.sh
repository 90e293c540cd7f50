#!/usr/bin/env bash
# Cross-builds cairn for 64-bit Windows with MinGW-w64: first the libraries it links, from
# Debian's sources (scripts/windows/build-deps.sh), then cairn, its tools and its tests.
# Everything is cached in the build tree (default: build-win/). Tests then run under Wine:
#   ctest --test-dir build-win
# Usage: build-windows.sh [BUILD_DIR] [extra cmake -D options...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build-win}
shift || true
mkdir -p "$build"
build=$(cd "$build" && pwd)
jobs=$(nproc 2>/dev/null || echo 2)
"$root/scripts/setup.sh" --windows

CAIRN_DEPS_JOBS=$jobs "$root/scripts/windows/build-deps.sh" "$build/_deps"
if [ ! -f "$build/CMakeCache.txt" ] || [ $# -gt 0 ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_TOOLCHAIN_FILE="$root/cmake/mingw-w64-x86_64.cmake" \
    -DCAIRN_WINDOWS_DEPS="$build/_deps/prefix" "$@" >/dev/null
fi
cmake --build "$build" -j "$jobs"
