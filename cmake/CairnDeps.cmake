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
