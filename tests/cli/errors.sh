# The cairn command's conventions: --help, exit statuses, one-line errors on stderr.
. "$(dirname "$0")/common.bash"
m=$models/stories260K.gguf

expect_status "top-level help" 0 "$cairn" --help
expect_status "version" 0 "$cairn" --version
for cmd in generate chat bench info; do
  expect_status "$cmd --help" 0 "$cairn" $cmd --help
  "$cairn" $cmd --help | grep -q "usage: cairn $cmd" || fail "$cmd --help shows no usage"
done
expect_status "no command" 2 "$cairn"
expect_status "unknown command" 2 "$cairn" frobnicate
expect_status "unknown option" 2 "$cairn" generate -m "$m" -p x --bogus
expect_status "missing value" 2 "$cairn" generate -m "$m" -p
expect_status "bad number" 2 "$cairn" generate -m "$m" -p x -n many
expect_status "no model" 2 "$cairn" generate -p x
expect_status "missing file" 1 "$cairn" generate -m /nonexistent.gguf -p x
expect_status "bad layers" 2 "$cairn" generate -m "$m" -p x --layers 2:x
expect_status "layers out of range" 1 "$cairn" generate -m "$m" -p x --layers 9
expect_status "bad min-p" 1 "$cairn" generate -m "$m" -p x --min-p 2
expect_status "info on a non-GGUF file" 1 "$cairn" info "$0"

# `cairn key new` prints a random 256-bit cluster key as hex, a new one each time
key1=$("$cairn" key new | tr -d '\r')
key2=$("$cairn" key new | tr -d '\r')
[[ $key1 =~ ^[0-9a-f]{64}$ ]] || fail "cairn key new printed [$key1], not 64 hex digits"
[ "$key1" != "$key2" ] || fail "cairn key new printed the same key twice"
expect_status "key without an action" 2 "$cairn" key
expect_status "unknown key action" 2 "$cairn" key old

err=$("$cairn" generate -m /nonexistent.gguf -p x 2>&1 >/dev/null)
expect_eq "error is one line" "$(printf '%s\n' "$err" | wc -l | tr -d ' ')" "1"
case "$err" in "cairn: error: "*) ;; *) fail "error line format: $err" ;; esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
head -c 1000 "$m" > "$tmp/truncated.gguf"
expect_status "truncated model" 1 "$cairn" generate -m "$tmp/truncated.gguf" -p x
finish
