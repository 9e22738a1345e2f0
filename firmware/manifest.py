# SPDX-License-Identifier: MIT
# Every AII package, for images built with the native module (USER_C_MODULES=<repo>/c_modules):
# `aii` re-exports `_aii` there, so its pure-Python fallback is left out. A board's manifest
# (boards/<BOARD>/manifest.py) includes its port's own manifest first (boot scripts, filesystem
# setup, asyncio, drivers), then this one: setting FROZEN_MANIFEST to this file alone would drop
# the port's and boot without a filesystem.
include("aii", fallback=False)
include("aii_node")
include("aii_nav")
