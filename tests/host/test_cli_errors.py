# SPDX-License-Identifier: MIT
"""Bad input to `aii` (issue 12): one clear line naming the value and what is allowed, an exit
status from the documented set (aii --help), no traceback, no value silently replaced, and a
read that creates no file. Each case runs `aii` (forked, cli_util.run_aii) in a folder of its
own, stdin closed; one runs the real `python -m aii_host` script."""

import json
import os
import subprocess
import sys
from collections import namedtuple

import pytest
from aii_host import clikit
from cli_util import run_aii

Run = namedtuple("Run", "returncode stdout stderr")


def aii(cwd, *args, timeout=60):
    status, out, err = run_aii(list(args), cwd=cwd, timeout=timeout)
    assert status != "timeout", (args, out, err)
    assert "Traceback" not in err, err
    return Run(status, out, err)


def test_the_aii_script_itself(tmp_path):
    # The entry point people run, not only main(): one line, the documented status.
    (tmp_path / "c.json").write_text("{bad")
    r = subprocess.run(
        [sys.executable, "-m", "aii_host", "deploy", "--port", "/dev/null", "--config", "c.json"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    want = "aii: --config c.json: not JSON: Expecting property name enclosed in double quotes"
    assert r.returncode == clikit.EXIT_WARNING
    assert r.stderr == want + " at line 1 column 2\n", r.stderr


def last_line(r):
    lines = r.stderr.strip().splitlines()
    assert lines, (r.returncode, r.stdout)
    return lines[-1]


@pytest.mark.parametrize(
    "content, msg",
    [
        ("{bad", "--config c.json: not JSON: Expecting property name"),
        ("[1, 2]", "--config c.json: the configuration must be a JSON object"),
        ('{"node": "../../x"}', "'node' must be a name of letters, digits"),
        (b"\xff\xfe", "--config c.json: not text"),
        (None, "--config c.json: no such file"),
    ],
)
def test_deploy_bad_config(tmp_path, content, msg):
    if isinstance(content, bytes):
        (tmp_path / "c.json").write_bytes(content)
    elif content is not None:
        (tmp_path / "c.json").write_text(content)
    r = aii(tmp_path, "deploy", "--port", "/dev/null", "--config", "c.json", "--dry-run")
    assert r.returncode == clikit.EXIT_WARNING
    assert msg in last_line(r), r.stderr
    assert os.listdir(tmp_path) == ([] if content is None else ["c.json"])


@pytest.mark.parametrize("port", ["tcp:nohost", "tcp:127.0.0.1:0", "tcp:127.0.0.1:70000", "x:"])
def test_node_status_bad_tcp_port(tmp_path, port):
    r = aii(tmp_path, "node-status", "--port", port, "--timeout", "0.5")
    assert r.returncode == clikit.EXIT_WARNING
    line = last_line(r)
    assert port in line and ("PORT 1..65535" in line or "cannot open" in line), line


def test_detect_out_for_an_image_must_be_a_png(tmp_path):
    # Found by the CLI fuzz: `--out é` was a traceback from the image writer. (For a folder,
    # --out is the folder for the PNGs.)
    r = aii(tmp_path, "detect", "skimage:astronaut", "--out", "é")
    assert r.returncode == clikit.EXIT_WARNING
    assert "--out 'é': for an image, a .png file name" in last_line(r)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["download_all", "data_dir", "file_hash", "nosuchphoto", ""])
def test_detect_takes_only_skimage_photos(tmp_path, name):
    r = aii(tmp_path, "detect", f"skimage:{name}", "--no-png")
    assert r.returncode == clikit.EXIT_WARNING
    assert f"skimage:{name}: not a scikit-image photo; one of: astronaut" in last_line(r)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "args, msg",
    [
        (["edge-bench", "mobilenet:abc"], "mobilenet:abc: SIZE must be an integer 16..1024"),
        (["edge-bench", "mobilenet:0"], "mobilenet:0: SIZE must be an integer 16..1024"),
        (["edge-bench", "face", "--frames", "0"], "--frames: must be an integer >= 1, got '0'"),
        (["edge-bench", "face", "--deadline-ms", "0"], "--deadline-ms: must be a number > 0"),
        (["edge-bench", "face", "--threads", "-1"], "--threads: must be an integer >= 1"),
        (["detect", "skimage:astronaut", "--frames", "0"], "--frames: must be an integer >= 1"),
        (["detect", "skimage:astronaut", "--deadline-ms", "nan"], "--deadline-ms: must be a "),
        (["sched-demo", "--seconds", "-1"], "--seconds: must be a number > 0, got '-1'"),
        # Found by the CLI fuzz: a --plot without .png was a traceback from the image writer.
        (["edge-bench", "face", "--plot", "x.jpg"], "--plot: must be a .png file name"),
        (["console", "--port", "/dev/null", "--linger", "inf"], "--linger: must be a number"),
        (["transfer", "--fleet", "f.toml", "--list", "--limit", "0"], "--limit: must be an"),
        (["status", "--node", "n1=/dev/null", "--heartbeat", "0"], "--heartbeat: must be"),
    ],
)
def test_bad_values_are_usage_errors_not_substitutes(tmp_path, args, msg):
    # Refused up front: never run with another value in its place (detect --frames 0 ran one
    # frame, edge-bench --deadline-ms 0 took the default).
    r = aii(tmp_path, *args)
    assert r.returncode == clikit.EXIT_USAGE, r.stderr
    assert msg in last_line(r), r.stderr
    assert os.listdir(tmp_path) == []


def test_usage_errors_of_the_fleet_commands(tmp_path):
    for args, msg in [
        (["status"], "no nodes: give --fleet FILE"),
        (["aggregate", "--seconds", "1"], "no nodes: give --fleet FILE"),
        (["status", "--node", "n1"], "--node 'n1': expected NAME=PORT"),
        (["status", "--fleet", "f.toml", "--node", "n1=/dev/null"], "not both"),
        (["transfer", "--fleet", "f.toml"], "need SRC_NODE:ACCOUNT DST_NODE:ACCOUNT"),
        (["transfer", "--fleet", "f.toml", "--list", "a:b"], "take no SRC DST"),
    ]:
        r = aii(tmp_path, *args)
        assert r.returncode == clikit.EXIT_USAGE, (args, r.stderr)
        assert msg in last_line(r) and "--help" in last_line(r), r.stderr
    assert os.listdir(tmp_path) == []


def _trail(tmp_path):
    from aii_host.fleet.audit import Audit

    db = tmp_path / "fleet.db"
    a = Audit(db)
    for i in range(3):
        a.append("tx", {"i": i})
    a.close()
    return db


@pytest.mark.parametrize(
    "head",
    [b"[1]", b'"x"', b'{"seq": "3", "hash": "ab"}', b'{"seq": 3}', b"\xff\x00", b"{", b""]
    + [b'{"seq": 3, "hash": "' + b"0" * 64 + b'", "pending": [1]}'],
)
def test_malformed_audit_head_file_is_a_finding(tmp_path, head):
    db = _trail(tmp_path)
    (tmp_path / "fleet.db.head").write_bytes(head)
    r = aii(tmp_path, "audit", "verify", "--db", str(db))
    assert r.returncode == clikit.EXIT_CRITICAL, r.stdout + r.stderr
    assert "bad: seq" in r.stdout and "head file unreadable" in r.stdout, r.stdout
    r = aii(tmp_path, "audit", "verify", "--db", str(db), "--json")
    assert json.loads(r.stdout)["ok"] is False


def test_audit_of_a_file_that_is_not_a_database(tmp_path):
    (tmp_path / "x.db").write_text("not sqlite")
    r = aii(tmp_path, "audit", "verify", "--db", "x.db")
    assert r.returncode == clikit.EXIT_UNKNOWN
    assert "x.db: not a readable fleet database" in last_line(r)
    r = aii(tmp_path, "audit", "show", "--db", "nothere.db")
    assert r.returncode == clikit.EXIT_WARNING and "no fleet database at nothere.db" in last_line(r)
    # Found by the CLI fuzz: an empty --db fell through to the (absent) --fleet: a traceback.
    r = aii(tmp_path, "audit", "verify", "--db", "")
    assert r.returncode == clikit.EXIT_UNKNOWN and "no fleet database at" in last_line(r)


def test_status_of_a_dead_node_is_degraded_and_creates_no_file(tmp_path):
    r = aii(tmp_path, "status", "--node", "n1=/dev/ttyNOPE", "--seconds", "0.5", "--json")
    assert r.returncode == clikit.EXIT_WARNING, r.stderr
    v = json.loads(r.stdout)["verdict"]
    assert v["status"] == "DEGRADED" and v["exit"] == 1
    assert [p["node"] for p in v["problems"]] == ["n1"]
    assert "offline" in v["problems"][0]["why"] and "/dev/ttyNOPE" in v["problems"][0]["why"]
    r = aii(tmp_path, "status", "--node", "n1=/dev/ttyNOPE", "--seconds", "0.5")
    assert r.returncode == clikit.EXIT_WARNING
    assert "verdict: DEGRADED" in r.stdout and "n1: offline" in r.stdout, r.stdout
    assert os.listdir(tmp_path) == []  # no fleet.db, no side files (issue 12)


def test_transfer_reads_create_no_file(tmp_path):
    (tmp_path / "f.toml").write_text(
        '[fleet]\ndb = "fleet.db"\n[[node]]\nname = "n1"\nport = "tcp:127.0.0.1:1"\n'
    )
    for mode in ("--list", "--recover"):
        r = aii(tmp_path, "transfer", "--fleet", "f.toml", mode)
        assert r.returncode == clikit.EXIT_OK and "no transfers yet" in r.stdout, r.stderr
    r = aii(tmp_path, "transfer", "--fleet", "f.toml", "--holds", "--timeout", "0.3")
    assert r.returncode == clikit.EXIT_WARNING  # n1 cannot be asked: a finding, named
    assert "n1" in r.stdout
    assert sorted(os.listdir(tmp_path)) == ["f.toml"]
