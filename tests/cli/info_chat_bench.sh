# `cairn info`, `cairn chat` (piped, with the fallback template) and `cairn bench`.
. "$(dirname "$0")/common.bash"
m=$models/stories260K.gguf

out=$("$cairn" info "$m") || fail "info failed"
echo "$out" | grep -q "architecture: *llama" || fail "info: no architecture line"
echo "$out" | grep -q "layers: *5" || fail "info: wrong layer count"
echo "$out" | grep -q "tokenizer: *llama" || fail "info: no tokenizer line"
"$cairn" info "$shared/vocab/ggml-vocab-gpt-2.gguf" | grep -q "tokenizer: *gpt2" \
  || fail "info on a vocab-only file"

out=$(printf '\nHello there\n\nTell me a story\n' | "$cairn" chat -m "$m" --temp 0 -n 12 2>&1)
status=$?
expect_eq "chat exit status" "$status" "0"
lines=$(printf '%s\n' "$out" | grep -c .)
[ "$lines" -ge 2 ] || fail "chat: expected two replies, got: $out"
a=$(printf 'Hello there\n' | "$cairn" chat -m "$m" --temp 0 -n 12 2>/dev/null)
b=$(printf 'Hello there\n' | "$cairn" chat -m "$m" --temp 0 -n 12 --layers 2 2>/dev/null)
expect_eq "chat split equals whole" "$a" "$b"

out=$("$cairn" bench -m "$m" -p 32 -n 8 -r 1 -t 1) || fail "bench failed"
for word in prefill: decode: reads: build:; do
  echo "$out" | grep -q "^$word" || fail "bench output lacks $word"
done
finish
