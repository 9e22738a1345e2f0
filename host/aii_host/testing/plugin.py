# SPDX-License-Identifier: MIT
"""The `aii` pytest plugin (entry point `pytest11`: loaded wherever aii-host is installed, inert
unless `--aii-port` is given): the `aii_node` fixture for tests of your own firmware and
configuration against a simulated board, the MicroPython unix port or a real board
(docs/testing.md).

    pytest --aii-port vboard --aii-config node.json      # a fresh simulated board
    pytest --aii-port unix --aii-config node.json        # the unix port behind the same pty
    pytest --aii-port /dev/ttyACM0 --aii-key n1.key      # a board already deployed
    pytest --aii-port vboard:n1 --aii-key n1.key         # a simulated board already running
"""

import json
import shutil
from pathlib import Path

import pytest

_STARTED = ("vboard", "unix")


def pytest_addoption(parser):
    g = parser.getgroup("aii", "AII node under test (the aii_node fixture)")
    g.addoption(
        "--aii-port",
        help="the node: vboard (a fresh simulated board), unix (the MicroPython unix port "
        "behind one), a serial device, vboard:NAME, tcp:HOST:PORT or auto. Without it the "
        "aii_node tests are skipped",
    )
    g.addoption("--aii-config", help="node config (JSON) for a board the plugin starts")
    g.addoption("--aii-key", help="the node's key (hex or a file; default: the config's)")
    g.addoption("--aii-firmware", help="firmware folder on the started board's sys.path")
    g.addoption("--aii-app", help="module or .py file the started board runs (aii_node.main)")
    g.addoption("--aii-micropython", help="unix port binary for --aii-port unix")
    for name, what in (
        ("aii_config", "node config for a started board (relative to the ini file)"),
        ("aii_firmware", "firmware folder for a started board (relative to the ini file)"),
        ("aii_app", "module or .py file a started board runs"),
    ):
        parser.addini(name, what)


def _opt(config, name):
    """--aii-NAME, else the ini's aii_NAME (a path relative to the ini file's folder)."""
    v = config.getoption(f"--aii-{name}")
    if v:
        return v
    v = config.getini(f"aii_{name}") if name in ("config", "firmware", "app") else None
    if v and name != "app":
        base = Path(config.inipath).parent if config.inipath else Path(config.rootpath)
        return str(base / v)
    return v or None


def pytest_configure(config):
    """Options checked before any test runs: a mistake is one line from pytest."""
    port = config.getoption("--aii-port")
    if not port:
        return
    if port == "qemu":
        raise pytest.UsageError("--aii-port qemu is not supported by the plugin yet")
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
    if port in _STARTED and not cfg_path:
        raise pytest.UsageError(
            f"--aii-port {port} starts a board: give it --aii-config FILE (or aii_config in "
            "the ini file)"
        )


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
        pytest.skip("--aii-port unix: no MicroPython unix port (give --aii-micropython EXE)")
    return found


@pytest.fixture(scope="session")
def aii_target(request, tmp_path_factory):
    """(port, key, board or None, board log or None) of the node under test; a board the
    plugin starts (vboard, unix) runs for the whole session."""
    config = request.config
    port = config.getoption("--aii-port")
    if not port:
        pytest.skip("no --aii-port: the aii_node tests need a node (--aii-port vboard, ...)")
    from ..core import keys

    cfg_path = _opt(config, "config")
    key_text = config.getoption("--aii-key")
    if port not in _STARTED:
        if key_text:
            key = keys.read_key(key_text)
        elif cfg_path:
            key = bytes.fromhex(json.loads(Path(cfg_path).read_text())["key"])
        else:
            key = None  # reads only; a signed request says it needs the key
        yield port, key, None, None
        return
    from ..node import vboard

    cfg = json.loads(Path(cfg_path).read_text())
    if key_text:
        cfg["key"] = keys.read_key(key_text).hex()
    elif not cfg.get("key"):
        cfg = keys.new_config(cfg.get("node", "node"), cfg)  # a fresh key for this session
    key = bytes.fromhex(cfg["key"])
    base = tmp_path_factory.mktemp("aii_boards")
    board_id = cfg.get("node", "node")
    d = vboard.board_dir(board_id, base)
    d.mkdir(parents=True)
    (d / "aii_node.json").write_text(json.dumps(cfg))
    app = _opt(config, "app")
    if app and app.endswith(".py"):
        app = str(Path(app).resolve())
    log = base / "board.log"
    board = vboard.spawn(
        board_id,
        base=base,
        log=log,
        app=app,
        firmware=_opt(config, "firmware"),
        micropython=_micropython(config) if port == "unix" else None,
    )
    try:
        yield board.port, key, board, log
    finally:
        board.stop()


@pytest.fixture
def aii_node(request, aii_target, tmp_path):
    """The node under test (aii_host.testing.Dut): write(), expect(), request(), console(),
    reset(); its output is logged to tmp_path/aii_node.log and shown when the test fails."""
    from . import open_dut

    port, key, board, _ = aii_target
    dut = open_dut(port, key, tmp_path / "aii_node.log", board)
    request.node._aii_dut = dut
    try:
        dut.wait_ready()
        dut.client.drain(0.05)
        dut.buffer.clear()
        yield dut
    finally:
        dut.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    dut = getattr(item, "_aii_dut", None)
    if dut is None or rep.passed or rep.when == "setup" and rep.skipped:
        return
    try:
        text = dut.log_path.read_bytes()[-3000:].decode("utf-8", "replace")
    except OSError:
        return
    rep.sections.append((f"aii_node log ({dut.log_path}, last 3000 bytes)", text))
    board_log = (item.funcargs.get("aii_target") or (None,) * 4)[3]
    if board_log is not None:
        rep.sections.append(("aii_node board", f"board process log: {board_log}"))
