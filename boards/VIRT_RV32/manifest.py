# SPDX-License-Identifier: MIT
# VIRT_RV32 image: ports/qemu's frozen test modules for RV32, asyncio, every AII package.
include(
    "../common-qemu/manifest.py",
    frzmpy=("frozen_asm_rv32.py", "frozen_const.py", "frozen_viper.py", "native_frozen_align.py"),
)
