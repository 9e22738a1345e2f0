# SPDX-License-Identifier: MIT
# CMake ports (rp2, esp32): pass USER_C_MODULES=<repo>/c_modules/micropython.cmake.
add_library(usermod_aii INTERFACE)

# The binding, one file per area (scanned for QSTRs), and the plain-C core.
file(GLOB AII_BINDING_SRC ${CMAKE_CURRENT_LIST_DIR}/mod_aii*.c)
list(SORT AII_BINDING_SRC)
file(GLOB AII_CORE_SRC ${CMAKE_CURRENT_LIST_DIR}/core/*.c)
list(SORT AII_CORE_SRC)

target_sources(usermod_aii INTERFACE
    ${AII_BINDING_SRC}
    ${AII_CORE_SRC}
)

# No include directory for core/: it would reach every file of the port, where a core header
# could shadow a system one. mod_aii.h includes "core/aii_sched.h" and friends by path instead.

target_link_libraries(usermod INTERFACE usermod_aii)
