#!/usr/bin/env bash
# Five nodes find each other by multicast alone (no --peer) and form one cluster within
# 5 s. They run in a network namespace of the test's own, whose loopback carries multicast,
# with discovery bound to 127.0.0.1, so no packet reaches a real network. A node of another
# cluster name on the same group stays out.
here=$(dirname "$0")
source "$here/common.bash"
in_own_netns "$@"
source "$here/cluster.bash"
scale=1
case "$cairn" in *emulated*) scale=4 ;; esac

own_netns || fail "no network namespace of its own: multicast could leave loopback"
[ "$failures" = 0 ] || finish
distinct_ports=1
for i in 1 2 3 4 5; do
  start_node "$i" --discovery-interface 127.0.0.1 --no-ipv6 --discovery-port "$disc_port"
done
start_node 6 --discovery-interface 127.0.0.1 --no-ipv6 --discovery-port "$disc_port" \
  --cluster other
if wait_agreed $((5 * scale)) 5 1 2 3 4 5; then
  echo "5 nodes found each other by multicast and agreed in $agreed_after s"
fi
node_state 1 | grep -q '"id":"n6"' && fail "a node of another cluster joined"
grep -q "another cluster\|other cluster\|cluster \"other\"" "$tmp/log6" "$tmp/log1" 2>/dev/null ||
  true # other clusters' announcements are dropped silently at info level
finish
