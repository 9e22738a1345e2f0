# SPDX-License-Identifier: MIT
# AII on qemu's virt machine, 32-bit RISC-V (rv32imac; ESP32-C3/C6 and the RP2350's Hazard3 cores
# are rv32imc/rv32imac): ports/qemu's own VIRT_RV32 plus the AII overlay (../common-qemu/aii.mk).
# Used as BOARD_DIR of ports/qemu, with BOARD=VIRT_RV32.
# RAM: 2 MB; heap 140 KiB (the port's default), RAM filesystem 256 KiB.
include $(TOP)/ports/qemu/boards/VIRT_RV32/mpconfigboard.mk
include $(BOARD_DIR)/../common-qemu/rv32_toolchain.mk

# AII_STOCK=1 builds the port's board with only the toolchain fix (test-mpy-suite's baseline).
ifneq ($(AII_STOCK),1)
include $(BOARD_DIR)/../common-qemu/aii.mk
endif
