# SPDX-License-Identifier: MIT
"""The one place where core status codes become exceptions.

Each class also subclasses the builtin the MicroPython module raises for the same case, so code
written against the device (``except ValueError``) works unchanged on the host.
"""


class AIIError(Exception):
    """Base of every error raised by aii_host."""


class AIIValueError(AIIError, ValueError):
    """An argument is out of range."""


class AIITypeError(AIIError, TypeError):
    """An argument has the wrong type."""


class AIIOverflowError(AIIError, OverflowError):
    """An exact result does not fit its type."""


class AIIRuntimeError(AIIError, RuntimeError):
    """A fixed-size table is full, or the call is not allowed now."""


class NotFoundError(AIIValueError):
    """No such task (or account, transaction)."""


class AdmissionError(AIIValueError):
    """Admission control refused the task set; the scheduler is unchanged."""


class InsufficientError(AIIValueError):
    """The ledger refused to overdraw a non-negative account; nothing changed."""


class CorruptError(AIIValueError):
    """A journal record or checkpoint does not check out (CRC, sequence, hash, contents)."""


class BalanceError(AIIRuntimeError):
    """A balance equation does not hold.

    args == (message, quantity, expected, actual, delta), exact ints; delta = actual - expected.
    """

    def __init__(self, quantity, expected, actual):
        delta = actual - expected
        super().__init__(
            f"quantity {quantity}: actual {actual} != expected {expected}",
            quantity,
            expected,
            actual,
            delta,
        )
        self.quantity, self.expected, self.actual, self.delta = quantity, expected, actual, delta


# Status codes from c_modules/aii/core/aii_status.h; kept as plain ints so this module does not
# need the compiled extension.
OK = 0
IDLE = 1
ERR_ARG = -1
ERR_FULL = -2
ERR_NOT_FOUND = -3
ERR_UNSCHEDULABLE = -4
ERR_STATE = -5
ERR_OVERFLOW = -6
ERR_INSUFFICIENT = -7
ERR_VIOLATION = -8
ERR_CORRUPT = -9
ERR_EXISTS = -10
ERR_INEXACT = -11

_BY_STATUS = {
    ERR_ARG: (AIIValueError, "invalid argument"),
    ERR_FULL: (AIIRuntimeError, "task table full"),
    ERR_NOT_FOUND: (NotFoundError, "no such task"),
    ERR_UNSCHEDULABLE: (AdmissionError, "task set not schedulable"),
    ERR_STATE: (AIIRuntimeError, "not allowed now"),
    ERR_OVERFLOW: (AIIOverflowError, "overflow"),
}


# The ledger's statuses. Messages depend on the operation, so ledger.py always passes one;
# ERR_VIOLATION is raised as BalanceError with its numbers, not through this table.
_LEDGER = {
    ERR_ARG: AIIValueError,
    ERR_NOT_FOUND: NotFoundError,
    ERR_EXISTS: AIIValueError,
    ERR_FULL: AIIRuntimeError,
    ERR_STATE: AIIRuntimeError,
    ERR_OVERFLOW: AIIOverflowError,
    ERR_INSUFFICIENT: InsufficientError,
    ERR_CORRUPT: CorruptError,
    ERR_INEXACT: AIIValueError,
}


def ledger_error(status, msg):
    """The exception for a failed ledger or fixed-point call (status < 0)."""
    return _LEDGER.get(status, AIIError)(msg)


def check(status, msg=None):
    """Returns status when it is OK or IDLE, else raises the matching exception."""
    if status >= 0:
        return status
    cls, default = _BY_STATUS.get(status, (AIIError, f"error {status}"))
    raise cls(msg or default)


def admission_error(task, wcrt_us, deadline_us, never):
    """The AdmissionError for a failed analysis (wcrt_us == never: the busy period is unbounded)."""
    r = "inf" if wcrt_us == never else str(wcrt_us)
    return AdmissionError(f"task {task}: worst-case response {r} us > deadline {deadline_us} us")
