# SPDX-License-Identifier: MIT
"""From zero to a deployed fleet (issue 20, docs/provisioning.md): `aii init`, `aii deploy
--fleet` and `aii keygen --rotate` as an operator runs them (the `aii` command in processes of
its own) on three simulated boards addressed by name (vboard:NAME), verified by `aii status`
before and after a rotation made while `aii aggregate` runs."""

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

import pytest
from aii_host.core import keys
from aii_host.fleet import config as fconfig
from aii_host.fleet import provision
from aii_host.node import vboard
from conftest import BASE_CONFIG


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A private registry, boards folder and keys folder for this test (boards named n1.. in
    other tests must not answer to vboard:n1 here), inherited by every process it starts."""
    # The registry (and the aggregator's relay socket) in a short private folder: a socket's
    # path is limited to ~107 bytes, more than pytest's tmp_path leaves under xdist.
    xdg = tempfile.mkdtemp(prefix="aii-xdg-")
    monkeypatch.setenv("XDG_RUNTIME_DIR", xdg)
    (tmp_path / "boards").mkdir(mode=0o700)
    monkeypatch.setenv("AII_VBOARD_DIR", str(tmp_path / "boards"))
    monkeypatch.setenv("AII_KEYS_DIR", str(tmp_path / "hostkeys"))
    template = tmp_path / "template.json"
    template.write_text(json.dumps(BASE_CONFIG))
    boards = []
    yield tmp_path, template, boards
    for b in boards:
        b.stop()
    shutil.rmtree(xdg, ignore_errors=True)


def aii(cwd, *argv, timeout=60):
    r = subprocess.run(
        [sys.executable, "-m", "aii_host", *argv],
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return r.returncode, r.stdout, r.stderr


def status(cwd, fleet):
    rc, out, err = aii(cwd, "status", "--fleet", fleet, "--json")
    return rc, (json.loads(out) if out.strip() else None), err


def wait_ok(cwd, fleet, timeout=60):
    end = time.monotonic() + timeout
    while True:
        rc, st, err = status(cwd, fleet)
        if rc == 0 or time.monotonic() > end:
            assert rc == 0, (st or {}).get("verdict", err)
            return st
        time.sleep(0.5)


def test_init_deploy_and_a_rotation_while_the_fleet_runs(world):
    tmp, template, boards = world
    for n in ("n1", "n2", "n3"):
        boards.append(vboard.spawn(n, log=tmp / f"{n}.log"))
    rc, out, err = aii(tmp, "init", "fl", "--nodes", "n1,n2,n3", "--template", str(template))
    assert rc == 0, err
    fleet_file = tmp / "fl" / "fleet.toml"
    for p in [fleet_file] + sorted((tmp / "fl" / "keys").iterdir()):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    from aii_host.dashboard import tokens

    assert list(tokens.load(tmp / "fl" / "keys").values()) == ["operator"]
    fleet = fconfig.load(fleet_file)
    assert [(s.name, s.port) for s in fleet.nodes] == [(n, f"vboard:{n}") for n in fleet.names()]
    assert len({s.key for s in fleet.nodes}) == 3  # a key of its own each
    for s in fleet.nodes:
        cfg = json.loads(s.config.read_text())
        assert (cfg["node"], cfg["key"]) == (s.name, s.key.hex())
        assert cfg["tasks"] == BASE_CONFIG["tasks"]
    # Never over an existing fleet: one line, nothing changed.
    before = fleet_file.read_bytes()
    rc, out, err = aii(tmp, "init", "fl", "--nodes", "n1,n4")
    assert rc == 1 and err.count("\n") == 1 and "exists" in err, err
    assert fleet_file.read_bytes() == before and not (tmp / "fl" / "keys" / "n4.key").exists()

    rc, out, err = aii(tmp, "deploy", "--fleet", "fl/fleet.toml", "--json")
    assert rc == 0, err
    assert [(r["node"], r["state"]) for r in json.loads(out)["nodes"]] == [
        ("n1", "ok"),
        ("n2", "ok"),
        ("n3", "ok"),
    ]

    agg = subprocess.Popen(
        [sys.executable, "-m", "aii_host", "aggregate", "--fleet", "fl/fleet.toml", "--quiet"],
        cwd=tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        from aii_host.fleet import relay

        end = time.monotonic() + 60
        while not relay.running(fleet.db):  # the aggregator owns the ports from now on
            assert agg.poll() is None and time.monotonic() < end, agg.stdout.read()
            time.sleep(0.2)
        wait_ok(tmp, "fl/fleet.toml")
        old = fleet.node("n2").key
        rc, out, err = aii(tmp, "keygen", "--rotate", "n2", "--fleet", "fl/fleet.toml", "--json")
        assert rc == 0, err
        res = json.loads(out)
        assert res["via"] == "aggregator" and res["old_key_id"] == keys.key_id(old)
        new = fconfig.load(fleet_file).node("n2").key
        assert new != old and res["key_id"] == keys.key_id(new)
        assert json.loads((tmp / "fl" / "keys" / "n2.json").read_text())["key"] == new.hex()
        assert not list((tmp / "fl" / "keys").glob(".*"))  # no pending or temporary file left
        # The aggregator signs with the new key (n2's prepare), and the fleet still verifies.
        rc, out, err = aii(
            tmp, "transfer", "--fleet", "fl/fleet.toml", "n1:grid", "n2:load", "Wh", "2.5"
        )
        assert rc == 0 and "committed" in out, err
        st = wait_ok(tmp, "fl/fleet.toml")
        assert st["verdict"]["status"] == "OK"
    finally:
        agg.send_signal(signal.SIGINT)
        log, _ = agg.communicate(timeout=30)
    # The other nodes stayed connected through the rotation.
    assert " offline" not in log, log

    # Without an aggregator the node's own port is used; a deploy after it unlocks the node
    # with the new key (the config file was updated with it).
    rc, out, err = aii(tmp, "keygen", "--rotate", "n3", "--fleet", "fl/fleet.toml")
    assert rc == 0 and "through vboard:n3" in out, err
    rc, out, err = aii(tmp, "deploy", "--fleet", "fl/fleet.toml")
    assert rc == 0 and "3 of 3 nodes deployed" in out, err
    wait_ok(tmp, "fl/fleet.toml")

    # A rotation the host crashed in after the node took the key: the pending file finishes it.
    from aii_host.core.client import NodeClient
    from aii_host.transport import open_transport

    spec = fconfig.load(fleet_file).node("n1")
    pending, k = tmp / "fl" / "keys" / ".n1.key.new", bytes(range(50, 82))
    (pending).write_text(k.hex() + "\n")
    t = open_transport("vboard:n1").open()
    try:
        c = NodeClient(t, key=spec.key, node="n1")
        assert c.request("key_set", {"key": k.hex()}) == {"key_id": keys.key_id(k)}
    finally:
        t.close()
    rc, out, err = aii(tmp, "keygen", "--rotate", "n1", "--fleet", "fl/fleet.toml", "--json")
    assert rc == 0, err
    assert json.loads(out)["resumed"] is True and not pending.exists()
    assert fconfig.load(fleet_file).node("n1").key == k
    wait_ok(tmp, "fl/fleet.toml")


def test_deploy_stops_at_the_first_failure_unless_keep_going(world):
    tmp, _, boards = world
    boards.append(vboard.spawn("a1", log=tmp / "a1.log"))
    boards.append(vboard.spawn("a3", log=tmp / "a3.log"))
    ports = "vboard:a1,vboard:ghost,vboard:a3"
    rc, out, err = aii(tmp, "init", "fl", "--nodes", "a1,a2,a3", "--ports", ports)
    assert rc == 0, err
    rc, out, err = aii(tmp, "deploy", "--fleet", "fl/fleet.toml", "--dry-run", "--keep-going")
    assert rc == 1 and "would write" in out, (out, err)
    assert not (boards[0].dir / "aii_node.json").exists()  # a dry run writes nothing
    rc, out, err = aii(tmp, "deploy", "--fleet", "fl/fleet.toml", "--json")
    assert rc == 1 and err.count("\n") == 1 and "ghost is not running" in err, err
    states = [(r["node"], r["state"]) for r in json.loads(out)["nodes"]]
    assert states == [("a1", "ok"), ("a2", "failed"), ("a3", "skipped")]
    rc, out, err = aii(tmp, "deploy", "--fleet", "fl/fleet.toml", "--keep-going")
    assert rc == 1 and "2 of 3 nodes deployed" in out, (out, err)
    assert "a3" in out and "skipped" not in out


def test_init_writes_nothing_unless_it_can_write_everything(world):
    tmp = world[0]
    (tmp / "fl" / "keys").mkdir(parents=True)
    (tmp / "fl" / "keys" / "n2.key").write_text("mine\n")
    with pytest.raises(provision.ProvisionError, match="n2.key exists"):
        provision.init(tmp / "fl", ["n1", "n2"])
    assert sorted(os.listdir(tmp / "fl" / "keys")) == ["n2.key"]
    assert not (tmp / "fl" / "fleet.toml").exists()
    for bad, msg in (
        (("init", "x", "--nodes", "n1,n1"), "n1 is named twice"),
        (("init", "x", "--nodes", ",,"), "at least one name"),
        (("init", "x", "--nodes", "../n1"), "must be a name"),
        (("init", "x", "--nodes", "n1,n2", "--ports", "p1"), "1 ports for 2 nodes"),
        (("init", "x", "--nodes", "n1", "--ports", ""), "an empty port"),
    ):
        rc, _, err = aii(tmp, *bad)
        assert rc in (1, 64) and err.count("\n") == 1 and msg in err, (bad, err)
        assert not (tmp / "x").exists()


def test_an_inline_key_is_replaced_in_place(tmp_path):
    a, b, c = (bytes([i]) * 32 for i in (1, 2, 3))
    text = (
        '# my fleet\n[fleet]\ndb = "f.db"\n\n[[node]]\nname = "n1"  # first\nport = "p1"\n'
        f'key = "{a.hex()}"\n\n[[node]]\nport = "p2"\nname = "n2"\nkey   =   "{b.hex()}"\n'
    )
    out = provision._replace_inline_key(text, "n2", c.hex())
    assert out.replace(c.hex(), b.hex()) == text.replace(
        f'key   =   "{b.hex()}"', f'key = "{b.hex()}"'
    )
    fleet = fconfig.loads(out, "f", tmp_path)
    assert [s.key for s in fleet.nodes] == [a, c]
    with pytest.raises(provision.ProvisionError, match="n3"):
        provision._replace_inline_key(text, "n3", c.hex())
