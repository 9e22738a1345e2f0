# SPDX-License-Identifier: MIT
# AII on qemu's microbit (nRF51, Cortex-M0, armv6-m: the RP2040's instruction set, without
# hardware divide), with flash and SRAM raised to 1 MB and 256 KB as ports/qemu's own MICROBIT
# does, plus the AII overlay (../common-qemu/aii.mk). Used as BOARD_DIR of ports/qemu, with
# BOARD=MICROBIT. RAM: 256 KB = heap 128 KiB + RAM filesystem 64 KiB + MicroPython's own data
# and stack (the rest; firmware.map).
AII_MICROBIT_DIR := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
include $(TOP)/ports/qemu/boards/MICROBIT/mpconfigboard.mk
# The port's nrf51.ld, less the unwind tables libgcc's 64-bit division brings (see the script).
LDSCRIPT = $(AII_MICROBIT_DIR)/nrf51_aii.ld
MICROPY_HEAP_SIZE ?= 131072
AII_RAMDISK_SIZE ?= 65536
include $(BOARD_DIR)/../common-qemu/aii.mk
