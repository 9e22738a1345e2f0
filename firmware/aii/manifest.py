# SPDX-License-Identifier: MIT
# The `aii` package: every .py in this folder except this manifest (run with the folder as cwd).
# include("aii", fallback=False) leaves out the pure-Python scheduler and ledger (_sched.py with
# _core.py and _rta.py, _ledger.py) and what only they import (_sha256.py, _texts.py): an image
# built with the native _aii imports __init__.py alone.
import os

options.defaults(fallback=True)
_FALLBACK = ("_core.py", "_ledger.py", "_rta.py", "_sched.py", "_sha256.py", "_texts.py")

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
