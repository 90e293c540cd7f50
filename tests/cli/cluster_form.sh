#!/usr/bin/env bash
# Five nodes on loopback, linked by --peer only (each knows one other node): they form one
# cluster with one master and equal state hashes within 5 s. Killing the master (kill -9)
# leaves four that agree on a new master within 3 s; the killed node restarts and rejoins.
here=$(dirname "$0")
source "$here/common.bash"
source "$here/cluster.bash"

# Under an emulator (Wine) processes start slower; the limits stretch accordingly.
scale=1
case "$cairn" in *emulated*) scale=4 ;; esac

for i in 1 2 3 4 5; do
  peer=127.0.0.1
  [ "$i" = 1 ] && peer=127.0.0.2
  start_node "$i" --no-discovery --peer "$peer:$port_base"
done
if wait_agreed $((5 * scale)) 5 1 2 3 4 5; then
  echo "5 nodes agreed on master $agreed_master in $agreed_after s"
  expect_eq "first master" "$agreed_master" n1
fi

old_master=${agreed_master#n}
kill_node "$old_master"
survivors=()
for i in 1 2 3 4 5; do [ "$i" = "$old_master" ] || survivors+=("$i"); done
# The survivors must agree at once (the member list shrinks later, after the timeout).
start=$(now)
while ! agreed "${survivors[@]}"; do
  if awk -v e="$(elapsed "$start")" -v l=$((3 * scale)) 'BEGIN { exit !(e > l) }'; then
    fail "the survivors did not agree on a new master within $((3 * scale)) s"
    break
  fi
  sleep 0.05
done
echo "survivors agreed on master $agreed_master $(elapsed "$start") s after the kill"
[ "$agreed_master" != "n$old_master" ] || fail "the killed master is still master"
new_master=$agreed_master
wait_agreed $((10 * scale)) 4 "${survivors[@]}" && echo "the dead master left the state"

start_node "$old_master" --no-discovery --peer "127.0.0.${survivors[0]}:$port_base"
if wait_agreed $((10 * scale)) 5 1 2 3 4 5; then
  echo "the restarted node rejoined in $agreed_after s"
  expect_eq "master after the rejoin" "$agreed_master" "$new_master"
fi
finish
