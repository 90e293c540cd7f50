#!/usr/bin/env bash
# The engine benchmark of bench/RESULTS.md: memory read bandwidth, then `cairn bench` on the
# TinyLlama-1.1B-shaped Q4_0 and Q8_0 models with 2 threads, each compared with its
# roofline (bandwidth / bytes read per decoded token), measured in the same run.
#
# Usage: bench/run-engine.sh [--native] [-p PROMPT] [-n TOKENS] [-r REPEATS]
#   --native   build and measure with -DCAIRN_NATIVE=ON (build-native/) instead of the
#              portable build (build/)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build=$repo/build
extra=()
n_prompt=512 n_gen=128 repeats=3 threads=2
while [ $# -gt 0 ]; do
  case $1 in
    --native) build=$repo/build-native; extra=(-DCAIRN_NATIVE=ON) ;;
    -p) n_prompt=$2; shift ;;
    -n) n_gen=$2; shift ;;
    -r) repeats=$2; shift ;;
    -t) threads=$2; shift ;;
    *) echo "usage: $0 [--native] [-p N] [-n N] [-r N] [-t N]" >&2; exit 2 ;;
  esac
  shift
done

"$repo/scripts/setup.sh"
"$repo/scripts/build.sh" "$build" "${extra[@]}" >/dev/null
CAIRN_BUILD_DIR=$build "$repo/bench/make-models.sh" >/dev/null

echo "machine: $(nproc) logical CPUs, $(free -g | awk '/^Mem:/ {print $2}') GiB;" \
     "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "\$ $build/bench/bandwidth -t $threads"
probe=$("$build/bench/bandwidth" -t "$threads")
echo "$probe"
# The best figure with the benchmark's thread count is the roofline's bandwidth.
bandwidth=$(echo "$probe" | awk -v t="$threads" '$1 == t {print $2}' | tail -1)
for model in tinyllama-1.1b-q4_0 tinyllama-1.1b-q8_0; do
  echo
  cmd=("$build/cairn" bench -m "$repo/bench/models/$model.gguf" -t "$threads" -p "$n_prompt"
       -n "$n_gen" -r "$repeats" --bandwidth "$bandwidth")
  echo "\$ ${cmd[*]}"
  "${cmd[@]}"
done
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
