# SPDX-License-Identifier: MIT
"""More than one link per node (docs/fleet.md §3.1): `ports = [...]` in the fleet file, the
aggregator's failover to the next link and failback to the preferred one, with every record
copied exactly once, and the commands that open a node's links themselves trying them in order
(host/aii_host/fleet/failover.py).

A simulated board serves its pseudo terminal and a loopback TCP port at once (as a node serves
its USB serial line and WiFi), so one board gives two links; a LinkProxy in front of one of
them cuts it (TCP: connections closed and refused) or silences it (pty: every byte dropped)."""

import json
import socket
import sqlite3
import time

import pytest
from aii_host.core.client import NodeClient
from aii_host.core.transport import TransportError
from aii_host.fleet import config as fconfig
from aii_host.fleet.aggregate import Aggregator
from aii_host.fleet.failover import deploy_port, open_client
from aii_host.fleet.proxy import Faults, LinkProxy
from aii_host.node.ports import open_transport
from conftest import ALLOW, BASE_CONFIG, Board, node_key

MOVE = {"src": "grid", "dst": "load", "quantity": "Wh", "amount": 7}
HB = 0.2


class Events:
    def __init__(self):
        self.items = []

    def __call__(self, name, kind, data):
        self.items.append((time.monotonic(), name, kind, data))

    def of(self, kind):
        return [d for _, _, k, d in self.items if k == kind]


@pytest.fixture
def boards(tmp_path):
    """`boards(name, i)` -> a running Board serving its pty and a TCP port; the journal kept
    long (compact_at 512) so that a copy behind by a few hundred records reads them all."""
    made = []

    def make(name="n1", i=1, **changes):
        cfg = dict(BASE_CONFIG, node=name, key=node_key(i).hex(), compact_at=512, **changes)
        b = Board(tmp_path, name, cfg, 0).start()
        b.pty = f"vboard:{b.dir}"
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()


@pytest.fixture
def proxies():
    made = []

    def make(target, **kw):
        p = LinkProxy(target, **kw).start()
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


def fleet_file(tmp_path, nodes):
    path = tmp_path / "fleet.toml"
    path.write_text(fconfig.dumps("fleet.db", HB, nodes, allow=ALLOW))
    return path


def records(db, node):
    c = sqlite3.connect(str(db))
    try:
        q = "SELECT seq FROM records WHERE node = ? ORDER BY seq"
        return [s for (s,) in c.execute(q, (node,))]
    finally:
        c.close()


def dead_port():
    # A loopback port nobody listens on (bound, then closed: connects are refused).
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"tcp:127.0.0.1:{port}"


def on_link(index):
    return lambda s: s["n1"]["state"] == "online" and s["n1"]["link_index"] == index


def assert_exact(agg, db, transfers):
    """Every record of the node copied once, in order, none missing: the host's records are
    1..seq without a hole, the replica (fed from them) has the node's digest at the node's
    seq, no gap and no divergence was ever reported, and the transfers all landed once."""
    snap = agg.wait_synced(20)["n1"]
    assert snap["gaps"] == [] and snap["broken"] is None
    assert snap["replica_digest"] == snap["digest"] and snap["replica_seq"] == snap["seq"]
    v = agg.verify_now()
    assert v.ok and v.residuals == [] and not v.gaps, v
    load = agg.client("n1").request("ledger")["accounts"][1]
    assert load[:3] == ["load", "Wh", transfers * MOVE["amount"]]
    # The loop commits its database at most every COMMIT_S (store.py): commit now, on the
    # loop's thread, so that this connection reads every record the replica was fed.
    agg.call(lambda: agg._commit(force=True))
    seqs = records(db, "n1")
    assert seqs == list(range(1, len(seqs) + 1)) and seqs[-1] >= snap["replica_seq"]
    c = sqlite3.connect(str(db))
    try:
        # A record fed twice (or one skipped) would not replay: a divergence, recorded here.
        assert c.execute("SELECT kind, data FROM violations").fetchall() == []
    finally:
        c.close()


# ---- the fleet file ----------------------------------------------------------------------------


def test_ports_in_the_fleet_file(tmp_path):
    p = tmp_path / "fleet.toml"
    p.write_text(
        '[[node]]\nname = "n1"\nports = ["vboard:boards/n1", "tcp:10.0.0.7:7001"]\n\n'
        '[[node]]\nname = "n2"\nport = "/dev/ttyACM0"\n'
    )
    f = fconfig.load(p)
    n1, n2 = f.nodes
    assert n1.ports == (f"vboard:{tmp_path}/boards/n1", "tcp:10.0.0.7:7001")
    assert n1.port == n1.ports[0]  # the preferred link, for code that knows only one
    assert (n2.port, n2.ports) == ("/dev/ttyACM0", ("/dev/ttyACM0",))
    # dumps writes a list as `ports`; a NodeSpec takes one in place of its port.
    again = fconfig.loads(fconfig.dumps("x.db", 0.5, [("n1", list(n1.ports), None)]))
    assert again.nodes[0].ports == n1.ports
    assert fconfig.NodeSpec("a", ["p", "q"]).ports == ("p", "q")
    assert deploy_port(fconfig.NodeSpec("a", ["tcp:h:1", "/dev/ttyACM0"])) == "/dev/ttyACM0"


@pytest.mark.parametrize(
    "field, words",
    [
        ('port = "p"\nports = ["q"]', ["line 5", "field 'ports'", "not both"]),
        ("ports = []", ["field 'ports'", "1 .. 8 links, got 0"]),
        ('ports = "p"', ["field 'ports'", "a list of non-empty strings"]),
        ('ports = ["p", 3]', ["field 'ports'", "a list of non-empty strings"]),
        ('ports = ["p", ""]', ["field 'ports'", "a list of non-empty strings"]),
        ('ports = ["p", "q", "p"]', ["field 'ports'", "'p' is listed twice"]),
        ("ports = [" + ", ".join(f'"p{i}"' for i in range(9)) + "]", ["1 .. 8 links, got 9"]),
        ("", ["field 'port'", "or ports = [...]"]),
    ],
)
def test_ports_errors_name_line_and_field(tmp_path, field, words):
    p = tmp_path / "fleet.toml"
    p.write_text(f'[fleet]\n[[node]]\nname = "n1"\n{field}\n')
    with pytest.raises(fconfig.FleetConfigError) as e:
        fconfig.load(p)
    for w in words:
        assert w in str(e.value), str(e.value)


# ---- the aggregator ----------------------------------------------------------------------------


def test_failover_mid_stream_and_failback_copy_every_record_once(tmp_path, boards, proxies):
    """TCP first (through a proxy), the serial line second. A backlog of 120 transfers is being
    copied, slowly (the proxy delays each chunk), when the TCP link is cut and refused: the
    copy continues over the serial line from where it was; more transfers go over it; the TCP
    link returns and takes over again. Not a record lost or doubled."""
    b = boards()
    c = NodeClient(open_transport(b.port).open(), key=b.key, node="n1")
    for _ in range(120):
        c.request("transfer", MOVE)
    target = c.request("status")["seq"]
    c.t.close()
    px = proxies(b.port, down=Faults(delay=1.0, delay_max=0.08))
    path = fleet_file(tmp_path, [("n1", [px.port, b.pty], b.key)])
    ev = Events()
    with Aggregator(path, on_event=ev, failback_s=0.5) as agg:
        snap = agg.wait(lambda s: 12 <= s["n1"]["replica_seq"] < target - 24, 30, "mid-stream")
        assert snap["n1"]["link_index"] == 1 and snap["n1"]["links"] == 2
        cut_at = snap["n1"]["replica_seq"]
        t0 = time.monotonic()
        px.block()
        snap = agg.wait(on_link(2), 30, "failover to the serial line")
        assert time.monotonic() - t0 < 30  # the product's bound (measured: bench/links_bench.py)
        assert snap["n1"]["link"] == b.pty and "link 1" in snap["n1"]["reason"]
        for _ in range(5):
            r = agg.client("n1").request("transfer", MOVE)  # over the serial line
        agg.wait_seq("n1", r["seq"])
        assert agg.snapshot()["n1"]["link_index"] == 2  # still blocked: no failback
        px.set_faults(down=Faults())
        px.block(False)
        snap = agg.wait(on_link(1), 30, "failback to TCP")
        assert snap["n1"]["failovers"] == 1 and snap["n1"]["failbacks"] == 1
        assert snap["n1"]["reason"] == ""
        r = agg.client("n1").request("transfer", MOVE)
        agg.wait_seq("n1", r["seq"])
        assert_exact(agg, tmp_path / "fleet.db", 126)
    links = ev.of("link")
    assert [(x["to"], x["index"]) for x in links] == [(b.pty, 2), (px.port, 1)]
    assert cut_at < target  # the cut came before the backlog was copied


def test_silent_serial_line_fails_over_to_tcp_and_back(tmp_path, boards, proxies):
    """The serial line first (through a pty proxy), TCP second. The line goes silent (every
    byte dropped, no error anywhere): after `offline_s` without an answer the node is taken
    over TCP; when the line carries bytes again it is preferred again."""
    b = boards()
    line = proxies(b.proc.port)  # the board's pty behind the proxy's own pty
    path = fleet_file(tmp_path, [("n1", [line.port, b.port], b.key)])
    with Aggregator(path, failback_s=0.5) as agg:
        agg.wait(on_link(1), 20, "online on the serial line")
        agg.wait_synced(20)
        silent = Faults(drop=1.0)
        t0 = time.monotonic()
        line.set_faults(up=silent, down=silent)
        snap = agg.wait(on_link(2), 30, "failover to TCP")
        took = time.monotonic() - t0
        assert took < 30
        why = snap["n1"]["reason"]
        assert snap["n1"]["link"] == b.port and ("no frame" in why or "no answer" in why), why
        r = agg.client("n1").request("transfer", MOVE)
        agg.wait_seq("n1", r["seq"])
        time.sleep(1.0)  # probes of the silent line go unanswered meanwhile
        assert agg.snapshot()["n1"]["link_index"] == 2
        line.set_faults(up=Faults(), down=Faults())
        agg.wait(on_link(1), 30, "failback to the serial line")
        assert_exact(agg, tmp_path / "fleet.db", 1)


def test_a_link_that_leads_to_another_node_is_never_taken(tmp_path, boards, proxies):
    """A preferred link that answers as another node (swapped cables, a wrong address) is not
    failed back to: the node stays on its backup, and the reason says why."""
    b1, b2 = boards("n1", 1), boards("n2", 2)
    px = proxies(b1.port)
    path = fleet_file(tmp_path, [("n1", [px.port, b1.pty], b1.key)])
    with Aggregator(path, failback_s=0.3) as agg:
        agg.wait(on_link(1), 20, "online over TCP")
        px.block()
        agg.wait(on_link(2), 30, "failover")
        px.retarget(b2.port)
        px.block(False)
        snap = agg.wait(
            lambda s: "leads to node 'n2'" in s["n1"]["reason"], 20, "the probe refused"
        )
        assert snap["n1"]["link_index"] == 2 and snap["n1"]["state"] == "online"
        px.retarget(b1.port)
        agg.wait(on_link(1), 20, "failback once the link leads to n1 again")


# ---- commands that open a node's links themselves ----------------------------------------------


def test_commands_try_the_links_in_order(tmp_path, boards, capsys):
    from aii_host.main import main

    b = boards()
    c = NodeClient(open_transport(b.port).open(), key=b.key, node="n1")
    c.request("hello")  # the app answers (it boots after its port is up)
    c.t.close()
    dead = dead_port()
    spec = fconfig.NodeSpec("n1", [dead, b.port], b.key)
    c = open_client(spec, timeout=1.0)
    try:
        assert c.port == b.port and c.request("hello")["node"] == "n1"
    finally:
        c.t.close()
    with pytest.raises(TransportError) as e:
        open_client(fconfig.NodeSpec("n1", [dead, dead_port()], b.key), timeout=0.5)
    assert "no link works" in str(e.value) and "link 1/2" in str(e.value)
    assert "link 2/2" in str(e.value)
    # --node given twice for one name: two links; the table shows the one in use.
    args = ["status", "--node", f"n1={dead}", "--node", f"n1={b.port}"]
    db = str(tmp_path / "adhoc.db")
    assert main([*args, "--db", db, "--json", "--seconds", "4"]) == 0
    row = json.loads(capsys.readouterr().out)["nodes"][0]
    assert (row["state"], row["link_index"], row["links"], row["link"]) == (
        "online",
        2,
        2,
        b.port,
    )
    assert main([*args, "--db", db, "--seconds", "4"]) == 0
    assert "2/2" in capsys.readouterr().out
    # A transfer and a node-repair (and a key rotation) with no aggregator running take the
    # first link that answers.
    b2 = boards("n2", 2)
    path = fleet_file(tmp_path, [("n1", [dead, b.port], b.key), ("n2", [b2.pty, dead], b2.key)])
    f = str(path)
    assert main(["transfer", "--fleet", f, "n1:grid", "n2:load", "Wh", "1.5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["state"], out["amount"]) == ("committed", 1500)
    assert main(["node-repair", "--fleet", f, "n1", "--json"]) == 0, capsys.readouterr()
    assert json.loads(capsys.readouterr().out)["node"] == "n1"


def test_dashboard_events_say_failover_and_failback():
    from aii_host.dashboard.events import ALERT_KINDS, Watcher

    def view(index, state="online"):
        node = {"name": "n1", "state": state, "reason": "", "link_index": index, "links": 2}
        node["link"] = ["tcp:10.0.0.7:7001", "/dev/ttyACM0"][index - 1]
        return {
            "nodes": [node],
            "violations": [],
            "isolated": [],
            "transfers": {"recent": []},
            "verdict": {"status": "OK"},
        }

    w = Watcher()
    assert w.diff(view(1)) == []  # on the preferred link at start: nothing to say
    (ev,) = [e for e in w.diff(view(2)) if e["kind"] != "verdict"]
    assert (ev["kind"], ev["severity"], ev["node"]) == ("failover", "warning", "n1")
    assert "/dev/ttyACM0" in ev["text"]
    assert [e["kind"] for e in w.diff(view(1, "offline"))] == ["offline"]  # not a failback
    assert [e["kind"] for e in w.diff(view(1))] == ["online", "failback"]
    assert {"failover", "failback"} <= set(ALERT_KINDS)
    # A node already on its backup when the dashboard starts is reported once.
    assert [e["kind"] for e in Watcher().diff(view(2))] == ["failover"]


# ---- a site's gateway --------------------------------------------------------------------------


def test_a_sites_gateway_fails_over_and_back_with_the_global_verdict_ok(
    tmp_path, boards, proxies, broker
):
    """A site's gateway is an aggregator: its node's TCP link cut while records flow, the
    serial line takes over, TCP comes back; the global verifier on the real broker receives
    every record (its copy replays to the cut without a hole) and stays OK, never refusing
    a report or seeing a violation."""
    from aii_host.sites.gateway import Gateway
    from aii_host.sites.verifier import GlobalVerifier
    from sitekit import wait_verdict

    b = boards("a1", 1)
    px = proxies(b.port)
    path = fleet_file(tmp_path, [("a1", [px.port, b.pty], b.key)])
    agg = Aggregator(path, failback_s=0.5).start()
    gw = Gateway(agg, broker.url, "a", tmp_path / "a.site.key", report_s=0.5).start()
    events = []
    gv = GlobalVerifier(
        broker.url, {"a": gw.pubkey}, vid="v1", stale_s=5.0, on_event=lambda k, d: events.append(k)
    ).start()
    try:
        ok = lambda v: v["status"] == "OK"
        wait_verdict(gv, ok, 60, "OK")
        px.block()
        agg.wait(lambda s: s["a1"]["state"] == "online" and s["a1"]["link_index"] == 2, 30, "2")
        for _ in range(3):
            r = agg.client("a1").request("transfer", MOVE)
        px.block(False)
        agg.wait(lambda s: s["a1"]["state"] == "online" and s["a1"]["link_index"] == 1, 30, "1")
        seq = agg.wait_seq("a1", r["seq"])["a1"]["replica_seq"]
        v = wait_verdict(gv, lambda v: ok(v) and v["sites"]["a"]["cut"]["a1"] >= seq, 60, "cut")
        assert v["residuals"] == [] and v["violations"] == [] and not v["refused"], v
        assert "violation" not in events
    finally:
        gv.stop()
        gw.stop()
        agg.stop()


def test_deploy_takes_the_first_serial_link(tmp_path, boards):
    """A deploy stops the app with Ctrl-C and reaches the REPL, which the network never does:
    of a node listed TCP first, the serial line is used."""
    from aii_host.fleet.provision import deploy_fleet

    b = boards()
    (tmp_path / "n1.json").write_text(json.dumps(b.cfg))
    path = tmp_path / "deploy.toml"
    path.write_text(
        f'[[node]]\nname = "n1"\nports = ["{b.port}", "{b.pty}"]\nkey = "{b.key.hex()}"\n'
        'config = "n1.json"\n'
    )
    (r,) = deploy_fleet(fconfig.load(path))
    assert (r.node, r.port, r.state) == ("n1", b.pty, "ok"), r
