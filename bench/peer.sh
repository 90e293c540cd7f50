#!/usr/bin/env bash
# cairn against llama.cpp on the same files, as ratios cairn / llama.cpp (above 1: cairn is
# faster). llama.cpp's llama-bench and llama-server are built once from the pinned source
# into build-oracle/ (benchmarks only: never CI, never linked into cairn).
#  - engine: `cairn bench` against `llama-bench`, prefill and decode (llama-bench decodes at
#    the depth of the prompt, as cairn bench does), at each thread count;
#  - API: concurrent streaming completions (bench/api-load.mjs) against one cairn node and
#    against llama-server with -np STREAMS, aggregate tokens/s and time to first token.
# Models: random weights in TinyLlama-1.1B's shapes (Q4_0, Q8_0, and Q4_K_M made by
# llama-quantize from F16), and the real stories260K.
# The llama.cpp side is the oracle's build (scripts/build-oracle.sh): portable x86-64-v3
# kernels like cairn's default build, and without llamafile's sgemm, which cairn's ggml does
# not use either; llama.cpp's own defaults (native, llamafile) are not what is compared.
#
# Usage: bench/peer.sh [-t "THREADS..."] [-s "STREAMS..."] [-p PROMPT] [-n TOKENS] [-r REPEATS]
#   defaults: -t "2 1" -s "4 8 16" -p 256 -n 64 -r 3
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
threads_list="2 1" streams_list="4 8 16" n_prompt=256 n_gen=64 repeats=3
while [ $# -gt 0 ]; do
  case $1 in
    -t) threads_list=$2; shift ;;
    -s) streams_list=$2; shift ;;
    -p) n_prompt=$2; shift ;;
    -n) n_gen=$2; shift ;;
    -r) repeats=$2; shift ;;
    *) echo "usage: $0 [-t THREADS] [-s STREAMS] [-p N] [-n N] [-r N]" >&2; exit 2 ;;
  esac
  shift
done
"$repo/scripts/setup.sh" >/dev/null
"$repo/scripts/build.sh" "$repo/build" >/dev/null
oracle=$repo/build-oracle
"$repo/scripts/build-oracle.sh" "$oracle" "$repo/build" >/dev/null
if [ ! -x "$oracle/bin/llama-server" ]; then
  cmake -S "$repo/tools/oracle" -B "$oracle" -DCAIRN_ORACLE_SERVER=ON >/dev/null
  cmake --build "$oracle" -j "$(nproc)" --target llama-server >/dev/null
fi
models=$repo/bench/models
mkdir -p "$models"
genmodel=$repo/build/tools/cairn-genmodel
vocab=$repo/../shared/vocab/ggml-vocab-llama-spm.gguf
for type in Q4_0 Q8_0 F16; do
  f=$models/tinyllama-1.1b-$type.gguf
  [ -f "$f" ] || "$genmodel" --shape tinyllama-1.1b --type "$type" --vocab "$vocab" -o "$f" >/dev/null
done
q4km=$models/tinyllama-1.1b-Q4_K_M.gguf
[ -f "$q4km" ] ||
  "$oracle/bin/llama-quantize" "$models/tinyllama-1.1b-F16.gguf" "$q4km" Q4_K_M >/dev/null 2>&1
files=("$models/tinyllama-1.1b-Q4_0.gguf" "$models/tinyllama-1.1b-Q8_0.gguf" "$q4km"
  "$repo/../shared/models/stories260K.gguf")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }
# rate OUTPUT KEY: the tokens/s figure on cairn bench's line KEY (prefill: or decode:)
rate() { awk -v k="$2" '$1 == k { for (i = 1; i <= NF; i++) if ($i == "tokens/s") { print $(i - 1); exit } }' <<<"$1"; }
# llama_rate CSV: llama-bench's average tokens/s of its one test
llama_rate() {
  awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) { gsub(/"/, "", $i); col[$i] = i } next }
           { gsub(/"/, ""); print $col["avg_ts"]; exit }' <<<"$1"
}

echo "== engine: prefill $n_prompt and decode $n_gen tokens, $repeats runs (tokens/s)"
echo "| model | threads | cairn prefill | llama.cpp prefill | ratio | cairn decode | llama.cpp decode | ratio |"
echo "|---|---|---|---|---|---|---|---|"
for f in "${files[@]}"; do
  for t in $threads_list; do
    out=$("$repo/build/cairn" bench -m "$f" -p "$n_prompt" -n "$n_gen" -t "$t" -r "$repeats")
    # cairn bench decodes after its prompt, so llama-bench decodes at that depth (-d)
    pp=$("$oracle/bin/llama-bench" -m "$f" -p "$n_prompt" -n 0 -t "$t" -r "$repeats" -o csv 2>/dev/null)
    tg=$("$oracle/bin/llama-bench" -m "$f" -p 0 -n "$n_gen" -d "$n_prompt" -t "$t" -r "$repeats" \
      -o csv 2>/dev/null)
    cp_=$(rate "$out" prefill:) cd_=$(rate "$out" decode:)
    lp=$(llama_rate "$pp") ld=$(llama_rate "$tg")
    echo "| $(basename "$f" .gguf) | $t | $cp_ | $lp | $(ratio "$cp_" "$lp") | $cd_ | $ld | $(ratio "$cd_" "$ld") |"
  done
done

# ---- API: one node against llama-server, same file, 2 threads ----
api_file=$models/tinyllama-1.1b-Q4_0.gguf
tokens=32
echo "== API: concurrent streams of $tokens tokens, $(basename "$api_file"), 2 threads"
for s in $streams_list; do
  c=$(MODEL=$api_file NODES=1 SLOTS=$s THREADS=2 TOKENS=$tokens CTX=512 \
    bash "$repo/bench/api-load.sh" "$s" "$repo/build/cairn" 2>/dev/null | tail -1)
  port=$((40000 + RANDOM % 2000))
  "$oracle/bin/llama-server" -m "$api_file" -t 2 -np "$s" -c $((512 * s)) --port "$port" \
    --host 127.0.0.1 >/dev/null 2>&1 &
  server=$!
  for _ in $(seq 1 120); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    sleep 0.5
  done
  expected=$(mktemp)
  node -e 'const o={};for(let k=1;k<=8;k++)o[`Story number ${k}: once upon a time`]="";console.log(JSON.stringify(o))' >"$expected"
  l=$(node "$repo/bench/api-load.mjs" "http://127.0.0.1:$port" "$(basename "$api_file")" "$s" \
    "$tokens" "$expected" 2>/dev/null | tail -1 || true)
  kill "$server" 2>/dev/null
  wait "$server" 2>/dev/null || true
  rm -f "$expected"
  ca=$(grep -o 'aggregate [0-9.]*' <<<"$c" | cut -d' ' -f2)
  la=$(grep -o 'aggregate [0-9.]*' <<<"$l" | cut -d' ' -f2)
  echo "$s streams: cairn: $c"
  echo "$s streams: llama-server: ${l#*exact; }"
  echo "$s streams: aggregate ratio $(ratio "${ca:-0}" "${la:-0}")"
done
