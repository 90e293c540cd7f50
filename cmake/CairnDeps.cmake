# Third-party libraries other than ggml, found through pkg-config (installed by
# scripts/setup.sh on Linux; built from Debian's sources for the Windows cross build).
find_package(PkgConfig REQUIRED)

pkg_check_modules(CAIRN_PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
add_library(cairn::pcre2 INTERFACE IMPORTED)
target_link_libraries(cairn::pcre2 INTERFACE PkgConfig::CAIRN_PCRE2)

pkg_check_modules(CAIRN_CJSON REQUIRED IMPORTED_TARGET libcjson)
add_library(cairn::cjson INTERFACE IMPORTED)
target_link_libraries(cairn::cjson INTERFACE PkgConfig::CAIRN_CJSON)

pkg_check_modules(CAIRN_SODIUM REQUIRED IMPORTED_TARGET libsodium)
add_library(cairn::sodium INTERFACE IMPORTED)
target_link_libraries(cairn::sodium INTERFACE PkgConfig::CAIRN_SODIUM)

if(CAIRN_TESTS)
  pkg_check_modules(CAIRN_CMOCKA REQUIRED IMPORTED_TARGET cmocka)
  add_library(cairn::cmocka INTERFACE IMPORTED)
  target_link_libraries(cairn::cmocka INTERFACE PkgConfig::CAIRN_CMOCKA)
endif()

# libuv: the event loop, sockets, timers, signals and child processes of a node. The Windows
# build links it statically (its DLL import library would be found first otherwise).
if(WIN32)
  pkg_check_modules(CAIRN_UV REQUIRED IMPORTED_TARGET libuv-static)
else()
  pkg_check_modules(CAIRN_UV REQUIRED IMPORTED_TARGET libuv)
endif()
add_library(cairn::uv INTERFACE IMPORTED)
target_link_libraries(cairn::uv INTERFACE PkgConfig::CAIRN_UV)

# civetweb: the HTTP server of the API port. Found as a plain header and library: Debian's
# CMake package for it also demands the civetweb server binary, which cairn does not need.
find_path(CAIRN_CIVETWEB_INCLUDE civetweb.h REQUIRED)
find_library(CAIRN_CIVETWEB_LIB civetweb REQUIRED)
add_library(cairn::civetweb INTERFACE IMPORTED)
target_include_directories(cairn::civetweb INTERFACE ${CAIRN_CIVETWEB_INCLUDE})
target_link_libraries(cairn::civetweb INTERFACE ${CAIRN_CIVETWEB_LIB})
if(WIN32)
  target_link_libraries(cairn::civetweb INTERFACE ws2_32)
else()
  find_package(Threads REQUIRED)
  target_link_libraries(cairn::civetweb INTERFACE Threads::Threads)
endif()

# libcurl: the HTTP client (cairn's commands talking to a node's API port, nodes fetching
# from each other). The Windows build links the static library built by
# scripts/windows/build-deps.sh, whose .pc carries -DCURL_STATICLIB and the system libraries.
pkg_check_modules(CAIRN_CURL REQUIRED IMPORTED_TARGET libcurl)
add_library(cairn::curl INTERFACE IMPORTED)
target_link_libraries(cairn::curl INTERFACE PkgConfig::CAIRN_CURL)
