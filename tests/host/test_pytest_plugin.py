# SPDX-License-Identifier: MIT
"""The aii pytest plugin (aii_host/testing, entry point pytest11) as a user meets it: pytest run
on examples/pytest-aii (a pump node's own tests) against a fresh simulated board, inert without
--aii-port, and a failing expect() that explains itself (the buffer, the log and its path)."""

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pytest-aii"


def pytest_in(folder, *args):
    # The plugin comes from aii-host's entry point, not from any -p or conftest.
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return r.returncode, r.stdout + r.stderr


def test_the_example_project_passes_on_a_simulated_board():
    rc, out = pytest_in(EXAMPLE, "--aii-port", "vboard")
    assert rc == 0 and "4 passed" in out, out


def test_the_plugin_is_inert_without_a_port():
    rc, out = pytest_in(EXAMPLE)
    assert rc == 0 and "4 skipped" in out and "no --aii-port" in out, out


def test_a_failing_expect_shows_the_buffer_and_the_log(tmp_path):
    (tmp_path / "pytest.ini").write_text(f"[pytest]\naii_config = {EXAMPLE / 'node_config.json'}\n")
    (tmp_path / "test_x.py").write_text(
        "def test_x(aii_node):\n"
        '    aii_node.write("ledger\\n")\n'
        '    aii_node.expect("a line the node never prints", timeout=1)\n'
    )
    rc, out = pytest_in(tmp_path, "--aii-port", "vboard")
    assert rc == 1, out
    assert "aii_node.expect(b'a line the node never prints') timed out after 1 s" in out, out
    assert "well" in out  # the buffer: what the node printed for `ledger`
    assert "(whole log: " in out and "aii_node log (" in out, out
    # A bad option is one line from pytest, not a traceback.
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    rc, out = pytest_in(tmp_path, "--aii-port", "vboard")
    assert rc != 0 and "give it --aii-config FILE" in out and "Traceback" not in out, out
