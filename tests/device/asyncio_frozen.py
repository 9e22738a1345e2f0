# SPDX-License-Identifier: MIT
# The image's asyncio works: frozen from extmod/asyncio on every AII image, with its pure-Python
# Task and TaskQueue (task.py) on ports/qemu, which has no C _asyncio. Same output on CPython.
# A stock image with _aii from a native .mpy (tools/natmod_test.py) is not an AII image: its
# asyncio is its port's (the stock qemu boards have none).
try:
    import asyncio
except ImportError:
    import _aii

    if hasattr(_aii, "__file__"):  # loaded from a .mpy: the firmware module has no file
        print("SKIP")
        raise SystemExit
    raise


async def count(name, n, out, lock):
    for i in range(n):
        async with lock:
            out.append((name, i))
        await asyncio.sleep(0)


async def main():
    out = []
    lock = asyncio.Lock()
    ev = asyncio.Event()

    async def waiter():
        await ev.wait()
        out.append("event")

    w = asyncio.create_task(waiter())
    await asyncio.gather(count("a", 3, out, lock), count("b", 2, out, lock))
    ev.set()
    await w

    async def slow():
        await asyncio.sleep(10)

    try:
        await asyncio.wait_for(slow(), 0.01)
    except asyncio.TimeoutError:
        out.append("timeout")
    return out


print(asyncio.run(main()))
