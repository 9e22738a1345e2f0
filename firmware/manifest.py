# SPDX-License-Identifier: MIT
# Frozen into every AII firmware image (FROZEN_MANIFEST=<repo>/firmware/manifest.py).
include("aii")
include("aii_node")
include("aii_nav")
# The port's own frozen asyncio, kept so applications (and the latency benchmark) can compare.
include("$(MPY_DIR)/extmod/asyncio")
