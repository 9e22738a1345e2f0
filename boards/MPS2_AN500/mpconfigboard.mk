# SPDX-License-Identifier: MIT
# AII on qemu's mps2-an500 (Cortex-M7, armv7e-m, double-precision FPU, hard-float ABI; Python
# floats are doubles): ports/qemu's own MPS2_AN500 plus the AII overlay (../common-qemu/aii.mk).
# Used as BOARD_DIR of ports/qemu, with BOARD=MPS2_AN500.
# RAM: 4 MB; heap 140 KiB (the port's default), RAM filesystem 256 KiB.
include $(TOP)/ports/qemu/boards/MPS2_AN500/mpconfigboard.mk
include $(BOARD_DIR)/../common-qemu/aii.mk
