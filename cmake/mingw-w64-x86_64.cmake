# Cross-compiles cairn for 64-bit Windows with Debian's MinGW-w64 toolchain (the -posix
# variants: ggml's C++ code needs std::thread). Programs link statically so the .exe files
# import only Windows' own DLLs; tests run under Wine through CMAKE_CROSSCOMPILING_EMULATOR.
#
#   cmake -S . -B build-win -DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64-x86_64.cmake \
#         -DCAIRN_WINDOWS_DEPS=<prefix holding the Windows builds of cairn's libraries>
#
# scripts/build-windows.sh builds those libraries and runs this configuration.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(CAIRN_MINGW_TRIPLE x86_64-w64-mingw32)

find_program(CMAKE_C_COMPILER ${CAIRN_MINGW_TRIPLE}-gcc-posix REQUIRED)
find_program(CMAKE_CXX_COMPILER ${CAIRN_MINGW_TRIPLE}-g++-posix REQUIRED)
find_program(CMAKE_RC_COMPILER ${CAIRN_MINGW_TRIPLE}-windres)

# Variables that the try_compile projects CMake creates while configuring need as well.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES CAIRN_WINDOWS_DEPS CAIRN_WINEPREFIX)

set(CMAKE_FIND_ROOT_PATH /usr/${CAIRN_MINGW_TRIPLE})
if(CAIRN_WINDOWS_DEPS)
  list(APPEND CMAKE_FIND_ROOT_PATH ${CAIRN_WINDOWS_DEPS})
  # pkg-config must see only the Windows builds, never the host's .pc files.
  set(ENV{PKG_CONFIG_LIBDIR} "${CAIRN_WINDOWS_DEPS}/lib/pkgconfig")
  set(ENV{PKG_CONFIG_PATH} "")
  set(ENV{PKG_CONFIG_SYSROOT_DIR} "")
endif()
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Static runtime (libgcc, libstdc++, winpthreads): nothing to ship beside cairn.exe.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
# GCC cannot keep the stack 32-byte aligned for AVX spills on Windows; unaligned moves cost
# nothing on the CPUs that have AVX and keep such spills from faulting.
set(CMAKE_C_FLAGS_INIT "-Wa,-muse-unaligned-vector-move")
set(CMAKE_CXX_FLAGS_INIT "-Wa,-muse-unaligned-vector-move")

if(NOT CAIRN_WINEPREFIX)
  set(CAIRN_WINEPREFIX "${CMAKE_BINARY_DIR}/wineprefix")
endif()
set(CMAKE_CROSSCOMPILING_EMULATOR
    "${CMAKE_CURRENT_LIST_DIR}/../scripts/windows/wine-run.sh;${CAIRN_WINEPREFIX}")
