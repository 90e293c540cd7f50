#!/usr/bin/env bash
# The dashboard in a real browser (Debian's Chromium, headless, driven by playwright-core):
# a 3-node cluster shows 3 nodes, the Run button places stories260K, its runners reach
# ready on the page, and a chat streams text with tokens/s. The screenshot is kept in the
# build tree (dashboard.png).
here=$(dirname "$0")
source "$here/common.bash"
source "$here/cluster.bash"
case "$cairn" in *emulated*)
  # the page and its API are the same code on every platform; the browser run is native
  echo "the dashboard's browser test runs natively only"
  finish
  exit
  ;;
esac
chromium=${CAIRN_CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
  fail "no Chromium at $chromium (scripts/setup.sh installs Debian's)"
  finish
fi
npm_dir=$(dirname "$cairn")/npm-playwright
npm_package "$npm_dir" playwright-core@1
cp "$here/../dashboard/browser.mjs" "$npm_dir/"
for i in 1 2 3; do
  mkdir -p "$tmp/m$i"
  cp "$models/stories260K.gguf" "$tmp/m$i/"
  start_node "$i" --no-discovery --peer "127.0.0.1:$port_base" --runner-threads 1 --runner-ctx 256
done
wait_agreed 20 3 1 2 3 || finish
shot=$(dirname "$cairn")/dashboard.png
CAIRN_CHROMIUM=$chromium node "$npm_dir/browser.mjs" "http://127.0.0.1:$((api_base + 1))/" \
  stories260K.gguf 3 "$shot" || fail "the dashboard test failed (screenshot: $shot)"
finish
