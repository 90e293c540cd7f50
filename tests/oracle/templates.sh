# Every chat template in SHARED/templates rendered by cairn (tools/cairn-template) and by
# llama.cpp (cairn-oracle template) for the same chats must be byte-identical, but for the
# templates listed below, whose difference is in what each side puts in the context rather
# than in how the template is interpreted:
#   bash templates.sh ORACLE_DIR CAIRN_TEMPLATE SHARED_DIR
set -u
oracle=$1/bin/cairn-oracle render=$2 shared=$3
# - Llama 3.1/3.3 print today's date (llama.cpp passes it; cairn leaves the template's own).
# - DeepSeek V3.1/V3.2, QwQ, R1-Distill-Qwen, gemma 4, Reka, Apertus, Bielik, command-r7b,
#   rwkv-world: llama.cpp defines enable_thinking (true) or its own extra variables; cairn
#   leaves them undefined, as the chat request does not set them.
# - gemma 2, firefunction v2: they refuse a system message; llama.cpp folds it into the
#   first user message, cairn reports the template's error.
# - Solar Open: llama.cpp's own handler for it opens the assistant turn even when not asked.
skip=" meta-llama-Llama-3.1-8B-Instruct meta-llama-Llama-3.3-70B-Instruct
  deepseek-ai-DeepSeek-V3.1 deepseek-ai-DeepSeek-V3.2 Qwen-QwQ-32B
  deepseek-ai-DeepSeek-R1-Distill-Qwen-32B google-gemma-4-31B-it
  google-gemma-4-31B-it-interleaved Reka-Edge Apertus-8B-Instruct Bielik-11B-v3.0-Instruct
  CohereForAI-c4ai-command-r7b-12-2024-tool_use llama-cpp-rwkv-world google-gemma-2-2b-it
  fireworks-ai-llama-3-firefunction-v2 upstage-Solar-Open-100B "
work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-templates.XXXXXX")
trap 'rm -rf "$work"' EXIT
cat >"$work/chat.json" <<'JSON'
[{"role":"system","content":"You are a helpful assistant."},
 {"role":"user","content":"Hello, who are you?"},
 {"role":"assistant","content":"I am a model."},
 {"role":"user","content":"Tell me a story, with \"quotes\" and\nnew lines."}]
JSON
cat >"$work/one.json" <<'JSON'
[{"role":"user","content":"Hi"}]
JSON
checked=0 failures=0
for t in "$shared"/templates/*.jinja; do
  name=$(basename "$t" .jinja)
  [[ $skip == *" $name "* || $skip == *" $name"$'\n'* || $skip == *$'\n'"  $name "* ]] && continue
  for chat in chat one; do
    for prompt in --add-generation-prompt ""; do
      args=(--template "$t" --messages "$work/$chat.json" $prompt --bos "<s>" --eos "</s>")
      "$oracle" template "${args[@]}" >"$work/want" 2>"$work/want.err" ||
        { echo "FAIL: $name: the oracle: $(cat "$work/want.err")"; failures=$((failures + 1)); continue; }
      "$render" "${args[@]}" >"$work/got" 2>"$work/got.err" ||
        { echo "FAIL: $name: cairn: $(cat "$work/got.err")"; failures=$((failures + 1)); continue; }
      if ! cmp -s "$work/want" "$work/got"; then
        echo "FAIL: $name ($chat $prompt): cairn's rendering differs from llama.cpp's"
        diff "$work/want" "$work/got" | head -6
        failures=$((failures + 1))
      fi
      checked=$((checked + 1))
    done
  done
done
echo "templates: $checked renderings compared, $failures failed"
[ "$checked" -gt 0 ] && [ "$failures" -eq 0 ]
