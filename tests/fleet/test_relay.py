# SPDX-License-Identifier: MIT
"""`aii transfer` while `aii aggregate` owns the nodes' ports: through the aggregator's relay
(fleet/relay.py), with refusals, unknown units and a stopped aggregator handled as on a link."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from aii_host.client import NodeClient
from aii_host.fleet import relay
from aii_host.fleet.coord import Coordinator
from aii_host.main import main
from aii_host.transport import open_transport
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@pytest.fixture
def aggregating(make_fleet, tmp_path):
    """A fleet of 2 boards and `aii aggregate` running on it in another process."""
    procs = []

    def start(env):
        with open(tmp_path / "aggregate.log", "wb") as log:
            p = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "aii_host",
                    "aggregate",
                    "--fleet",
                    str(env.path),
                    "--quiet",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        procs.append(p)
        end = time.monotonic() + 30
        while not relay.running(env.db):
            assert p.poll() is None, (tmp_path / "aggregate.log").read_text()
            assert time.monotonic() < end, "the aggregator's relay did not come up"
            time.sleep(0.1)
        return p

    yield start
    for p in procs:
        p.terminate()
        p.wait(10)


def balances(env, name):
    b = env.boards[name]
    t = open_transport(b.port).open()
    try:
        return {a[0]: a[2] for a in NodeClient(t).request("ledger")["accounts"]}
    finally:
        t.close()


def test_transfer_through_a_running_aggregator(make_fleet, aggregating, capsys):
    env = make_fleet(2)
    agg = aggregating(env)
    f = str(env.path)
    # The aggregator holds the links; the transfer's requests go through it. "1.5" is parsed
    # with the unit the source node reports for Wh (3 digits: 1500 raw).
    assert main(["transfer", "--fleet", f, "n1:grid", "n2:load", "Wh", "1.5", "--json"]) == 0
    out, err = capsys.readouterr()
    r = json.loads(out)
    assert r["state"] == "committed" and r["amount"] == 1500
    assert "through the running aggregator" in err
    # A node's refusal crosses the relay with its code: an abort, not a transfer in doubt.
    assert main(["transfer", "--fleet", f, "n1:grid", "n2:load", "Wh", "5000", "--json"]) == 1
    r = json.loads(capsys.readouterr().out)
    assert r["state"] == "aborted" and "insufficient" in r["reason"], r
    assert main(["transfer", "--fleet", f, "n1:grid", "n2:load", "kg", "1"]) == 1
    assert "node n1 has no quantity 'kg' (it has: Wh, l)" in capsys.readouterr().err
    # The aggregator saw both nodes' journals move and finds the fleet balanced.
    assert main(["status", "--fleet", f, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"]["source"] == "aggregator" and out["verdict"]["ok"] is True
    # A second aggregator on the same fleet is refused: one owner of the ports (no verdict:
    # UNKNOWN, as a monitoring check reads it).
    assert main(["aggregate", "--fleet", f, "--seconds", "1", "--quiet"]) == 3
    assert "another `aii aggregate` already serves this fleet" in capsys.readouterr().err
    # SIGTERM ends it as Ctrl-C does: a clean exit (the verdict holds) and no socket left.
    agg.terminate()
    assert agg.wait(20) == 0
    assert not relay.running(env.db)
    assert not os.path.exists(relay.socket_path(env.db))
    assert balances(env, "n1")["grid"] == 1_000_000 - 1500
    assert balances(env, "n2")["load"] == 1500


def test_aggregator_stopping_mid_transfer_leaves_it_in_doubt_then_recovered(
    make_fleet, aggregating
):
    """A relay that goes away is a lost link: the transfer stays in doubt, no side is lost,
    and recovery over the nodes' own ports finishes it."""
    env = make_fleet(2)
    agg = aggregating(env)
    eps = {n: relay.RelayNode(env.db, n) for n in ("n1", "n2")}

    def stop_after_hold(point, txid):
        if point == "hold":  # the source holds the amount; the destination has not voted
            agg.terminate()
            agg.wait(10)

    c = Coordinator(env.db, eps, crash_after=stop_after_hold)
    r = c.transfer("n1", "grid", "n2", "load", "Wh", 700)
    assert r.state == "aborting", r  # abort_tx on the source could not be sent
    for e in eps.values():
        e.close()
    c.close()
    assert main(["transfer", "--fleet", str(env.path), "--recover"]) == 0
    c = Coordinator(env.db, {}, exclusive=False)
    assert c.get(r.txid).state == "aborted"
    c.close()
    assert balances(env, "n1")["grid"] == 1_000_000 and balances(env, "n2")["load"] == 0


def test_relay_bad_requests_answered_and_relay_stays_up(make_fleet, aggregating):
    env = make_fleet(1)
    aggregating(env)
    s = socket.socket(socket.AF_UNIX)
    s.connect(relay.socket_path(env.db))
    f = s.makefile("rwb")
    for line, want in (
        (b"not json\n", "bad request"),
        (b'{"kind": "status"}\n', "bad request: 'node'"),
        (b'{"node": 1, "kind": "status"}\n', "node and kind must be strings"),
        (b'{"node": "n1", "kind": "status", "body": [1]}\n', "body must be an object"),
        (b'{"node": "n9", "kind": "status"}\n', "no node 'n9'"),
        (b'{"node": "n1", "kind": "status", "timeout": NaN}\n', "timeout must be a number"),
        (b'{"node": "n1", "kind": "status", "timeout": 1e9}\n', "timeout must be a number"),
        (b'{"node": "n1", "kind": "status", "retries": 1.5}\n', "retries must be an integer"),
        (b'{"node": "n1", "kind": "status", "auth": 1}\n', "auth must be true, false or null"),
        (b"[" * 100000 + b"\n", "bad request"),
    ):
        f.write(line)
        f.flush()
        ans = json.loads(f.readline())
        assert ans["error"] == "relay" and want in ans["msg"], (line, ans)
    f.write(b'{"node": "n1", "kind": "nosuch"}\n')
    f.flush()
    ans = json.loads(f.readline())
    assert ans["error"] == "node" and ans["code"] == 5, ans  # E_UNKNOWN from the node itself
    f.write(b'{"node": "n1", "kind": "status"}\n')
    f.flush()
    assert "seq" in json.loads(f.readline())["ok"]
    s.close()
    # The socket is the user's alone.
    st = os.stat(relay.socket_path(env.db))
    assert st.st_mode & 0o077 == 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(
        st.one_of(
            st.binary(max_size=200).map(lambda b: b.replace(b"\n", b" ")),
            st.dictionaries(
                st.sampled_from(["node", "kind", "body", "auth", "timeout", "retries", "x"]),
                st.one_of(
                    st.none(),
                    st.booleans(),
                    st.integers(),
                    st.floats(allow_nan=False),
                    st.sampled_from(["n1", "status", "ledger", "hold", "nosuch", ""]),
                    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
                ),
                max_size=6,
            ).map(lambda d: json.dumps(d).encode()),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_relay_fuzz(relay_link, lines):
    """Whatever arrives on the relay, each line gets one JSON answer, balances stay as they
    were (nothing here is a valid signed write of a known account), and the relay stays up."""
    f, before = relay_link
    for line in lines:
        f.write(line + b"\n")
        f.flush()
        ans = json.loads(f.readline())
        assert set(ans) <= {"ok", "error", "code", "msg", "kind"} and len(ans) >= 1
    f.write(b'{"node": "n1", "kind": "ledger"}\n')
    f.flush()
    assert json.loads(f.readline())["ok"]["accounts"] == before


@pytest.fixture(scope="module")
def relay_link(tmp_path_factory):
    """An in-process aggregator and its relay on one board, and a line-based link to it."""
    from aii_host.fleet import config as fconfig
    from aii_host.fleet.aggregate import Aggregator
    from conftest import BASE_CONFIG, Board, node_key

    base = tmp_path_factory.mktemp("relayfuzz")
    cfg = dict(BASE_CONFIG, node="n1", key=node_key(1).hex(), tasks=[])  # balances stay put
    b = Board(base, "n1", cfg, 0).start()
    path = base / "fleet.toml"
    path.write_text(fconfig.dumps("fleet.db", 0.2, [("n1", b.port, b.key)]))
    try:
        with Aggregator(path) as agg, relay.RelayServer(agg, base / "fleet.db") as srv:
            agg.wait_synced(20)
            s = socket.socket(socket.AF_UNIX)
            s.connect(srv.path)
            f = s.makefile("rwb")
            before = agg.client("n1").request("ledger")["accounts"]
            yield f, before
            s.close()
    finally:
        b.stop()
