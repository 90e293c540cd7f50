#!/usr/bin/env bash
# Builds the test oracle once: llama.cpp's library, llama-quantize and cairn-oracle
# (tools/oracle), from the pinned llama.cpp tree that the cairn build fetched into
# CAIRN_BUILD/_deps/llama.cpp. Nothing of it is linked into cairn; the tests in
# tests/oracle/ run its programs when CAIRN_ORACLE_DIR names this build.
# Usage: build-oracle.sh [ORACLE_BUILD_DIR] [CAIRN_BUILD_DIR]
#   (defaults: build-oracle/ and build/ at the repository root)
# Only the llama library (with ggml's CPU backend), llama-common (llama-quantize needs it,
# and the oracle's chat templates are its Jinja engine), llama-quantize and cairn-oracle
# are built: about 10 minutes on 2 cores, once.
# A build that is complete and newer than the oracle's sources is reused without running
# cmake at all, so later stages of one CI run pay nothing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build-oracle}
cairn_build=${2:-$root/build}
src=$cairn_build/_deps/llama.cpp
jobs=$(nproc 2>/dev/null || echo 2)
stamp=$out/oracle.stamp

if [ ! -f "$src/CMakeLists.txt" ]; then
  echo "build-oracle: no llama.cpp tree in $src (run scripts/build.sh $cairn_build first)" >&2
  exit 1
fi
if [ -f "$stamp" ] && [ -x "$out/bin/cairn-oracle" ] && [ -x "$out/bin/llama-quantize" ] &&
   [ -z "$(find "$root/tools/oracle" "$root/tools/logits_file.h" "$src/.git/HEAD" \
           -newer "$stamp" 2>/dev/null)" ]; then
  echo "build-oracle: up to date in $out"
  exit 0
fi

start=$(date +%s)
# GGML_NATIVE=OFF: the portable x86-64-v3 kernels (AVX2, FMA, F16C), as cairn's default
# build uses, so both sides take comparable kernel paths and CI machines can share it.
# GGML_LLAMAFILE=OFF: cairn's ggml has no llamafile sgemm either (ggml's own default); with
# it, F16 products take another kernel and logits differ by up to ~1e-3 relative, which
# would hide graph-level errors of that size. Configuring again is cheap and picks up
# another CAIRN_BUILD_DIR.
cmake -S "$root/tools/oracle" -B "$out" -DCMAKE_BUILD_TYPE=Release \
    -DCAIRN_LLAMA_SOURCE_DIR="$src" \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=OFF -DGGML_LLAMAFILE=OFF \
    -DCMAKE_RUNTIME_OUTPUT_DIRECTORY="$out/bin" >/dev/null
cmake --build "$out" -j "$jobs" --target cairn-oracle llama-quantize llama-bench
touch "$stamp"
echo "build-oracle: built in $out in $(($(date +%s) - start)) s"
