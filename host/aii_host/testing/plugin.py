# SPDX-License-Identifier: MIT
"""The `aii` pytest plugin (entry point `pytest11`: loaded wherever aii-host is installed, inert
unless `--aii-port` is given): the `aii_node` fixture for tests of your own firmware and
configuration against a simulated board, the MicroPython unix port, a qemu image or a real
board, and `aii_start` for tests that start boards of their own (docs/testing.md).

    pytest --aii-port vboard --aii-config node.json      # a fresh simulated board
    pytest --aii-port unix --aii-config node.json        # the unix port behind the same pty
    pytest --aii-port qemu --aii-config node.json        # build/mps2-an385/firmware.elf
    pytest --aii-port /dev/ttyACM0 --aii-key n1.key      # a board already deployed
    pytest --aii-port vboard --aii-port unix ...         # every test on each (parametrized)
"""

import json
import shutil
from pathlib import Path

import pytest

from .targets import KINDS, TargetUnavailable

_FILES = ("config", "firmware", "image")  # ini values that are paths (relative to the ini)


def pytest_addoption(parser):
    g = parser.getgroup("aii", "AII node under test (the aii_node fixture)")
    g.addoption(
        "--aii-port",
        action="append",
        default=[],
        help="the node: vboard (a fresh simulated board), unix (the MicroPython unix port "
        "behind one), qemu[:BOARD] (a qemu image), a serial device, vboard:NAME, "
        "tcp:HOST:PORT or auto. Repeat it to run each test on each. Without it the aii_node "
        "tests are skipped",
    )
    g.addoption("--aii-config", help="node config (JSON) for a board the plugin starts")
    g.addoption("--aii-key", help="the node's key (hex or a file; default: the config's)")
    g.addoption("--aii-firmware", help="firmware folder on the started board's sys.path")
    g.addoption("--aii-app", help="module or .py file the started board runs (aii_node.main)")
    g.addoption("--aii-micropython", help="unix port binary for --aii-port unix")
    g.addoption(
        "--aii-image",
        help="qemu image for --aii-port qemu (default: build/<board>/firmware.elf of the "
        "checkout or the current folder)",
    )
    g.addoption(
        "--aii-qemu-board",
        help="qemu board of the image (MPS2_AN385 unless the ini's aii_qemu_board says)",
    )
    g.addoption(
        "--aii-fresh",
        action="store_true",
        default=None,
        help="a fresh board for each test (default: one per session) where the plugin starts it",
    )
    for name, what in (
        ("aii_config", "node config for a started board (relative to the ini file)"),
        ("aii_firmware", "firmware folder for a started board (relative to the ini file)"),
        ("aii_app", "module or .py file a started board runs"),
        ("aii_image", "qemu image for --aii-port qemu (relative to the ini file)"),
        ("aii_qemu_board", "qemu board of the image (MPS2_AN385)"),
    ):
        parser.addini(name, what)
    parser.addini("aii_fresh", "a fresh board for each test (true/false)", type="bool")


def _opt(config, name):
    """--aii-NAME, else the ini's aii_NAME (a path relative to the ini file's folder)."""
    v = config.getoption(f"--aii-{name.replace('_', '-')}")
    if v:
        return v
    v = config.getini(f"aii_{name}") if name in (*_FILES, "app", "qemu_board") else None
    if v and name in _FILES:
        base = Path(config.inipath).parent if config.inipath else Path(config.rootpath)
        return str(base / v)
    return v or None


def _kind(port):
    """The board kind the plugin starts for `port` ("qemu:BOARD" too), or None (a node
    already running)."""
    kind = port.split(":", 1)[0]
    return kind if kind in KINDS and (kind == "qemu" or ":" not in port) else None


def pytest_configure(config):
    """Options checked before any test runs: a mistake is one line from pytest."""
    from ..node import qemu

    board = config.getoption("--aii-qemu-board")
    if board and board not in qemu.BOARDS:
        raise pytest.UsageError(
            f"--aii-qemu-board: unknown qemu board {board!r} (known: {', '.join(qemu.BOARDS)})"
        )
    ports = config.getoption("--aii-port")
    if not ports:
        return
    from ..core._errors import AIIError
    from ..core.keys import read_key

    key_text = config.getoption("--aii-key")
    cfg_path = _opt(config, "config")
    try:
        if key_text:
            read_key(key_text)
        if cfg_path:
            cfg = json.loads(Path(cfg_path).read_text())
            if not isinstance(cfg, dict):
                raise ValueError("not a JSON object")
    except (OSError, ValueError, AIIError) as e:
        what = "--aii-key" if key_text and not cfg_path else "--aii-config/--aii-key"
        raise pytest.UsageError(f"{what}: {e}") from None
    for port in ports:
        kind = _kind(port)
        if kind and not cfg_path:
            raise pytest.UsageError(
                f"--aii-port {port} starts a board: give it --aii-config FILE (or aii_config "
                "in the ini file)"
            )
        if kind == "qemu":
            board = _qemu_board(config, port)
            if board not in qemu.BOARDS:
                raise pytest.UsageError(
                    f"--aii-port {port}: unknown qemu board {board!r} (known: "
                    f"{', '.join(qemu.BOARDS)})"
                )


def pytest_generate_tests(metafunc):
    ports = metafunc.config.getoption("--aii-port")
    if ports and "aii_target" in metafunc.fixturenames:
        metafunc.parametrize("aii_target", ports, indirect=True)


def _fresh(config):
    v = config.getoption("--aii-fresh")
    return bool(v if v is not None else config.getini("aii_fresh"))


def _scope(fixture_name, config):
    return "function" if _fresh(config) else "session"


def _qemu_board(config, port):
    return port.split(":", 1)[1] if ":" in port else _opt(config, "qemu_board") or "MPS2_AN385"


def _micropython(config):
    exe = config.getoption("--aii-micropython")
    if exe:
        return exe
    from ..core import paths

    repo = paths.checkout()
    cand = repo / "build" / "unix" / "micropython" if repo else None
    if cand is not None and cand.exists():
        return str(cand)
    found = shutil.which("micropython")
    if not found:
        raise TargetUnavailable(
            "--aii-port unix: no MicroPython unix port (give --aii-micropython EXE)"
        )
    return found


def _image(config, board):
    """--aii-image, else build/<board>/firmware.elf (`make firmware BOARD=...`) of the checkout
    aii-host runs from, else of the current folder."""
    image = _opt(config, "image")
    if image:
        return Path(image)
    from ..core import paths
    from ..node import qemu

    repo = paths.checkout()
    cands = [qemu.image(board, r / "build") for r in (repo, Path.cwd()) if r is not None]
    return next((c for c in cands if c.exists()), cands[0])


def _config(config, key_text):
    """The node config a started board runs: --aii-config with --aii-key's key, or its own,
    or a fresh one for the session."""
    from ..core import keys

    cfg = json.loads(Path(_opt(config, "config")).read_text())
    if key_text:
        cfg["key"] = keys.read_key(key_text).hex()
    elif not cfg.get("key"):
        cfg = keys.new_config(cfg.get("node", "node"), cfg)
    return cfg


def start_board(config, port, base, node_config=None, **kw):
    """A ready Dut owning a board the plugin starts for `port` (vboard, unix, qemu[:BOARD]) in
    the folder `base`; options give what `kw` leaves out. TargetUnavailable when this machine
    lacks what it needs."""
    from . import targets

    kind = _kind(port)
    node_config = node_config or _config(config, config.getoption("--aii-key"))
    kw.setdefault("firmware", _opt(config, "firmware"))
    app = kw.pop("app", None) or _opt(config, "app")
    if app and str(app).endswith(".py"):
        app = str(Path(app).resolve())
    if kind == "unix":
        kw.setdefault("micropython", _micropython(config))
    if kind == "qemu":
        kw.setdefault("qemu_board", _qemu_board(config, port))
        kw.setdefault("image", _image(config, kw["qemu_board"]))
    kw.setdefault("log_path", Path(base) / "aii_node.log")
    return targets.start(kind, base, node_config, app=app, **kw)


@pytest.fixture(scope=_scope)
def aii_target(request, tmp_path_factory):
    """The node under test: the port for a node already running, or a targets.Board the plugin
    started (for the session, or per test with --aii-fresh). Parametrized over --aii-port."""
    config = request.config
    port = getattr(request, "param", None)
    if not port:
        pytest.skip("no --aii-port: the aii_node tests need a node (--aii-port vboard, ...)")
    if not _kind(port):
        yield port
        return
    base = tmp_path_factory.mktemp("aii_board")
    try:
        dut = start_board(config, port, base)
    except TargetUnavailable as e:
        pytest.skip(f"--aii-port {port}: {e}")
    # The fixture's connection goes; each test opens its own (aii_node) to the running board.
    dut.owns_board = False
    dut.close()
    try:
        yield dut.board
    finally:
        dut.board.stop()


def _key(config):
    from ..core import keys

    key_text = config.getoption("--aii-key")
    if key_text:
        return keys.read_key(key_text)
    cfg_path = _opt(config, "config")
    if cfg_path:
        return bytes.fromhex(json.loads(Path(cfg_path).read_text())["key"])
    return None  # reads only; a signed request says it needs the key


@pytest.fixture
def aii_node(request, aii_target, tmp_path):
    """The node under test (aii_host.testing.Dut): write(), expect(), request(), console(),
    reset(), hard_reset(); its output is logged to tmp_path/aii_node.log and shown when the
    test fails."""
    from . import open_dut

    if isinstance(aii_target, str):
        dut = open_dut(aii_target, _key(request.config), tmp_path / "aii_node.log")
    else:
        dut = open_dut(aii_target.port, aii_target.key, tmp_path / "aii_node.log", aii_target)
    _note(request.node, dut)
    try:
        dut.wait_ready()
        dut.client.drain(0.05)
        dut.buffer.clear()
        yield dut
    finally:
        dut.close()


@pytest.fixture
def aii_start(request, tmp_path):
    """Boards of a test's own: `aii_start(port, config=None, **kw)` returns a ready Dut. For
    vboard, unix or qemu[:BOARD] a fresh board running `config` (a dict with a `key`; default
    --aii-config's) and targets.start's keyword arguments (app, files, micropython, image,
    name, timeout, ...), stopped when the test ends; for any other port (a device, vboard:NAME,
    tcp:...) the node already running there (`key=`, default --aii-key's). Their output is
    shown when the test fails, as aii_node's."""
    from . import open_dut

    opened = []

    def start(port, config=None, **kw):
        base = tmp_path / f"aii_board{len(opened)}"
        if _kind(port):
            dut = start_board(request.config, port, base, config, **kw)
            opened.append(dut)
            _note(request.node, dut)
            return dut
        key = kw.pop("key", None) or _key(request.config)
        base.mkdir()
        dut = open_dut(port, key, base / "aii_node.log")
        opened.append(dut)
        _note(request.node, dut)  # its log is shown even when it never answers
        dut.name = kw.pop("name", None) or port
        dut.wait_ready(kw.pop("timeout", 20.0))
        dut.client.drain(0.05)
        dut.buffer.clear()
        return dut

    try:
        yield start
    finally:
        for dut in opened:
            dut.close()


def _note(item, dut):
    if not hasattr(item, "_aii_duts"):
        item._aii_duts = []
    item._aii_duts.append(dut)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.passed or rep.when == "setup" and rep.skipped:
        return
    for dut in getattr(item, "_aii_duts", ()):
        try:
            text = dut.log_path.read_bytes()[-3000:].decode("utf-8", "replace")
        except (OSError, AttributeError):
            continue
        where = f"{dut.name}: {dut.log_path}, last 3000 bytes"
        rep.sections.append((f"aii_node log ({where})", text))
        board_log = getattr(dut.board, "log", None)
        if board_log is not None:
            rep.sections.append(("aii_node board", f"board process log: {board_log}"))
