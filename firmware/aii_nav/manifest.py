# SPDX-License-Identifier: MIT
# The `aii_nav` package (the safety monitor and its node glue): every .py here but this one.
import os

package(
    "aii_nav",
    files=sorted(f for f in os.listdir(".") if f.endswith(".py") and f != "manifest.py"),
    base_path="..",
)
