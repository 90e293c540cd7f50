#!/usr/bin/env bash
# A one-node cluster recovers from runners that keep failing (kill -9 of its runners):
#  1. each killed runner's instance is placed again, until the node has failed three times
#     and is left out;
#  2. a stream in flight when that happens ends within seconds with an error that says the
#     model cannot be placed again now and why, rather than waiting for its deadline;
#  3. the node's failures fade: the model comes back on it, and serves.
here=$(dirname "$0")
source "$here/common.bash"
source "$here/cluster.bash"

case "$cairn" in *emulated*)
  echo "runner processes cannot be killed under an emulator"
  finish
  exit
  ;;
esac
m=stories260K.gguf
cp "$models/$m" "$tmp/"
mkdir -p "$tmp/m1"
ln -f "$tmp/$m" "$tmp/m1/$m"

instance_in() { grep -o '"id":"i-[0-9a-f]*"' <<<"$1" | head -1 | cut -d'"' -f4; }
instance_of() { instance_in "$(node_state 1)"; }
# the runner processes the node spawned
runners() { pgrep -P "${pids[1]}" -f "runner --model" || true; }

# wait_new_ready OLD LIMIT: an instance other than OLD is ready within LIMIT seconds.
wait_new_ready() {
  local start st id
  start=$(now)
  while :; do
    st=$(node_state 1)
    id=$(instance_in "$st")
    if [ -n "$id" ] && [ "$id" != "$1" ] &&
      grep -q '"runner":{"state":"\(ready\|running\)"' <<<"$st"; then
      return 0
    fi
    if awk -v e="$(elapsed "$start")" -v l="$2" 'BEGIN { exit !(e > l) }'; then
      fail "no new instance became ready in $2 s: $(grep -o '"instances":.*' <<<"$st" | head -c 600)"
      return 1
    fi
    sleep 0.2
  done
}

export CAIRN_RUNNER_TEST_STEP_MS=100 # a stream of 150 tokens takes 15 s
start_node 1 --no-discovery --runner-threads 1 --runner-ctx 256 --slots 2
wait_agreed 20 1 1 || exit 1
wait_profiles "$m" 1
"$cairn" place "$m" --api "$(api 1)" >/dev/null || fail "placing $m"
wait_ready

# kill_runners: kill -9 of the node's runners, once it has some.
kill_runners() {
  local start victims
  start=$(now)
  until victims=$(runners) && [ -n "$victims" ]; do
    if awk -v e="$(elapsed "$start")" 'BEGIN { exit !(e > 30) }'; then
      fail "the node has no runner to kill"
      return 1
    fi
    sleep 0.1
  done
  kill -9 $victims
}

# ---- 1: two failures, each placed again ----
for round in 1 2; do
  old=$(instance_of)
  kill_runners
  wait_new_ready "$old" 30 || break
done
echo "two killed runners: placed again as $(instance_of)"

# ---- 2: the third failure, mid-stream ----
old=$(instance_of)
timeout 120 "$cairn" generate --cluster --api "$(api 1)" -m "$m" -p "Once upon a time" \
  --temp 0 -n 150 >"$tmp/stream.out" 2>"$tmp/stream.err" &
gen=$!
start=$(now)
until [ -s "$tmp/stream.out" ]; do # the first tokens are out
  awk -v e="$(elapsed "$start")" 'BEGIN { exit !(e > 30) }' && break
  sleep 0.1
done
kill_runners
killed=$(now)
wait $gen
status=$?
took=$(elapsed "$killed")
[ "$status" != 0 ] || fail "the stream succeeded although its model cannot be placed again"
[ "$status" != 124 ] || fail "the stream stalled after its instance was lost"
awk -v t="$took" 'BEGIN { exit !(t < 30) }' || fail "the stream took $took s to end"
grep -q "cannot be placed again now" "$tmp/stream.err" ||
  fail "the stream's error does not say it cannot be placed again: $(cat "$tmp/stream.err")"
grep -q "left out after repeated runner failures: n1" "$tmp/stream.err" ||
  fail "the stream's error does not name the node left out: $(cat "$tmp/stream.err")"
echo "the stream in flight ended $took s after the third failure: $(tail -1 "$tmp/stream.err")"

# ---- 3: the failures fade and the model comes back ----
wait_new_ready "$old" 120 || exit 1
got=$("$cairn" generate --cluster --api "$(api 1)" -m "$m" -p "Once upon a time" --temp 0 -n 20 \
  --ids 2>"$tmp/after.err")
want=$("$cairn" generate -m "$tmp/$m" -p "Once upon a time" --temp 0 -n 20 -t 1 --ids 2>/dev/null)
expect_eq "after the node's failures faded" "$got" "$want"
echo "the model came back on n1 as $(instance_of) and serves"
finish
