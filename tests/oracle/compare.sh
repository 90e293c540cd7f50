# cairn against the llama.cpp oracle for one model family (a line of families.txt):
#   bash compare.sh ORACLE_DIR GENMODEL CAIRN_LOGITS SHARED_DIR NAME CUTS GENMODEL_OPTIONS...
# For the F16 model and its Q4_K_M quantization (by the oracle's llama-quantize; a family
# line may name other llama-quantize types with --oracle-quants "T1 T2", or give the prompt
# as --oracle-ids ID,ID,...):
#   - the oracle greedily continues an 8-token prompt by 32 tokens, keeping every logit row,
#     and cairn's greedy run must produce the same 32 tokens, with the same top-5 ids at
#     every position and logits within TOL;
#   - both evaluate the oracle's whole sequence teacher-forced in one batch: top-5 ids equal
#     at every position, logits within TOL;
#   - cairn split into three shards at CUTS must give bit-identical logits to cairn unsplit.
set -u
oracle_dir=$1 genmodel=$2 logits=$3 shared=$4 name=$5 cuts=$6
shift 6
oracle=$oracle_dir/bin/cairn-oracle
quantize=$oracle_dir/bin/llama-quantize
failures=0
# Tolerance on |logit difference| (default 1e-3; a family line may give --oracle-tol X).
# The oracle is built with cairn's ggml configuration (same CPU kernels, no llamafile
# sgemm), and for llama, qwen2 and qwen3 cairn's logits are then bit-identical to
# llama.cpp's, F16 and Q4_K_M, batched and one token at a time (measured: max abs diff 0).
# The tolerance is for architectures whose graphs legitimately order F32 operations
# differently from llama.cpp's (a scale applied before or after a product, a fused norm,
# another summation order): that moves logits of magnitude ~10 by ~1e-5 relative, 1e-4
# absolute, so 1e-3 leaves ten times that; real errors (a wrong rope mode, a missing bias
# or norm, a wrong norm epsilon, a wrong head layout) move them by more and usually
# reorder the top-5.
tol=${CAIRN_ORACLE_TOL:-0.001}
# cairn computes every position with ggml's per-row kernels, whatever the step's size (a
# resumed stream must match the uninterrupted one). ggml's batch-only panel for the IQ
# types rounds differently; the oracle leaves it off too, through ggml's own switch. (Its
# other batch-only kernel, tiled attention, starts at 64 queries: these sequences have 40.)
export GGML_NO_IQ_PANEL=1
prompt="Once upon a time, in a small village"

fail() {
  echo "FAIL: $name: $*" >&2
  failures=$((failures + 1))
}
# run NAME COMMAND...: runs it, showing its output; counts a failure on a non-zero exit.
run() {
  local what=$1
  shift
  "$@" && return 0
  fail "$what (exit $?): $*"
  return 1
}

for tool in "$oracle" "$quantize"; do
  [ -x "$tool" ] || { echo "FAIL: no $tool (scripts/build-oracle.sh builds it)" >&2; exit 1; }
done
work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-oracle-$name.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Vocabulary names in the options refer to SHARED/vocab; --oracle-tol is this script's.
opts=()
ids=
quants=(Q4_K_M)
while [ $# -gt 0 ]; do
  case $1 in
    --vocab) opts+=(--vocab "$shared/vocab/$2"); shift 2 ;;
    --oracle-tol) tol=$2; shift 2 ;;
    --oracle-ids) ids=$2; shift 2 ;;
    --oracle-quants) read -r -a quants <<<"$2"; shift 2 ;;
    *) opts+=("$1"); shift ;;
  esac
done
"$genmodel" "${opts[@]}" --type F16 -o "$work/F16.gguf" >/dev/null || { echo "FAIL: genmodel" >&2; exit 1; }
for q in "${quants[@]}"; do
  "$quantize" "$work/F16.gguf" "$work/$q.gguf" "$q" >"$work/quantize.log" 2>&1 ||
    { cat "$work/quantize.log" >&2; echo "FAIL: llama-quantize $q" >&2; exit 1; }
done

# Synthesized vocabularies (no --vocab) have no tokenizer llama.cpp runs: such families give
# the prompt as ids (--oracle-ids).
if [ -z "$ids" ]; then
  ids=$("$oracle" tokenize -m "$work/F16.gguf" -p "$prompt") || { echo "FAIL: tokenize" >&2; exit 1; }
  # ~8 tokens: the first 8 ids of the prompt as the oracle's tokenizer splits it.
  ids=$(echo "$ids" | cut -d, -f1-8)
fi
echo "$name: prompt ids $ids"

for type in F16 "${quants[@]}"; do
  m=$work/$type.gguf o=$work/$type
  echo "== $name $type"
  run "oracle greedy" "$oracle" logits -m "$m" --tokens "$ids" -n 32 -o "$o.oracle.bin" || continue
  run "$type greedy" "$logits" greedy -m "$m" --tokens "$ids" -n 32 -o "$o.greedy.bin"
  run "$type greedy vs oracle" "$logits" compare "$o.oracle.bin" "$o.greedy.bin" --tol "$tol" --top 5
  all=$("$logits" tokens "$o.oracle.bin") || { fail "$type: unreadable oracle file"; continue; }
  # The oracle's 40 tokens teacher-forced in one batch on both sides. Batch and one-token
  # steps are compared separately because ggml's kernels are not batch-invariant: for
  # K-quants the same position's logits differ by ~0.1 between a 40-token batch and a
  # one-token step, in llama.cpp and cairn alike.
  run "oracle eval" "$oracle" logits -m "$m" --tokens "$all" -n 0 -o "$o.oracle-eval.bin"
  run "$type eval" "$logits" eval -m "$m" --tokens "$all" -o "$o.eval.bin"
  run "$type eval vs oracle" "$logits" compare "$o.oracle-eval.bin" "$o.eval.bin" --tol "$tol" --top 5
  run "$type eval split" "$logits" eval -m "$m" --tokens "$all" --layers "$cuts" -o "$o.split.bin"
  run "$type split vs unsplit" "$logits" compare "$o.eval.bin" "$o.split.bin" --exact
done

if [ "$failures" -ne 0 ]; then
  echo "$name: $failures check(s) failed" >&2
  exit 1
fi
echo "$name: all checks passed"
