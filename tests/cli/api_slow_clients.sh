#!/usr/bin/env bash
# The API survives slow and idle clients (a slowloris attack from loopback): while 70
# connections trickle a request body a byte every 5-12 s, 20 trickle a request head as
# slowly and 200 send nothing, each opened again as soon as the node closes it, GET /node
# and GET /metrics still answer within a few seconds and a request with a body is still
# served.
here=$(dirname "$0")
source "$here/common.bash"
source "$here/cluster.bash"
if ! command -v python3 >/dev/null; then
  fail "python3 is needed to play the slow clients"
  finish
fi
scale=1
case "$cairn" in *emulated*) scale=4 ;; esac
port=$((api_base + 1))

# request METHOD PATH [BODY]: the whole answer to one request, or nothing when none came
# within 5 s (times the emulator's scale).
request() {
  timeout $((5 * scale)) bash -c '
    exec 3<>/dev/tcp/127.0.0.1/$0 || exit 1
    printf "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" \
      "$1" "$2" "${#3}" "$3" >&3
    cat <&3' "$port" "$1" "$2" "${3:-}" 2>/dev/null
}

# expect_answer NAME STATUS ANSWER: ANSWER is an HTTP answer with STATUS and a JSON body.
expect_answer() {
  local status_line=${3%%$'\r'*}
  case "$status_line" in
    "HTTP/1."?" $2 "*) ;;
    *) fail "$1: got [${status_line:-no answer within $((5 * scale)) s}], expected $2" ;;
  esac
}

start_node 1 --no-discovery --discovery-interface 127.0.0.1 --no-ipv6
start=$(now)
until [ -n "$(node_info 1)" ]; do
  awk -v e="$(elapsed "$start")" -v l=$((20 * scale)) 'BEGIN { exit !(e > l) }' &&
    { fail "the node's API did not answer within $((20 * scale)) s"; finish; }
  sleep 0.1
done

attack_s=36
python3 "$here/../helpers/slow_clients.py" "$port" 70 20 200 "$attack_s" >"$tmp/attack" 2>&1 &
attacker=$!
start=$(now)
until grep -q "all connected" "$tmp/attack" 2>/dev/null; do
  awk -v e="$(elapsed "$start")" -v l=$((20 * scale)) 'BEGIN { exit !(e > l) }' &&
    { fail "the slow clients did not all connect within $((20 * scale)) s"; break; }
  sleep 0.1
done

chat='{"model":"no-such-model","messages":[{"role":"user","content":"hi"}]}'
# Ten rounds over ~25 s: the first trickled bytes arrive 5 s in, and a node without bounds
# on request time holds its threads for 10-30 s.
for round in $(seq 1 10); do
  expect_answer "round $round: GET /node" 200 "$(request GET /node)"
  expect_answer "round $round: GET /metrics" 200 "$(request GET /metrics)"
  expect_answer "round $round: POST /v1/chat/completions" 404 \
    "$(request POST /v1/chat/completions "$chat")"
  sleep 2
done
stop_all
wait "$attacker" || fail "the slow clients failed: $(cat "$tmp/attack")"
echo "slow clients: $(cat "$tmp/attack")"
finish
