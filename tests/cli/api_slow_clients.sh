#!/usr/bin/env bash
# The API survives slow and idle clients (a slowloris attack from loopback): while 70
# connections trickle a request body a byte every 5-12 s, 20 trickle a request head as
# slowly and 200 send nothing, each opened again as soon as the node closes it, GET /node
# and GET /metrics still answer within a few seconds and a request with a body is still
# served. The slow clients share 127.0.0.1; the checks come from 127.0.0.2, another client.
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

# request METHOD PATH [BODY]: the whole answer to one request, or why none came within 5 s
# (times the emulator's scale). It comes from 127.0.0.2: the slow clients all use
# 127.0.0.1, the one address an attacker has, and an address past its quota
# (--api-client-connections) rightly loses a connection that has not sent its request yet,
# which a client that connects before it writes always is for a moment.
request() {
  local answer rc=0
  answer=$(curl -s -i --http1.0 --interface 127.0.0.2 --max-time $((5 * scale)) -X "$1" \
    -H 'Content-Type: application/json' ${3:+--data-binary "$3"} \
    "http://127.0.0.1:$port$2" 2>/dev/null) || rc=$?
  case $rc in
    0) printf '%s' "$answer" ;;
    28) echo "no answer within $((5 * scale)) s" ;;
    52) echo "closed without an answer" ;;
    *) echo "curl failed with exit code $rc" ;;
  esac
}

# expect_answer NAME STATUS ANSWER: ANSWER is an HTTP answer with STATUS and a JSON body.
expect_answer() {
  local status_line=${3%%$'\r'*}
  case "$status_line" in
    "HTTP/1."?" $2 "*) ;;
    *) fail "$1: got [$status_line], expected $2" ;;
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
