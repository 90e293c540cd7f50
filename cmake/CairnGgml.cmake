# Provides CAIRN_GGML_LIBS: a system ggml when one is installed (CMake package), otherwise
# ggml built from its pinned source, which scripts/fetch-ggml.sh obtains into the build tree.
# Only ggml/ is built: none of llama.cpp's own code is compiled or linked.

find_package(ggml CONFIG QUIET)
if(ggml_FOUND AND NOT CAIRN_FORCE_PINNED_GGML)
  message(STATUS "cairn: using the system ggml (${ggml_DIR})")
  set(CAIRN_GGML_LIBS ggml::ggml ggml::ggml-base)
  return()
endif()

set(CAIRN_GGML_SOURCE_DIR "${CMAKE_BINARY_DIR}/_deps/llama.cpp" CACHE PATH
    "Where the pinned ggml source tree is fetched to")
execute_process(
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/../scripts/fetch-ggml.sh ${CAIRN_GGML_SOURCE_DIR}
  RESULT_VARIABLE fetch_result)
if(NOT fetch_result EQUAL 0)
  message(FATAL_ERROR "cairn: could not obtain ggml's source (see the lines above)")
endif()

set(GGML_BUILD_TESTS OFF CACHE BOOL "" FORCE)
set(GGML_BUILD_EXAMPLES OFF CACHE BOOL "" FORCE)
# OpenMP's workers hand a step over faster than ggml's own pool: decoding stories260K at 2
# threads went from 2570-3510 to 3830-4930 tokens/s, larger models equal (bench/RESULTS.md).
# The MinGW build keeps ggml's pool: its libgomp is not yet checked under Wine.
if(MINGW)
  set(cairn_openmp_default OFF)
else()
  set(cairn_openmp_default ON)
endif()
option(CAIRN_OPENMP "ggml's compute threads from OpenMP instead of its own pool"
       ${cairn_openmp_default})
set(GGML_OPENMP ${CAIRN_OPENMP} CACHE BOOL "" FORCE)
set(GGML_BACKEND_DL OFF CACHE BOOL "" FORCE)
set(GGML_CCACHE OFF CACHE BOOL "" FORCE)
set(BUILD_SHARED_LIBS OFF CACHE BOOL "" FORCE)
if(CAIRN_NATIVE)
  set(GGML_NATIVE ON CACHE BOOL "" FORCE)
else()
  # The documented portable baseline is x86-64-v3 (AVX2, FMA, F16C, BMI2: Intel Haswell and
  # AMD Excavator or newer, 2013+); on other architectures ggml's defaults apply.
  set(GGML_NATIVE OFF CACHE BOOL "" FORCE)
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|amd64")
    foreach(feature SSE42 AVX AVX2 FMA F16C BMI2)
      set(GGML_${feature} ON CACHE BOOL "" FORCE)
    endforeach()
  endif()
endif()

add_subdirectory(${CAIRN_GGML_SOURCE_DIR}/ggml ${CMAKE_BINARY_DIR}/_deps/ggml-build EXCLUDE_FROM_ALL)
set(CAIRN_GGML_LIBS ggml ggml-base ggml-cpu)
if(MINGW)
  # Older mingw-w64 headers lack a Windows 10 type ggml's CPU backend uses.
  target_compile_options(ggml-cpu PRIVATE "SHELL:-include ${CMAKE_CURRENT_LIST_DIR}/mingw-w64-compat.h")
endif()
