#!/usr/bin/env bash
# Distributed inference figures on loopback (prints them; never fails on a number):
#  - the latency a pipeline hop adds to each token: stories260K (compute is negligible) on one
#    node and split over three (three hops per token: shard 1 -> 2 -> 3 -> back to 1);
#  - aggregate decode throughput with 1, 2 and 4 concurrent streams on two nodes (one
#    compute thread per runner), against the same model on one node with one thread;
#  - the peak resident memory of each runner against its shard's footprint.
#
# Usage: bench/cluster-infer.sh [MODEL] [CAIRN_BINARY]
#   MODEL defaults to bench/models/tinyllama-1.1b-q4_0.gguf (bench/make-models.sh makes it).
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
model=${1:-$root/bench/models/tinyllama-1.1b-q4_0.gguf}
set -- "${2:-$root/build/cairn}" "$root/../shared"
here=$root/tests/cli
source "$here/common.bash"
source "$here/cluster.bash"
[ -f "$model" ] || { echo "no $model: run bench/make-models.sh first" >&2; exit 1; }
name=$(basename "$model")
tokens=64

opts=(--no-discovery --peer "127.0.0.1:$port_base" --runner-threads 1 --runner-ctx 512 --slots 4)
cluster() { # N FILE: N nodes holding FILE, agreed
  for i in $(seq 1 "$1"); do
    mkdir -p "$tmp/m$i"
    ln -f "$2" "$tmp/m$i/" 2>/dev/null || cp "$2" "$tmp/m$i/"
    start_node "$i" "${opts[@]}"
  done
  wait_agreed 20 "$1" $(seq 1 "$1") >/dev/null
}
place() { # FILE NODES: place and wait until the first generation answers
  local start=$(now)
  until "$cairn" place "$1" --nodes "$2" --api "$(api 1)" >/dev/null 2>&1; do
    awk -v e="$(elapsed "$start")" 'BEGIN { exit !(e > 120) }' && { echo "cannot place $1" >&2; return 1; }
    sleep 0.5
  done
  "$cairn" generate --cluster --api "$(api 1)" -m "$1" -p "warm up" -n 4 --temp 0 >/dev/null
}
gen() { # NODE FILE PROMPT N
  "$cairn" generate --cluster --api "$(api "$1")" -m "$2" -p "$3" -n "$4" --temp 0 >/dev/null
}
seconds() { # COMMAND...: wall seconds
  local start=$(now)
  "$@"
  elapsed "$start"
}

# ---- hop latency ----
small=$shared/models/stories260K.gguf
per_token() { # NODES: ms per decoded token on an instance over NODES nodes
  local t1 t2
  t1=$(seconds gen 1 stories260K.gguf "Once upon a time" 1)
  t2=$(seconds gen 1 stories260K.gguf "Once upon a time" 201)
  awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.3f", (b - a) * 1000 / 200 }'
}
cluster 3 "$small"
place stories260K.gguf 1 && one=$(per_token)
"$cairn" delete "$(node_state 1 | grep -o '"id":"i-[0-9a-f]*"' | head -1 | cut -d'"' -f4)" \
  --api "$(api 1)" >/dev/null
place stories260K.gguf 3 && three=$(per_token)
stop_all
echo "hop latency (stories260K, 200 greedy tokens, loopback):"
echo "  1 shard : ${one} ms/token"
echo "  3 shards: ${three} ms/token (3 hops per token)"
awk -v a="$one" -v b="$three" 'BEGIN { printf "  added per hop: %.3f ms\n", (b - a) / 3 }'

# ---- throughput: 1, 2, 4 streams ----
prompts=("Once upon a time" "The history of" "In a small town" "Write a story about")
streams() { # K: aggregate tokens/s of K concurrent streams of $tokens tokens
  local k=$1 start jobs=()
  start=$(now)
  for j in $(seq 0 $((k - 1))); do
    gen 1 "$name" "${prompts[$j]}" "$tokens" &
    jobs+=($!)
  done
  wait "${jobs[@]}"
  awk -v k="$k" -v n="$tokens" -v t="$(elapsed "$start")" 'BEGIN { printf "%.1f", k * n / t }'
}
for nodes in 1 2; do
  cluster "$nodes" "$model"
  place "$name" "$nodes" || exit 1
  line="$name on $nodes node(s), 1 thread per runner:"
  for k in 1 2 4; do line="$line  $k stream(s) $(streams "$k") tok/s"; done
  echo "$line"
  if [ "$nodes" = 2 ]; then
    echo "peak memory of each runner against its shard's footprint:"
    st=$(node_state 1)
    file=$(grep -o "\"name\":\"$name\",[^}]*" <<<"$st" | head -1)
    n_layers=$(json_field "$file" n_layers)
    for i in 1 2; do
      pid=$(pgrep -f "runner --model $tmp/m$i/" | head -1)
      hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
      range=$(grep -o "\"node\":\"n$i\",\"layer_start\":[0-9]*,\"layer_end\":[0-9]*" <<<"$st" | head -1)
      a=$(json_field "$range" layer_start)
      b=$(json_field "$range" layer_end)
      awk -v a="$a" -v b="$b" -v n="$n_layers" -v l="$(json_field "$file" layer_bytes)" \
        -v e="$(json_field "$file" embd_bytes)" -v h="$(json_field "$file" head_bytes)" \
        -v k="$hwm" -v i="$i" 'BEGIN {
          f = (b - a) * l + (a == 0 ? e : 0) + (b == n ? h : 0)
          printf "  n%s layers %d-%d: footprint %.1f MiB, peak RSS %.1f MiB\n", i, a, b, f / 1048576, k / 1024 }'
    done
  fi
  stop_all
done
