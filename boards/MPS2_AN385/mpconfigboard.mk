# SPDX-License-Identifier: MIT
# AII on the qemu MPS2-AN385 machine (Cortex-M3): MicroPython's own board definition, the frozen
# `aii` package, and a writable littlefs in RAM mounted at "/" by a frozen _boot.py (the qemu
# port has no flash to keep files in). Used as BOARD_DIR of ports/qemu, with BOARD=MPS2_AN385.
include $(TOP)/ports/qemu/boards/MPS2_AN385/mpconfigboard.mk

AII_REPO := $(abspath $(BOARD_DIR)/../..)
FROZEN_MANIFEST = $(abspath $(BOARD_DIR))/manifest.py

# extmod.mk adds vfs_lfs's littlefs (lib/littlefs, in MicroPython's tree, not a submodule).
MICROPY_VFS_LFS2 = 1

# ports/qemu's main.c runs no boot script; mp_init() calls this hook instead (board.c).
SRC_C += $(abspath $(BOARD_DIR))/board.c
CFLAGS += -DMICROPY_PORT_INIT_FUNC='do { extern void aii_board_init(void); aii_board_init(); } while (0)'
CFLAGS += -DAII_RAMDISK_SIZE='(256 * 1024)'
