# SPDX-License-Identifier: MIT
# Frozen into every qemu board's image; boards/<BOARD>/manifest.py includes it with the board's
# share of ports/qemu's test modules: include(..., frzmpy=("frozen_const.py", ...)).
import os

options.defaults(frzmpy=())

# 1. The port's own manifest, which ports/qemu/Makefile gives as a string (FROZEN_MANIFEST ?=
#    "require('unittest'); freeze('test-frzmpy', (...))"): MicroPython's suite imports these.
#    unittest comes from micropython-lib, a submodule a plain checkout lacks; tools/mpy_build.sh
#    then sets AII_NO_MICROPYTHON_LIB=1 (and the suite's unittest-based tests cannot run).
if not os.environ.get("AII_NO_MICROPYTHON_LIB"):
    require("unittest")
if options.frzmpy:
    freeze("$(PORT_DIR)/test-frzmpy", options.frzmpy)

# 2. asyncio. extmod/asyncio's manifest leaves out task.py because ports normally have the C
#    `_asyncio`; ports/qemu sets MICROPY_PY_ASYNCIO to 0, so without the pure-Python Task and
#    TaskQueue `import asyncio` fails ("no module named 'asyncio.task'").
include("$(MPY_DIR)/extmod/asyncio")
package("asyncio", ("task.py",), base_path="$(MPY_DIR)/extmod", opt=3)

# 3. Every AII package, and the boot script that mounts the RAM filesystem (board.c runs it).
include("../../firmware/manifest.py")
module("_boot.py")
