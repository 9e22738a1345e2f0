# SPDX-License-Identifier: MIT
"""The one place where core status codes become exceptions.

Each class also subclasses the builtin the MicroPython module raises for the same case, so code
written against the device (``except ValueError``) works unchanged on the host. Messages are the
core's texts (c_modules/aii/core/aii_text.h): `text(code, *args)`.
"""

from ._aii import ffi, lib


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


def text(code, *args):
    """Text `code` of the core's table, its `{}` marks filled with args in order."""
    return ffi.string(lib.aii_text(code)).decode().format(*args)


class BalanceError(AIIRuntimeError):
    """A balance equation does not hold.

    args == (message, quantity, expected, actual, delta), exact ints; delta = actual - expected.
    """

    def __init__(self, quantity, expected, actual):
        delta = actual - expected
        msg = text(lib.AII_T_VIOLATION, quantity, actual, expected)
        super().__init__(msg, quantity, expected, actual, delta)
        self.quantity, self.expected, self.actual, self.delta = quantity, expected, actual, delta


# Status codes: the core's (aii_status.h), as the compiler saw them.
OK = lib.AII_OK
IDLE = lib.AII_IDLE
ERR_ARG = lib.AII_ERR_ARG
ERR_FULL = lib.AII_ERR_FULL
ERR_NOT_FOUND = lib.AII_ERR_NOT_FOUND
ERR_UNSCHEDULABLE = lib.AII_ERR_UNSCHEDULABLE
ERR_STATE = lib.AII_ERR_STATE
ERR_OVERFLOW = lib.AII_ERR_OVERFLOW
ERR_INSUFFICIENT = lib.AII_ERR_INSUFFICIENT
ERR_VIOLATION = lib.AII_ERR_VIOLATION
ERR_CORRUPT = lib.AII_ERR_CORRUPT
ERR_EXISTS = lib.AII_ERR_EXISTS
ERR_INEXACT = lib.AII_ERR_INEXACT

_CLASS = {
    ERR_ARG: AIIValueError,
    ERR_FULL: AIIRuntimeError,
    ERR_NOT_FOUND: NotFoundError,
    ERR_UNSCHEDULABLE: AdmissionError,
    ERR_STATE: AIIRuntimeError,
    ERR_OVERFLOW: AIIOverflowError,
    ERR_INSUFFICIENT: InsufficientError,
    ERR_CORRUPT: CorruptError,
    ERR_EXISTS: AIIValueError,
    ERR_INEXACT: AIIValueError,
}


def error(status, why=lib.AII_T_NONE, *args):
    """The exception for a refused call: its status, and the core's reason `why` (with its
    arguments; AII_T_NONE: what the status says by itself)."""
    if why == lib.AII_T_NONE:
        why, args = lib.aii_status_text(status), (status,)
    return _CLASS.get(status, AIIError)(text(why, *args))


def check(status, why=lib.AII_T_NONE):
    """Returns status when it is OK or IDLE, else raises the matching exception."""
    if status >= 0:
        return status
    raise error(status, why)


def admission_error(rta, never):
    """The AdmissionError for a refused add(): the analysis' reason (rta.why) with the task and
    its two numbers (a response of `never`: the busy period is unbounded)."""
    w = rta.failed_wcrt_us
    if rta.why == lib.AII_T_ADMISSION and w == never:
        w = "inf"
    return AdmissionError(text(rta.why, rta.failed_task, w, rta.failed_deadline_us))
