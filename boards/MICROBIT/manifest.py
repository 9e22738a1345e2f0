# SPDX-License-Identifier: MIT
# MICROBIT image: ports/qemu's frozen test module for this board, asyncio, every AII package.
include("../common-qemu/manifest.py", frzmpy=("frozen_const.py",))
