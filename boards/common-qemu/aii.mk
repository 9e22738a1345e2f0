# SPDX-License-Identifier: MIT
# The AII overlay of every qemu board (boards/<BOARD>/mpconfigboard.mk includes it after the CPU's
# definition): the board's manifest (the port's own frozen modules, asyncio, every AII package,
# _boot.py), a littlefs in RAM mounted at "/" by the frozen _boot.py (ports/qemu has no flash to
# keep files in), and the sizes a board may choose. Not a board itself.
#
# A board sets, before including this file (defaults in brackets):
#   MICROPY_HEAP_SIZE   the GC heap, bytes [ports/qemu's 143360]
#   AII_RAMDISK_SIZE    the RAM filesystem, bytes, outside the heap [262144]
#   AII_SCHED_MAX_TASKS, AII_SCHED_EVENT_RING, AII_SCHED_TRACE_RING, AII_LEDGER_MAX_QTY,
#   AII_LEDGER_MAX_ACCOUNTS, AII_LEDGER_MAX_HOLDS, AII_LEDGER_JOURNAL, AII_LEDGER_SEGMENT
#                       the core's table sizes [the core's defaults, c_modules/aii/core/*.h]
#   AII_HAS_TRACE, AII_HAS_OPA
#                       the scheduler's optional parts, 0 to leave them out [1]
#   AII_HAS_PARTICLES   0 leaves the particle kernel and _aii.Particles out [1]

AII_REPO := $(abspath $(BOARD_DIR)/../..)
AII_COMMON := $(AII_REPO)/boards/common-qemu

FROZEN_MANIFEST = $(abspath $(BOARD_DIR))/manifest.py

# extmod.mk adds vfs_lfs's littlefs (lib/littlefs, in MicroPython's tree, not a submodule).
MICROPY_VFS_LFS2 = 1

# ports/qemu's main.c runs no boot script; mp_init() calls this hook instead (board.c).
SRC_C += $(AII_COMMON)/board.c
CFLAGS += -DMICROPY_PORT_INIT_FUNC='do { extern void aii_board_init(void); aii_board_init(); } while (0)'

AII_RAMDISK_SIZE ?= 262144
CFLAGS += -DAII_RAMDISK_SIZE=$(AII_RAMDISK_SIZE)

# The port's CFLAGS reach the core's files too (SRC_USERMOD_LIB_C), so a -D here sizes its tables.
AII_TABLES := AII_SCHED_MAX_TASKS AII_SCHED_EVENT_RING AII_SCHED_TRACE_RING AII_LEDGER_MAX_QTY \
	AII_LEDGER_MAX_ACCOUNTS AII_LEDGER_MAX_HOLDS AII_LEDGER_JOURNAL AII_LEDGER_SEGMENT \
	AII_HAS_TRACE AII_HAS_OPA AII_HAS_PARTICLES
CFLAGS += $(foreach v,$(AII_TABLES),$(if $($(v)),-D$(v)=$($(v))))
