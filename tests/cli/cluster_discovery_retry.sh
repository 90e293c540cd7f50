#!/usr/bin/env bash
# A node whose discovery cannot start (its UDP port held, without sharing, by another
# program) still starts and serves its API, warns once, tries again quietly, and joins
# discovery once the port is free: a second node started by multicast alone finds it. The
# nodes run in a network namespace of the test's own, with discovery on 127.0.0.1.
here=$(dirname "$0")
source "$here/common.bash"
in_own_netns "$@"
source "$here/cluster.bash"

case "$cairn" in *emulated*)
  echo "the port holder is a native helper: not tested under an emulator"
  finish
  exit
  ;;
esac
own_netns || fail "no network namespace of its own: multicast could leave loopback"
holder=$(dirname "$cairn")/tests/port_holder
[ -x "$holder" ] || fail "no port_holder next to $cairn (tests/helpers/port_holder.c)"
[ "$failures" = 0 ] || finish

"$holder" "$disc_port" >"$tmp/holder.out" 2>&1 &
hold=$!
start=$(now)
until grep -q "^holding" "$tmp/holder.out"; do
  awk -v e="$(elapsed "$start")" 'BEGIN { exit !(e > 10) }' && break
  sleep 0.1
done
grep -q "^holding" "$tmp/holder.out" || fail "the port was not held: $(cat "$tmp/holder.out")"

distinct_ports=1
disc=(--discovery-interface 127.0.0.1 --no-ipv6 --discovery-port "$disc_port")
start_node 1 "${disc[@]}"
wait_agreed 20 1 1 || finish
expect_eq "node 1 serves /node" "$(json_field "$(node_info 1)" id)" n1
grep -q "discovery cannot start yet" "$tmp/log1" || fail "no warning that discovery cannot start"
# a few tries go by, quietly
sleep $((3 * 3))
expect_eq "warnings about discovery" "$(grep WARN "$tmp/log1" | grep -c discovery)" 1
grep -q "discovery works now" "$tmp/log1" && fail "discovery worked while the port was held"
echo "with its discovery port held, n1 serves and warned once: $(grep WARN "$tmp/log1" | head -1 | cut -c1-160)"

kill "$hold"
wait "$hold" 2>/dev/null
start_node 2 "${disc[@]}"
if wait_agreed 30 2 1 2; then
  echo "once the port was free, n2 found n1 by multicast in $agreed_after s"
fi
grep -q "discovery works now" "$tmp/log1" || fail "n1 did not log that discovery works"
expect_eq "warnings about discovery" "$(grep WARN "$tmp/log1" | grep -c discovery)" 1
finish
