# SPDX-License-Identifier: MIT
# NUCLEO_F446RE image: the stm32 port's own manifest (ports/stm32/boards/manifest.py: asyncio,
# drivers; the stm32 port mounts or creates its flash filesystem in C), then every AII package.
include("$(PORT_DIR)/boards/manifest.py")
include("../../firmware/manifest.py")
