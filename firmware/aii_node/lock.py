# SPDX-License-Identifier: MIT
"""The console lock (docs/protocol.md §9): Ctrl-C does not reach the REPL while the node runs.

`micropython.kbd_intr(-1)` turns Ctrl-C into an ordinary byte: the node reads it and answers
that the console is locked. The way back in is physical: a pin held low at boot (config
`unlock_pin`) leaves the console unlocked, and a signed `maintenance` request (what `aii
deploy` sends first) unlocks it until the next boot. States, as `status` shows them:

- "on": locked;
- "off": the config says `console_lock: 0`;
- "pin": the unlock pin was held at boot;
- "maintenance": unlocked by a signed request until the next boot;
- "none": this port has no `micropython.kbd_intr` (CPython outside a simulated board).
"""


def _kbd_intr(c):
    try:
        import micropython

        micropython.kbd_intr(c)
    except (ImportError, AttributeError):
        return False
    return True


def pin_held(name):
    """True when pin `name` (a name or number, pulled up) reads low."""
    try:
        import machine

        return machine.Pin(name, machine.Pin.IN, machine.Pin.PULL_UP).value() == 0
    except (ImportError, AttributeError, ValueError, TypeError, OSError):
        return False  # no such pin here: nothing held


def early():
    """Locks the console before the node boots (main.py): a Ctrl-C sent while it reads its
    files must not reach the REPL. at_boot() then decides with the config."""
    _kbd_intr(-1)


def at_boot(cfg):
    """Locks the console unless the config says not to or its unlock pin is held; the state."""
    if not cfg.get("console_lock", 1):
        _kbd_intr(3)
        return "off"
    pin = cfg.get("unlock_pin")
    if pin is not None and pin_held(pin):
        _kbd_intr(3)
        return "pin"
    return "on" if _kbd_intr(-1) else "none"


def unlock():
    """Ctrl-C stops the app again (until the next boot); the state."""
    return "maintenance" if _kbd_intr(3) else "none"


def locked(state):
    return state == "on"
