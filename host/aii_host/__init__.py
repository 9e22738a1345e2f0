# SPDX-License-Identifier: MIT
"""AII on CPython: the same scheduler as the firmware (cffi over its C core) and the aii CLI."""

from ._errors import AdmissionError, AIIError
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
    "DROP",
    "DROPPED",
    "MAX_TASKS",
    "MISS",
    "NATIVE",
    "OVERRUN",
    "SKIP",
    "AIIError",
    "AdmissionError",
    "Scheduler",
    "ticks_us",
]
