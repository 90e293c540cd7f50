#!/usr/bin/env bash
# Load on the API: concurrent streaming completions against one instance, placed on one or
# more loopback nodes and sent round their APIs (every stream is checked against
# single-process greedy output), with time to first token and tokens/s, p50 and p99, and the
# aggregate (figures in bench/RESULTS.md).
# Usage: bench/api-load.sh [STREAMS] [CAIRN_BINARY]
# Environment (defaults in brackets): MODEL, a GGUF file [../shared/models/stories260K.gguf];
# NODES [2]; SLOTS [8]; THREADS per runner [1]; TOKENS per stream [48]; CTX [256].
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
streams=${1:-32}
set -- "${2:-$root/build/cairn}" "$root/../shared"
here=$root/tests/cli
source "$here/common.bash"
source "$here/cluster.bash"
tokens=${TOKENS:-48}
model_path=${MODEL:-$models/stories260K.gguf}
model=$(basename "$model_path")
n_nodes=${NODES:-2}
for i in $(seq 1 "$n_nodes"); do
  mkdir -p "$tmp/m$i"
  ln -f "$model_path" "$tmp/m$i/" 2>/dev/null || cp "$model_path" "$tmp/m$i/"
  start_node "$i" --no-discovery --peer "127.0.0.1:$port_base" --runner-threads "${THREADS:-1}" \
    --slots "${SLOTS:-8}" --runner-ctx "${CTX:-256}" --log-level info
done
wait_agreed 20 "$n_nodes" $(seq 1 "$n_nodes") >/dev/null || exit 1
api=127.0.0.1:$((api_base + 1))
for _ in $(seq 1 100); do
  "$cairn" place "$model" --nodes "$n_nodes" --api "$api" >/dev/null 2>&1 && break
  sleep 0.2
done
{
  echo "{"
  for k in $(seq 1 8); do
    p="Story number $k: once upon a time"
    t=$("$cairn" generate -m "$model_path" -p "$p" --temp 0 -n "$tokens" -t "${THREADS:-1}" \
      --ctx-size "${CTX:-256}" 2>/dev/null |
      node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.stringify(s.replace(/\n$/,""))))')
    printf '  "%s": %s%s\n' "$p" "$t" "$([ "$k" = 8 ] || echo ,)"
  done
  echo "}"
} >"$tmp/expected.json"
"$cairn" generate --cluster --api "$api" -m "$model" -p warm -n 2 >/dev/null
urls=$(for i in $(seq 1 "$n_nodes"); do printf 'http://127.0.0.1:%d,' $((api_base + i)); done)
node "$root/bench/api-load.mjs" "${urls%,}" "$model" "$streams" "$tokens" "$tmp/expected.json"
