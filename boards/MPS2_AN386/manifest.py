# SPDX-License-Identifier: MIT
# MPS2_AN386 image: ports/qemu's frozen test modules for Thumb-2, asyncio, every AII package.
include(
    "../common-qemu/manifest.py",
    frzmpy=("frozen_asm_thumb.py", "frozen_const.py", "frozen_viper.py", "native_frozen_align.py"),
)
