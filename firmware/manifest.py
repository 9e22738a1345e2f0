# SPDX-License-Identifier: MIT
# Frozen into every AII firmware image (FROZEN_MANIFEST=<repo>/firmware/manifest.py).
include("aii")
include("aii_node")
