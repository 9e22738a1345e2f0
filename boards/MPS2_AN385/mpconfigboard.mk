# SPDX-License-Identifier: MIT
# AII on the qemu MPS2-AN385 machine (Cortex-M3): MicroPython's own board definition plus the
# frozen `aii` package. Used as BOARD_DIR of ports/qemu, with BOARD=MPS2_AN385.
include $(TOP)/ports/qemu/boards/MPS2_AN385/mpconfigboard.mk

AII_REPO := $(abspath $(BOARD_DIR)/../..)
FROZEN_MANIFEST = $(AII_REPO)/firmware/manifest.py
