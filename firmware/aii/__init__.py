# SPDX-License-Identifier: MIT
"""AII: real-time runtime for MicroPython (docs/scheduler.md, docs/ledger.md).

Re-exports the native `_aii` module, built into AII firmware from c_modules/aii; without it
(stock MicroPython) the scheduler and the ledger are the pure-Python ports in _sched.py and
_ledger.py, and `NATIVE` is False.
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
        crc32,
        exact_sum,
        fx_div,
        fx_format,
        fx_mul,
        fx_muldiv,
        fx_parse,
        fx_parse_exact,
        fx_rescale,
    )

    NATIVE = True  # the C core, built into AII firmware
except ImportError:
    # Stock MicroPython (as asyncio falls back without _asyncio): pure-Python ports of the C
    # core, checked against it by tests/host/test_sched_differential.py and
    # test_ledger_differential.py.
    from ._ledger import (
        CREDIT,
        DEC,
        DIGEST_SIZE,
        HOLD,
        JOURNAL,
        MAX_ACCOUNTS,
        MAX_HOLDS,
        MAX_QTY,
        RECORD_SIZE,
        SEGMENT,
        BalanceError,
        CorruptError,
        InsufficientError,
        Ledger,
        Q,
        check_sum,
        crc32,
        exact_sum,
        fx_div,
        fx_format,
        fx_mul,
        fx_muldiv,
        fx_parse,
        fx_parse_exact,
        fx_rescale,
    )
    from ._sched import (
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

    NATIVE = False

try:
    # The particle kernel (native only, out of the minimal configuration: AII_HAS_PARTICLES).
    from _aii import Particles
except ImportError:
    pass
