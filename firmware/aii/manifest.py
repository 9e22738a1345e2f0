# SPDX-License-Identifier: MIT
# The `aii` package: every .py in this folder except this manifest (run with the folder as cwd).
import os

metadata(description="AII real-time runtime for MicroPython", version="0.1.0")
package(
    "aii",
    files=sorted(f for f in os.listdir(".") if f.endswith(".py") and f != "manifest.py"),
    base_path="..",
)
