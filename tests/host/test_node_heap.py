# SPDX-License-Identifier: MIT
"""tools/node_heap.py on the venv's stock MicroPython (docs/protocol.md section 10): the node
answers every request it measures, its console reader allocates only the line it returns, an
idle console job allocates nothing, and the tool measures an older firmware as well."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "node_heap.py"


def _heap(*args):
    r = subprocess.run(
        [sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def test_node_heap_on_micropython():
    got = _heap("--target", "mpy")
    assert got["target"] == "mpy" and got["reader_ok"]
    assert set(got["alloc"]) == set(got["said"]) and len(got["alloc"]) == 8
    for name, head in got["said"].items():
        if name == "console_status":
            assert head.startswith("auth_seq"), head
        else:
            assert "|ok|" in head, (name, head)  # answered, not refused for want of memory
    assert got["alloc_console_idle"] == 0
    # The 144-byte line itself (bytes, 2 heap blocks past its header) and a memoryview of the
    # buffer: nothing per byte (a byte at a time, the older reader allocated 23 KB for it).
    assert 0 < got["alloc_reader_line"] <= 2 * 144
    assert 0 < got["mem_free_boot"] < got["mem_free_start"] <= got["heap"]


def test_node_heap_tells_a_firmware_folder_without_a_node(tmp_path):
    r = subprocess.run(
        [sys.executable, str(TOOL), "--target", "mpy", "--firmware", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode != 0 and r.stderr.startswith("node_heap: no result from the target: ")
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1
