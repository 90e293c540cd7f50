# `cairn nodes` without a node to ask: help, usage errors, and the message when nothing
# listens (the table itself is tested in tests/test_api.c, against a real /state answer).
. "$(dirname "$0")/common.bash"

expect_status "nodes --help" 0 "$cairn" nodes --help
"$cairn" nodes --help | grep -q "usage: cairn nodes" || fail "nodes --help shows no usage"
"$cairn" --help | grep -q "nodes .*list the nodes of the running cluster" ||
  fail "cairn --help does not list nodes"
expect_status "positional argument" 2 "$cairn" nodes extra
expect_status "no --api value" 2 "$cairn" nodes --api
for bad in "" "host:" "host:0" "host:70000" "::1" "[::1" "127.0.0.1:x"; do
  expect_status "--api '$bad'" 2 "$cairn" nodes --api "$bad"
done

# Port 1 (tcpmux) is closed on any machine that runs these tests.
err=$("$cairn" nodes --api 127.0.0.1:1 2>&1 >/dev/null)
expect_status "nothing listening" 1 "$cairn" nodes --api 127.0.0.1:1
expect_eq "refused message" "$err" \
  "cairn: error: cannot connect to 127.0.0.1:1: is a node running? (cairn run)"
err=$("$cairn" nodes --json --api '[::1]:1' 2>&1 >/dev/null)
expect_eq "refused message (IPv6)" "$err" \
  "cairn: error: cannot connect to [::1]:1: is a node running? (cairn run)"
finish
