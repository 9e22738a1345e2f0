# SPDX-License-Identifier: MIT
"""AII: real-time runtime for MicroPython (docs/scheduler.md).

Re-exports the native `_aii` module, built into AII firmware from c_modules/aii.
"""

try:
    from _aii import (
        CONTINUE,
        DROP,
        DROPPED,
        MAX_TASKS,
        MISS,
        OVERRUN,
        SKIP,
        AdmissionError,
        Scheduler,
    )
except ImportError:
    # Without the native module there is no scheduler yet; say how to get one.
    raise ImportError(
        "aii needs the native _aii module: use an AII firmware (make firmware BOARD=...)"
    ) from None

# True when the scheduler is the native C module (a pure-Python fallback may come later).
NATIVE = True
