# SPDX-License-Identifier: MIT
"""`aii dashboard` and `aii keygen --operator` on the command line: usage errors exit 64 with one
line, a port in use is one line and exit 1, an operator token is 64 hex digits readable by its
owner only; `aii demo` ends by saying how to open the live dashboard."""

import os
import socket
import stat

import pytest
from cli_util import run_aii
from dashboard_util import write_fleet


@pytest.mark.parametrize(
    "argv, says",
    [
        (["dashboard"], "give --fleet FILE"),
        (["dashboard", "--fleet", "f.toml", "--demo"], "not allowed with"),
        (["dashboard", "--demo", "--http", "nohost"], "expected HOST:PORT"),
        (["dashboard", "--demo", "--http", "127.0.0.1:70000"], "expected HOST:PORT"),
        (["dashboard", "--fleet", "f.toml", "--inject-after", "3"], "goes with --demo"),
        (["dashboard", "--demo", "--alert-webhook", "ftp://x/"], "--alert-webhook"),
        (["dashboard", "--demo", "--alert-command", ""], "--alert-command is empty"),
        (["dashboard", "--demo", "--operators", "/nonexistent"], "not a folder"),
        (["keygen"], "give the node's name"),
        (["keygen", "--operator", "--config", "x.json"], "--config goes with"),
        (["keygen", "--operator", "../x"], "must be a name"),
    ],
)
def test_usage_errors_are_one_line(argv, says):
    rc, _out, err = run_aii(argv)
    assert rc in (64, 1), (rc, err)
    # One line says what is wrong (argparse's own errors come after the usage lines).
    assert says in err.strip().splitlines()[-1], err
    assert "Traceback" not in err, err


def test_port_in_use_is_one_line(tmp_path):
    fleet = write_fleet(tmp_path / "fleet.toml", [("n1", "tcp:127.0.0.1:1")])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        rc, out, err = run_aii(
            ["dashboard", "--fleet", str(fleet), "--http", f"127.0.0.1:{port}"], timeout=20
        )
    assert rc == 1, (rc, out, err)
    assert f"cannot serve on 127.0.0.1:{port}" in err and "Traceback" not in err, err


def test_operator_token(tmp_path):
    rc, out, err = run_aii(["keygen", "--operator", "alice", "--out", str(tmp_path)])
    assert rc == 0, err
    p = tmp_path / "alice.operator"
    text = p.read_text()
    assert len(text.strip()) == 64 and set(text.strip()) <= set("0123456789abcdef")
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    assert "Authorization: Bearer" in out
    rc, out, err = run_aii(["keygen", "--operator", "alice", "--out", str(tmp_path)])
    assert rc == 1 and "--force" in err and p.read_text() == text  # not replaced
    rc, out, err = run_aii(["keygen", "--operator", "--out", str(tmp_path), "--json"])
    assert rc == 0 and '"operator": "operator"' in out and (tmp_path / "operator.operator").exists()
    from aii_host.dashboard import tokens

    toks = tokens.load(tmp_path)
    assert sorted(toks.values()) == ["alice", "operator"]
    assert tokens.check(toks, "Bearer " + text.strip()) == "alice"
    assert tokens.check(toks, "Bearer " + "0" * 64) is None
    assert tokens.check(toks, text.strip()) is None  # not a bearer header
    assert tokens.check(toks, None) is None


def test_follows_a_running_aggregator_and_says_when_it_stops(tmp_path):
    """With `aii aggregate` serving the fleet, the dashboard only reads its database (source
    `aggregator`); when the aggregator stops, the page says the data is stale (UNKNOWN, aii_up
    0) instead of showing old rows as the fleet now."""
    import json
    import subprocess
    import sys
    import time

    from aii_host.dashboard import tokens
    from dashboard_util import Dashboard

    fleet = write_fleet(tmp_path / "fleet.toml", [("n1", "tcp:127.0.0.1:1")], heartbeat_s=0.1)
    agg = subprocess.Popen(
        [sys.executable, "-m", "aii_host", "aggregate", "--fleet", str(fleet), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    ops = tmp_path / "ops"
    tokens.keygen("bob", ops)
    try:
        from aii_host.fleet import relay

        end = time.monotonic() + 30
        while not relay.running(tmp_path / "fleet.db") and time.monotonic() < end:
            time.sleep(0.1)
        dash = Dashboard(
            tmp_path, "--fleet", str(fleet), "--operators", str(ops), "--seconds", "60"
        )
        try:

            def state():
                return json.loads(dash.get("/api/state")[2])["view"]

            end = time.monotonic() + 30
            while (state() or {}).get("fleet", {}).get("fresh") is not True:
                assert time.monotonic() < end, state()
                time.sleep(0.2)
            assert state()["fleet"]["source"] == "aggregator"
            # The action goes to the database the aggregator reads: n1 is not isolated.
            body = json.dumps({"node": "n1"}).encode()
            auth = "Bearer " + (ops / "bob.operator").read_text().strip()
            hdrs = {"Content-Type": "application/json", "Authorization": auth}
            st, _, answer = dash.request("POST", "/api/clear", body, hdrs)
            assert st == 409 and b"not isolated" in answer, (st, answer)
            agg.send_signal(2)
            agg.wait(30)
            end = time.monotonic() + 30
            while state()["fleet"]["fresh"]:
                assert time.monotonic() < end, state()
                time.sleep(0.2)
            v = state()["verdict"]
            assert v["status"] == "UNKNOWN" and "aggregator stopped" in v["problems"][0]["why"]
            assert "aii_up 0.0" in dash.get("/metrics")[2].decode()
        finally:
            _rc, _out, err = dash.stop()
        assert "Traceback" not in err, err
    finally:
        if agg.poll() is None:
            agg.kill()
            agg.wait()
