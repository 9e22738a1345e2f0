# SPDX-License-Identifier: MIT
"""The aii pytest plugin (aii_host/testing, entry point pytest11) as a user meets it: pytest run
on examples/pytest-aii (a pump node's own tests) against a fresh simulated board and the qemu
image, inert without --aii-port, a failing expect() that explains itself (the buffer, the log
and its path), and --aii-fresh. The repository's HIL suite (tests/hil) is the plugin's larger
user."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aii_host.node import qemu

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


def test_the_example_project_passes_on_qemu_and_a_simulated_board_in_one_run():
    """--aii-port qemu (the image `make images` builds) and vboard repeated: every test on
    each, parametrized; --aii-fresh gives each test a fresh board."""
    if not os.environ.get("MICROPY_DIR"):
        pytest.skip("qemu: MICROPY_DIR is unset (set it to a MicroPython v1.28.0 tree)")
    image = qemu.image("MPS2_AN385")
    assert image.exists(), f"{image} missing though MICROPY_DIR is set (make images)"
    rc, out = pytest_in(EXAMPLE, "--aii-port", "qemu", "--aii-port", "vboard", "--aii-fresh", "-vv")
    assert rc == 0 and "8 passed" in out, out
    assert out.count("[qemu] PASSED") == 4 and out.count("[vboard] PASSED") == 4, out


def test_a_missing_qemu_image_skips_and_a_bad_board_is_a_usage_error():
    rc, out = pytest_in(EXAMPLE, "--aii-port", "qemu", "--aii-image", "/nonexistent/fw.elf")
    assert rc == 0 and "4 skipped" in out, out
    assert "--aii-port qemu: no qemu image at /nonexistent/fw.elf (make firmware" in out, out
    rc, out = pytest_in(EXAMPLE, "--aii-port", "qemu:NOPE")
    assert rc != 0 and "unknown qemu board 'NOPE'" in out and "Traceback" not in out, out


def test_aii_fresh_gives_each_test_its_own_board(tmp_path):
    """Two tests that each need the config's initial balances: they pass together only on a
    board of their own (aii_fresh in the ini), and the second fails on the session's board."""
    cfg = json.loads((EXAMPLE / "node_config.json").read_text())
    cfg["tasks"] = []  # no pump: balances move only by the tests
    (tmp_path / "node.json").write_text(json.dumps(cfg))
    (tmp_path / "test_fresh.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.parametrize('n', [1, 2])\n"
        "def test_well_starts_full(aii_node, n):\n"
        "    move = {'src': 'well', 'dst': 'tank', 'quantity': 'l', 'amount': 7}\n"
        "    aii_node.request('transfer', move)\n"
        "    assert dict((a, b) for a, _, b in aii_node.request('ledger')['accounts'])"
        " == {'well': 493, 'tank': 7}\n"
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\naii_config = node.json\naii_fresh = true\n")
    rc, out = pytest_in(tmp_path, "--aii-port", "vboard")
    assert rc == 0 and "2 passed" in out, out
    (tmp_path / "pytest.ini").write_text("[pytest]\naii_config = node.json\n")
    rc, out = pytest_in(tmp_path, "--aii-port", "vboard")
    assert rc == 1 and "1 passed" in out and "1 failed" in out, out
