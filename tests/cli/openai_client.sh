#!/usr/bin/env bash
# The official `openai` npm client, unmodified, against a 2-node cluster serving
# stories260K: completions and chat completions, streamed and not. Greedy completions equal
# `cairn generate`'s text, usage counts are right, streamed and whole answers agree, the
# model list names the model and an unknown model is a 404. Log-probabilities come with each
# token when asked (completions, chat streamed and whole, Ollama's chat) and fit greedy
# decoding: each token leads its own alternatives. Then an Ollama-style client
# (plain HTTP) gets the same chat text through /api/chat, streamed and whole, and
# POST /v1/cancel/{id} stops a stream in progress, sent to the node serving it or to the
# other node. Compute steps are slowed a little
# (CAIRN_RUNNER_TEST_STEP_MS) so a stream lasts long enough to cancel. GET /events streams
# the state and then the cluster's events (the placement, runners going to running), and
# GET /metrics counts the requests, tokens and runners. A node admits 16 subscribers to
# /events and refuses more, so they cannot take every API thread. A malformed-request suite
# (tests/openai/malformed.mjs) gets a clear 4xx for each bad request, at once for one the
# runners' link cannot carry, and a good answer after; a streamed request waiting for a model
# ends when its client leaves. A cross-origin POST and a foreign Host name are refused.
here=$(dirname "$0")
source "$here/common.bash"
source "$here/cluster.bash"

npm_dir=$(dirname "$cairn")/npm-openai
npm_package "$npm_dir" openai@4
cp "$here/../openai/client.mjs" "$here/../openai/ollama.mjs" "$here/../openai/cancel.mjs" \
  "$here/../openai/malformed.mjs" "$npm_dir/"
export CAIRN_RUNNER_TEST_STEP_MS=5

for i in 1 2; do
  mkdir -p "$tmp/m$i"
  cp "$models/stories260K.gguf" "$tmp/m$i/"
  start_node "$i" --no-discovery --peer "127.0.0.1:$port_base" --runner-threads 1 --runner-ctx 256 \
    --allowed-host cairn.test
done
wait_agreed 10 2 1 2 || finish
api=127.0.0.1:$((api_base + 2))
# GET /events on n1 while the model is placed and served: the state first, then events
timeout 8 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 && printf "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" >&3 && cat <&3' \
  $((api_base + 1)) >"$tmp/events" 2>/dev/null &
events_reader=$!
sleep 0.5
for _ in $(seq 1 50); do
  "$cairn" place stories260K.gguf --nodes 2 --api "$api" >/dev/null 2>&1 && break
  sleep 0.2
done

prompt="Once upon a time"
n=24
out=$(node "$npm_dir/client.mjs" "http://$api/v1" stories260K.gguf "$prompt" "$n" 2>"$tmp/node.err")
[ -n "$out" ] || fail "the client failed: $(cat "$tmp/node.err")"
field() { node -e 'const o = JSON.parse(process.argv[1]); const v = process.argv[2].split(".").reduce((a, k) => a?.[k], o); console.log(typeof v === "string" ? v : JSON.stringify(v));' "$out" "$1"; }

want=$("$cairn" generate -m "$models/stories260K.gguf" -p "$prompt" --temp 0 -n "$n" -t 1 2>/dev/null)
n_prompt=$("$cairn" generate -m "$models/stories260K.gguf" -p "$prompt" --temp 0 -n 1 -t 1 -v 2>&1 >/dev/null |
  sed -n 's/^prompt: \([0-9]*\) tokens.*/\1/p')
expect_eq "completion text" "$(field completion.text)" "$want"
expect_eq "completion finish" "$(field completion.finish)" length
expect_eq "completion usage" "$(field completion.usage)" \
  "{\"prompt_tokens\":$n_prompt,\"completion_tokens\":$n,\"total_tokens\":$((n_prompt + n))}"
expect_eq "streamed completion text" "$(field completion_stream.text)" "$want"
expect_eq "streamed completion usage" "$(field completion_stream.usage)" "$(field completion.usage)"
expect_eq "chat role" "$(field chat.role)" assistant
[ -n "$(field chat.text)" ] || fail "the chat answer is empty"
expect_eq "streamed chat text" "$(field chat_stream.text)" "$(field chat.text)"
expect_eq "streamed chat usage" "$(field chat_stream.usage)" "$(field chat.usage)"
expect_eq "chat completion tokens" "$(field chat.usage.completion_tokens)" "$n"
expect_eq "models" "$(field models)" '["stories260K.gguf"]'
expect_eq "unknown model" "$(field unknown_model)" 404
expect_eq "logprobs" "$(field logprobs)" "{\"tokens\":$n,\"problems\":[]}"
expect_eq "top_logprobs without logprobs" "$(field top_without_logprobs)" 400
ollama=$(node "$npm_dir/ollama.mjs" "http://$api" stories260K.gguf "$prompt" "$n" 2>"$tmp/node.err")
[ -n "$ollama" ] || fail "the Ollama-style client failed: $(cat "$tmp/node.err")"
chat_text=$(field chat.text)
completion_text=$(field completion.text)
out=$ollama
expect_eq "ollama chat (streamed)" "$(field chat_stream)" "$chat_text"
expect_eq "ollama chat (whole)" "$(field chat)" "$chat_text"
expect_eq "ollama stream end" "$(field chat_stream_last)" "{\"done\":true,\"reason\":\"length\",\"eval_count\":$n}"
expect_eq "ollama logprobs" "$(field logprobs)" \
  "{\"entries\":$n,\"eval_count\":$n,\"spelled\":true,\"greedy\":true}"
expect_eq "ollama generate" "$(field generate)" "$want"
expect_eq "ollama tags" "$(field tags)" '["stories260K.gguf"]'
expect_eq "ollama bad request" "$(field bad_request)" 400
[ -n "$(field version)" ] || fail "no version from /api/version"
for via in "$api" "127.0.0.1:$((api_base + 1))"; do
  out=$(node "$npm_dir/cancel.mjs" "http://$api" stories260K.gguf "http://$via" 2>"$tmp/node.err")
  [ -n "$out" ] || fail "the cancel client failed: $(cat "$tmp/node.err")"
  expect_eq "cancel via $via" "$(field cancel)" 200
  expect_eq "cancel again via $via" "$(field again)" 404
  expect_eq "cancelled stream's finish (via $via)" "$(field finish)" stop
  [ "$(field pieces)" -lt 150 ] || fail "the cancelled stream went on: $out"
done
after=$("$cairn" generate --cluster --api "$api" -m stories260K.gguf \
  -p "$prompt" --temp 0 -n "$n" 2>&1)
expect_eq "a request after the cancel" "$after" "$want"
wait "$events_reader"
grep -q "^event: state" "$tmp/events" || fail "GET /events did not start with the state"
grep -q '^data: {"index":[0-9]*,"term":[0-9]*,"type":"instance_placed"' "$tmp/events" ||
  fail "GET /events did not show the placement"
grep -q '"type":"runner_state_changed".*"state":"running"' "$tmp/events" ||
  fail "GET /events did not show a runner running"
# Subscribers to /events each hold an API thread: a node admits 16, refuses the next with a
# 503, and still answers other requests meanwhile.
watch_events() {
  timeout "$2" bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 && printf "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" >&3 && cat <&3' \
    $((api_base + 2)) >"$1" 2>/dev/null
}
watchers=()
for i in $(seq 1 16); do
  watch_events "$tmp/watch$i" 8 &
  watchers+=($!)
done
for _ in $(seq 1 40); do
  [ "$(cat "$tmp"/watch* 2>/dev/null | grep -c '^event: state')" = 16 ] && break
  sleep 0.1
done
watch_events "$tmp/watch-refused" 3
grep -q '^HTTP/1.1 503' "$tmp/watch-refused" && grep -q 'too many subscribers' "$tmp/watch-refused" ||
  fail "the 17th subscriber to /events was not refused: $(head -c 300 "$tmp/watch-refused")"
grep -q '"stories260K.gguf"' <<<"$(http_get $((api_base + 2)) /v1/models)" ||
  fail "with 16 subscribers to /events, GET /v1/models got no answer"
kill "${watchers[@]}" 2>/dev/null
wait "${watchers[@]}" 2>/dev/null
node "$npm_dir/malformed.mjs" "http://$api" stories260K.gguf >"$tmp/malformed" 2>&1 ||
  fail "malformed requests: $(cat "$tmp/malformed")"
tail -1 "$tmp/malformed"
# A web page elsewhere cannot drive the node: a foreign Origin (a text/plain POST, as a form
# or fetch without preflight sends) and a foreign Host name (DNS rebinding) are refused;
# --allowed-host adds a name.
raw() { # PORT REQUEST: the status line of the answer
  timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 && printf "%b" "$1" >&3 && head -1 <&3' "$1" "$2" 2>/dev/null | tr -d '\r'
}
place_body='{"model":"stories260K.gguf"}'
expect_eq "cross-origin text/plain POST" "$(raw $((api_base + 2)) "POST /instance HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://attacker.example\r\nContent-Type: text/plain\r\nContent-Length: ${#place_body}\r\n\r\n$place_body")" "HTTP/1.1 403 Forbidden"
expect_eq "a rebound Host name" "$(raw $((api_base + 2)) "GET /v1/models HTTP/1.1\r\nHost: attacker.example:$((api_base + 2))\r\n\r\n")" "HTTP/1.1 403 Forbidden"
expect_eq "an --allowed-host name" "$(raw $((api_base + 2)) "GET /v1/models HTTP/1.1\r\nHost: cairn.test:$((api_base + 2))\r\n\r\n")" "HTTP/1.1 200 OK"
# A streamed request that waits (here for a model no node has, which it would do for 30 s)
# ends when its client leaves, freeing its API thread.
body='{"model":"absent.gguf","prompt":"x"}'
timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 &&
  printf "POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n%s" ${#1} "$1" >&3 &&
  cat <&3' $((api_base + 2)) "$body" >/dev/null 2>&1
for _ in $(seq 1 50); do
  http_get $((api_base + 2)) /metrics | grep -q '^cairn_requests_in_flight 0$' && break
  sleep 0.2
done
http_get $((api_base + 2)) /metrics | grep -q '^cairn_requests_in_flight 0$' ||
  fail "a waiting request still runs after its client left: $(http_get $((api_base + 2)) /metrics | grep in_flight)"
metrics=$(http_get $((api_base + 2)) /metrics)
grep -q '^cairn_requests_total [1-9]' <<<"$metrics" || fail "/metrics counts no requests: $metrics"
grep -q '^cairn_completion_tokens_total [1-9]' <<<"$metrics" || fail "/metrics counts no tokens"
grep -q '^cairn_time_to_first_token_seconds_count [1-9]' <<<"$metrics" || fail "/metrics: no TTFT"
grep -q '^cairn_runners{state="ready"} 2$' <<<"$metrics" || fail "/metrics: runners not ready: $metrics"
grep -q '^cairn_node_memory_bytes{node="n1",kind="total"} [1-9]' <<<"$metrics" ||
  fail "/metrics: no node memory"
dashboard=$(http_get $((api_base + 1)) /)
grep -q '<svg id="topology"' <<<"$dashboard" && grep -q 'api("/events")' <<<"$dashboard" ||
  fail "GET / does not serve the dashboard"
models_json=$(http_get $((api_base + 1)) /models)
grep -q '"name":"stories260K.gguf","sha256":"[0-9a-f]\{64\}".*"nodes":\["n1","n2"\]' <<<"$models_json" ||
  fail "GET /models does not list the file on both nodes: $models_json"
echo "openai and ollama clients: completion \"${completion_text:0:40}...\", chat \"${chat_text:0:40}...\""
finish
