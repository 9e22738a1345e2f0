# SPDX-License-Identifier: MIT
"""`mpremote mip install` of the `aii` package (firmware/aii/package.json), and what it installs.

1. Always: each package.json lists exactly the .py files of its folder (no stale or missing
   entry; the manifest is a build file, not a module) with the manifest's version.
2. Always: stock MicroPython (the venv's unix interpreter from PyPI, no `_aii`) behind a
   simulated board's REPL (`aii vboard --micropython --app repl`, which mpremote can drive):
   `mpremote mip install` puts the package in lib/, then the installed package runs as the
   pure-Python port (`aii.NATIVE` False) and gives the same scheduler and ledger results as the
   C core (aii_host, cffi) on a scripted scenario with a virtual clock.
3. Always: the board's own `mip.install()` (stock MicroPython) from a local HTTP server.
4. With MICROPY_DIR: `mpremote mip install build/natmod/x64/package.json` (make natmod) on the same
   stock MicroPython: the native `_aii.mpy` and `aii/__init__.py` (no pure-Python fallback), which
   re-exports the natmod (`aii.NATIVE` True) with the C core's results.
5. With MICROPY_DIR and the MPS2_AN385 image: the same install on the qemu board over its serial
   pty, precompiled with mpy-cross for armv7m (as a small board gets it). The image has `_aii` frozen in, so there the check also runs the installed pure-Python
   modules (aii._sched, aii._ledger) beside the native ones and requires identical results.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from aii_host.node import qemu
from mp_util import NO_STOCK, built

REPO = Path(__file__).resolve().parents[2]
MICROPYTHON = Path(sys.executable).with_name("micropython")
QEMU_IMAGE = Path(
    os.environ.get("AII_QEMU_IMAGE") or REPO / "build" / "mps2-an385" / "firmware.elf"
)
PACKAGES = ("aii", "aii_node", "aii_nav")

# A deterministic scenario, run on the device and on CPython: a virtual clock (jobs advance it,
# idle waits jump it), two periodic tasks and a sporadic one, then ledger operations that touch
# every record kind a node writes. `m` is a namespace with Scheduler, Ledger, DEC, fx_parse and
# InsufficientError. The result is a JSON-able dict; any difference is a conformance bug.
SCENARIO = r"""
def scenario(m):
    t = [1 << 29]  # starts near the 2**30 wrap of 32-bit ports' ticks_us

    def clock():
        return t[0] % (1 << 30)

    def sleep(us):
        t[0] += us

    out = {}
    s = m.Scheduler(clock=clock, tick_period=1 << 30, sleep=sleep, overhead_us=10)
    runs = []

    def job(name, cost):
        def f():
            runs.append(name)
            t[0] += cost
        return f

    a = s.add(job("a", 300), period_us=5000, budget_us=400)
    b = s.add(job("b", 1200), period_us=7000, budget_us=1000, offset_us=100)
    c = s.add(job("c", 100), min_gap_us=4000, budget_us=200)
    s.trigger(c)
    n = s.run(40000)
    s.trigger(c)
    s.trigger(c)
    n += s.run(10000)
    out["runs"] = "".join(runs)
    out["n"] = n
    out["stats"] = [list(s.stats(x)) for x in (a, b, c)]
    out["admit"] = [list(e) for e in s.admit()]
    out["info"] = list(s.info())

    led = m.Ledger()
    led.set_time(1234567)
    wh = led.add_quantity("Wh", digits=3)
    bat = led.open("battery", wh, initial=m.fx_parse("5000.000", m.DEC(3)))
    load = led.open("load", wh)
    grid = led.open("grid", wh, non_negative=False)
    led.transfer(bat, load, wh, m.fx_parse("12.5", m.DEC(3)))
    try:
        led.transfer(load, bat, wh, 10**9)
        out["refused"] = None
    except m.InsufficientError as e:
        out["refused"] = str(e)
    led.hold(42, bat, wh, 1000)
    led.settle(42)
    led.begin()
    for k in range(4):
        led.transfer(grid, load, wh, 7 + k)
    led.commit()
    led.inflow(bat, wh, 99)
    led.prepare(2**64 - 1, load, wh, 5)
    records = led.journal()
    out["balances"] = [led.balance(x) for x in (bat, load, grid)]
    out["holds"] = [list(h) for h in led.holds()]
    out["totals"] = list(led.totals(wh))
    out["journal"] = len(records)
    out["digest"] = "".join("%02x" % x for x in led.digest())
    copy = m.Ledger()
    out["replayed"] = copy.replay(records)
    out["replay_same"] = copy.digest() == led.digest()
    blob = led.checkpoint()
    out["checkpoint"] = "".join("%02x" % x for x in blob[-8:])
    out["restore_same"] = m.Ledger.restore(blob).digest() == led.digest()
    return out
"""

# On the board after `mip install --target LIB`: the installed files must be what imports (a
# frozen `aii` comes before lib/ in sys.path otherwise).
# The native run comes first: compiling the pure-Python modules on the board leaves the heap
# fragmented (AII images do not freeze them, so their names are interned in RAM too), and the
# native Scheduler is one 6.5 KB block.
DEVICE = r"""
import sys, json
sys.path.insert(0, LIB)
import aii
res = {"file": aii.__file__, "native": aii.NATIVE}
try:
    import _aii
    res["native_run"] = scenario(_aii)
except ImportError:
    res["native_run"] = None
try:
    import aii._ledger, aii._sched  # submodules: aii's own attributes must not hide them
except ImportError:  # the natmod's package: no pure-Python fallback
    res["pure"] = None
else:
    _ledger, _sched = sys.modules["aii._ledger"], sys.modules["aii._sched"]
    class Pure:
        pass
    p = Pure()
    for k in ("Ledger", "DEC", "fx_parse", "InsufficientError"):
        setattr(p, k, getattr(_ledger, k))
    p.Scheduler = _sched.Scheduler
    res["pure"] = scenario(p)
print("RESULT " + json.dumps(res))
"""


def expected():
    """The scenario on the C core (aii_host, cffi on CPython)."""
    import aii_host

    ns = {}
    exec(SCENARIO, ns)  # noqa: S102 - the very text the board runs
    return json.loads(json.dumps(ns["scenario"](aii_host)))


def device_code(lib):
    return SCENARIO + DEVICE.replace("LIB", repr(lib))


def _aii_version():
    """Both packages carry the version of firmware/aii/manifest.py (aii_node has no metadata)."""
    m = re.search(r'version="([^"]+)"', (REPO / "firmware" / "aii" / "manifest.py").read_text())
    return m.group(1)


@pytest.mark.parametrize("pkg", PACKAGES)
def test_package_json_lists_the_package(pkg):
    d = REPO / "firmware" / pkg
    spec = json.loads((d / "package.json").read_text())
    modules = sorted(p.name for p in d.glob("*.py") if p.name != "manifest.py")
    assert sorted(src for _, src in spec["urls"]) == modules
    # Installed under the package name, each file at its own name.
    assert [dest for dest, _ in spec["urls"]] == [f"{pkg}/{src}" for _, src in spec["urls"]]
    assert spec["version"] == _aii_version()
    assert spec.get("deps", []) == []


def _mip(port, packages, lib):
    """`mpremote connect PORT resume mip install --target LIB ...` (no soft reset: a REPL-side
    filesystem or path setup stays); returns its output."""
    cmd = [sys.executable, "-m", "mpremote", "connect", port, "resume", "mip", "install"]
    cmd += ["--target", lib, *[str(p) for p in packages]]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0, f"{' '.join(cmd)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def _run_check(port, lib, tmp_path):
    script = tmp_path / "mip_check.py"
    script.write_text(device_code(lib))
    cmd = [sys.executable, "-m", "mpremote", "connect", port, "resume", "run", str(script)]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    m = re.search(r"^RESULT (.*)$", r.stdout, re.MULTILINE)
    assert m, f"no result from the board: exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr}"
    return json.loads(m.group(1))


def _installed(out, lib, pkg):
    names = json.loads((REPO / "firmware" / pkg / "package.json").read_text())["urls"]
    for dest, _ in names:
        assert f"Installing: {lib}/{dest}" in out, out


def test_mip_install_on_stock_micropython(tmp_path):
    if not MICROPYTHON.exists():
        pytest.fail(NO_STOCK)
    from aii_host.node import vboard

    # An empty firmware folder: nothing but what mip installs can be imported as aii.
    empty = tmp_path / "no_firmware"
    empty.mkdir()
    with vboard.spawn(
        "mip1", base=tmp_path / "boards", app="repl", micropython=MICROPYTHON, firmware=empty
    ) as board:
        out = _mip(board.port, [REPO / "firmware" / "aii" / "package.json"], "lib")
        _installed(out, "lib", "aii")
        res = _run_check(board.port, "lib", tmp_path)
    assert res["file"] == "lib/aii/__init__.py"
    assert res["native"] is False
    assert res["native_run"] is None, "stock MicroPython must have no _aii"
    assert res["pure"] == expected()


def _natmod(arch):
    """build/natmod/<arch>/package.json, built (or found up to date) by `make natmod`."""
    if not os.environ.get("MICROPY_DIR"):
        pytest.skip("MICROPY_DIR is unset: no py/dynruntime.mk to build the natmod with")
    env = dict(os.environ, ARCH=arch, PYTHON=sys.executable)
    cmd = ["bash", str(REPO / "tools" / "mpy_build.sh"), "natmod"]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, (
        f"make natmod ARCH={arch}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    )
    return REPO / "build" / "natmod" / arch / "package.json"


def test_natmod_mip_install_on_stock_micropython(tmp_path):
    if not MICROPYTHON.exists():
        pytest.fail(NO_STOCK)
    pkg = _natmod("x64")
    from aii_host.node import vboard

    empty = tmp_path / "no_firmware"
    empty.mkdir()
    with vboard.spawn(
        "mip2", base=tmp_path / "boards", app="repl", micropython=MICROPYTHON, firmware=empty
    ) as board:
        out = _mip(board.port, [pkg], "lib")
        for dest in ("_aii.mpy", "aii/__init__.py"):
            assert f"Installing: lib/{dest}" in out, out
        res = _run_check(board.port, "lib", tmp_path)
    assert res["file"] == "lib/aii/__init__.py"
    assert res["native"] is True, "aii must pick up the installed _aii.mpy"
    assert res["native_run"] == expected()
    assert res["pure"] is None, "the natmod's package carries no pure-Python fallback"


def test_mip_on_the_board_over_http(tmp_path):
    """The board's own `mip.install()` (a networked board: ESP32, Pico W) fetching the same
    package.json over HTTP from a local server: its relative urls resolve on the device too."""
    import functools
    import http.server
    import threading

    if not MICROPYTHON.exists():
        pytest.fail(NO_STOCK)
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(REPO / "firmware")
    )
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/aii/package.json"
        script = tmp_path / "install.py"
        script.write_text(f"import mip\nmip.install({url!r}, target='lib')\n" + device_code("lib"))
        r = subprocess.run(
            [str(MICROPYTHON), str(script)],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            env=dict(os.environ, MICROPYPATH=".frozen"),  # nothing but what mip installs
        )
    finally:
        server.shutdown()
        server.server_close()
    m = re.search(r"^RESULT (.*)$", r.stdout, re.MULTILINE)
    assert m, f"exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr}"
    res = json.loads(m.group(1))
    assert sorted(p.name for p in (tmp_path / "lib" / "aii").iterdir()) == sorted(
        src
        for _, src in json.loads((REPO / "firmware" / "aii" / "package.json").read_text())["urls"]
    )
    assert (res["file"], res["native"], res["native_run"]) == ("lib/aii/__init__.py", False, None)
    assert res["pure"] == expected()


def _qemu():
    built(QEMU_IMAGE, "make images")
    if shutil.which("qemu-system-arm") is None:
        pytest.fail("qemu-system-arm missing (make setup installs it)")


@pytest.fixture
def qemu_port(tmp_path):
    """MPS2_AN385 under qemu with its UART on a pty (as tests/hil/conftest.py starts it)."""
    _qemu()
    try:
        board = qemu.start(QEMU_IMAGE, tmp_path / "qemu.log")
    except qemu.QemuError as e:
        pytest.fail(f"qemu: {e}")
    with board:
        yield board.port


def _free_bytes(port):
    cmd = [sys.executable, "-m", "mpremote", "connect", port, "resume", "exec"]
    cmd += ["import os; s = os.statvfs('/'); print('FREE', s[0] * s[3])"]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)
    m = re.search(r"FREE (\d+)", r.stdout)
    assert m, f"statvfs on the board failed: {r.stdout}\n{r.stderr}"
    return int(m.group(1))


def _as_mpy(pkg_dir, out, march):
    """The package precompiled with mpy-cross for `march`, as a package.json of .mpy files in
    `out` (what a small board gets: compiling 40 KB modules on the board needs more heap in one
    piece than a 140 KiB heap keeps after a run)."""
    spec = json.loads((pkg_dir / "package.json").read_text())
    urls = []
    for dest, src in spec["urls"]:
        mpy = Path(src).with_suffix(".mpy").name
        cmd = [sys.executable, "-m", "mpy_cross", f"-march={march}", "-o", str(out / mpy)]
        r = subprocess.run([*cmd, str(pkg_dir / src)], check=False, capture_output=True, text=True)
        assert r.returncode == 0, f"mpy-cross {src}: {r.stderr}"
        urls.append([str(Path(dest).with_suffix(".mpy")), mpy])
    (out / "package.json").write_text(json.dumps(dict(spec, urls=urls)))
    return out / "package.json"


def test_mip_install_on_qemu(qemu_port, tmp_path):
    pkg = _as_mpy(REPO / "firmware" / "aii", tmp_path, "armv7m")
    spec = json.loads(pkg.read_text())
    need = sum((tmp_path / src).stat().st_size for _, src in spec["urls"])
    free = _free_bytes(qemu_port)
    # littlefs: a block per file's tail, directories, metadata pairs
    assert free >= need * 1.15, (
        f"the image's RAM filesystem has {free} bytes free, the aii package needs about "
        f"{int(need * 1.15)}: build it with a larger AII_RAMDISK_SIZE "
        "(set it in boards/MPS2_AN385/mpconfigboard.mk; boards/common-qemu/aii.mk)"
    )
    out = _mip(qemu_port, [pkg], "/lib")
    for dest, _ in spec["urls"]:
        assert f"Installing: /lib/{dest}" in out, out
    res = _run_check(qemu_port, "/lib", tmp_path)
    assert res["file"] == "/lib/aii/__init__.mpy"
    assert res["native"] is True  # the image's frozen _aii, re-exported by the installed package
    assert res["native_run"] == res["pure"]
    assert res["pure"] == expected()
