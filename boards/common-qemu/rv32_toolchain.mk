# SPDX-License-Identifier: MIT
# RV32 builds with Debian 12's riscv64-unknown-elf-gcc 12 (make setup's), included by
# boards/VIRT_RV32 (also in its stock build, AII_STOCK=1). The toolchain's rv32
# multilibs (libgcc, picolibc) are named by -march strings without extensions, so ports/qemu's
# RV32_ARCH of rv32imac_zicsr matches none and the rv64 libgcc gets linked ("file class
# ELFCLASS64 incompatible"). Under ISA spec 2.2, Zicsr is part of I: rv32imac is then the same
# instruction set and finds the rv32imac/ilp32 multilib.
RV32_ARCH = rv32imac
CFLAGS_EXTRA += -misa-spec=2.2
AFLAGS += -misa-spec=2.2
