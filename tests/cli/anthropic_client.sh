#!/usr/bin/env bash
# The official `@anthropic-ai/sdk` npm client, unmodified, against a 2-node cluster serving
# stories260K (tests/openai/anthropic.mjs): messages.create whole and streamed
# (messages.stream and stream: true, with Anthropic's events in order), countTokens, and
# stop reasons (max_tokens; stop_sequence, naming which of several matched). Greedy text equals the chat completion of the same request and the streamed
# text the whole one; input_tokens is the chat completion's prompt_tokens (countTokens agrees,
# and message_start tells it); a stop sequence ends the text right
# before it. Errors come in Anthropic's form through the SDK's error classes (missing
# max_tokens, a bad role, an unknown model, a content block it cannot render). Node 2 runs
# with --api-key: the key is taken from x-api-key and from a bearer token, a wrong one is a
# 401 authentication_error. The server's own errors on these paths (a body too large, a
# foreign Origin or Host) take Anthropic's form too, while other paths keep cairn's.
here=$(dirname "$0")
source "$here/common.bash"
source "$here/cluster.bash"

npm_dir=$(dirname "$cairn")/npm-anthropic
npm_package "$npm_dir" @anthropic-ai/sdk@1
cp "$here/../openai/anthropic.mjs" "$npm_dir/"
key=k3y-of-this-test
unset CAIRN_API_KEY

for i in 1 2; do
  mkdir -p "$tmp/m$i"
  cp "$models/stories260K.gguf" "$tmp/m$i/"
done
start_node 1 --no-discovery --peer "127.0.0.1:$port_base" --runner-threads 1 --runner-ctx 256
start_node 2 --no-discovery --peer "127.0.0.1:$port_base" --runner-threads 1 --runner-ctx 256 \
  --api-key "$key"
api_key=$key # for http_get (node 1 takes any key, as it needs none)
wait_agreed 10 2 1 2 || finish
api=127.0.0.1:$((api_base + 1))
for _ in $(seq 1 50); do
  "$cairn" place stories260K.gguf --nodes 2 --api "$api" >/dev/null 2>&1 && break
  sleep 0.2
done

prompt="Once upon a time"
n=24
out=$(node "$npm_dir/anthropic.mjs" "http://$api" stories260K.gguf "$prompt" "$n" \
  "http://127.0.0.1:$((api_base + 2))" "$key" 2>"$tmp/node.err")
[ -n "$out" ] || fail "the client failed: $(cat "$tmp/node.err")"
field() { node -e 'const o = JSON.parse(process.argv[1]); const v = process.argv[2].split(".").reduce((a, k) => a?.[k], o); console.log(typeof v === "string" ? v : JSON.stringify(v));' "$out" "$1"; }

n_prompt=$(field chat_prompt_tokens)
[ "$n_prompt" -gt 0 ] 2>/dev/null || fail "no prompt tokens in the chat completion: $out"
text=$(field whole.text)
[ -n "$text" ] || fail "the message is empty: $out"
expect_eq "message text = chat completion" "$text" "$(field chat)"
expect_eq "message shape" "$(field whole.type) $(field whole.role) $(field whole.model) $(field whole.id) $(field whole.blocks)" \
  'message assistant stories260K.gguf true ["text"]'
expect_eq "message stop" "$(field whole.stop_reason) $(field whole.stop_sequence)" "max_tokens null"
expect_eq "message usage" "$(field whole.usage)" "{\"input_tokens\":$n_prompt,\"output_tokens\":$n}"
expect_eq "streamed text" "$(field stream.text)" "$text"
expect_eq "streamed deltas" "$(field stream.deltas)" "$text"
expect_eq "streamed stop" "$(field stream.stop_reason)" max_tokens
expect_eq "streamed usage" "$(field stream.usage)" "$(field whole.usage)"
expect_eq "stream events (the SDK drops pings)" "$(field events)" \
  '["message_start","content_block_start","content_block_delta","content_block_stop","message_delta","message_stop"]'
expect_eq "message_start" "$(field start)" "{\"input_tokens\":$n_prompt,\"content\":[],\"stop_reason\":null}"
expect_eq "message_delta" "$(field raw_delta)" \
  "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":$n}}"
expect_eq "countTokens" "$(field count)" "$n_prompt"
expect_eq "stop sequence" "$(field stopped)" '{"stop_reason":"stop_sequence","stop_sequence":true,"text":true}'
expect_eq "stop sequence, streamed" "$(field stopped_stream)" '["stop_sequence",true]'
expect_eq "missing max_tokens" "$(field no_max_tokens)" \
  '{"status":400,"sdk_class":"BadRequestError","type":"invalid_request_error","shape":"error","message":true}'
expect_eq "a system role in messages" "$(field bad_role.type)" invalid_request_error
expect_eq "unknown model" "$(field unknown_model)" \
  '{"status":404,"sdk_class":"NotFoundError","type":"not_found_error","shape":"error","message":true}'
expect_eq "an image block, streamed" "$(field bad_stream_request.status) $(field bad_stream_request.type)" \
  "400 invalid_request_error"
expect_eq "x-api-key" "$(field keyed.api_key)" message
expect_eq "bearer token" "$(field keyed.bearer)" message
expect_eq "wrong key" "$(field keyed.wrong)" \
  '{"status":401,"sdk_class":"AuthenticationError","type":"authentication_error","shape":"error","message":true}'
expect_eq "wrong key, count_tokens" "$(field keyed.count_wrong.type)" authentication_error

# raw PORT REQUEST: the status line and the body of the answer
raw() {
  timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 && printf "%b" "$1" >&3 && cat <&3' "$1" "$2" 2>/dev/null |
    tr -d '\r' | sed -n '1p;$p'
}
p1=$((api_base + 1))
p2=$((api_base + 2))
body='{"model":"stories260K.gguf","max_tokens":1,"messages":[{"role":"user","content":"x"}]}'
expect_eq "a body too large" "$(raw $p1 "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99999999\r\n\r\n")" \
  'HTTP/1.1 413 Request Entity Too Large
{"type":"error","error":{"type":"request_too_large","message":"the request body is too large"}}'
expect_eq "a foreign Origin" "$(raw $p1 "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://attacker.example\r\nContent-Type: text/plain\r\nContent-Length: ${#body}\r\n\r\n$body" | head -1)" \
  "HTTP/1.1 403 Forbidden"
grep -q '"type":"permission_error"' <<<"$(raw $p1 "POST /v1/messages/count_tokens HTTP/1.1\r\nHost: attacker.example\r\nContent-Length: ${#body}\r\n\r\n$body")" ||
  fail "a foreign Host name on count_tokens is not a permission_error"
expect_eq "GET /v1/messages" "$(raw $p1 "GET /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" | head -1)" \
  "HTTP/1.1 405 Method Not Allowed"
expect_eq "no key" "$(raw $p2 "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${#body}\r\n\r\n$body" | tail -1)" \
  '{"type":"error","error":{"type":"authentication_error","message":"this node'"'"'s API needs its key: send Authorization: Bearer KEY (or x-api-key: KEY)"}}'
grep -q '^{"error":{"message":"this node' <<<"$(raw $p2 "GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")" ||
  fail "a 401 on another path changed its form"
grep -q '"stories260K.gguf"' <<<"$(raw $p2 "GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: $key\r\n\r\n")" ||
  fail "x-api-key is not taken on GET /v1/models"
# the stream as it goes over the wire: each event's name line, then its data
stream_body='{"model":"stories260K.gguf","max_tokens":3,"temperature":0,"stream":true,"messages":[{"role":"user","content":"x"}]}'
timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 && printf "%b" "$1" >&3 && cat <&3' $p1 \
  "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${#stream_body}\r\n\r\n$stream_body" |
  tr -d '\r' >"$tmp/sse" 2>/dev/null
expect_eq "stream events on the wire" "$(sed -n 's/^event: //p' "$tmp/sse" | uniq | tr '\n' ' ')" \
  "message_start content_block_start ping content_block_delta content_block_stop message_delta message_stop "
expect_eq "event names match their data" "$(grep -A1 '^event: ' "$tmp/sse" | grep -v '^--' | paste - - |
  grep -vc '^event: \([a-z_]*\)	data: {"type":"\1"')" 0
grep -q '^Content-Type: text/event-stream' "$tmp/sse" || fail "the stream is not text/event-stream"
count=$(raw $p2 "POST /v1/messages/count_tokens HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: $key\r\nanthropic-version: 2023-06-01\r\nanthropic-beta: x\r\nContent-Length: ${#body}\r\n\r\n$body" | tail -1)
grep -q '^{"input_tokens":[1-9][0-9]*}$' <<<"$count" || fail "count_tokens with headers: $count"
echo "anthropic client: \"${text:0:40}...\", $n_prompt input tokens"
finish
