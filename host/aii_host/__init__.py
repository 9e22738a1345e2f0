# SPDX-License-Identifier: MIT
"""AII on CPython: the firmware's scheduler, ledger and particle kernel (cffi over its C core)
and the aii CLI."""

from .core._errors import AdmissionError, AIIError, BalanceError, CorruptError, InsufficientError
from .core.ledger import (
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
from .core.sched import (
    CONTINUE,
    DROP,
    DROPPED,
    MAX_TASKS,
    MISS,
    OVERRUN,
    SKIP,
    Scheduler,
    ticks_us,
)

__version__ = "0.2.0"

# True: the scheduler is the native C core, as on the device (not a Python re-implementation).
NATIVE = True


def __getattr__(name):
    # Particles hands out its memory as numpy arrays: numpy is an extra (aii-host[particles]),
    # so it is imported when Particles is first asked for, not with aii_host.
    if name == "Particles":
        from .particles.kernel import Particles

        return Particles
    raise AttributeError(f"module 'aii_host' has no attribute {name!r}")


__all__ = [
    "CONTINUE",
    "CREDIT",
    "DEC",
    "DIGEST_SIZE",
    "DROP",
    "DROPPED",
    "HOLD",
    "JOURNAL",
    "MAX_ACCOUNTS",
    "MAX_HOLDS",
    "MAX_QTY",
    "MAX_TASKS",
    "MISS",
    "NATIVE",
    "OVERRUN",
    "RECORD_SIZE",
    "SEGMENT",
    "SKIP",
    "AIIError",
    "AdmissionError",
    "BalanceError",
    "CorruptError",
    "InsufficientError",
    "Ledger",
    "Particles",
    "Q",
    "Scheduler",
    "check_sum",
    "crc32",
    "exact_sum",
    "fx_div",
    "fx_format",
    "fx_mul",
    "fx_muldiv",
    "fx_parse",
    "fx_parse_exact",
    "fx_rescale",
    "ticks_us",
]
