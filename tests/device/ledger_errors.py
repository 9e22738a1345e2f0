# SPDX-License-Identifier: MIT
# Bad input, one fault per call: exception and message (docs/ledger.md section 4), identical
# on the device and on the host; and a refused call changes nothing.
try:
    import aii as a
except ImportError:  # CPython, whose output run-tests.py compares with: the host's
    import aii_host as a


def err(fn, *args, **kw):
    # The ledger's own classes by name, builtins by category (the host raises subclasses).
    try:
        fn(*args, **kw)
    except a.InsufficientError as e:
        print("InsufficientError:", e)
    except a.CorruptError as e:
        print("CorruptError:", e)
    except a.BalanceError as e:
        print("BalanceError:", e)
    except OverflowError as e:
        print("OverflowError:", e)
    except ValueError as e:
        print("ValueError:", e)
    except TypeError:
        print("TypeError")  # worded differently by the two interpreters' argument parsers
    except RuntimeError as e:
        print("RuntimeError:", e)
    else:
        print("no error")


print(issubclass(a.InsufficientError, ValueError), issubclass(a.CorruptError, ValueError))
print(issubclass(a.BalanceError, RuntimeError))

led = a.Ledger()
err(led.add_quantity, "Wh", digits=3, bits=2)
err(led.add_quantity, "Wh", digits=19)
err(led.add_quantity, "Wh", bits=63)
err(led.add_quantity, "Wh", bits=-1)
err(led.add_quantity, "", digits=0)
err(led.add_quantity, "x" * 13)
err(led.add_quantity, "a\0b")
err(led.add_quantity, 5)
wh = led.add_quantity("Wh", digits=3)
err(led.add_quantity, "Wh", bits=4)
l = led.add_quantity("l", bits=4)
led.add_quantity("q2")
led.add_quantity("q3")
err(led.add_quantity, "q4")

err(led.open, "", wh)
err(led.open, "bat", 9)
err(led.open, "bat", -1)
err(led.open, "bat", wh, initial=-1)
err(led.open, "bat", wh, initial=2**63)
bat = led.open("bat", wh, initial=100)
load = led.open("load", wh)
grid = led.open("grid", wh, non_negative=False)
tank = led.open("tank", l, initial=10)
err(led.open, "bat", wh)
err(led.quantity, "nope")
err(led.account, "nope")
err(led.format, 4)
err(led.balance, 4)
err(led.balance, -1)
err(led.totals, 4)

led.outflow(grid, wh, 2)
before = led.digest()
err(led.transfer, bat, load, wh, 0)
err(led.transfer, bat, load, wh, -5)
err(led.transfer, bat, load, wh, -(2**64))
err(led.transfer, bat, load, wh, 2**63)
err(led.transfer, bat, load, wh, 1.5)
err(led.transfer, bat, bat, wh, 5)
err(led.transfer, bat, tank, wh, 5)
err(led.transfer, bat, load, l, 5)
err(led.transfer, bat, 9, wh, 5)
err(led.transfer, 70000, load, wh, 5)
err(led.transfer, bat, load, 7, 5)
err(led.transfer, bat, load, 2**40, 5)
err(led.transfer, bat, load, wh, 101)
err(led.inflow, bat, wh, 2**63 - 1)
err(led.outflow, grid, wh, 2**63 - 1)  # non_negative=False: int64's end instead
err(led.outflow, 9, wh, 1)
err(led.hold, -1, bat, wh, 1)
err(led.hold, 2**64, bat, wh, 1)
err(led.hold, 1, bat, wh, 101)
err(led.hold, 1, bat, l, 1)
err(led.settle, 1)
err(led.release, 2**64 - 1)
err(led.hold_info, 1)
err(led.set_time, -1)
err(led.set_time, 2**64)
print("refusals changed nothing", led.digest() == before, led.info())

for t in range(a.MAX_HOLDS):
    led.prepare(t, load, wh, 1)
err(led.prepare, 0, load, wh, 1)
err(led.prepare, 99, load, wh, 1)
err(led.hold, 99, bat, wh, 1)
# A prepared credit that would overflow the account on settle is refused at settle.
led.inflow(load, wh, 2**63 - 1)
err(led.settle, 0)
for t in range(a.MAX_HOLDS):
    led.release(t)

err(led.commit)
err(led.rollback)
led.begin()
err(led.begin)
err(led.seal)
err(led.checkpoint)
err(led.replay, b"")
led.rollback()
for i in range(a.MAX_ACCOUNTS - 4):
    led.open("a%d" % i, wh)
err(led.open, "full", wh)

# Fixed point and sums.
err(a.Q, 63)
err(a.DEC, 19)
err(a.DEC, -1)
err(a.fx_parse, "1.2.3", a.DEC(2))
err(a.fx_parse, "", a.DEC(2))
err(a.fx_parse, " 1", a.DEC(2))
err(a.fx_parse, "1e3", a.DEC(2))
err(a.fx_parse, "92233720368547758.08", a.DEC(2))
err(a.fx_parse, "1", 0x80 | 19)
err(a.fx_parse, "1", 63)
err(a.fx_parse, "1", 256)
err(a.fx_format, 2**63, a.DEC(2))
err(a.fx_mul, 2**62, 4, a.Q(0))
err(a.fx_div, 1, 0, a.DEC(2))
err(a.fx_muldiv, 1, 2, 0)
err(a.fx_rescale, 2**62, a.Q(0), a.DEC(1))
err(a.check_sum, bytearray(8), 0)
err(a.check_sum, b"12345678", 0)
err(a.check_sum, 5, 0)
err(a.exact_sum, "abcd")
