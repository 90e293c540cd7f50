#!/usr/bin/env bash
# A node run with --api-key: the commands that call its API (nodes, place, generate
# --cluster, delete) succeed with the key, from --api-key or CAIRN_API_KEY, and fail with
# the node's 401 message without it or with another key.
here=$(dirname "$0")
source "$here/common.bash"
source "$here/cluster.bash"

scale=1
case "$cairn" in *emulated*) scale=4 ;; esac
key=k3y-of-this-test
unset CAIRN_API_KEY

mkdir -p "$tmp/m1"
cp "$models/stories260K.gguf" "$tmp/m1/"
start_node 1 --no-discovery --runner-threads 1 --runner-ctx 256 --slots 2 --api-key "$key"
api_key=$key
wait_agreed $((20 * scale)) 1 1
wait_profiles stories260K.gguf 1

# expect_401 NAME COMMAND...: exits 1 with the node's message about its key.
expect_401() {
  local name=$1 out
  shift
  out=$("$@" 2>&1 >/dev/null)
  local status=$?
  expect_eq "$name: exit status" "$status" 1
  grep -q "answered 401 to .*: this node's API needs its key" <<<"$out" ||
    fail "$name: no 401 message: $out"
}

a=$(api 1)
expect_401 "nodes without a key" "$cairn" nodes --api "$a"
expect_401 "nodes with another key" "$cairn" nodes --api "$a" --api-key wrong
expect_status "nodes with --api-key" 0 "$cairn" nodes --api "$a" --api-key "$key"
CAIRN_API_KEY=$key expect_status "nodes with CAIRN_API_KEY" 0 "$cairn" nodes --api "$a"
"$cairn" nodes --api "$a" --api-key "$key" | grep -q "^n1" || fail "nodes lists no n1"
expect_status "a key with a line break" 1 "$cairn" nodes --api "$a" --api-key $'a\r\nX-Other: 1'

expect_401 "place without a key" "$cairn" place stories260K.gguf --api "$a"
expect_401 "place --preview without a key" "$cairn" place stories260K.gguf --preview --api "$a"
"$cairn" place stories260K.gguf --api "$a" --api-key "$key" >"$tmp/place.out" 2>&1 ||
  fail "place with the key: $(cat "$tmp/place.out")"
wait_ready 1
instance=$(grep -o '^instance [^ ]*' "$tmp/place.out" | cut -d' ' -f2)
[ -n "$instance" ] || fail "place printed no instance: $(cat "$tmp/place.out")"

gen() { "$cairn" generate --cluster --api "$a" -m stories260K.gguf -p "Once upon a time" \
  --temp 0 -n 8 --ids "$@"; }
expect_401 "generate --cluster without a key" gen
got=$(CAIRN_API_KEY=$key gen 2>"$tmp/gen.err")
want=$("$cairn" generate -m "$tmp/m1/stories260K.gguf" -p "Once upon a time" --temp 0 -n 8 \
  -t 1 --ids 2>/dev/null)
expect_eq "generate --cluster with CAIRN_API_KEY" "$got" "$want"
expect_eq "generate --cluster with --api-key" "$(gen --api-key "$key" 2>/dev/null)" "$want"

expect_401 "delete without a key" "$cairn" delete "$instance" --api "$a"
expect_status "delete with the key" 0 "$cairn" delete "$instance" --api "$a" --api-key "$key"
stop_all
finish
