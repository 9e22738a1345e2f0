# SPDX-License-Identifier: MIT
"""make test-vectors (tools/gen_vectors.py --check): the committed vectors are the generator's
output, and a file that differs or is missing fails with its name and how to regenerate it."""

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import gen_vectors


def test_committed_vectors_match_and_a_changed_one_is_named(tmp_path, monkeypatch, capsys):
    out, _ = gen_vectors.outputs()
    assert {"tests/vectors/ledger.json", "tests/c/vectors_fixed.h"} <= set(out)
    assert gen_vectors.check(out) == 0
    for rel in out:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    monkeypatch.setattr(gen_vectors, "ROOT", tmp_path)
    capsys.readouterr()
    (tmp_path / "tests/vectors/ledger.json").write_bytes(out["tests/vectors/ledger.json"] + b" ")
    (tmp_path / "tests/c/vectors_fixed.h").unlink()
    results = tmp_path / "vectors.json"
    assert gen_vectors.check(out, results) == 1
    lines = sorted(capsys.readouterr().out.splitlines())
    assert len(lines) == 2, lines
    assert lines[0].startswith("gen_vectors: tests/c/vectors_fixed.h is missing"), lines
    assert lines[1].startswith("gen_vectors: tests/vectors/ledger.json differs"), lines
    assert all("regenerate with .venv/bin/python tools/gen_vectors.py" in x for x in lines)
    counts = json.loads(results.read_text())
    assert counts == {"passed": len(out) - 2, "failed": 2, "skipped": 0}
