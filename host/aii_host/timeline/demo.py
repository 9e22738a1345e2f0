# SPDX-License-Identifier: MIT
"""`aii sched-demo`: a small task set on the host scheduler, or on a MicroPython board with
_aii, its statistics, its analysis as a report, and its timeline (trace JSON, Gantt chart).

Both runs give the same record (a dict): names, specs, events (Scheduler.trace()), lost,
drained_max (the most events one drain returned), stats, analysis, costs, info, counts (of
on_miss events), jobs (run() returned), where.
"""

import gc
import json
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ..core import sched
from ..core._errors import AIIError
from .trace import KINDS

# CPython spends tens of microseconds per dispatch, and the host's scheduler sometimes more: the
# analysis must know it (--overhead-us auto measures it instead).
DEMO_OVERHEAD_US = 200
GC_IDLE_US = 2_000
SLICE_US = 100_000  # the host drains the timeline between slices of run()

# (name, kind, period or min gap us, budget us, busy work per job us)
TASKS = [
    ("sensor", "periodic", 10_000, 1_000, 300),
    ("control", "periodic", 20_000, 2_000, 800),
    ("button", "sporadic", 50_000, 1_000, 200),
    ("logger", "periodic", 100_000, 5_000, 2_000),
]


class DemoError(AIIError):
    pass


def _busy(us):
    # Stands in for computation: spins, so the job really occupies the processor.
    end = time.perf_counter_ns() + us * 1000
    while time.perf_counter_ns() < end:
        pass


def _button(s, tid, done):
    # Simulated stand-in for a push button wired to an interrupt: presses at random intervals,
    # sometimes faster than the task's minimum gap (the scheduler then delays the release).
    rng = random.Random(1)
    while not done.wait(rng.uniform(0.02, 0.12)):
        s.trigger(tid)


def run_host(seconds, overhead_us=DEMO_OVERHEAD_US, trace=True):
    # What the interpreter loaded at startup is not scanned by the idle-time collections: they
    # then take about as long as gc_idle_us says (a whole-heap collection of CPython with numpy
    # and rich loaded takes ~10 ms, which no gap of this set fits).
    gc.collect()
    gc.freeze()
    counts = {"miss": 0, "overrun": 0, "dropped": 0}
    kinds = {sched.MISS: "miss", sched.OVERRUN: "overrun", sched.DROPPED: "dropped"}

    def on_miss(tid, kind, detail):
        counts[kinds.get(kind, "miss")] += 1

    s = sched.Scheduler(overhead_us=overhead_us, gc_idle_us=GC_IDLE_US, on_miss=on_miss)
    calibration = s._calibration
    names, specs = {}, {}
    button = None
    for name, kind, period, budget, work in TASKS:

        def job(work=work):
            _busy(work)

        if kind == "periodic":
            tid = s.add(job, budget_us=budget, period_us=period)
        else:
            tid = button = s.add(job, budget_us=budget, min_gap_us=period)
        names[tid] = name
        specs[tid] = (kind, period, budget)
    events = []
    if trace:
        s.trace(True)
    done = threading.Event()
    presser = threading.Thread(target=_button, args=(s, button, done), daemon=True)
    presser.start()
    n = 0
    drained_max = 0
    left = int(seconds * 1_000_000)
    interrupted = None  # seconds run when Ctrl-C ended the run early
    t0 = time.monotonic()
    # Ctrl-C ends the run at the end of the slice in progress. A KeyboardInterrupt raised
    # wherever the main thread happens to be can be lost: inside a collection's finalizer it is
    # only printed and ignored, and the run then went on to its end.
    ctrl_c = []

    def on_sigint(signum, frame):
        ctrl_c.append(time.monotonic() - t0)

    old = None
    if threading.current_thread() is threading.main_thread():
        old = signal.signal(signal.SIGINT, on_sigint)
    try:
        while left > 0 and not ctrl_c:
            n += s.run(min(SLICE_US, left))
            left -= SLICE_US
            got = s.trace()
            drained_max = max(drained_max, len(got))
            events += got
        if ctrl_c:
            interrupted = ctrl_c[0]
    except KeyboardInterrupt:
        # What ran so far is reported, not lost (the scheduler's counters are whole: a job cut
        # short is counted as started, never half).
        interrupted = time.monotonic() - t0
        events += s.trace()
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)
        done.set()
        presser.join()
    return {
        "interrupted": interrupted,
        "where": "host (aii_host, CPython)",
        "names": names,
        "specs": specs,
        "events": events,
        "lost": s.trace_lost(),
        "drained_max": drained_max,
        "stats": s.stats(),
        "analysis": s.analysis(),
        "costs": s.costs(),
        "info": s.info(),
        "counts": counts,
        "jobs": n,
        "calibration": calibration,
    }


# The same task set on MicroPython: a button pressed every 7th sensor job, and a task that
# drains the board's (small) timeline ring every 20 ms. Prints one line: AII-SCHED-DEMO {json}.
DEVICE_SCRIPT = """
import json, time
try:
    import _aii as aii
except ImportError:
    import aii
SECONDS = {seconds}
s = aii.Scheduler(overhead_us={overhead!r}, gc_idle_us={gc_idle})
# Ctrl-C: a board gets it as 0x03 on its console (the host sends it), read by the trace task
# (a polled UART, as qemu's, raises no KeyboardInterrupt); the unix port as SIGINT. Either
# way the run stops at the end of a job and what ran is printed.
poller = None
if {stdin_stop!r}:
    import micropython, select, sys
    micropython.kbd_intr(-1)
    poller = select.poll()
    poller.register(sys.stdin, select.POLLIN)
stopped = [None]
cal = s.calibrate() if {overhead!r} == "auto" else None
events = []
counts = [0]
drained_max = [0]

def busy(us):
    t0 = time.ticks_us()
    while time.ticks_diff(time.ticks_us(), t0) < us:
        pass

def task(work, press=False):
    def job():
        busy(work)
        if press:
            counts[0] += 1
            if counts[0] % 7 == 0:
                s.trigger(button)
    return job

def drain():
    got = s.trace()
    drained_max[0] = max(drained_max[0], len(got))
    events.extend(got)
    if poller is not None and poller.poll(0) and sys.stdin.buffer.read(1) == b"\\x03":
        stopped[0] = time.ticks_ms()
        s.stop()

names = {{}}
specs = {{}}
button = None
for name, kind, period, budget, work in {tasks!r}:
    if kind == "periodic":
        tid = s.add(task(work, name == "sensor"), budget_us=budget, period_us=period)
    else:
        tid = button = s.add(task(work), budget_us=budget, min_gap_us=period)
    names[tid] = name
    specs[tid] = (kind, period, budget)
tid = s.add(drain, budget_us=3000, period_us=20000)
names[tid] = "trace"
specs[tid] = ("periodic", 20000, 3000)
traced = hasattr(s, "trace")
if traced:
    s.trace(True)
print("AII-SCHED-DEMO-RUN")
t0 = time.ticks_ms()
try:
    n = s.run(int(SECONDS * 1000000))
except KeyboardInterrupt:
    stopped[0] = time.ticks_ms()
    n = sum(st[0] for st in s.stats().values())  # counters are whole: a cut job is counted
if poller is not None:
    micropython.kbd_intr(3)
if traced:
    drain()
cut = None if stopped[0] is None else time.ticks_diff(stopped[0], t0) / 1000
print("AII-SCHED-DEMO " + json.dumps({{
    "interrupted": cut,
    "names": names, "specs": specs, "events": events,
    "lost": s.trace_lost() if traced else 0, "drained_max": drained_max[0],
    "stats": s.stats(), "analysis": s.analysis(),
    "costs": s.costs(), "info": s.info(), "jobs": n, "calibration": cal,
    "traced": traced}}))
"""


def device_script(seconds, overhead_us, stdin_stop=False):
    return DEVICE_SCRIPT.format(
        seconds=seconds,
        overhead=overhead_us,
        gc_idle=GC_IDLE_US,
        tasks=TASKS,
        stdin_stop=stdin_stop,
    )


def on_board(target):
    """True when `target` names a board's serial port rather than a micropython executable."""
    return str(target).startswith("/dev/") or not Path(target).is_file()


def run_script(target, script, marker, timeout, heap="1M", started=None):
    """Runs a MicroPython script on `target` - a micropython executable (the unix port), or a
    board's serial port over mpremote's raw REPL - and returns the JSON it printed after
    `marker`. Ctrl-C (KeyboardInterrupt here) is passed on, once: SIGINT to the unix port,
    0x03 to the board; the script's own answer to it is then read as usual. `started()` is
    called when the script prints `marker`-RUN."""
    if on_board(target):
        out = _run_on_board(str(target), script, marker, timeout, started)
    else:
        out = _run_unix(str(target), script, marker, timeout, heap, started)
    for line in out.splitlines():
        if line.startswith(marker + " "):
            return json.loads(line[len(marker) + 1 :])
    tail = out.strip().splitlines()[-3:]
    raise DemoError(f"no result from {target}: " + " | ".join(tail))


def _run_unix(target, script, marker, timeout, heap, started):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "aii_script.py"
        path.write_text(script)
        cmd = [target, "-X", f"heapsize={heap}", str(path)]
        try:
            # A session of its own: a terminal's Ctrl-C reaches this process only, which
            # passes it on once (twice would cut the script's report short).
            proc = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        except OSError as e:
            raise DemoError(f"could not run on {target}: {e}") from None
        late = threading.Timer(timeout, proc.kill)
        late.start()
        lines = []

        def read():
            for line in proc.stdout:
                lines.append(line)
                if started is not None and line.startswith(marker + "-RUN"):
                    started()

        try:
            try:
                read()
            except KeyboardInterrupt:
                proc.send_signal(signal.SIGINT)
                read()
            proc.wait()
        finally:
            late.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if proc.returncode == -signal.SIGKILL:
        raise DemoError(f"could not run on {target}: no end in {timeout:g} s")
    return "".join(lines)


def _run_on_board(target, script, marker, timeout, started):
    from mpremote.transport import TransportError

    buf = bytearray()
    seen = []

    def take(data):
        buf.extend(data)
        if started is not None and not seen and (marker + "-RUN").encode() in buf:
            seen.append(True)
            started()

    try:
        from mpremote.transport_serial import SerialTransport

        mp = SerialTransport(target, baudrate=115200)
    except (OSError, TransportError, ValueError) as e:
        raise DemoError(f"could not run on {target}: {e}") from None
    try:
        mp.enter_raw_repl(soft_reset=True)  # as `mpremote run` does
        mp.exec_raw_no_follow(script)
        try:
            _, err = mp.follow(timeout, take)
        except KeyboardInterrupt:
            mp.serial.write(b"\x03")  # read by the script between jobs: it stops and reports
            _, err = mp.follow(30, take)
        buf.extend(err)
        mp.exit_raw_repl()
    except (OSError, TransportError) as e:
        raise DemoError(f"could not run on {target}: {e}") from None
    finally:
        mp.close()
    return buf.decode("utf-8", "replace")


def run_device(target, seconds, overhead_us="auto"):
    """Runs the demo on MicroPython (`target` as run_script takes it) and reads back what the
    board printed."""

    def started():
        print(
            f"sched-demo: running on {target} for {seconds:g} s (Ctrl-C stops it and prints "
            "what ran)",
            file=sys.stderr,
            flush=True,
        )

    script = device_script(seconds, overhead_us, stdin_stop=on_board(target))
    rec = run_script(target, script, "AII-SCHED-DEMO", seconds + 60, started=started)
    if not rec["traced"]:
        raise DemoError(f"{target} has no timeline (no _aii: the pure-Python port has none)")

    def keyed(d):
        return {int(k): v for k, v in d.items()}

    rec["names"] = keyed(rec["names"])
    rec["specs"] = {k: tuple(v) for k, v in keyed(rec["specs"]).items()}
    rec["stats"] = {k: tuple(v) for k, v in keyed(rec["stats"]).items()}
    rec["events"] = [tuple(e) for e in rec["events"]]
    rec["analysis"] = [tuple(a) for a in rec["analysis"]]
    rec["where"] = f"MicroPython on {target}"
    rec["counts"] = None
    return rec


def kinds_named(events):
    """Events with their kind as a name (KINDS), as in the JSON output."""
    return [[t, KINDS[k], tid, arg] for t, k, tid, arg in events]
