# SPDX-License-Identifier: MIT
# AII on qemu's mps2-an386 (Cortex-M4F, armv7e-m, single-precision FPU, hard-float ABI: the CPU
# of STM32F4 boards such as the NUCLEO_F446RE). ports/qemu has no board for it (its NETDUINO2
# is a soft-float Cortex-M3), so the CPU is defined here as ports/qemu defines MPS2_AN385; the
# AN386 has the AN385's memory map and UART. Used as BOARD_DIR of ports/qemu, BOARD=MPS2_AN386.
# RAM: 4 MB; heap 140 KiB (the port's default), RAM filesystem 256 KiB.
QEMU_ARCH = arm
QEMU_MACHINE = mps2-an386

CFLAGS += -mthumb -mcpu=cortex-m4 -mfpu=fpv4-sp-d16 -mfloat-abi=hard
CFLAGS += -DQEMU_SOC_MPS2
CFLAGS += -DMICROPY_HW_MCU_NAME='"Cortex-M4F"'

LDSCRIPT = mcu/arm/mps2.ld

SRC_BOARD_O = shared/runtime/gchelper_native.o shared/runtime/gchelper_thumb2.o

MPY_CROSS_FLAGS += -march=armv7emsp

MICROPY_FLOAT_IMPL = float
SUPPORTS_HARDWARE_FP_SINGLE = 1

# AII_STOCK=1 builds the board alone, as ports/qemu would (test-mpy-suite's baseline).
ifneq ($(AII_STOCK),1)
include $(BOARD_DIR)/../common-qemu/aii.mk
endif
