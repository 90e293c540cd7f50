#!/usr/bin/env bash
# Sets up and builds cairn, then starts this machine's node serving the default model
# (../shared/models/stories260K.gguf unless CAIRN_MODEL names another GGUF file): the model
# goes into the node's models directory, the node joins (or founds) the cluster on the LAN,
# and an instance of the model is placed. Arguments go to `cairn run` (for example
# `--discovery-interface 127.0.0.1 --no-ipv6` to stay on this machine). Ctrl+C stops it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
"$root/scripts/build.sh" "$root/build"
model=${CAIRN_MODEL:-$root/../shared/models/stories260K.gguf}
models_dir=${CAIRN_MODELS_DIR:-$root/build/models}
api_port=${CAIRN_API_PORT:-52415}
cairn=$root/build/cairn
mkdir -p "$models_dir"
cp -u "$model" "$models_dir/"
name=$(basename "$model")

"$cairn" run --models-dir "$models_dir" --api-port "$api_port" "$@" &
node=$!
trap 'kill -INT $node 2>/dev/null; wait $node' INT TERM
for _ in $(seq 1 600); do
  if "$cairn" place "$name" --api "127.0.0.1:$api_port" 2>/dev/null; then
    echo "serving $name; try:"
    echo "  $cairn generate --cluster --api 127.0.0.1:$api_port -m $name -p 'Once upon a time'"
    echo "  $cairn nodes --api 127.0.0.1:$api_port"
    break
  fi
  kill -0 $node 2>/dev/null || exit 1
  sleep 0.5
done
wait $node
