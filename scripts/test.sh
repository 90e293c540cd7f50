#!/usr/bin/env bash
# Sets up, builds and runs cairn's whole test suite: the release build, the static checks,
# the same tests built with AddressSanitizer and UBSan, and the Windows build's tests under
# Wine, then the Windows package (zip and installer, whose silent install, run and uninstall
# are checked under Wine). Build trees are cached (build/,
# build-asan/, build-win/, and build-oracle/: the llama.cpp oracle, built once from the
# source the release build fetched and used by the release and sanitizer suites alike).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc 2>/dev/null || echo 2)
"$root/scripts/setup.sh"

oracle=$root/build-oracle
echo "== release build and tests"
"$root/scripts/build.sh" "$root/build" -DCAIRN_ORACLE_DIR="$oracle"
echo "== test oracle (llama.cpp, pinned source)"
"$root/scripts/build-oracle.sh" "$oracle" "$root/build"
(cd "$root/build" && ctest --output-on-failure -j "$jobs")

echo "== lint (clang-format, clang-tidy)"
"$root/scripts/lint.sh" "$root/build"

echo "== sanitizer build (ASan + UBSan) and tests"
"$root/scripts/build.sh" "$root/build-asan" -DCAIRN_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCAIRN_ORACLE_DIR="$oracle"
(cd "$root/build-asan" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
   UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j "$jobs" -LE large)

echo "== Windows cross build (MinGW-w64) and the same tests under Wine"
"$root/scripts/build-windows.sh" "$root/build-win"
# Stop this prefix's wineserver (started by the first test) whatever the outcome.
trap 'WINEPREFIX="$root/build-win/wineprefix" wineserver -k >/dev/null 2>&1 || true' EXIT
(cd "$root/build-win" && ctest --output-on-failure -j "$jobs")

echo "== Windows package (the zip and the installer)"
"$root/scripts/package-windows.sh" "$root/build-win"
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$root/build-win/CMakeCache.txt")
package=$root/build-win/package/cairn-$version-windows-x86_64
unzip -l "$package.zip" | grep -q "cairn-$version-windows-x86_64/cairn.exe$"
[ -s "$package-setup.exe" ]

echo "== Windows installer under Wine (silent install, a generate from Program Files, uninstall)"
"$root/scripts/check-windows-installer.sh" "$package-setup.exe" "$root/build/cairn" \
  "$(cd "$root/.." && pwd)/shared" "$root/build-win/wineprefix-install"
