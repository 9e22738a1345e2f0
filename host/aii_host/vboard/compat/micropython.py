# SPDX-License-Identifier: MIT
"""`micropython` for firmware running on a simulated board (CPython has no such module)."""


def const(x):
    return x


def schedule(fn, arg):
    # On a board the callback runs soon, from the main thread; the simulated board has no hard
    # interrupts, so "soon" is now.
    fn(arg)


_heap_locked = 0


def heap_lock():
    global _heap_locked
    _heap_locked += 1


def heap_unlock():
    global _heap_locked
    _heap_locked = max(0, _heap_locked - 1)
    return _heap_locked


def heap_locked():
    return _heap_locked


def alloc_emergency_exception_buf(size):
    pass


def kbd_intr(c):
    # The supervisor turns 0x03 into SIGINT only while this process catches it (supervisor.py
    # reads that in /proc): -1 stops catching it, so 0x03 reaches the app as a byte, as on a
    # board; 3 (Ctrl-C) catches it again as KeyboardInterrupt.
    import signal

    if c == 3:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    elif c == -1:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def opt_level(level=None):
    return 0 if level is None else None


def mem_info(verbose=False):
    import gc

    used, free = gc.mem_alloc(), gc.mem_free()
    print(f"stack: simulated, GC: total: {used + free}, used: {used}, free: {free}")


def qstr_info(verbose=False):
    print("qstr pool: simulated")


def stack_use():
    return 0


def native(f):
    return f


viper = native
