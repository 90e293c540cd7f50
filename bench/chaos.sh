#!/usr/bin/env bash
# Chaos: streams under load while nodes and runners are killed at random. Three nodes on
# loopback serve stories260K placed across all three; STREAMS clients (default 4) each send
# one greedy completion of TOKENS tokens (default 200) after another to a random live node.
# Every 3-9 s either a random runner process or a random node is killed with kill -9 (at
# most one node down at a time, masters included); a killed node is restarted 3-8 s later.
# The runners are slowed a little (the CAIRN_RUNNER_TEST_STEP_MS hook, 5 ms a step) so that
# a stream lasts a few seconds and kills land in the middle of streams.
#
# Each stream ends as one of:
#   exact      its tokens are the single-process greedy output, token for token;
#   error      the client got an error (its node was killed, or no instance was ready in
#              time): a clear failure, nothing silent;
#   wrong      it completed with other tokens than the single-process output;
#   lost       no answer within 120 s.
# The last two must be 0: the script exits 1 otherwise.
#
# Usage: bench/chaos.sh [MINUTES] [CAIRN_BINARY]     (env: STREAMS, TOKENS)
set -u
minutes=${1:-10}
root=$(cd "$(dirname "$0")/.." && pwd)
set -- "${2:-$root/build/cairn}" "$root/../shared"
here=$root/tests/cli
source "$here/common.bash"
source "$here/cluster.bash"
streams=${STREAMS:-4}
tokens=${TOKENS:-200}
model=stories260K.gguf
prompts=("Once upon a time" "The cat sat" "Lily wanted to" "One day, a big")
node_opts=(--no-discovery --peer "127.0.0.1:$port_base" --peer "127.0.0.2:$port_base"
  --runner-threads 1 --runner-ctx 256 --slots 4)
export CAIRN_RUNNER_TEST_STEP_MS=5

cp "$models/$model" "$tmp/$model"
for k in "${!prompts[@]}"; do
  "$cairn" generate -m "$tmp/$model" -p "${prompts[$k]}" --temp 0 -n "$tokens" -t 1 --ids \
    >"$tmp/want$k" 2>/dev/null || { echo "cannot compute the expected output" >&2; exit 1; }
done
start() { # start I: node nI with the model in its directory
  mkdir -p "$tmp/m$1"
  ln -f "$tmp/$model" "$tmp/m$1/$model"
  start_node "$1" "${node_opts[@]}"
}
for i in 1 2 3; do start "$i"; done
wait_agreed 20 3 1 2 3 || { finish; exit 1; }
wait_profiles "$model" 3
"$cairn" place "$model" --nodes 3 --api "$(api 1)" >/dev/null || { echo "cannot place" >&2; exit 1; }
wait_ready 3

end=$(($(date +%s) + $(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 }')))
# client K: streams until the end, one result word per line in $tmp/results.K
client() {
  local k=$1 n p rc
  while [ "$(date +%s)" -lt "$end" ]; do
    n=$((1 + RANDOM % 3)) p=$((RANDOM % ${#prompts[@]}))
    [ -n "$(node_info "$n")" ] || { sleep 0.5; continue; } # down: not a stream
    timeout 120 "$cairn" generate --cluster --api "$(api "$n")" -m "$model" \
      -p "${prompts[$p]}" --temp 0 -n "$tokens" --ids >"$tmp/got.$k" 2>"$tmp/err.$k"
    rc=$?
    if [ "$rc" = 124 ]; then
      echo lost
    elif [ "$rc" != 0 ]; then
      echo "error $(head -c 200 "$tmp/err.$k" | tr '\n' ' ')" >>"$tmp/errors"
      echo error
    elif cmp -s "$tmp/got.$k" "$tmp/want$p"; then
      echo exact
    else
      cp "$tmp/got.$k" "$tmp/wrong.$k.$(date +%s)"
      echo wrong
    fi
  done >"$tmp/results.$k"
}
clients=()
for k in $(seq 1 "$streams"); do
  client "$k" &
  clients+=($!)
done

runner_kills=0 node_kills=0 restarts=0 down=0 down_until=0
while [ "$(date +%s)" -lt "$end" ]; do
  sleep $((3 + RANDOM % 7))
  now_s=$(date +%s)
  if [ "$down" != 0 ] && [ "$now_s" -ge "$down_until" ]; then
    start "$down"
    down=0 restarts=$((restarts + 1))
  fi
  if [ $((RANDOM % 2)) = 0 ]; then
    victim=$(pgrep -f "runner --model $tmp/m" | shuf -n 1)
    [ -n "$victim" ] && kill -9 "$victim" 2>/dev/null && runner_kills=$((runner_kills + 1))
  elif [ "$down" = 0 ]; then
    down=$((1 + RANDOM % 3)) down_until=$((now_s + 3 + RANDOM % 6))
    kill_node "$down"
    node_kills=$((node_kills + 1))
  fi
done
[ "$down" = 0 ] || { start "$down"; restarts=$((restarts + 1)); }
wait "${clients[@]}" 2>/dev/null # the nodes are background jobs too
cat "$tmp"/results.* >"$tmp/all"
count() { grep -c "^$1" "$tmp/all"; }
echo "chaos: $minutes min, 3 nodes, $streams clients, $tokens tokens a stream;" \
  "$runner_kills runner kills, $node_kills node kills, $restarts restarts"
echo "streams: $(count exact) exact, $(count error) with an error, $(count lost) lost," \
  "$(count wrong) wrong"
if [ -s "$tmp/errors" ]; then
  echo "errors, by message:"
  sed 's/[0-9a-f]\{8,\}/#/g; s/[0-9][0-9.]*/N/g' "$tmp/errors" | sort | uniq -c | sort -rn | head
fi
[ "$(count lost)" = 0 ] && [ "$(count wrong)" = 0 ] || fail "streams lost or wrong"
finish
