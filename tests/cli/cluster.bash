# Helpers for the cluster tests: start `cairn run` nodes on loopback, read their /node and
# /state over plain HTTP (bash's /dev/tcp, so the tests need no HTTP client), and wait for
# the cluster to agree. Sourced after common.bash.
tmp=$(mktemp -d)
declare -A pids=()
# Each test takes a random base of 30 ports, below Linux's ephemeral range (32768 and up),
# where runners, links and clients take their ports and could hold a node's port at the
# moment it binds. A lock directory per base keeps tests that run at the same time off
# each other's ports; a lock whose test is gone (killed) is taken over.
port_locks=${TMPDIR:-/tmp}/cairn-test-ports
port_lock=
mkdir -p "$port_locks"
for _ in $(seq 1 200); do
  port_base=$((20000 + (RANDOM % 400) * 30))
  if mkdir "$port_locks/$port_base" 2>/dev/null; then
    port_lock=$port_locks/$port_base
    echo $$ >"$port_lock/pid"
    break
  fi
  owner=$(cat "$port_locks/$port_base/pid" 2>/dev/null)
  if [ -n "$owner" ] && ! kill -0 "$owner" 2>/dev/null; then
    rm -rf "$port_locks/$port_base"
  fi
done
api_base=$((port_base + 10))
disc_port=$((port_base + 20))
# distinct_ports=1: node I listens on 127.0.0.1:port_base+I instead (multicast on loopback
# comes from 127.0.0.1 whoever sends it, so that is the address peers learn).
distinct_ports=0
export CAIRN_NODE_TEST_TMP=$tmp

cleanup() {
  if [ "$failures" -ne 0 ] || [ -n "${CAIRN_KEEP_LOGS:-}" ]; then
    for f in "$tmp"/log*; do echo "---- $f (last 40 lines)"; tail -40 "$f"; done >&2
  fi
  exec 2>/dev/null # no job notices about the nodes killed below
  for i in "${!pids[@]}"; do kill -9 "${pids[$i]}"; done
  wait
  rm -rf "$tmp"
  [ -z "$port_lock" ] || rm -rf "$port_lock"
}
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# start_node I [ARGS...]: node nI on 127.0.0.I, cluster port port_base (see distinct_ports),
# API on 127.0.0.1:api_base+I.
start_node() {
  local i=$1
  shift
  mkdir -p "$tmp/m$i"
  local port=$port_base host=127.0.0.$i
  if [ "$distinct_ports" = 1 ]; then
    port=$((port_base + i))
    host=127.0.0.1
  fi
  "$cairn" run --id "n$i" --listen "$host" --port "$port" \
    --api-port $((api_base + i)) --models-dir "$tmp/m$i" --log-level debug \
    --profile-interval 1000 "$@" >>"$tmp/log$i" 2>&1 &
  pids[$i]=$!
}

kill_node() {
  { kill -9 "${pids[$1]}"; wait "${pids[$1]}"; } 2>/dev/null
  unset "pids[$1]"
}


# http_get PORT PATH: the body of GET PATH on 127.0.0.1:PORT (empty on any failure). Nodes
# run with --api-key want it: set api_key to send it.
api_key=
http_get() {
  timeout 3 bash -c '
    exec 3<>/dev/tcp/127.0.0.1/$0 || exit 1
    printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n%s\r\n" "$1" "$2" >&3
    response=$(cat <&3)
    printf "%s" "${response#*$'"'"'\r\n\r\n'"'"'}"' "$1" "$2" \
    "${api_key:+Authorization: Bearer $api_key$'\r\n'}" 2>/dev/null
}
node_info() { http_get $((api_base + $1)) /node; }
node_state() { http_get $((api_base + $1)) /state; }

# wire_frame FILE TYPE JSON: appends a wire frame of TYPE (a number, wire.h) carrying JSON
# (under 64 KiB) to FILE.
wire_frame() {
  local len=${#3}
  # the inner printf writes the header's escapes, the outer one their bytes
  printf "$(printf 'CRNW\\x01\\x%02x\\x00\\x00\\x%02x\\x%02x\\x00\\x00' "$2" $((len & 255)) \
    $((len >> 8)))" >>"$1"
  printf "%s" "$3" >>"$1"
}

# raw_exchange HOST PORT FILE: sends FILE's bytes to HOST:PORT and prints what comes back
# until the other end closes (control bytes as dots); fails when it does not close in 10 s.
raw_exchange() {
  timeout 10 bash -c 'exec 3<>/dev/tcp/$0/$1 || exit 1; cat "$2" >&3; cat <&3' "$1" "$2" "$3" |
    tr -c '[:print:]' '.'
  return "${PIPESTATUS[0]}"
}

# json_field JSON KEY: the first string or number value of KEY.
json_field() {
  grep -o "\"$2\":\(\"[^\"]*\"\|[0-9.]*\)" <<<"$1" | head -1 | sed 's/^[^:]*://; s/"//g'
}

# agreed NODES...: true when the nodes agree on one live master among them, all hold its
# snapshot, and their state hashes are equal; sets agreed_master and agreed_hash.
agreed() {
  local master="" hash="" masters=0 info role m h
  for i in "$@"; do
    info=$(node_info "$i")
    role=$(json_field "$info" role)
    m=$(json_field "$info" master)
    h=$(json_field "$info" state_hash)
    [ "$(json_field "$info" synced)" = "" ] || true
    [ -n "$m" ] && [ -n "$h" ] || return 1
    [ "$role" = master ] && masters=$((masters + 1))
    [ -z "$master" ] && master=$m
    [ -z "$hash" ] && hash=$h
    [ "$m" = "$master" ] && [ "$h" = "$hash" ] || return 1
    grep -q '"synced":true' <<<"$info" || return 1
  done
  [ "$masters" = 1 ] || return 1
  agreed_master=$master
  agreed_hash=$hash
}

# members I: how many nodes node I's state holds.
members() { node_state "$1" | grep -o '"seniority":' | wc -l; }

# wait_agreed LIMIT_SECONDS WANT_MEMBERS NODES...: polls until the nodes agree and hold
# WANT_MEMBERS members; prints the time it took; fails the test after LIMIT seconds.
wait_agreed() {
  local limit=$1 want=$2
  shift 2
  local start
  start=$(now)
  while :; do
    if agreed "$@" && [ "$(members "$1")" = "$want" ]; then
      agreed_after=$(elapsed "$start")
      return 0
    fi
    if awk -v e="$(elapsed "$start")" -v l="$limit" 'BEGIN { exit !(e > l) }'; then
      fail "nodes $* did not agree with $want members within $limit s"
      for i in "$@"; do echo "n$i: $(node_info "$i" | head -c 400)" >&2; done
      return 1
    fi
    sleep 0.1
  done
}

# api I: node I's API address.
api() { echo "127.0.0.1:$((api_base + $1))"; }

# stop_all: stops every node this test started and waits for each.
stop_all() {
  for i in "${!pids[@]}"; do kill "${pids[$i]}" 2>/dev/null; done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" 2>/dev/null
    unset "pids[$i]"
  done
}

# wait_profiles MODEL NODES: node 1's state lists MODEL with its hash on that many nodes
# (hashing runs in the background).
wait_profiles() {
  local start
  start=$(now)
  until [ "$(node_state 1 | grep -o "\"name\":\"$1\",\"size\":[0-9]*,\"sha256\":\"[0-9a-f]\{64\}\"" | wc -l)" = "$2" ]; do
    if awk -v e="$(elapsed "$start")" -v l=$((20 * ${scale:-1})) 'BEGIN { exit !(e > l) }'; then
      fail "the nodes did not report $1 with its hash"
      return 1
    fi
    sleep 0.2
  done
}

# wait_ready [SHARDS]: polls until node 1's state holds one instance whose runners (SHARDS of
# them, when given) are all ready or running.
wait_ready() {
  local start st total ok
  start=$(now)
  while :; do
    st=$(node_state 1)
    total=$(grep -o '"runner":{"state":"' <<<"$st" | wc -l)
    ok=$(grep -o '"runner":{"state":"\(ready\|running\)"' <<<"$st" | wc -l)
    if [ "$total" -gt 0 ] && [ "$ok" = "$total" ] && [ -z "${1:-}" -o "$total" = "${1:-}" ]; then
      return 0
    fi
    if awk -v e="$(elapsed "$start")" -v l=$((30 * ${scale:-1})) 'BEGIN { exit !(e > l) }'; then
      fail "no instance became ready: $(grep -o '"instances":.*' <<<"$st" | head -c 600)"
      return 1
    fi
    sleep 0.1
  done
}
