# `cairn generate`: the known greedy outputs of stories260K, whole and split, F32 and Q8_0.
. "$(dirname "$0")/common.bash"

bos_ids="403 407 261 378 432 383 286 261 376 298 315 421 395 317 426 338 401 396 267 337 \
410 408 419 292 411 322 265 282 295 433 426 385 328 432 358 394 261 370 432 352 266 268 388 \
426 338 391 266 267 337 335 312 432 398 312 286 267 414 270 333 415"
bos_ids=$(echo $bos_ids)
continuation=", there was a little girl named Lily. She loved to play outside in the park. One day, she saw"

for model in stories260K.gguf stories260K-q8_0.gguf; do
  out=$("$cairn" generate -m "$models/$model" -p "" --temp 0 -n 60 --ids 2>/dev/null)
  expect_eq "$model greedy ids from BOS" "$out" "$bos_ids"
  out=$("$cairn" generate -m "$models/$model" -p "Once upon a time" --temp 0 -n 32 2>/dev/null)
  expect_eq "$model greedy text" "$out" "$continuation"
  for layers in 1 2:4 1:2:3:4; do
    out=$("$cairn" generate -m "$models/$model" -p "Once upon a time" --temp 0 -n 32 \
          --layers $layers 2>/dev/null)
    expect_eq "$model split at $layers" "$out" "$continuation"
  done
done

# Same seed, same text; the stop string cuts the output before it.
a=$("$cairn" generate -m "$models/stories260K.gguf" -p "Once" --seed 7 -n 40 2>/dev/null)
b=$("$cairn" generate -m "$models/stories260K.gguf" -p "Once" --seed 7 -n 40 2>/dev/null)
expect_eq "same seed, same output" "$a" "$b"
out=$("$cairn" generate -m "$models/stories260K.gguf" -p "Once upon a time" --temp 0 -n 32 \
      --stop " Lily" 2>/dev/null)
expect_eq "stop string" "$out" ", there was a little girl named"
# The output continues the prompt's text, so its first word keeps its space; text that
# starts after BOS alone does not begin with one.
out=$("$cairn" generate -m "$models/stories260K.gguf" -p "Once upon" --temp 0 -n 2 2>/dev/null)
expect_eq "continuation keeps its space" "$out" " a time"
out=$("$cairn" generate -m "$models/stories260K.gguf" -p "" --temp 0 -n 2 2>/dev/null)
expect_eq "text from BOS starts without a space" "$out" "Once upon"
finish
