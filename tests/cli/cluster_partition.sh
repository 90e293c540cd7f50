#!/usr/bin/env bash
# A network partition and its healing, in a network namespace of the test's own: five nodes
# on 127.0.0.1-5; policy routing rules blackhole traffic between {1,2} and {3,4,5}. Each side
# elects its own master; after the rules go, one master and one state remain, and the older
# side's (the one with the founding node) wins.
here=$(dirname "$0")
source "$here/common.bash"
in_own_netns "$@"
source "$here/cluster.bash"
scale=1
case "$cairn" in *emulated*) scale=4 ;; esac

# Local addresses are routed by the "local" table, consulted first by default; moving it
# behind rules of our own lets those rules cut 127.0.0.x from 127.0.0.y.
if ! own_netns || ! { ip rule add pref 100 lookup local && ip rule del pref 0; } 2>/dev/null; then
  fail "cannot change routing rules: this test needs a network namespace (root or unshare -n)"
  finish
fi
partition() { # partition add|del
  for a in 1 2; do
    for b in 3 4 5; do
      ip rule "$1" pref 10 from "127.0.0.$a" to "127.0.0.$b" blackhole
      ip rule "$1" pref 10 from "127.0.0.$b" to "127.0.0.$a" blackhole
    done
  done
}

for i in 1 2 3 4 5; do
  start_node "$i" --no-discovery --peer "127.0.0.1:$port_base" --peer "127.0.0.3:$port_base"
done
wait_agreed $((8 * scale)) 5 1 2 3 4 5 || { finish; exit 1; }
expect_eq "master before the partition" "$agreed_master" n1
echo "cluster of 5 formed; partitioning {1,2} | {3,4,5}"

partition add
if wait_agreed $((15 * scale)) 2 1 2; then
  side_a=$agreed_master
  echo "side {1,2}: master $side_a, 2 members after $agreed_after s"
fi
if wait_agreed $((15 * scale)) 3 3 4 5; then
  side_b=$agreed_master
  echo "side {3,4,5}: master $side_b, 3 members after $agreed_after s"
fi
expect_eq "master of the side with the founder" "${side_a:-}" n1
[ "${side_b:-n1}" != n1 ] || fail "side {3,4,5} has no master of its own"

partition del
if wait_agreed $((15 * scale)) 5 1 2 3 4 5; then
  echo "healed: one master ($agreed_master), one state, 5 members after $agreed_after s"
  expect_eq "master after healing" "$agreed_master" n1
fi
finish
