#!/usr/bin/env bash
# Sets up and builds cairn, then starts an interactive chat with the default model
# (../shared/models/stories260K.gguf unless CAIRN_MODEL names another GGUF file).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
"$root/scripts/build.sh" "$root/build"
model=${CAIRN_MODEL:-$root/../shared/models/stories260K.gguf}
exec "$root/build/cairn" chat -m "$model" "$@"
