# SPDX-License-Identifier: MIT
# The small-RAM check: MICROBIT (Cortex-M0) with a 32 KiB heap, a 32 KiB RAM filesystem and small
# tables: 8 tasks (of 32), 4 pending events (of 8), 16 timeline events (of 64: the scheduler
# core's state is then 1.8 KB, not 2.6), 8 accounts (of 16), 4 holds (of 8). The
# quantity table (4), the journal ring (16) and its segment (16) keep the core's defaults: the
# device tests fill the quantity table by name and expect journals cut at 16 records. The
# minimal configuration: no particle kernel (AII_HAS_PARTICLES = 0).
# Used as BOARD_DIR of ports/qemu, with BOARD=MICROBIT_SMALL.
MICROPY_HEAP_SIZE = 32768
AII_RAMDISK_SIZE = 32768
AII_SCHED_MAX_TASKS = 8
AII_SCHED_EVENT_RING = 4
AII_SCHED_TRACE_RING = 16
AII_LEDGER_MAX_ACCOUNTS = 8
AII_LEDGER_MAX_HOLDS = 4
AII_HAS_PARTICLES = 0
include $(BOARD_DIR)/../MICROBIT/mpconfigboard.mk
