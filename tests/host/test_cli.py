# SPDX-License-Identifier: MIT
"""The `aii` command line, run as a person would (python -m aii_host == the aii script)."""

import subprocess
import sys

import aii_host
import pytest


def _aii(*args, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "aii_host", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_version():
    out = _aii("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == "aii " + aii_host.__version__


def test_help_teaches():
    out = _aii("--help")
    assert out.returncode == 0
    for word in ("sched-demo", "demo", "examples:", "aii sched-demo --seconds 5"):
        assert word in out.stdout
    # The exit statuses monitoring relies on are documented where people look first.
    for word in ("exit status", "0   OK", "1   WARNING", "2   CRITICAL", "3   UNKNOWN", "64"):
        assert word in out.stdout
    sub = _aii("sched-demo", "--help")
    assert sub.returncode == 0
    assert "--seconds" in sub.stdout and "--overhead-us" in sub.stdout and "example:" in sub.stdout


def test_no_command_prints_help():
    # A usage error: 64, distinct from the verdicts 0-3 (issue 12; argparse's own 2 would
    # read as CRITICAL to a monitoring tool).
    out = _aii()
    assert out.returncode == 64
    assert "usage: aii" in out.stdout


def test_bad_option():
    out = _aii("sched-demo", "--seconds", "soon")
    assert out.returncode == 64
    assert "argument --seconds: must be a number > 0, got 'soon'" in out.stderr
    out = _aii("sched-demo", "--no-such-option")
    assert out.returncode == 64 and "unrecognized arguments" in out.stderr


@pytest.mark.parametrize("cmd", ["demo", "sched-demo"])
def test_demo_runs_and_reports(cmd):
    out = _aii(cmd, "--seconds", "0.3")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for word in (
        "tasks (times in us)",
        "admission analysis",
        "sensor",
        "control",
        "button",
        "logger",
    ):
        assert word in text
    # the summary line counts the jobs that ran: 0.3 s of a 10 ms task is far more than 5
    summary = [line for line in text.splitlines() if line.startswith("priorities:")]
    assert summary, text
    jobs = int(summary[0].split(" jobs")[0].rsplit(" ", 1)[1])
    assert jobs > 5


def test_demo_refused_set_is_a_clean_error():
    # An absurd overhead makes the demo set unschedulable: a message, not a traceback.
    out = _aii("sched-demo", "--seconds", "0.1", "--overhead-us", "20000")
    assert out.returncode == 1
    assert out.stderr.startswith("aii: task ")
    assert "worst-case response" in out.stderr
    assert "Traceback" not in out.stderr


def test_keygen_makes_a_fresh_private_key_and_config_per_node(tmp_path):
    """Issue 15: examples stop sharing one key. Each `aii keygen` makes a new key, readable by
    its user only, and the node's config from a template with its name and key replaced."""
    import json
    import os
    import stat
    from pathlib import Path

    hil = Path(__file__).resolve().parents[1] / "hil" / "node_config.json"
    out = tmp_path / "keys"
    for node in ("n1", "n2"):
        r = _aii("keygen", node, "--config", str(hil), "--out", str(out))
        assert r.returncode == 0, r.stderr
        assert f'name = "{node}"' in r.stdout and f'key_file = "{out / node}.key"' in r.stdout
    k1, k2 = ((out / f"n{i}.key").read_text().strip() for i in (1, 2))
    c1 = json.loads((out / "n1.json").read_text())
    template = json.loads(hil.read_text())
    assert len(k1) == 64 and k1 != k2 and k1 != template["key"]
    assert c1["node"] == "n1" and c1["key"] == k1 and c1["accounts"] == template["accounts"]
    for f in out.iterdir():
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f
    # A key in use is never replaced by accident; --force does it; --json for programs.
    r = _aii("keygen", "n1", "--out", str(out))
    assert r.returncode == 1 and "exists: --force replaces it" in r.stderr
    assert (out / "n1.key").read_text().strip() == k1
    r = _aii("keygen", "n1", "--out", str(out), "--force", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["key_file"] == str(out / "n1.key")
    assert (out / "n1.key").read_text().strip() != k1
    r = _aii("keygen", "../n1", "--out", str(out))
    assert r.returncode == 1 and "must be a name of letters" in r.stderr
