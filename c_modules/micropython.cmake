# SPDX-License-Identifier: MIT
# Every AII C module, for CMake ports (USER_C_MODULES=<repo>/c_modules/micropython.cmake).
include(${CMAKE_CURRENT_LIST_DIR}/aii/micropython.cmake)
