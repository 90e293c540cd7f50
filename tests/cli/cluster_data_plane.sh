#!/usr/bin/env bash
# The data plane is no wider than the cluster, in a network namespace of the test's own
# where an interface has 10.77.0.1: a node run with the default --listen (0.0.0.0)
# announces 10.77.0.1, and its runner listens there and on nothing else, while the cluster
# serves through it.
here=$(dirname "$0")
source "$here/common.bash"
in_own_netns "$@"
source "$here/cluster.bash"
scale=1
case "$cairn" in *emulated*) scale=4 ;; esac

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
stop_all
finish
