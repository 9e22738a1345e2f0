# SPDX-License-Identifier: MIT
"""Device ticks (time.ticks_*), with a monotonic stand-in on CPython outside the simulated
board (the host's unit tests import the node directly)."""

try:
    from time import ticks_add, ticks_diff, ticks_ms, ticks_us
except ImportError:
    import time as _t

    def ticks_ms():
        return int(_t.monotonic() * 1000)

    def ticks_us():
        return int(_t.monotonic() * 1000000)

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b
