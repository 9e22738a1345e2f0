# SPDX-License-Identifier: MIT
# AII on qemu's mps2-an385 (Cortex-M3, armv7-m, soft float): ports/qemu's own MPS2_AN385 plus the
# AII overlay (../common-qemu/aii.mk). Used as BOARD_DIR of ports/qemu, with BOARD=MPS2_AN385.
# RAM: 4 MB; heap 140 KiB (the port's default), RAM filesystem 256 KiB.
include $(TOP)/ports/qemu/boards/MPS2_AN385/mpconfigboard.mk
include $(BOARD_DIR)/../common-qemu/aii.mk
