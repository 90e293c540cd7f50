#!/usr/bin/env bash
# Installs what building and testing cairn needs on Debian/Ubuntu: a compiler toolchain,
# CMake, and the libraries cairn links (ggml itself is fetched by the build).
# Does nothing when everything is present already.
set -euo pipefail
packages=(build-essential cmake git pkg-config ca-certificates npm
          libcmocka-dev libpcre2-dev libcjson-dev)
missing=()
for p in "${packages[@]}"; do
  # npm may come from elsewhere (e.g. a Node.js install); only its command matters.
  if [ "$p" = npm ] && command -v npm >/dev/null 2>&1; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
