#!/usr/bin/env bash
# Builds the libraries cairn links, for Windows (x86_64, static), from Debian bookworm's
# source packages: libuv, cJSON, libsodium, civetweb (the HTTP server), curl (the HTTP
# client), PCRE2 and cmocka.
# The sources come through `apt-get source` with a deb-src entry in a private apt directory
# (the system's apt configuration is never touched). Everything is cached under DEPS_DIR:
# a library is rebuilt only when its recipe or its source version changes.
# Usage: build-deps.sh DEPS_DIR     (installs into DEPS_DIR/prefix)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
deps=$(mkdir -p "${1:?usage: build-deps.sh DEPS_DIR}" && cd "$1" && pwd)
prefix=$deps/prefix
triple=x86_64-w64-mingw32
toolchain=$root/cmake/mingw-w64-x86_64.cmake
mirror=${CAIRN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Bump when a build recipe below changes, so cached builds are redone.
recipe=1
packages=(libuv1 cjson libsodium civetweb curl pcre2 cmocka)
log() { echo "build-deps: $*" >&2; }

# --- sources -------------------------------------------------------------------------
apt_dir=$deps/apt
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list"
          -o "Dir::Etc::SourceParts=$apt_dir/sources.list.d"
          -o "Dir::State::Lists=$apt_dir/lists"
          -o "Dir::Cache=$apt_dir/cache"
          -o "APT::Sandbox::User=root"
          -o "Debug::NoLocking=1")

fetch_sources() {
  local missing=()
  for p in "${packages[@]}"; do
    [ -f "$deps/src/$p/.extracted" ] || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  mkdir -p "$apt_dir/sources.list.d" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bookworm main" \
    > "$apt_dir/sources.list"
  if [ -z "$(ls "$apt_dir/lists" | grep Sources || true)" ]; then
    log "reading bookworm's source index"
    apt-get "${apt_opts[@]}" update -qq
  fi
  for p in "${missing[@]}"; do
    log "fetching the source of $p"
    rm -rf "$deps/src/$p"
    mkdir -p "$deps/src/$p"
    (cd "$deps/src/$p" && apt-get "${apt_opts[@]}" source -qq --download-only "$p" >/dev/null \
       && dpkg-source --no-check -x ./*.dsc tree >/dev/null)
    touch "$deps/src/$p/.extracted"
  done
}

# version of a fetched source package, from its .dsc
source_version() { sed -n 's/^Version: //p' "$deps/src/$1"/*.dsc | head -1; }
stamp() { echo "$deps/stamps/$1-$(source_version "$1")-r$recipe"; }
built() { [ -f "$(stamp "$1")" ]; }
mark_built() { mkdir -p "$deps/stamps"; touch "$(stamp "$1")"; }

# cmake_dep PACKAGE [cmake -D options...]: configure, build and install one CMake project
cmake_dep() {
  local p=$1
  shift
  built "$p" && return 0
  log "building $p $(source_version "$p")"
  local b=$deps/build/$p
  rm -rf "$b"
  cmake -S "$deps/src/$p/tree" -B "$b" -DCMAKE_TOOLCHAIN_FILE="$toolchain" \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$prefix" -DBUILD_SHARED_LIBS=OFF \
    -DCMAKE_POLICY_DEFAULT_CMP0077=NEW "$@" >"$b.log" 2>&1 \
    && cmake --build "$b" -j "${CAIRN_DEPS_JOBS:-1}" >>"$b.log" 2>&1 \
    && cmake --install "$b" >>"$b.log" 2>&1 \
    || { log "building $p failed; see $b.log"; tail -20 "$b.log" >&2; return 1; }
  mark_built "$p"
}

# libsodium is autotools-only; the Debian source has no generated configure script.
build_sodium() {
  built libsodium && return 0
  log "building libsodium $(source_version libsodium) (the slowest)"
  local b=$deps/build/libsodium
  rm -rf "$b"
  mkdir -p "$b"
  cp -a "$deps/src/libsodium/tree/." "$b/"
  (cd "$b" && ./autogen.sh -s \
     && ./configure --host=$triple --prefix="$prefix" --disable-shared --enable-static \
          --disable-ssp CC=$triple-gcc-posix \
     && make -j "${CAIRN_DEPS_JOBS:-1}" && make install) >"$b.log" 2>&1 \
    || { log "building libsodium failed; see $b.log"; tail -20 "$b.log" >&2; return 1; }
  mark_built libsodium
}

fetch_sources
mkdir -p "$deps/build"
build_sodium &
sodium=$!
cmake_dep libuv1 -DLIBUV_BUILD_TESTS=OFF -DLIBUV_BUILD_BENCH=OFF
cmake_dep cjson -DENABLE_CJSON_TEST=OFF -DENABLE_CJSON_UTILS=OFF \
  -DENABLE_CUSTOM_COMPILER_FLAGS=OFF -DENABLE_TARGET_EXPORT=OFF
cmake_dep pcre2 -DPCRE2_BUILD_PCRE2_8=ON -DPCRE2_BUILD_PCRE2_16=OFF -DPCRE2_BUILD_PCRE2_32=OFF \
  -DPCRE2_SUPPORT_JIT=ON -DPCRE2_BUILD_TESTS=OFF -DPCRE2_BUILD_PCRE2GREP=OFF
cmake_dep cmocka -DWITH_STATIC_LIB=ON -DUNIT_TESTING=OFF -DWITH_EXAMPLES=OFF
cmake_dep civetweb -DCIVETWEB_ENABLE_SSL=OFF -DCIVETWEB_BUILD_TESTING=OFF \
  -DCIVETWEB_ENABLE_SERVER_EXECUTABLE=OFF -DCIVETWEB_ENABLE_CXX=OFF \
  -DCIVETWEB_ENABLE_ASAN=OFF -DCIVETWEB_INSTALL_EXECUTABLE=OFF \
  -DWINSOCK_LIBRARIES="/usr/$triple/lib/libws2_32.a"
# curl: HTTP only, TLS through Windows' own Schannel, and none of the optional libraries
# (compression, SSH, public suffixes, IDN, LDAP), so it needs nothing but system DLLs.
cmake_dep curl -DBUILD_CURL_EXE=OFF -DBUILD_TESTING=OFF -DENABLE_MANUAL=OFF -DHTTP_ONLY=ON \
  -DCURL_ENABLE_SSL=ON -DCURL_USE_SCHANNEL=ON -DCURL_USE_OPENSSL=OFF -DCURL_ZLIB=OFF \
  -DCURL_BROTLI=OFF -DCURL_ZSTD=OFF -DCURL_USE_LIBSSH2=OFF -DCURL_USE_LIBSSH=OFF \
  -DCURL_USE_LIBPSL=OFF -DUSE_LIBIDN2=OFF -DUSE_WIN32_IDN=OFF -DUSE_NGHTTP2=OFF \
  -DCURL_DISABLE_LDAP=ON -DCURL_DISABLE_LDAPS=ON
wait "$sodium"

# Make the installed tree link statically through pkg-config alone: the .pc files of PCRE2
# and curl omit the defines their headers need for a static library, and cmocka installs
# its static library under another name beside a DLL import library that -lcmocka would
# otherwise pick.
pc=$prefix/lib/pkgconfig/libpcre2-8.pc
grep -q PCRE2_STATIC "$pc" || sed -i 's/^Cflags: \(.*\)$/Cflags: \1 -DPCRE2_STATIC/' "$pc"
# curl's .pc also lists the compiler's implicit libraries (-lmingw32 -lgcc -lpthread ...),
# which CMake would resolve to DLL import libraries: keep curl and the system DLLs it uses.
pc=$prefix/lib/pkgconfig/libcurl.pc
grep -q CURL_STATICLIB "$pc" || sed -i 's/^Cflags: \(.*\)$/Cflags: \1 -DCURL_STATICLIB/' "$pc"
sed -i -e 's/^Libs: .*$/Libs: -L${libdir} -lcurl -lws2_32 -lwinmm -ladvapi32 -lcrypt32 -lbcrypt/' \
  -e 's/^Libs.private: .*$/Libs.private:/' "$pc"
if [ -f "$prefix/lib/libcmocka-static.a" ]; then
  cp "$prefix/lib/libcmocka-static.a" "$prefix/lib/libcmocka.a"
  rm -f "$prefix/lib/libcmocka.dll.a"
fi
log "all libraries ready in $prefix"
