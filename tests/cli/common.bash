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

finish() {
  if [ "$failures" -ne 0 ]; then
    echo "$failures expectation(s) failed" >&2
    exit 1
  fi
  echo "all expectations met"
}
