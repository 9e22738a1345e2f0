# SPDX-License-Identifier: MIT
"""`machine` for firmware running on a simulated board.

reset() ends the board's process with a code its supervisor reads as "restart the app"; files in
the board's folder survive, RAM does not, as on a board. WDT really resets when not fed.
"""

import hashlib
import os
import sys
import threading
import time

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

# Exit codes the supervisor (aii_host.node.vboard) reads as "boot again now", by reset cause.
EXIT_BY_CAUSE = {HARD_RESET: 3, SOFT_RESET: 4, WDT_RESET: 5}
CAUSE_BY_EXIT = {v: k for k, v in EXIT_BY_CAUSE.items()}


def _flush():
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass


def _reset(cause):
    _flush()
    os._exit(EXIT_BY_CAUSE[cause])


def reset():
    _reset(HARD_RESET)


def soft_reset():
    _reset(SOFT_RESET)


def reset_cause():
    return int(os.environ.get("AII_VBOARD_RESET_CAUSE", PWRON_RESET))


def unique_id():
    return hashlib.sha256(os.environ.get("AII_VBOARD_ID", "vboard").encode()).digest()[:8]


def freq(hz=None):
    return 160_000_000 if hz is None else None


def idle():
    time.sleep(0)


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


def lightsleep(ms=None):
    time.sleep((ms or 0) / 1000)


deepsleep = lightsleep


class Pin:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 1
    IRQ_RISING = 2

    def __init__(self, id, mode=-1, pull=-1, *, value=None):
        self.id = id
        self._mode = mode
        self._pull = pull
        self._value = 1 if pull == Pin.PULL_UP else 0
        self._handler = None
        self._trigger = 0
        if value is not None:
            self._value = 1 if value else 0

    def init(self, mode=-1, pull=-1, *, value=None):
        self.__init__(self.id, mode, pull, value=value)

    def value(self, v=None):
        if v is None:
            return self._value
        old, self._value = self._value, 1 if v else 0
        # Simulated wiring: an input driven from a test fires its irq like a real edge.
        if self._handler is not None and old != self._value:
            edge = Pin.IRQ_RISING if self._value else Pin.IRQ_FALLING
            if self._trigger & edge:
                self._handler(self)
        return None

    __call__ = value

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def toggle(self):
        self.value(1 - self._value)

    def irq(self, handler=None, trigger=IRQ_FALLING | IRQ_RISING, hard=False):
        self._handler = handler
        self._trigger = trigger

    def __repr__(self):
        return f"Pin({self.id!r})"


class WDT:
    """Resets the simulated board when not fed for `timeout` ms (can't be stopped, as on a board)."""

    def __init__(self, id=0, timeout=5000):
        self._timeout = max(1, timeout) / 1000
        self._last = time.monotonic()
        t = threading.Thread(target=self._watch, daemon=True)
        t.start()

    def feed(self):
        self._last = time.monotonic()

    def _watch(self):
        while True:
            left = self._last + self._timeout - time.monotonic()
            if left <= 0:
                sys.stderr.write("vboard: watchdog expired, resetting\n")
                _reset(WDT_RESET)
            time.sleep(min(left, 0.05))
