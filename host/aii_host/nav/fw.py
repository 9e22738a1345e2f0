# SPDX-License-Identifier: MIT
"""The firmware's monitor (firmware/aii_nav/monitor.py) in this process: the simulation, the
planner's own pre-check and the tests run the very code the board runs (one rule, one place)."""

import functools
import importlib.util

from .errors import NavError


@functools.lru_cache(maxsize=1)
def monitor():
    """firmware/aii_nav/monitor.py as a module (it imports nothing, so it loads on its own)."""
    from ..node.vboard import VBoardError, firmware_dir

    try:
        path = firmware_dir() / "aii_nav" / "monitor.py"
    except VBoardError as e:
        raise NavError(str(e)) from None
    if not path.exists():
        raise NavError(f"{path} is missing: the monitor is firmware/aii_nav/monitor.py")
    spec = importlib.util.spec_from_file_location("aii_nav_monitor", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
