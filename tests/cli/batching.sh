#!/usr/bin/env bash
# Requests in flight share compute steps. Eight concurrent streams with prompts of mixed
# lengths and different lengths to generate, on fewer slots than streams (some wait), two of
# them cancelled midway: every stream that completes gives exactly the tokens it gives
# alone, on one node and through a pipeline of three loopback nodes; the runners log that
# their steps held several sequences (all the slots on one node), and serve on after the
# cancellations. Requests whose prompts start with what a slot holds (the same prompt again,
# the next turn of a conversation) compute only the rest, and give what a cold slot gives.
# A request that finds the queue for slots full gets a 503 with Retry-After and the reason.
here=$(dirname "$0")
source "$here/common.bash"
source "$here/cluster.bash"

scale=1
case "$cairn" in *emulated*) scale=4 ;; esac
slots=4
runner_opts=(--runner-threads 1 --runner-ctx 256 --slots $slots)
m=stories260K.gguf
for i in 1 2 3; do
  mkdir -p "$tmp/m$i"
  cp "$models/$m" "$tmp/m$i/"
done

prompts=("Once"
  "The cat sat on the mat and looked at the big red ball. It wanted to play"
  "Lily wanted to"
  "One day, a big dog named Max went to the park with his friend Tom. They ran and ran until they saw a tree. Max said"
  "Tim had a toy"
  "The sun was hot, so Sam and his mom went to the beach to swim. Sam found a shell and"
  "Once upon a time, there was a little girl"
  "Ben liked to eat")
lengths=(40 24 60 18 50 30 44 36)
cancelled=(2 4) # the longest streams, killed about halfway through
turn2="${prompts[6]} named Lily. She liked to play with her"
want_turn2=$("$cairn" generate -m "$models/$m" -p "$turn2" --temp 0 -n 24 -t 1 --ids 2>/dev/null)
declare -A want=()
for k in "${!prompts[@]}"; do
  want[$k]=$("$cairn" generate -m "$models/$m" -p "${prompts[$k]}" --temp 0 -n "${lengths[$k]}" \
    -t 1 --ids 2>/dev/null)
done

cluster_generate() { # NODE PROMPT N (a stream that hangs fails the test instead of wedging it)
  timeout $((60 * scale)) "$cairn" generate --cluster --api "$(api "$1")" -m "$m" -p "$2" \
    --temp 0 -n "$3" --ids || echo "(no complete stream: status $?)"
}

is_cancelled() { [[ " ${cancelled[*]} " == *" $1 "* ]]; }

# eight_streams NODES: all streams at once through the nodes in turn; checks each one.
eight_streams() {
  local nodes=$1 gens=() k
  for k in "${!prompts[@]}"; do
    cluster_generate $((k % nodes + 1)) "${prompts[$k]}" "${lengths[$k]}" >"$tmp/s$k" 2>&1 &
    gens[$k]=$!
  done
  sleep 0.6
  for k in "${cancelled[@]}"; do # the client (under timeout, which passes the signal on)
    pkill -TERM -P "${gens[$k]}" 2>/dev/null
    kill "${gens[$k]}" 2>/dev/null
  done
  for k in "${!prompts[@]}"; do
    wait "${gens[$k]}" 2>/dev/null
    if is_cancelled "$k"; then
      [ "$(cat "$tmp/s$k")" != "${want[$k]}" ] || fail "$nodes node(s): stream $k ended before its cancellation"
      continue
    fi
    expect_eq "$nodes node(s), stream $k" "$(cat "$tmp/s$k")" "${want[$k]}"
  done
  # the slots of the cancelled streams came back: one more request on every slot
  gens=()
  for k in $(seq 0 $((slots - 1))); do
    cluster_generate 1 "${prompts[$k]}" "${lengths[$k]}" >"$tmp/again$k" 2>&1 &
    gens[$k]=$!
  done
  wait "${gens[@]}" 2>/dev/null
  for k in $(seq 0 $((slots - 1))); do
    expect_eq "$nodes node(s), after the cancellations, stream $k" "$(cat "$tmp/again$k")" \
      "${want[$k]}"
  done
  # the next turn of a conversation: its prompt starts with what a slot holds
  expect_eq "$nodes node(s), a prompt extending a cached one" \
    "$(cluster_generate 1 "$turn2" 24 2>&1)" "$want_turn2"
}

# Slow steps a little, so the streams overlap and the cancellations land mid-stream.
export CAIRN_RUNNER_TEST_STEP_MS=$((15 * scale))

# ---- one node ----
start_node 1 --no-discovery "${runner_opts[@]}"
wait_agreed $((10 * scale)) 1 1
wait_profiles "$m" 1
"$cairn" place "$m" --api "$(api 1)" >/dev/null || fail "placing $m on one node"
wait_ready 1
eight_streams 1
grep -q "a compute step held $slots sequences" "$tmp/log1" ||
  fail "no step held $slots sequences on one node: $(grep -o 'a compute step held.*' "$tmp/log1" | tail -1)"
grep -q "prompt tokens reused" "$tmp/log1" || fail "no request reused a slot's cached prefix"
stop_all

# ---- three nodes, one shard each ----
# Under an emulator three nodes, three runners and a dozen clients are each a Wine process:
# the pipeline is covered by the native runs.
if [ "$scale" = 1 ]; then
  for i in 1 2 3; do
    start_node "$i" --no-discovery --peer "127.0.0.1:$port_base" "${runner_opts[@]}"
  done
  wait_agreed $((20 * scale)) 3 1 2 3
  wait_profiles "$m" 3
  "$cairn" place "$m" --nodes 3 --api "$(api 1)" >/dev/null || fail "placing $m on three nodes"
  wait_ready 3
  eight_streams 3
  grep -q "prompt tokens reused" "$tmp/log1" || fail "no request reused a cached prefix (3 nodes)"
  # in a pipeline the requests form groups (micro-batches) that keep every shard busy
  for i in 1 2 3; do
    grep -Eq "a compute step held ([2-9]|[1-9][0-9]+) sequences" "$tmp/log$i" ||
      fail "no step of node $i held several sequences"
  done
  stop_all
fi

# ---- a full queue: 503 with Retry-After, the requests in it still served ----
# http_post PORT PATH BODY: the whole response, headers included.
http_post() {
  timeout 30 bash -c '
    exec 3<>/dev/tcp/127.0.0.1/$0 || exit 1
    printf "POST %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" \
      "$1" "${#2}" "$2" >&3
    cat <&3' "$1" "$2" "$3" 2>/dev/null
}
export CAIRN_RUNNER_TEST_MAX_WAITING=1
start_node 1 --no-discovery --runner-threads 1 --runner-ctx 256 --slots 1
wait_agreed $((10 * scale)) 1 1
wait_profiles "$m" 1
"$cairn" place "$m" --api "$(api 1)" >/dev/null || fail "placing $m for the queue test"
wait_ready 1
posts=()
for k in 0 1 2 3; do
  http_post $((api_base + 1)) /v1/completions \
    "{\"model\":\"$m\",\"prompt\":\"${prompts[$k]}\",\"max_tokens\":30,\"temperature\":0}" \
    >"$tmp/post$k" &
  posts[$k]=$!
done
wait "${posts[@]}"
ok=$(grep -l "^HTTP/1.[01] 200" "$tmp"/post* | wc -l)
busy=$(grep -l "^HTTP/1.[01] 503" "$tmp"/post* | wc -l)
[ "$ok" -ge 2 ] || fail "the slot and the queue's place should serve 2 requests, $ok were"
[ "$busy" -ge 1 ] || fail "no request was refused with a full queue: $(head -1 "$tmp"/post*)"
for f in $(grep -l "^HTTP/1.[01] 503" "$tmp"/post*); do
  grep -qi "^Retry-After: [0-9]" "$f" || fail "a 503 without Retry-After: $(head -c 400 "$f")"
  grep -q "too many requests are waiting" "$f" || fail "a 503 without the reason: $(tail -1 "$f")"
done
unset CAIRN_RUNNER_TEST_MAX_WAITING
stop_all
finish
