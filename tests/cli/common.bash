# Helpers shared by the shell tests of the cairn binary. Each test script is run by CTest as
# `bash SCRIPT CAIRN_BINARY SHARED_DIR` and fails on the first failed expectation.
set -u
cairn=$1
shared=$2
models=$shared/models
failures=0

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# expect_eq NAME ACTUAL EXPECTED
expect_eq() {
  if [ "$2" != "$3" ]; then
    fail "$1: got [$2], expected [$3]"
  fi
}

# expect_status NAME EXPECTED_STATUS COMMAND...
expect_status() {
  local name=$1 want=$2
  shift 2
  "$@" >/dev/null 2>&1
  local got=$?
  [ "$got" = "$want" ] || fail "$name: exit status $got, expected $want"
}

# in_own_netns "$@": re-runs the calling test script inside a network namespace of its own
# (tests/netns-run.sh), where it may change routing and multicast without touching the host.
# Call it before anything else; afterwards, own_netns tells whether that worked.
in_own_netns() {
  if [ -z "${CAIRN_TEST_IN_NETNS:-}" ]; then
    CAIRN_TEST_HOST_NETNS=$(readlink /proc/self/ns/net 2>/dev/null) CAIRN_TEST_IN_NETNS=1 exec bash "$(dirname "$0")/../netns-run.sh" bash "$0" "$@"
  fi
}
# True only in a network namespace other than the one the test was started in, so a test
# never changes the host's network.
own_netns() {
  local mine
  mine=$(readlink /proc/self/ns/net 2>/dev/null) || return 1
  [ -n "$mine" ] && [ -n "${CAIRN_TEST_HOST_NETNS:-}" ] && [ "$mine" != "$CAIRN_TEST_HOST_NETNS" ]
}

# npm_package DIR NAME@VERSION: installs an npm package into DIR (in the build tree) once;
# a registry that cannot be reached fails the test with that reason.
npm_package() {
  local dir=$1 spec=$2 name=${2%@*}
  [ -d "$dir/node_modules/$name" ] && return 0
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-audit --no-fund --silent "$spec" >/dev/null 2>&1 && return 0
  fail "cannot install the $name npm package (the npm registry must be reachable)"
  finish
}

finish() {
  if [ "$failures" -ne 0 ]; then
    echo "$failures expectation(s) failed" >&2
    exit 1
  fi
  echo "all expectations met"
}
