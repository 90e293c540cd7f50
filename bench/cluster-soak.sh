#!/usr/bin/env bash
# Cluster soak: 5 nodes on loopback under churn. For MINUTES (default 10) a random node of
# n1-n4 is killed (kill -9, or SIGTERM one time in four) every few seconds and restarted a few
# seconds later, with at most two down at once; masters are killed too. n5 is the witness:
# never killed, it lives through every link, election and snapshot of the run, so its
# figures before and after show what a long-lived node leaks. At the end every node is back, and the script checks
# that the cluster converged (one master, equal state hashes, 5 members) and prints, per
# node, the figures that show leaks: resident memory, open handles (sockets and files), libuv
# handles, links, dial targets and event log entries, next to the same figures of a fresh
# 5-node cluster.
#
# Usage: bench/cluster-soak.sh [MINUTES] [CAIRN_BINARY]
#   With a sanitizer build (build-asan/cairn), nodes stopped with SIGTERM also report leaks
#   through LeakSanitizer; their logs are checked for it.
set -u
minutes=${1:-10}
root=$(cd "$(dirname "$0")/.." && pwd)
set -- "${2:-$root/build/cairn}" "$root/../shared"
here=$root/tests/cli
source "$here/common.bash"
source "$here/cluster.bash"

figures() { # figures I: one line of leak figures from node I's /node
  local info
  info=$(node_info "$1")
  printf "n%s  up %5.0f s  rss %6.1f MiB  open handles %3s  loop handles %3s  links %s  targets %s  log %s\n" \
    "$1" "$(json_field "$info" uptime_seconds)" \
    "$(awk -v b="$(json_field "$info" rss_bytes)" 'BEGIN { print b / 1048576 }')" \
    "$(json_field "$info" open_files)" "$(json_field "$info" loop_handles)" \
    "$(grep -o '"peer":' <<<"$info" | wc -l)" "$(json_field "$info" targets)" \
    "$(json_field "$info" event_log_entries)"
}

start_all() {
  for i in 1 2 3 4 5; do
    [ -n "${pids[$i]:-}" ] || start_node "$i" --no-discovery --peer "127.0.0.1:$port_base" \
      --peer "127.0.0.2:$port_base"
  done
}

start_all
wait_agreed 10 5 1 2 3 4 5 || exit 1
echo "fresh cluster (converged in $agreed_after s):"
for i in 1 2 3 4 5; do figures "$i"; done

end=$(($(date +%s) + $(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 }')))
kills=0 terms=0 restarts=0
declare -A down_until=() started=()
while [ "$(date +%s)" -lt "$end" ]; do
  sleep $((2 + RANDOM % 6))
  now_s=$(date +%s)
  for i in "${!down_until[@]}"; do
    if [ "${down_until[$i]}" -le "$now_s" ]; then
      start_node "$i" --no-discovery --peer "127.0.0.1:$port_base" --peer "127.0.0.2:$port_base"
      started[$i]=$now_s
      unset "down_until[$i]"
      restarts=$((restarts + 1))
    fi
  done
  [ "${#down_until[@]}" -ge 2 ] && continue
  victim=$((1 + RANDOM % 4))
  # Only nodes that have been up a while: a signal during start-up proves nothing.
  [ -n "${pids[$victim]:-}" ] && [ $((now_s - ${started[$victim]:-0})) -ge 3 ] || continue
  if [ $((RANDOM % 4)) = 0 ]; then
    kill -TERM "${pids[$victim]}"
    wait "${pids[$victim]}" 2>/dev/null || echo "n$victim exited with status $? after SIGTERM"
    unset "pids[$victim]"
    terms=$((terms + 1))
  else
    kill_node "$victim"
    kills=$((kills + 1))
  fi
  down_until[$victim]=$((now_s + 2 + RANDOM % 7))
done
for i in "${!down_until[@]}"; do unset "down_until[$i]"; done
start_all
echo "churn: $minutes min, $kills kill -9, $terms SIGTERM, $restarts restarts"
if wait_agreed 20 5 1 2 3 4 5; then
  echo "converged after the churn in $agreed_after s: master $agreed_master, hash ${agreed_hash:0:16}"
fi
sleep 5 # let the last profile reports settle
echo "after the churn:"
for i in 1 2 3 4 5; do figures "$i"; done
if grep -l "LeakSanitizer\|AddressSanitizer" "$tmp"/log* 2>/dev/null; then
  fail "a sanitizer reported a problem (see the logs above)"
fi
finish
