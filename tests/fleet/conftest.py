# SPDX-License-Identifier: MIT
"""Fleet tests: simulated boards (aii_host.node.vboard) with distinct node ids and keys, each
behind its own loopback TCP port (kept across restarts, so a fleet file stays valid), and a
fleet TOML naming them.

    def test_x(make_fleet):
        env = make_fleet(3)                 # boards n1..n3 running, env.path the fleet file
        with Aggregator(env.path) as agg: ...
        env.boards["n2"].stop(); env.boards["n2"].start()   # same id: same files
"""

import json
import sys
import time
from pathlib import Path

import pytest
from aii_host.fleet import config as fconfig
from aii_host.node import vboard

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.append(str(REPO / "tests" / "host"))
import ctrl_c  # noqa: F401 - Ctrl-C works even in a background job
from runkeys import keys_of_this_run  # noqa: F401 - an autouse fixture: keys of this run

BASE_CONFIG = {
    "quantities": [{"name": "Wh", "digits": 3}, {"name": "l", "digits": 0}],
    "accounts": [
        {"name": "grid", "quantity": "Wh", "initial": "1000.000"},
        {"name": "load", "quantity": "Wh"},
        {"name": "tank", "quantity": "l", "initial": 100000},
        {"name": "sink", "quantity": "l"},
    ],
    "tasks": [
        {
            "name": "pump",
            "period_us": 100000,
            "budget_us": 5000,
            "action": "meter",
            "src": "tank",
            "dst": "sink",
            "quantity": "l",
            "amount": 1,
        }
    ],
    "heartbeat_ms": 200,
    "offline_after": 3,
    "events": 16,
    "compact_at": 16,
}


# The fleet's origin policy (docs/fleet.md §8): the pump task may move litres; everything else
# needs the key (signed requests, the deployed config).
ALLOW = [("*", "l", ["signed", "config", "task"])]


def node_key(i):
    return bytes((i * 37 + k) & 0xFF for k in range(32))


class Board:
    """One simulated node: `.start()`, `.stop()`, `.port` ("tcp:127.0.0.1:N"), `.key`, `.cfg`."""

    def __init__(self, base, name, cfg, tcp):
        self.base, self.name, self.cfg, self.tcp = base, name, cfg, tcp
        self.key = bytes.fromhex(cfg["key"])
        # tcp None: the board's pseudo terminal, named by its folder (a new pty at each start).
        # tcp 0: the board binds any free port at its first start and keeps it (picking a free
        # port here and binding it later races other processes' sockets).
        self.dir = vboard.board_dir(name, base)
        self.port = None if tcp == 0 else f"vboard:{self.dir}"
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "aii_node.json").write_text(json.dumps(cfg))
        self.log = base / f"{name}.log"
        self.proc = None

    def start(self):
        if self.proc is None:
            for attempt in range(20):
                seen = self.log.stat().st_size if self.log.exists() else 0
                try:
                    self.proc = vboard.spawn(self.name, base=self.base, tcp=self.tcp, log=self.log)
                    break
                except vboard.VBoardError:
                    # A restart rebinds its old port; another process may hold it a moment.
                    with open(self.log, "rb") as f:
                        f.seek(seen)
                        busy = b"Address already in use" in f.read()
                    if not self.tcp or not busy or attempt == 19:
                        raise
                    time.sleep(0.25)
            if self.tcp == 0:
                self.tcp = self.proc.tcp
                self.port = f"tcp:127.0.0.1:{self.tcp}"
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.stop()
            self.proc = None


class FleetEnv:
    def __init__(self, path, boards, db):
        self.path, self.boards, self.db = path, boards, db

    def stop(self):
        for b in self.boards.values():
            b.stop()


@pytest.fixture
def make_fleet(tmp_path):
    """`make_fleet(n=3, heartbeat_s=0.2, pty=False, **config changes) -> FleetEnv`, its boards
    running; `pty=True`: the boards' pseudo terminals instead of TCP."""
    envs = []

    def make(n=3, heartbeat_s=0.2, pty=False, **changes):
        boards = {}
        for i in range(1, n + 1):
            name = f"n{i}"
            cfg = dict(BASE_CONFIG, node=name, key=node_key(i).hex())
            cfg.update(changes)
            boards[name] = Board(tmp_path, name, cfg, None if pty else 0)
        for b in boards.values():
            b.start()
        path = tmp_path / "fleet.toml"
        nodes = [(b.name, b.port, b.key) for b in boards.values()]
        path.write_text(fconfig.dumps("fleet.db", heartbeat_s, nodes, allow=ALLOW))
        env = FleetEnv(path, boards, tmp_path / "fleet.db")
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.stop()


@pytest.fixture
def broker(tmp_path):
    """A real Mosquitto (tests/fleet/mqttkit.py) on a free loopback port, persistence on."""
    from mqttkit import Mosquitto

    mq = Mosquitto(tmp_path / "broker").start()
    yield mq
    mq.stop()
