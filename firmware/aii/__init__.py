# SPDX-License-Identifier: MIT
"""AII: real-time runtime for MicroPython (docs/scheduler.md, docs/ledger.md).

Re-exports the native `_aii` module, built into AII firmware from c_modules/aii.
"""

try:
    from _aii import (
        CONTINUE,
        CREDIT,
        DEC,
        DIGEST_SIZE,
        DROP,
        DROPPED,
        HOLD,
        JOURNAL,
        MAX_ACCOUNTS,
        MAX_HOLDS,
        MAX_QTY,
        MAX_TASKS,
        MISS,
        OVERRUN,
        RECORD_SIZE,
        SEGMENT,
        SKIP,
        AdmissionError,
        BalanceError,
        CorruptError,
        InsufficientError,
        Ledger,
        Q,
        Scheduler,
        check_sum,
        exact_sum,
        fx_div,
        fx_format,
        fx_mul,
        fx_muldiv,
        fx_parse,
        fx_rescale,
    )
except ImportError:
    # Without the native module there is no scheduler yet; say how to get one.
    raise ImportError(
        "aii needs the native _aii module: use an AII firmware (make firmware BOARD=...)"
    ) from None

# True when the scheduler is the native C module (a pure-Python fallback may come later).
NATIVE = True
