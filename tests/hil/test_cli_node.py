# SPDX-License-Identifier: MIT
"""The node commands of the `aii` CLI against a simulated board: vboard, deploy, node-status,
console (pipe mode), and deploy's mpremote command for a real port (--dry-run)."""

import json
import os
import subprocess
import sys
import time

import pytest
from hil_util import CONFIG, HERE


def _aii(*args, env=None, stdin=None, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "aii_host", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


@pytest.fixture
def board(tmp_path):
    """`aii vboard` started with no config: the node cannot boot until deploy gives it one."""
    env = dict(os.environ, AII_VBOARD_DIR=str(tmp_path / "boards"), AII_KEYS_DIR=str(tmp_path))
    p = subprocess.Popen(
        [sys.executable, "-m", "aii_host", "vboard", "--id", "cli1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    info = json.loads(p.stdout.readline())
    yield info["port"], env, tmp_path
    p.terminate()
    p.wait(10)


def test_deploy_then_status_then_console(board):
    """Deploy, read, use the console; deploy again to the locked node; change a setting with
    the key (issue 15)."""
    port, env, tmp = board
    # Deploy must make a key and keep the host's copy; console transfers are on for the pipe.
    cfg = dict(CONFIG, key="", console_writes=1)
    (tmp / "cfg.json").write_text(json.dumps(cfg))
    r = _aii("deploy", "--port", port, "--config", str(tmp / "cfg.json"), env=env)
    assert r.returncode == 0, r.stderr
    assert "simulated board" in r.stdout and "new node key" in r.stdout
    key = (tmp / "hil1.key").read_text().strip()
    on_board = json.loads((tmp / "boards" / "cli1" / "aii_node.json").read_text())
    assert on_board["key"] == key and len(key) == 64
    deadline = time.monotonic() + 15
    while True:
        st = _aii("node-status", "--port", port, env=env)
        if st.returncode == 0 or time.monotonic() > deadline:
            break
    assert st.returncode == 0, st.stderr
    assert "node hil1" in st.stdout and "pump" in st.stdout and "grid" in st.stdout
    # Balances in the node's own unit (Wh has 3 digits): decimals, raw units only with --raw.
    grid = next(ln for ln in st.stdout.splitlines() if "│ grid " in ln)
    assert "1000.000" in grid, st.stdout
    raw = _aii("node-status", "--port", port, "--raw", env=env)
    grid = next(ln for ln in raw.stdout.splitlines() if "│ grid " in ln)
    assert raw.returncode == 0 and "1000000" in grid and "balance (raw units)" in raw.stdout
    out = _aii("console", "--port", port, env=env, stdin="transfer grid load Wh 2\nledger\n")
    assert out.returncode == 0, out.stderr
    assert "ok: journal seq" in out.stdout
    assert "998.000" in out.stdout and "2.000" in out.stdout
    assert "@1|" not in out.stdout  # frames hidden by default
    # Deploying again to the running node, whose console is locked: the maintenance request
    # must be signed with the key it runs with. A new key (the config has none) is refused...
    r = _aii("deploy", "--port", port, "--config", str(tmp / "cfg.json"), env=env)
    assert r.returncode == 1 and "console is locked and refused" in r.stderr, r.stderr
    assert "--unlock-key" in r.stderr
    assert (tmp / "hil1.key").read_text().strip() == key  # a key never deployed is not kept
    # ... the running one unlocks it, and the node restarts with the new key (kept now).
    r = _aii(
        "deploy", "--port", port, "--config", str(tmp / "cfg.json"), "--unlock-key", key, env=env
    )
    assert r.returncode == 0, r.stderr
    assert "app restarted" in r.stdout
    key = (tmp / "hil1.key").read_text().strip()
    # Settings (issue 15): the console reads them but changes none; a signed config_set
    # (`aii node-config`) does; `aii node-unlock` lets Ctrl-C through the locked console.
    out = _aii("console", "--port", port, env=env, stdin="config console_writes 0\n")
    assert "the console does not change settings" in out.stdout, out.stdout
    r = _aii("node-config", "--port", port, "--key", "00" * 32, "console_writes", "0", env=env)
    assert r.returncode == 1 and "E_AUTH" in r.stderr, r.stderr
    r = _aii("node-config", "--port", port, "--key", key, "console_writes", "0", env=env)
    assert r.returncode == 0 and r.stdout.strip() == "ok: console_writes 0", r.stderr
    r = _aii("node-config", "--port", port, "--key", key, "tcp_host", "0.0.0.0", env=env)
    assert r.returncode == 1 and "settable keys" in r.stderr, r.stderr
    out = _aii("console", "--port", port, env=env, stdin="transfer grid load Wh 1\n")
    assert "console transfers are off" in out.stdout, out.stdout
    r = _aii("node-unlock", "--port", port, "--key", key, "--json", env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["lock"] == "maintenance", r.stderr


def test_node_status_on_a_missing_port_fails_cleanly():
    r = _aii("node-status", "--port", "/dev/does-not-exist")
    assert r.returncode == 1
    assert r.stderr.startswith("aii: cannot open /dev/does-not-exist")


def test_deploy_dry_run_names_every_file(tmp_path):
    env = dict(os.environ, AII_KEYS_DIR=str(tmp_path))
    r = _aii(
        "deploy",
        "--port",
        "/dev/ttyACM9",
        "--config",
        str(HERE / "node_config.json"),
        "--dry-run",
        env=env,
    )
    assert r.returncode == 0, r.stderr
    cmd = r.stdout.split()
    assert cmd[1:5] == ["-m", "mpremote", "connect", "/dev/ttyACM9"]
    assert ":aii_node.json" in cmd and ":main.py" in cmd and cmd[-1] == "reset"
    assert any(c.endswith("/aii_node") for c in cmd) and any(c.endswith("/aii") for c in cmd)


def test_deploy_refuses_a_key_without_config():
    r = _aii("deploy", "--port", "/dev/ttyACM9", "--key", "00" * 32, "--dry-run")
    assert r.returncode == 1 and "--key needs --config" in r.stderr


def test_demo_fleet_transfer_and_injected_violation():
    import re

    r = _aii("demo", "--seconds", "0.2", timeout=180)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    # The two-phase transfer went through the coordinator and committed.
    assert re.search(
        r"transfer north:battery -> south:battery 25\.000 Wh: tx \d+ committed", out
    ), out
    # Every node's row: the final table shows the exact per-node totals in the node's unit
    # (Wh, 3 decimals): 25 Wh moved from north to south, 7 Wh made up on east; the meters move
    # within a node only.
    rows = {}
    for ln in out.splitlines():
        cells = [c.strip() for c in ln.strip("│┃ ").split("│")]
        if len(cells) >= 8 and cells[0] in ("north", "south", "east") and cells[1] == "online":
            rows[cells[0]] = cells[7]
    assert rows == {"north": "475.000", "south": "125.000", "east": "257.000"}, (rows, out)
    # Verdicts: OK twice (every node online and verified), then the injected credit found,
    # located and isolated: a violation naming east.
    assert out.count("verdict: OK, epoch") == 2, out
    assert "verdict: VIOLATION" in out and "(exit 2)" in out
    assert "east: violation: Wh off by +7.000 Wh" in out
    eq = next(ln for ln in out.splitlines() if ln.strip("│ ").startswith("Wh") and "+7.000" in ln)
    assert [c.strip() for c in eq.strip("│ ").split("│")] == [
        "Wh",
        "857.000",
        "0.000",
        "850.000",
        "0.000",
        "0.000",
        "+7.000",
    ], eq
    assert "a new transfer to east is refused: node isolated" in out
    # Its last line says how to watch the same fleet live (issue 19).
    assert "aii dashboard --demo" in out.strip().splitlines()[-1] or "aii dashboard --demo" in (
        " ".join(out.strip().splitlines()[-2:])
    ), out[-500:]
    assert re.search(r"audit trail: \d+ records, hash chain intact", out), out
