#!/usr/bin/env bash
# The data plane is no wider than the cluster, in a network namespace of the test's own
# where an interface has 10.77.0.1: a node run with the default --listen (0.0.0.0)
# announces 10.77.0.1, and its runner listens there and on nothing else; a connection to
# the runner that does not prove the instance's secret gets no token and is closed, the API
# never shows the secret, and the cluster serves through the runner all along.
here=$(dirname "$0")
source "$here/common.bash"
in_own_netns "$@"
source "$here/cluster.bash"
case "$cairn" in *emulated*)
  # Under Wine the node does not see the namespace's veth address (it announced another
  # one), so the address checks are native only; test_runner checks the proof under Wine.
  echo "the runner's address is not tested under an emulator"
  finish
  exit
  ;;
esac
scale=1

if ! own_netns || ! ip link add cairn-dp0 type veth peer name cairn-dp1 2>/dev/null; then
  fail "cannot add an interface: this test needs a network namespace (root or unshare -n)"
  finish
fi
ip addr add 10.77.0.1/24 dev cairn-dp0 && ip link set cairn-dp0 up && ip link set cairn-dp1 up

mkdir -p "$tmp/m1"
cp "$models/stories260K.gguf" "$tmp/m1/"
"$cairn" run --id n1 --port "$port_base" --api-port $((api_base + 1)) --no-discovery \
  --models-dir "$tmp/m1" --log-level debug --profile-interval 1000 --runner-threads 1 \
  --runner-ctx 256 --slots 2 >>"$tmp/log1" 2>&1 &
pids[1]=$!
wait_agreed $((20 * scale)) 1 1
grep -q '"addresses":\[{"host":"10.77.0.1"' <<<"$(node_state 1)" ||
  fail "the node does not announce 10.77.0.1: $(node_state 1 | head -c 400)"
wait_profiles stories260K.gguf 1
"$cairn" place stories260K.gguf --api "$(api 1)" >"$tmp/place.out" 2>&1 ||
  fail "place: $(cat "$tmp/place.out")"
wait_ready 1
port=$(grep -o '"runner":{[^}]*"port":[0-9]*' <<<"$(node_state 1)" | grep -o '[0-9]*$')
[ -n "$port" ] || fail "no runner port in the state"
listening=$(ss -ltnH "sport = :${port:-1}" | awk '{print $4}' | sort -u | tr '\n' ' ')
expect_eq "where the runner listens" "$listening" "10.77.0.1:$port "

gen() { "$cairn" generate --cluster --api "$(api 1)" -m stories260K.gguf -p "Once upon a time" \
  --temp 0 -n 8 --ids; }
want=$("$cairn" generate -m "$tmp/m1/stories260K.gguf" -p "Once upon a time" --temp 0 -n 8 \
  -t 1 --ids 2>/dev/null)
expect_eq "generation through the runner" "$(gen 2>/dev/null)" "$want"
state=$(node_state 1)
grep -q '"secret"' <<<"$state" && fail "GET /state shows the instance's secret"
grep -q '"secret"' "$tmp/log1" && fail "the node's log shows the instance's secret"

# A stranger's request, straight to the runner: hello and a request without the proof.
instance=$(grep -o '"id":"i-[0-9a-f]*"' <<<"$state" | head -1 | cut -d'"' -f4)
wire_frame "$tmp/stranger" 15 "{\"op\":\"hello\",\"role\":\"client\",\"instance\":\"$instance\"}"
params='{"stop":[],"temperature":0,"top_k":40,"top_p":1,"min_p":0,"repeat_penalty":1,'
params+='"repeat_last_n":64,"frequency_penalty":0,"presence_penalty":0,"seed":"1","max_tokens":8,'
params+='"ignore_eog":false,"logprobs":false,"top_logprobs":0}'
wire_frame "$tmp/stranger" 15 \
  "{\"op\":\"request\",\"id\":1,\"prompt\":\"Once upon a time\",\"resume\":[],\"params\":$params}"
got=$(raw_exchange 10.77.0.1 "${port:-1}" "$tmp/stranger")
expect_eq "the runner closes a stranger's connection" "$?" 0
grep -q '"op":"challenge"' <<<"$got" || fail "the runner sent no challenge: $got"
grep -q '"token"\|"done"' <<<"$got" && fail "a stranger got tokens: $got"
grep -q "did not prove the instance's secret" "$tmp/log1" ||
  fail "the runner does not log why it closed the stranger's connection"
# ... and one with a made-up proof
printf '' >"$tmp/forger"
wire_frame "$tmp/forger" 15 "{\"op\":\"proof\",\"proof\":\"$(printf '0%.0s' $(seq 64))\"}"
cat "$tmp/stranger" >>"$tmp/forger"
got=$(raw_exchange 10.77.0.1 "${port:-1}" "$tmp/forger")
expect_eq "the runner closes a forger's connection" "$?" 0
grep -q '"token"\|"done"' <<<"$got" && fail "a forged proof got tokens: $got"
expect_eq "generation after the strangers" "$(gen 2>/dev/null)" "$want"
stop_all
finish
