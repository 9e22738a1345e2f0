# SPDX-License-Identifier: MIT
# ESP32_GENERIC image: the esp32 port's own manifest (ports/esp32/boards/manifest.py: modules/
# _boot.py, flashbdev.py and inisetup.py, which mount or create the flash filesystem, asyncio,
# networking and drivers), then every AII package.
include("$(PORT_DIR)/boards/manifest.py")
include("../../firmware/manifest.py")
