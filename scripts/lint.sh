#!/usr/bin/env bash
# Static checks of cairn's own C code: clang-format (one style, .clang-format) and
# clang-tidy (.clang-tidy, every finding an error). Needs a configured build directory for
# compile_commands.json (default: build/). Usage: lint.sh [BUILD_DIR] [--fix-format]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
cd "$root"
mapfile -t sources < <(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 'tests/*.h' 'tools/*.c' 'bench/*.c')
if [ "${2:-}" = "--fix-format" ]; then
  clang-format -i "${sources[@]}"
  exit 0
fi
echo "clang-format: ${#sources[@]} files"
clang-format --dry-run --Werror "${sources[@]}"
# clang-tidy checks the translation units this platform compiles.
mapfile -t units < <(git ls-files 'src/*.c' | grep -v '_win32\.c$')
echo "clang-tidy: ${#units[@]} files"
printf '%s\n' "${units[@]}" |
  xargs -P "$(nproc 2>/dev/null || echo 2)" -n 4 clang-tidy -p "$build" --quiet --warnings-as-errors='*' 2>/dev/null
echo "lint: clean"
