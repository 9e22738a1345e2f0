# SPDX-License-Identifier: MIT
# RPI_PICO image: the rp2 port's own manifest (ports/rp2/boards/manifest.py: modules/_boot.py,
# which creates and mounts the flash filesystem, rp2.py, asyncio, drivers), then every AII package.
include("$(PORT_DIR)/boards/manifest.py")
include("../../firmware/manifest.py")
