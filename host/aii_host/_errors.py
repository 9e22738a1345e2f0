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

_BY_STATUS = {
    ERR_ARG: (AIIValueError, "invalid argument"),
    ERR_FULL: (AIIRuntimeError, "task table full"),
    ERR_NOT_FOUND: (NotFoundError, "no such task"),
    ERR_UNSCHEDULABLE: (AdmissionError, "task set not schedulable"),
    ERR_STATE: (AIIRuntimeError, "not allowed now"),
    ERR_OVERFLOW: (AIIOverflowError, "overflow"),
}


def check(status, msg=None):
    """Returns status when it is OK or IDLE, else raises the matching exception."""
    if status >= 0:
        return status
    cls, default = _BY_STATUS.get(status, (AIIError, "error %d" % status))
    raise cls(msg or default)


def admission_error(task, wcrt_us, deadline_us, never):
    """The AdmissionError for a failed analysis (wcrt_us == never: the busy period is unbounded)."""
    r = "inf" if wcrt_us == never else str(wcrt_us)
    return AdmissionError("task %d: worst-case response %s us > deadline %d us" % (task, r, deadline_us))
