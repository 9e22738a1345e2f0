// SPDX-License-Identifier: MIT
// MP_CONFIGFILE of the natmod's qstr pass (Makefile): what py/mpconfig.h needs before the
// real configuration exists, which mpy_ld.py writes from that pass's output.
#include <stdint.h>
typedef uintptr_t mp_uint_t;
typedef intptr_t mp_int_t;
typedef uintptr_t mp_off_t;
