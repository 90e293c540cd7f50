#!/usr/bin/env bash
# A master that steps down and comes back is followed again: a raw peer claims a rank above
# the master's (an older lineage), so the master steps down to follow it; the peer leaves,
# the master returns in a later term, and its follower must take up the new term's events
# (a node that joins afterwards) instead of staying "in step" at an old index.
here=$(dirname "$0")
source "$here/common.bash"
source "$here/cluster.bash"
scale=1
case "$cairn" in *emulated*) scale=4 ;; esac

start_node 1 --no-discovery --profile-interval 600000
start_node 2 --no-discovery --peer "127.0.0.1:$port_base" --profile-interval 600000
wait_agreed $((10 * scale)) 2 1 2 || { finish; exit 1; }
expect_eq "the first master" "$agreed_master" n1

# The usurper: a HELLO, then heartbeats ranking itself above everyone, for 3 s.
hello='{"node_id":"n0","cluster":"cairn","protocol":1,"cluster_port":1,"api_port":0}'
beat='{"rank":{"id":"n0","state":true,"born":1,"founder":"n0","seniority":0},"follows":null,"term":0,"index":0}'
wire_frame "$tmp/hello" 1 "$hello"
wire_frame "$tmp/beat" 3 "$beat"
timeout $((10 * scale)) bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 || exit 1
  cat "$1" >&3
  for _ in 1 2 3 4 5 6; do cat "$2" >&3; sleep 0.5; done' "$port_base" "$tmp/hello" "$tmp/beat" \
  2>/dev/null
grep -q "n0 ranks above this node: stepping down" "$tmp/log1" ||
  fail "the master did not step down for the usurper"

# The master returns (term 2); a node that joins now is an event of the new term.
start=$(now)
until grep -q "this node is the master (term 2)" "$tmp/log1"; do
  awk -v e="$(elapsed "$start")" -v l=$((10 * scale)) 'BEGIN { exit !(e > l) }' && break
  sleep 0.2
done
grep -q "this node is the master (term 2)" "$tmp/log1" || fail "n1 did not become master again"
start_node 3 --no-discovery --peer "127.0.0.1:$port_base" --profile-interval 600000
wait_agreed $((15 * scale)) 3 1 2 3 ||
  fail "the follower did not take up the returned master's events: n2 holds $(members 2) nodes"
expect_eq "members n2 sees" "$(members 2)" 3
echo "the master stepped down and returned; its follower followed the new term"
finish
