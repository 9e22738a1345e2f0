# SPDX-License-Identifier: MIT
# AII unix build: the standard variant's manifest, then every AII package.
import os

# ports/unix/variants/standard/manifest.py: asyncio, and mip-cmdline and ssl from micropython-lib,
# a submodule a plain checkout lacks; tools/mpy_build.sh then sets AII_NO_MICROPYTHON_LIB=1 and
# only the part in MicroPython's own tree goes in.
if not os.environ.get("AII_NO_MICROPYTHON_LIB"):
    include("$(PORT_DIR)/variants/standard/manifest.py")
else:
    include("$(MPY_DIR)/extmod/asyncio")
include("../../firmware/manifest.py")
