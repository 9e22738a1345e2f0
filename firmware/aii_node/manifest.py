# SPDX-License-Identifier: MIT
# The `aii_node` package: every .py in this folder except this manifest.
import os

metadata(description="AII node: console, protocol, persistence", version="0.1.0")
package(
    "aii_node",
    files=sorted(f for f in os.listdir(".") if f.endswith(".py") and f != "manifest.py"),
    base_path="..",
)
