/* Declarations that mingw-w64 before version 11 lacks but ggml's Windows code uses.
 * Force-included into ggml's CPU backend by cmake/CairnGgml.cmake for MinGW builds only. */
#ifndef CAIRN_MINGW_W64_COMPAT_H
#define CAIRN_MINGW_W64_COMPAT_H
#include <_mingw.h>
#if defined(__MINGW64_VERSION_MAJOR) && __MINGW64_VERSION_MAJOR < 11
#define THREAD_POWER_THROTTLING_CURRENT_VERSION 1
#define THREAD_POWER_THROTTLING_EXECUTION_SPEED 0x1
#define THREAD_POWER_THROTTLING_VALID_FLAGS THREAD_POWER_THROTTLING_EXECUTION_SPEED
typedef struct _THREAD_POWER_THROTTLING_STATE {
    unsigned long Version;
    unsigned long ControlMask;
    unsigned long StateMask;
} THREAD_POWER_THROTTLING_STATE;
#endif
#endif
