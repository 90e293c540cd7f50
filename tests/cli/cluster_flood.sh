#!/usr/bin/env bash
# Links that never finish their handshake cannot shut a node's cluster off, and a stranger
# cannot make a node buffer much before HELLO:
# - 160 links from one address trickling a HELLO that never ends: a new node still joins
#   the same cluster within seconds (before, they took every slot and it founded its own),
#   and the node closes the trickling links when their handshake deadline passes;
# - strangers from 150 addresses holding every slot they may: a member that comes back (on
#   another port, so it must dial in) rejoins at once;
# - 8 links that announce 64 MiB frames before HELLO and send 32 MiB each: the node's
#   resident memory stays within 64 MiB of what it was (before, it buffered all of it).
here=$(dirname "$0")
source "$here/common.bash"
source "$here/cluster.bash"
scale=1
case "$cairn" in *emulated*) scale=4 ;; esac
if ! command -v python3 >/dev/null; then
  echo "python3 is missing: skipped"
  finish
  exit 0
fi

# flood.py MODE HOST PORT COUNT SECONDS SOURCES: COUNT links to HOST:PORT, from the comma-
# separated SOURCES addresses in turn, for SECONDS. Prints "flooding" once every link was
# tried. trickle: each sends a HELLO frame of 3000 payload bytes, 4 bytes a second (it never
# ends within the test), and a link the node closes is opened again 0.5 s later. big: each
# announces a 64 MiB DATA_ACTIVATIONS frame and sends 32 MiB of it (in turns of 1 MiB),
# prints "sent", then keeps the links open with a byte every 0.5 s.
cat >"$tmp/flood.py" <<'EOF'
import socket, sys, time

mode, host, port, count, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
sources = sys.argv[6].split(",")
end = time.time() + seconds

def header(kind, length):
    return b"CRNW\x01" + bytes([kind]) + b"\x00\x00" + length.to_bytes(4, "little")

def connect(i):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.bind((sources[i % len(sources)], 0))
        s.connect((host, port))
    except OSError:
        s.close()
        raise
    return s

def closed_by_peer(s):
    s.setblocking(False)
    try:
        return s.recv(4096) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        s.setblocking(True)

def trickle():
    data = header(1, 3000) + b" " * 3000
    links, sent, retry = [None] * count, [0] * count, [0.0] * count
    reported = False
    while time.time() < end:
        now = time.time()
        for i in range(count):
            if links[i] is None and now >= retry[i]:
                try:
                    links[i], sent[i] = connect(i), 0
                except OSError:
                    retry[i] = now + 0.2
        if not reported:
            print("flooding", flush=True)
            reported = True
        for i, s in enumerate(links):
            if s is None:
                continue
            try:
                if closed_by_peer(s):
                    raise OSError("closed")
                s.send(data[sent[i]:sent[i] + 1])
                sent[i] += 1
            except OSError:
                s.close()
                links[i], retry[i] = None, now + 0.5
        time.sleep(0.25)

def big():
    links = []
    for i in range(count):
        try:
            s = connect(i)
            s.settimeout(10)
            s.sendall(header(10, 64 << 20))
            links.append(s)
        except OSError:
            pass
    print("flooding", flush=True)
    chunk = bytes(1 << 20)
    for _ in range(32):
        for s in list(links):
            try:
                s.sendall(chunk)
            except OSError:
                links.remove(s)
    print("sent", flush=True)
    while time.time() < end:
        for s in list(links):
            try:
                s.send(b"\0")
            except OSError:
                links.remove(s)
        time.sleep(0.5)

trickle() if mode == "trickle" else big()
EOF

# flood MODE COUNT SECONDS SOURCES: runs flood.py against node 1 in the background (pid in
# flood_pid) and waits until it has tried every link.
flood() {
  python3 "$tmp/flood.py" "$1" 127.0.0.1 "$port_base" "$2" "$3" "$4" >"$tmp/flood.out" 2>&1 &
  flood_pid=$!
  wait_output flooding || fail "flood.py did not start: $(cat "$tmp/flood.out")"
}
stop_flood() {
  { kill "$flood_pid" && wait "$flood_pid"; } 2>/dev/null
}
# wait_output WORD: polls until flood.py printed WORD (60 s at most).
wait_output() {
  for _ in $(seq 1 $((300 * scale))); do
    grep -q "^$1" "$tmp/flood.out" && return 0
    kill -0 "$flood_pid" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

start_node 1 --no-discovery
wait_agreed $((10 * scale)) 1 1 || { finish; exit 1; }

flood trickle 160 $((120 * scale)) 127.0.0.1
start_node 2 --no-discovery --peer "127.0.0.1:$port_base"
if wait_agreed $((15 * scale)) 2 1 2; then
  expect_eq "master of the node that joined during the flood" "$agreed_master" n1
  echo "a node joined the same cluster in $agreed_after s while 160 links trickled"
fi
for _ in $(seq 1 $((100 * scale))); do
  grep -q "no handshake within" "$tmp/log1" && break
  sleep 0.2
done
grep -q "no handshake within" "$tmp/log1" ||
  fail "node 1 does not close the links that keep trickling their handshake"
stop_flood

strangers=$(seq -s, 100 249 | sed 's/\([0-9]*\)/127.0.0.\1/g')
kill_node 2
flood trickle 160 $((120 * scale)) "$strangers"
start_node 2 --no-discovery --peer "127.0.0.1:$port_base" --port $((port_base + 2))
if wait_agreed $((15 * scale)) 2 1 2; then
  echo "a member came back in $agreed_after s while strangers held their slots"
fi
stop_flood

if [ "$scale" = 1 ]; then
  rss_before=$(rss_kib "${pids[1]}")
  flood big 8 $((60 * scale)) 127.0.0.1
  wait_output sent || fail "flood.py did not send its frames: $(cat "$tmp/flood.out")"
  rss_after=$(rss_kib "${pids[1]}")
  stop_flood
  echo "node 1 resident: $rss_before KiB before 8 links sent 32 MiB each before HELLO, $rss_after KiB after"
  [ "$rss_after" -lt $((rss_before + 64 * 1024)) ] ||
    fail "node 1 grew from $rss_before to $rss_after KiB on frames sent before HELLO"
fi

kill -0 "${pids[1]}" 2>/dev/null || fail "node 1 died"
agreed 1 2 || fail "nodes 1 and 2 no longer agree after the floods"
finish
