#!/usr/bin/env bash
# Mixture-of-experts speed against llama.cpp on the same files: `cairn bench` and the
# oracle's `llama-bench` (scripts/build-oracle.sh), same threads, prompt and decode lengths.
# The models are random-weight Q8_0 files in the real shapes of Qwen3-30B-A3B (4 of its 48
# layers, all 128 experts) and gpt-oss-20b (2 of 24 layers, all 32 experts), with 4096-token
# vocabularies: per layer they are the real models, so tokens/s scale with layers.
#
# Usage: bench/moe-vs-llamacpp.sh [-p PROMPT] [-n TOKENS] [-r REPEATS] [-t THREADS]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
n_prompt=128 n_gen=32 repeats=3 threads=2
while [ $# -gt 0 ]; do
  case $1 in
    -p) n_prompt=$2; shift ;;
    -n) n_gen=$2; shift ;;
    -r) repeats=$2; shift ;;
    -t) threads=$2; shift ;;
    *) echo "usage: $0 [-p N] [-n N] [-r N] [-t N]" >&2; exit 2 ;;
  esac
  shift
done
"$repo/scripts/setup.sh"
"$repo/scripts/build.sh" "$repo/build" >/dev/null
"$repo/scripts/build-oracle.sh" "$repo/build-oracle" "$repo/build" >/dev/null
models=$repo/bench/models
mkdir -p "$models"
gen() { # NAME SHAPE LAYERS
  [ -f "$models/$1.gguf" ] ||
    "$repo/build/tools/cairn-genmodel" --shape "$2" --layers "$3" --vocab-size 4096 --std 0.06 \
      --type Q8_0 -o "$models/$1.gguf" >/dev/null
}
gen moe-qwen3moe-4l qwen3moe-30b-a3b 4
gen moe-gpt-oss-2l gpt-oss-20b 2
for m in moe-qwen3moe-4l moe-gpt-oss-2l; do
  echo "== $m: cairn"
  "$repo/build/cairn" bench -m "$models/$m.gguf" -p "$n_prompt" -n "$n_gen" -t "$threads" \
    -r "$repeats" | grep -E "^(prefill|decode|reads):"
  echo "== $m: llama.cpp"
  "$repo/build-oracle/bin/llama-bench" -m "$models/$m.gguf" -p "$n_prompt" -n "$n_gen" \
    -t "$threads" -r "$repeats" | grep -E "pp$n_prompt|tg$n_gen"
done
