# SPDX-License-Identifier: MIT
"""Argument conversion for the cffi bindings (sched, ledger, particles), as mod_aii_conv.c does
it for MicroPython: the same rules and the core's texts."""

import operator

from ._aii import lib
from ._errors import AIITypeError, AIIValueError, text


def as_int(v):
    # Same rule and text as MicroPython's mp_obj_get_int: ints (and bools) only, no floats.
    try:
        return operator.index(v)
    except TypeError:
        raise AIITypeError(text(lib.AII_T_NOT_INT, type(v).__name__)) from None


def ranged(name, v, lo, hi):
    v = as_int(v)
    if not lo <= v <= hi:
        raise AIIValueError(text(lib.AII_T_OUT_OF_RANGE, name))
    return v


def u32(name, v):
    # As mod_aii_conv.c's aii_arg_u32: a negative is named as such.
    v = as_int(v)
    if v < 0:
        raise AIIValueError(text(lib.AII_T_NOT_NEGATIVE, name))
    return ranged(name, v, 0, 0xFFFFFFFF)
