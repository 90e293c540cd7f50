#!/usr/bin/env bash
# Installs what building and testing cairn needs on Debian/Ubuntu: a compiler toolchain,
# CMake, the libraries cairn links (ggml itself is fetched by the build), and Chromium for
# the dashboard's browser test, and python3 for the tests that play hostile clients.
# With --windows, also what the Windows cross build needs: MinGW-w64 (the -posix thread
# model: ggml uses std::thread), Wine to run the tests, NSIS, zip and unzip to package, and the
# tools to unpack and build Debian source packages.
# Does nothing when everything is present already.
set -euo pipefail
packages=(build-essential cmake git pkg-config ca-certificates npm
          libcmocka-dev libpcre2-dev libcjson-dev libsodium-dev libuv1-dev libcivetweb-dev
          libcurl4-openssl-dev clang-format clang-tidy iproute2 chromium python3)
if [ "${1:-}" = --windows ]; then
  packages+=(gcc-mingw-w64-x86-64-posix g++-mingw-w64-x86-64-posix binutils-mingw-w64-x86-64
             mingw-w64-x86-64-dev wine wine64 nsis zip unzip dpkg-dev autoconf automake libtool make
             debian-archive-keyring)
fi
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
