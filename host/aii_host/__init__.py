# SPDX-License-Identifier: MIT
"""AII on CPython: the firmware's scheduler, ledger and particle kernel (cffi over its C core)
and the aii CLI."""

from ._errors import AdmissionError, AIIError, BalanceError, CorruptError, InsufficientError
from .ledger import (
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
from .particles.kernel import Particles
from .sched import (
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

__version__ = "0.1.0"

# True: the scheduler is the native C core, as on the device (not a Python re-implementation).
NATIVE = True

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
