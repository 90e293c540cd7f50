#!/usr/bin/env bash
# Runs a command in a network namespace of its own, set up for the discovery tests: lo up
# with the MULTICAST flag (which the default namespace's lo may lack) for multicast on
# 127.0.0.1, a veth link for IPv6 link-local multicast, and no real network, so no test
# packet ever reaches one.
#
# Usage: netns-run.sh COMMAND [ARGS...]   (CTest runs test_discovery this way)
#
# Needs `unshare -n` (root, or a user namespace that allows it). Where no namespace can be
# made, the command runs in the current namespace after a note on stderr; a test that needs
# multicast then fails with its own message if multicast on loopback does not work there.
# Inside, CAIRN_NETNS_IPV6 and CAIRN_NETNS_LOST_GROUP_V6 say what else is set up (below).
# Whatever the command leaves running inside the namespace (such as a Wine server) is ended
# when it exits, so the namespace goes away with it.
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: netns-run.sh COMMAND [ARGS...]" >&2; exit 2; }

if [ "${CAIRN_NETNS_INSIDE:-}" != 1 ]; then
  if command -v unshare >/dev/null 2>&1 && unshare -n true 2>/dev/null; then
    CAIRN_NETNS_INSIDE=1 exec unshare -n bash "$0" "$@"
  fi
  echo "netns-run: cannot create a network namespace here (unshare -n failed);" \
       "running in the current one" >&2
  exec "$@"
fi
unset CAIRN_NETNS_INSIDE

# Inside the new namespace: lo is down and has no multicast until told.
if ! { ip link set lo up && ip link set lo multicast on; } 2>/dev/null; then
  echo "netns-run: could not bring up lo with multicast in the new namespace" >&2
fi
# IPv6 does not carry link-local multicast through lo, so a pair of linked virtual ends
# (veth) inside the namespace stands in for a LAN, with fixed link-local addresses (no
# duplicate address detection to wait for). Best effort: tests that need it look for
# CAIRN_NETNS_IPV6=1.
if ip link add cairn0 type veth peer name cairn1 2>/dev/null &&
  ip link set cairn0 addrgenmode none && ip link set cairn1 addrgenmode none &&
  ip link set cairn0 up && ip link set cairn1 up &&
  ip addr add fe80::1/64 dev cairn0 nodad && ip addr add fe80::2/64 dev cairn1 nodad; then
  export CAIRN_NETNS_IPV6=1
  # One group routed into lo, where IPv6 drops it without an error: what a host that
  # blocks multicast looks like to a node (CAIRN_NETNS_LOST_GROUP_V6).
  if ip -6 route add multicast ff02::dead:1/128 dev lo table local 2>/dev/null; then
    export CAIRN_NETNS_LOST_GROUP_V6=ff02::dead:1
  fi
else
  echo "netns-run: no veth pair in the namespace: IPv6 tests will be skipped" >&2
fi

"$@"
rc=$?

# End the processes still in this namespace: they were all started by the command.
ns=$(readlink /proc/$$/ns/net)
for dir in /proc/[0-9]*; do
  pid=${dir#/proc/}
  [ "$pid" = $$ ] && continue
  [ "$(readlink "$dir/ns/net" 2>/dev/null)" = "$ns" ] && kill "$pid" 2>/dev/null
done
exit $rc
