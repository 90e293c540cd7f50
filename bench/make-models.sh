#!/usr/bin/env bash
# Generates the random-weight benchmark models (real shapes, see bench/README.md) into
# OUT_DIR (default: bench/models, which git ignores). Files already there are kept, so
# rerunning only fills in what is missing.
#
# Environment: CAIRN_BUILD_DIR (default: build) holds tools/cairn-genmodel;
# CAIRN_SHARED_DIR (default: ../shared beside the checkout) holds vocab/.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out_dir="${1:-$repo/bench/models}"
build_dir="${CAIRN_BUILD_DIR:-$repo/build}"
shared_dir="${CAIRN_SHARED_DIR:-$repo/../shared}"
genmodel="$build_dir/tools/cairn-genmodel"

if [[ ! -x "$genmodel" ]]; then
  echo "make-models: $genmodel not found; build first or set CAIRN_BUILD_DIR" >&2
  exit 1
fi

# shape type vocab-file
models=(
  "tinyllama-1.1b Q4_0 ggml-vocab-llama-spm.gguf"
  "tinyllama-1.1b Q8_0 ggml-vocab-llama-spm.gguf"
  "llama-3.2-1b   Q4_0 ggml-vocab-gpt-2.gguf"
  "qwen2.5-0.5b   Q8_0 ggml-vocab-gpt-2.gguf"
)

mkdir -p "$out_dir"
for entry in "${models[@]}"; do
  read -r shape type vocab <<<"$entry"
  vocab_path="$shared_dir/vocab/$vocab"
  if [[ ! -f "$vocab_path" ]]; then
    echo "make-models: vocabulary $vocab_path not found; set CAIRN_SHARED_DIR" >&2
    exit 1
  fi
  out="$out_dir/$shape-${type,,}.gguf"
  if [[ -f "$out" ]]; then
    echo "make-models: $out exists, kept"
    continue
  fi
  "$genmodel" --shape "$shape" --type "$type" --vocab "$vocab_path" --seed 1 -o "$out"
done
