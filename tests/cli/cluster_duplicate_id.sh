#!/usr/bin/env bash
# Two nodes started with the same --id: the cluster says so and refuses the second one's
# link, where before the two replaced each other's links in silence. The first keeps its
# place; the second is told why.
here=$(dirname "$0")
source "$here/common.bash"
source "$here/cluster.bash"
scale=1
case "$cairn" in *emulated*) scale=4 ;; esac

start_node 1 --no-discovery
wait_agreed $((10 * scale)) 1 1 || { finish; exit 1; }
start_node 2 --no-discovery --id twin --peer "127.0.0.1:$port_base"
for _ in $(seq 1 $((50 * scale))); do
  node_state 1 | grep -q '"id":"twin"' && break
  sleep 0.2
done
node_state 1 | grep -q '"id":"twin"' || fail "the first node named twin did not join"
start_node 3 --no-discovery --id twin --peer "127.0.0.1:$port_base"
sleep $((4 * scale))
grep -q "two nodes use the id twin" "$tmp/log1" ||
  fail "node 1 does not say that two nodes use one id: $(grep -i twin "$tmp/log1" | tail -3)"
grep -q "another node with this id\|uses this node's id" "$tmp/log3" ||
  fail "the second twin is not told why it is refused: $(tail -5 "$tmp/log3")"
expect_eq "links up with twin on node 1" "$(grep -c 'link up with twin' "$tmp/log1")" 1
echo "duplicate id: said and refused"
finish
