# SPDX-License-Identifier: MIT
# MPS2_AN385 image: every AII module plus the boot script that mounts the RAM filesystem.
include("$(BOARD_DIR)/../../firmware/manifest.py")
module("_boot.py")
