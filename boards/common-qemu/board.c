// SPDX-License-Identifier: MIT
// Board hook of every AII qemu board (aii.mk): ports/qemu's main.c runs no boot script, so
// mp_init() calls this (MICROPY_PORT_INIT_FUNC) to run the frozen _boot.py, which mounts a
// littlefs in RAM at "/", then main.py as stm32 and rp2 do (only at the friendly REPL, so
// mpremote's raw-REPL soft reset does not start the app).
#include <string.h>

#include "py/mphal.h"
#include "py/runtime.h"
#include "extmod/vfs.h"
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

// The RAM's block device (MicroPython's block protocol, extended interface), in C as a flash
// driver is: littlefs calls it hundreds of times per file it replaces, and a Python one
// allocated a memoryview per call (40 KB of the 50 KB a signed transfer allocated,
// docs/protocol.md section 10), which would be counted against the node.
#define AII_BLOCK (512)

static mp_obj_t aii_ramdisk_rw(size_t n_args, const mp_obj_t *args, mp_uint_t flags) {
    mp_buffer_info_t bi;
    mp_get_buffer_raise(args[2], &bi, flags);
    mp_int_t block = mp_obj_get_int(args[1]);
    mp_int_t off = n_args > 3 ? mp_obj_get_int(args[3]) : 0;
    if (block < 0 || off < 0 || block >= AII_RAMDISK_SIZE / AII_BLOCK
        || bi.len > (size_t)(AII_RAMDISK_SIZE - block * AII_BLOCK - off)) {
        mp_raise_ValueError(MP_ERROR_TEXT("block out of range"));
    }
    uint8_t *at = aii_ramdisk + block * AII_BLOCK + off;
    if (flags == MP_BUFFER_READ) {
        memcpy(at, bi.buf, bi.len);  // writeblocks: the buffer is read
    } else {
        memcpy(bi.buf, at, bi.len);
    }
    return mp_const_none;
}

// RamDisk.readblocks(n, buf[, off])
static mp_obj_t aii_ramdisk_readblocks(size_t n_args, const mp_obj_t *args) {
    return aii_ramdisk_rw(n_args, args, MP_BUFFER_WRITE);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(aii_ramdisk_readblocks_obj, 3, 4, aii_ramdisk_readblocks);

// RamDisk.writeblocks(n, buf[, off]): RAM needs no erase, so partial writes are plain copies
static mp_obj_t aii_ramdisk_writeblocks(size_t n_args, const mp_obj_t *args) {
    return aii_ramdisk_rw(n_args, args, MP_BUFFER_READ);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(aii_ramdisk_writeblocks_obj, 3, 4, aii_ramdisk_writeblocks);

// RamDisk.ioctl(op, arg)
static mp_obj_t aii_ramdisk_ioctl(mp_obj_t self_in, mp_obj_t op_in, mp_obj_t arg_in) {
    (void)self_in;
    (void)arg_in;
    switch (mp_obj_get_int(op_in)) {
        case MP_BLOCKDEV_IOCTL_BLOCK_COUNT:
            return MP_OBJ_NEW_SMALL_INT(AII_RAMDISK_SIZE / AII_BLOCK);
        case MP_BLOCKDEV_IOCTL_BLOCK_SIZE:
            return MP_OBJ_NEW_SMALL_INT(AII_BLOCK);
        case MP_BLOCKDEV_IOCTL_BLOCK_ERASE:
            return MP_OBJ_NEW_SMALL_INT(0);  // nothing to erase in RAM
        default:
            return mp_const_none;
    }
}
static MP_DEFINE_CONST_FUN_OBJ_3(aii_ramdisk_ioctl_obj, aii_ramdisk_ioctl);

static const mp_rom_map_elem_t aii_ramdisk_locals_dict_table[] = {
    { MP_ROM_QSTR(MP_QSTR_readblocks), MP_ROM_PTR(&aii_ramdisk_readblocks_obj) },
    { MP_ROM_QSTR(MP_QSTR_writeblocks), MP_ROM_PTR(&aii_ramdisk_writeblocks_obj) },
    { MP_ROM_QSTR(MP_QSTR_ioctl), MP_ROM_PTR(&aii_ramdisk_ioctl_obj) },
};
static MP_DEFINE_CONST_DICT(aii_ramdisk_locals_dict, aii_ramdisk_locals_dict_table);

static MP_DEFINE_CONST_OBJ_TYPE(
    aii_ramdisk_type,
    MP_QSTR_RamDisk,
    MP_TYPE_FLAG_NONE,
    locals_dict, &aii_ramdisk_locals_dict
    );

static const mp_obj_base_t aii_ramdisk_obj = {&aii_ramdisk_type};

void aii_board_init(void) {
    // _boot.py takes the block device from this global and deletes it.
    mp_obj_dict_store(MP_OBJ_FROM_PTR(&MP_STATE_VM(dict_main)),
        MP_OBJ_NEW_QSTR(qstr_from_str("_aii_ramdisk")), MP_OBJ_FROM_PTR(&aii_ramdisk_obj));
    pyexec_frozen_module("_boot.py", false);
    if (pyexec_mode_kind == PYEXEC_MODE_FRIENDLY_REPL) {
        pyexec_file_if_exists("main.py");
    }
}
