# SPDX-License-Identifier: MIT
"""tools/node_budgets.py: a node's budgets from a calibration run (docs/protocol.md, section 8)."""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

from mp_util import micropython, need_micropython

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "node_budgets.py"
MICROPYTHON = micropython()


def _tool(*args):
    return subprocess.run(
        [sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=300, check=False
    )


def test_budgets_are_exec_max_times_the_margin(tmp_path):
    need_micropython()
    cfg = tmp_path / "node.json"
    spec = json.loads((ROOT / "tests" / "hil" / "node_config.json").read_text())
    # The pure-Python port on stock MicroPython is slow, and this machine shared: periods that
    # budgets of three times what the run measures fit.
    spec["console_period_us"] = 500_000
    spec["heartbeat_ms"] = 500
    cfg.write_text(json.dumps(spec))
    out = _tool(
        "--config", str(cfg), "--on", MICROPYTHON, "--seconds", "1", "--runs", "2", "--margin", "3",
        "--fixed-overhead", "--write",
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    rows = {}
    for line in out.stdout.splitlines()[1:]:
        parts = line.split()
        if len(parts) == 6 and parts[2].isdigit():
            rows[parts[0]] = [int(x) if x.isdigit() else x for x in parts[1:]]
    assert set(rows) == {"overhead_us", "heartbeat", "console", "pump", "gc.collect()"}
    new = json.loads(cfg.read_text())
    for name, key in (("heartbeat", "heartbeat_budget_us"), ("console", "console_budget_us")):
        _old, ex, now, jobs, _over = rows[name]
        assert jobs > 0 and now == max(100, math.ceil(ex * 3 / 100) * 100) == new[key]
    assert "2 x 1 s on" in out.stdout
    assert new["tasks"][0]["budget_us"] == rows["pump"][2]
    assert new["gc_idle_us"] == rows["gc.collect()"][2] > 0
    was, measured, now, _, _ = rows["overhead_us"]
    assert was == spec.get("overhead_us", "auto")
    assert now == max(100, math.ceil(measured * 3 / 100) * 100) == new["overhead_us"]
    kept = {"tasks", "gc_idle_us", "overhead_us"}
    assert {k: v for k, v in new.items() if "budget" not in k and k not in kept} == {
        k: v for k, v in spec.items() if "budget" not in k and k not in kept
    }


def test_budgets_the_node_would_refuse_are_not_written(tmp_path):
    need_micropython()
    cfg = tmp_path / "node.json"
    shutil.copy(ROOT / "tests" / "hil" / "node_config.json", cfg)
    before = cfg.read_text()
    # x10000: every budget outgrows its period.
    out = _tool(
        "--config", str(cfg), "--on", MICROPYTHON, "--seconds", "0.5", "--margin", "1e4", "--write"
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stderr.startswith("node_budgets: the node would refuse these budgets: ")
    assert out.stderr.rstrip().endswith("nothing written")
    assert "Traceback" not in out.stderr and cfg.read_text() == before


def test_bad_input_is_one_line(tmp_path):
    out = _tool("--config", str(tmp_path / "missing.json"), "--on", "x")
    assert out.returncode == 1 and out.stderr.startswith("node_budgets: cannot read")
    cfg = tmp_path / "c.json"
    shutil.copy(ROOT / "tests" / "hil" / "node_config.json", cfg)
    out = _tool("--config", str(cfg), "--on", str(tmp_path / "no-such-board"), "--seconds", "0.1")
    assert out.returncode == 1 and "Traceback" not in out.stderr
