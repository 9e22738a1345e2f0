// SPDX-License-Identifier: MIT
// Board hook of every AII qemu board (aii.mk): ports/qemu's main.c runs no boot script, so
// mp_init() calls this (MICROPY_PORT_INIT_FUNC) to run the frozen _boot.py, which mounts a
// littlefs in RAM at "/", then main.py as stm32 and rp2 do (only at the friendly REPL, so
// mpremote's raw-REPL soft reset does not start the app).
#include "py/mphal.h"
#include "py/objarray.h"
#include "py/runtime.h"
#include "shared/runtime/pyexec.h"

// The board's share of RAM for files (aii.mk sets it per board).
#ifndef AII_RAMDISK_SIZE
#define AII_RAMDISK_SIZE (256 * 1024)
#endif

// Outside the GC heap so that the filesystem survives a soft reset (Ctrl-D); zeroed only at
// power-on, so it is lost when qemu exits (machine.reset() exits qemu).
static uint8_t aii_ramdisk[AII_RAMDISK_SIZE] __attribute__((aligned(4)));

// littlefs stamps files with a modification time; the machine has no clock, so it is the time
// since power-on (files look as if written in the first hours of the epoch).
uint64_t mp_hal_time_ns(void) {
    return (uint64_t)mp_hal_ticks_ms() * 1000000u;
}

void aii_board_init(void) {
    // _boot.py takes the storage from this global and deletes it.
    mp_obj_t disk = mp_obj_new_memoryview('B' | MP_OBJ_ARRAY_TYPECODE_FLAG_RW, AII_RAMDISK_SIZE, aii_ramdisk);
    mp_obj_dict_store(MP_OBJ_FROM_PTR(&MP_STATE_VM(dict_main)),
        MP_OBJ_NEW_QSTR(qstr_from_str("_aii_ramdisk")), disk);
    pyexec_frozen_module("_boot.py", false);
    if (pyexec_mode_kind == PYEXEC_MODE_FRIENDLY_REPL) {
        pyexec_file_if_exists("main.py");
    }
}
