# SPDX-License-Identifier: MIT
# MicroPython only (hence the .exp): the ledger's storage is allocated once by Ledger(), so
# its operations run with the heap locked (an interrupt-time or low-memory caller), and so
# does check_sum over a buffer read in place.
import _aii as aii  # an AII image or the natmod: missing fails
import micropython

try:
    heap_lock, heap_unlock = micropython.heap_lock, micropython.heap_unlock
except AttributeError:  # a port built without them
    print("SKIP")
    raise SystemExit
from array import array

led = aii.Ledger()
q = led.add_quantity("Wh", digits=3)
src = led.open("src", q, initial=100000)
dst = led.open("dst", q)
buf = array("i", range(1000))
expected = 999 * 1000 // 2
ok = []
d = None
# Globals are bound before the lock: a new name may grow the module's dict.
heap_lock()
try:
    for t in range(200):
        led.set_time(t)
        led.transfer(src, dst, q, 3)
        led.inflow(src, q, 1)
        led.outflow(dst, q, 1)
        led.hold(t, src, q, 2)
        if t % 2:
            led.settle(t)
        else:
            led.release(t)
        led.prepare(t, dst, q, 5)
        led.settle(t)
        led.begin()
        led.transfer(dst, src, q, 1)
        led.rollback()
        led.begin()
        led.transfer(dst, src, q, 1)
        led.commit()
        led.verify()
        led.seal()
        led.balance(src)
        if not aii.check_sum(buf, expected):
            break
    d = "done"
finally:
    heap_unlock()
print(d, led.balance(src), led.balance(dst), led.info()[1] > 0)
print(led.totals(q))
