#!/usr/bin/env bash
# Ctrl+C stops a node cleanly: on SIGINT (on Windows, the console's Ctrl+C event, which
# libuv turns into the same signal) the node tells its peers goodbye, closes its API and
# exits with status 0; the peer logs the goodbye instead of a lost link.
here=$(dirname "$0")
source "$here/common.bash"
source "$here/cluster.bash"
scale=1
case "$cairn" in *emulated*) scale=4 ;; esac

start_node 1 --no-discovery --peer "127.0.0.2:$port_base"
start_node 2 --no-discovery --peer "127.0.0.1:$port_base"
wait_agreed $((10 * scale)) 2 1 2 || { finish; exit 1; }
kill -INT "${pids[2]}"
status=timeout
for _ in $(seq $((100 * scale))); do
  if ! kill -0 "${pids[2]}" 2>/dev/null; then
    wait "${pids[2]}"
    status=$?
    break
  fi
  sleep 0.1
done
unset "pids[2]"
expect_eq "exit status after Ctrl+C" "$status" 0
grep -q "interrupt received: shutting down" "$tmp/log2" || fail "no shutdown line in the log"
grep -q "stopped" "$tmp/log2" || fail "the node did not report that it stopped"
sleep 1
grep -q "n2 says goodbye" "$tmp/log1" || fail "the peer did not hear the goodbye"
finish
