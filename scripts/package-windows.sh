#!/usr/bin/env bash
# Builds the Windows package: a zip with cairn.exe (statically linked: it needs no DLLs
# beyond Windows' own) and an NSIS installer that can also register the Windows service.
# Usage: package-windows.sh [BUILD_DIR]   (default build-win/; results in BUILD_DIR/package/)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build-win}
"$root/scripts/build-windows.sh" "$build"
build=$(cd "$build" && pwd)

version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
name=cairn-$version-windows-x86_64
out=$build/package
stage=$out/$name
rm -rf "$stage" "$out/$name.zip" "$out/$name-setup.exe"
mkdir -p "$stage"
cp "$build/cairn.exe" "$stage/"
x86_64-w64-mingw32-strip "$stage/cairn.exe"
# Anything beyond Windows' own DLLs would have to ship in the zip too: refuse instead.
extra=$(x86_64-w64-mingw32-objdump -p "$stage/cairn.exe" | "$root/scripts/windows/foreign-dlls.sh")
if [ -n "$extra" ]; then
  echo "package-windows: cairn.exe needs DLLs that are not part of Windows: $extra" >&2
  exit 1
fi
# Windows' Notepad and the installer's license page want CRLF line ends.
sed 's/$/\r/' "$root/packaging/windows/README.txt" > "$stage/README.txt"

(cd "$out" && zip -q -r "$name.zip" "$name")
makensis -V2 -DVERSION="$version" -DSTAGE="$stage" -DOUTFILE="$out/$name-setup.exe" \
  "$root/packaging/windows/cairn.nsi"
echo "package-windows: $out/$name.zip"
echo "package-windows: $out/$name-setup.exe"
