# SPDX-License-Identifier: MIT
# The `aii` package: every .py in this folder except this manifest (run with the folder as cwd).
# include("aii", fallback=False) leaves out the pure-Python scheduler and ledger (_sched.py with
# _core.py and _rta.py, _ledger.py): an image built with the native _aii never imports them.
import os

options.defaults(fallback=True)
_FALLBACK = ("_core.py", "_ledger.py", "_rta.py", "_sched.py")

metadata(description="AII real-time runtime for MicroPython", version="0.1.0")
package(
    "aii",
    files=sorted(
        f
        for f in os.listdir(".")
        if f.endswith(".py") and f != "manifest.py" and (options.fallback or f not in _FALLBACK)
    ),
    base_path="..",
)
