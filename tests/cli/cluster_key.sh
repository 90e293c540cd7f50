#!/usr/bin/env bash
# A keyed cluster refuses a node with a wrong key and a node without a key: neither joins,
# and the cluster's state does not change. A raw connection that sends a HELLO and asks for
# the state, or garbage, is refused the same way (and gets no snapshot), and the nodes keep
# running.
here=$(dirname "$0")
source "$here/common.bash"
source "$here/cluster.bash"
scale=1
case "$cairn" in *emulated*) scale=4 ;; esac

printf 'correct horse battery staple\r\n' >"$tmp/keyfile"
start_node 1 --no-discovery --key "correct horse battery staple" --peer "127.0.0.2:$port_base" \
  --profile-interval 600000
start_node 2 --no-discovery --key-file "$tmp/keyfile" --peer "127.0.0.1:$port_base" \
  --profile-interval 600000
start_node 3 --no-discovery --peer "127.0.0.1:$port_base" --profile-interval 600000 \
  --key "correct horse battery staple"
wait_agreed $((10 * scale)) 3 1 2 3 || { finish; exit 1; }
grep -q '"keyed":true' <<<"$(node_info 1)" || fail "node 1 does not say it is keyed"
hash_before=$agreed_hash
echo "keyed cluster formed (key from --key and from a file with CRLF)"

start_node 4 --no-discovery --key "wrong key" --peer "127.0.0.1:$port_base"
start_node 5 --no-discovery --peer "127.0.0.1:$port_base"
# Raw intruders: a plain HELLO frame and random bytes.
hello='{"node":"evil","cluster":"cairn","protocol":1,"cluster_port":1,"api_port":0}'
# The HELLO comes with a request for the state: a peer that did not prove the key gets an
# error, never the snapshot.
wire_frame "$tmp/intruder" 1 "$hello"
wire_frame "$tmp/intruder" 8 '{"after":0,"full":true,"lineage":null,"name":"evil","addresses":[]}'
got=$(raw_exchange 127.0.0.1 "$port_base" "$tmp/intruder")
expect_eq "the keyed node closes a keyless link" "$?" 0
grep -q '"seniority"\|"nodes"\|"lineage"' <<<"$got" && fail "a keyless peer got the state: $got"
echo "a keyless peer got: $got"
timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.2/$0 && head -c 5000 /dev/urandom >&3 && sleep 1' \
  "$port_base" 2>/dev/null
sleep $((4 * scale))

agreed 1 2 3 || fail "the keyed nodes no longer agree"
expect_eq "keyed cluster's state hash" "$agreed_hash" "$hash_before"
for id in n4 n5 evil; do
  node_state 1 | grep -q "\"id\":\"$id\"" && fail "$id got into the keyed cluster"
done
grep -q "another key\|does not know this cluster's key" "$tmp/log4" ||
  fail "the node with a wrong key does not say why it is refused"
grep -q "needs a cluster key\|without --key\|without a key" "$tmp/log5" "$tmp/log1" ||
  fail "no log line explains that the keyless node was refused"
for i in 1 2 3; do
  kill -0 "${pids[$i]}" 2>/dev/null || fail "keyed node $i died"
done
finish
