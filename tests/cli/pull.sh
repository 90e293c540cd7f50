#!/usr/bin/env bash
# `cairn pull` against a local stand-in for Hugging Face (tests/pull/server.mjs, on
# loopback): a transfer cut halfway resumes with a Range request and the file arrives
# whole; a wrong checksum is refused and nothing is left; a missing file is a clear error;
# a refused transfer leaves no empty .part file; names that are no file of a repository
# ("a/", ".", "..") are refused; a listing nested too deep is refused; on a terminal the
# transfer shows its progress. A node's POST /models/pull does the same into its models
# directory, streams its progress, and the file shows up, hashed, in GET /models.
here=$(dirname "$0")
source "$here/common.bash"
source "$here/cluster.bash" # tmp, the node helpers, and a cleanup that kills what pids holds
server=""

head -c $((3 * 1024 * 1024 + 123)) /dev/urandom >"$tmp/source.gguf"
want_sha=$(sha256sum "$tmp/source.gguf" | cut -d' ' -f1)

serve() { # MODE: starts the server, sets endpoint
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  unset "pids[99]"
  rm -f "$tmp/port" "$tmp/requests"
  node "$here/../pull/server.mjs" "$tmp/source.gguf" "$1" "$tmp/port" "$tmp/requests" &
  server=$!
  pids[99]=$server
  for _ in $(seq 1 50); do [ -s "$tmp/port" ] && break; sleep 0.1; done
  export CAIRN_HF_ENDPOINT="http://127.0.0.1:$(cat "$tmp/port")"
}

# a transfer cut halfway resumes (REPO without FILE picks the one GGUF file)
serve cut
out=$("$cairn" pull org/repo --models-dir "$tmp/d1" 2>"$tmp/err")
expect_eq "pull after a cut transfer" "$?" 0
cmp -s "$tmp/source.gguf" "$tmp/d1/model.gguf" || fail "the pulled file differs from the source"
grep -q "range=bytes=[1-9][0-9]*-" "$tmp/requests" || fail "no resuming Range request: $(cat "$tmp/requests")"
grep -q "$want_sha" <<<"$out" || fail "the checksum is not reported: $out"
[ ! -e "$tmp/d1/model.gguf.part" ] || fail "the partial file was left behind"

# a wrong checksum is refused and nothing is left
serve badsum
"$cairn" pull org/repo:model.gguf --models-dir "$tmp/d2" >/dev/null 2>"$tmp/err"
expect_eq "pull with a wrong checksum" "$?" 1
grep -q "checksum is wrong" "$tmp/err" || fail "no checksum error: $(cat "$tmp/err")"
[ -z "$(ls -A "$tmp/d2" 2>/dev/null)" ] || fail "a refused download left files: $(ls "$tmp/d2")"

# a missing file is a clear error
serve ok
"$cairn" pull org/repo:missing.gguf --models-dir "$tmp/d3" >/dev/null 2>"$tmp/err"
expect_eq "pull of a missing file" "$?" 1
grep -q "404" "$tmp/err" || fail "no 404 in the error: $(cat "$tmp/err")"
[ -z "$(ls -A "$tmp/d3" 2>/dev/null)" ] || fail "a refused download left files: $(ls -a "$tmp/d3")"

# names that are no file in a repository are refused before any transfer
for spec in "org/repo:a/" "org/repo:." "org/repo:.." "org/repo:x/../y" "org/repo:.hidden" "a/" \
  "./repo:model.gguf" "org/repo/more:model.gguf"; do
  "$cairn" pull "$spec" --models-dir "$tmp/d6" >/dev/null 2>&1
  expect_eq "pull $spec" "$?" 2
done
[ -z "$(ls -A "$tmp/d6" 2>/dev/null)" ] || fail "refused names left files: $(ls -a "$tmp/d6")"

# a listing nested too deep is refused before it is parsed
"$cairn" pull org/deep --models-dir "$tmp/d5" >/dev/null 2>"$tmp/err"
expect_eq "pull with a deep listing" "$?" 1
grep -q "the listing nests deeper than 64 levels" "$tmp/err" ||
  fail "no nesting error: $(cat "$tmp/err")"

# progress on a terminal (script gives the command one)
if command -v script >/dev/null; then
  script -qec "\"$cairn\" pull org/repo:model.gguf --models-dir \"$tmp/d4\"" /dev/null >"$tmp/tty" 2>&1
  # a console emulator may redraw the line with escape sequences between the characters
  sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g' "$tmp/tty" | tr -d '\r' | grep -q "100%" ||
    fail "no progress shown on a terminal: $(head -c 300 "$tmp/tty")"
  cmp -s "$tmp/source.gguf" "$tmp/d4/model.gguf" || fail "the file pulled on a terminal differs"
fi
# the API form, on a node: NDJSON progress, then the file in the cluster's model list
serve cut
start_node 1 --no-discovery
wait_agreed 20 1 1 || finish
answer=$(node -e '
  fetch(process.argv[1], { method: "POST", body: JSON.stringify({ repo: "org/repo" }) })
    .then((r) => r.text()).then((t) => process.stdout.write(t));' \
  "http://127.0.0.1:$((api_base + 1))/models/pull" 2>&1)
grep -q '"status":"downloading"' <<<"$answer" || fail "no progress lines: $answer"
grep -q "\"status\":\"success\",\"file\":\"model.gguf\",\"sha256\":\"$want_sha\"" <<<"$answer" ||
  fail "POST /models/pull did not succeed: $answer"
cmp -s "$tmp/source.gguf" "$tmp/m1/model.gguf" || fail "the node's pulled file differs"
for _ in $(seq 1 100); do
  http_get $((api_base + 1)) /models | grep -q "\"name\":\"model.gguf\",\"sha256\":\"$want_sha\"" && break
  sleep 0.2
done
http_get $((api_base + 1)) /models | grep -q "\"sha256\":\"$want_sha\"" ||
  fail "the pulled file does not show in GET /models"
bad=$(node -e 'fetch(process.argv[1], { method: "POST", body: "{\"repo\":\"../etc\"}" }).then((r) => console.log(r.status));' \
  "http://127.0.0.1:$((api_base + 1))/models/pull")
expect_eq "POST /models/pull with a bad repository" "$bad" 400
for body in '{"repo":"org/repo","file":"a/"}' '{"repo":"org/repo","file":"."}' '{"repo":"a/"}'; do
  bad=$(node -e 'fetch(process.argv[1], { method: "POST", body: process.argv[2] }).then((r) => console.log(r.status));' \
    "http://127.0.0.1:$((api_base + 1))/models/pull" "$body")
  expect_eq "POST /models/pull $body" "$bad" 400
done
ls -a "$tmp/m1" | grep -q '\.part$' && fail "the node's models directory holds .part files: $(ls -a "$tmp/m1")"

echo "pull: resumed a cut transfer, refused a wrong checksum, showed progress; the API pulled too"
finish
