#!/usr/bin/env bash
# Obtain ggml's pinned source tree (ggml 0.25.1 inside llama.cpp de3ff815ea7d) without
# committing it: the npm package node-llama-cpp@3.22.1 ships llama.cpp as a git bundle.
# Usage: fetch-ggml.sh DEST_DIR   (DEST_DIR/ggml/CMakeLists.txt exists afterwards)
set -euo pipefail
dest=${1:?usage: fetch-ggml.sh DEST_DIR}
pkg=node-llama-cpp@3.22.1
commit=de3ff815ea7d
if [ -f "$dest/ggml/CMakeLists.txt" ] && [ -f "$dest/.cairn-pinned-$commit" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "fetch-ggml: npm is required (apt-get install npm)" >&2; exit 1; }
command -v git >/dev/null || { echo "fetch-ggml: git is required (apt-get install git)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "fetch-ggml: downloading $pkg (npm caches it)" >&2
(cd "$work" && npm pack --silent "$pkg" >/dev/null)
tar -xzf "$work"/node-llama-cpp-*.tgz -C "$work" package/llama/gitRelease.bundle
rm -rf "$dest"
git clone --quiet "$work/package/llama/gitRelease.bundle" "$dest"
got=$(git -C "$dest" rev-parse --short=12 HEAD)
if [ "$got" != "$commit" ]; then
  echo "fetch-ggml: bundle holds $got, expected $commit" >&2
  exit 1
fi
touch "$dest/.cairn-pinned-$commit"
echo "fetch-ggml: ggml source ready in $dest" >&2
