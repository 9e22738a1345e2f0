# SPDX-License-Identifier: MIT
# The `aii_node` package: every .py in this folder except this manifest.
import os

# No metadata() here: the top manifest includes aii first, and one include chain takes one.
package(
    "aii_node",
    files=sorted(f for f in os.listdir(".") if f.endswith(".py") and f != "manifest.py"),
    base_path="..",
)
