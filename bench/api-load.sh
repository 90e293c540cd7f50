#!/usr/bin/env bash
# Load on the API: 32 concurrent streaming completions against one instance of stories260K
# placed on two nodes, sent half to each node's API (every stream is checked against single-process greedy output), with
# time to first token and tokens/s, p50 and p99 (figures in bench/RESULTS.md).
# Usage: bench/api-load.sh [STREAMS] [CAIRN_BINARY]
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
streams=${1:-32}
set -- "${2:-$root/build/cairn}" "$root/../shared"
here=$root/tests/cli
source "$here/common.bash"
source "$here/cluster.bash"
tokens=48
model=stories260K.gguf
for i in 1 2; do
  mkdir -p "$tmp/m$i"
  cp "$models/$model" "$tmp/m$i/"
  start_node "$i" --no-discovery --peer "127.0.0.1:$port_base" --runner-threads 1 \
    --slots 8 --runner-ctx 256 --log-level info
done
wait_agreed 20 2 1 2 >/dev/null || exit 1
api=127.0.0.1:$((api_base + 1))
for _ in $(seq 1 50); do
  "$cairn" place "$model" --nodes 2 --api "$api" >/dev/null 2>&1 && break
  sleep 0.2
done
{
  echo "{"
  for k in $(seq 1 8); do
    p="Story number $k: once upon a time"
    t=$("$cairn" generate -m "$models/$model" -p "$p" --temp 0 -n "$tokens" -t 1 2>/dev/null |
      node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.stringify(s.replace(/\n$/,""))))')
    printf '  "%s": %s%s\n' "$p" "$t" "$([ "$k" = 8 ] || echo ,)"
  done
  echo "}"
} >"$tmp/expected.json"
"$cairn" generate --cluster --api "$api" -m "$model" -p warm -n 2 >/dev/null
node "$root/bench/api-load.mjs" "http://$api,http://127.0.0.1:$((api_base + 2))" "$model" "$streams" "$tokens" "$tmp/expected.json"
