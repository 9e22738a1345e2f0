# SPDX-License-Identifier: MIT
"""The node running on aii_host.Scheduler: console as a scheduled task, heartbeats, offline
buffering, and Ctrl-C in the middle of a frame stopping it with its state intact."""

import nodekit
from aii_host.core import frame as host
from aii_node import console


class Feed:
    """Bytes the 'serial line' delivers; raises KeyboardInterrupt at a 0x03 like a board does."""

    def __init__(self, data=b""):
        self.data = bytearray(data)

    def ready(self):
        return bool(self.data)

    def readinto(self, buf):
        c = self.data.pop(0)
        if c == 3:
            raise KeyboardInterrupt
        buf[0] = c
        return 1


def start(tmp_path, data=b"", **cfg):
    node = nodekit.make_node(tmp_path, **cfg)
    feed = Feed(data)
    node.reader = console.LineReader(feed.ready, feed.readinto)
    return node, feed


def frames(node):
    return [
        host.decode(x) for x in b"".join(node.out.take()).splitlines(True) if x.startswith(b"@")
    ]


def test_runs_tasks_and_serves_the_console(tmp_path):
    node, _ = start(tmp_path, nodekit.request(1, "status", {}) + b"tasks\n")
    node.run(300_000)
    out = b"".join(node.out.lines).decode()
    assert "heartbeat" in out and "meter" in out  # the tasks table
    fs = frames(node)
    assert [f.kind for f in fs if f.seq == 1 and f.kind == "ok"] == ["ok"]
    assert any(f.kind == "ev" and f.body["kind"] == "heartbeat" for f in fs)
    stats = {t[1]: node.sched.stats(t[0]) for t in node.tasks}
    assert stats["meter"][0] >= 3 and stats["console"][0] >= 10
    load = node.ledger.balance(node.ledger.account("load"))
    assert load == 5 * stats["meter"][0]  # every meter job moved 0.005 Wh


def test_ctrl_c_mid_frame_stops_cleanly_and_restarts_intact(tmp_path):
    half = nodekit.request(
        1, "transfer", {"src": "grid", "dst": "load", "quantity": "Wh", "amount": 7}
    )
    node, feed = start(tmp_path)
    node.run(150_000)
    feed.data += half[:20] + b"\x03" + half[20:]
    node.run(1_000_000)  # returns at the 0x03, well before the second
    out = b"".join(node.out.take())
    assert b"stopped (ctrl-c), state saved" in out
    assert b"@1|1|ok" not in out  # the frame was cut: nothing executed
    before = node.ledger_view()
    again = nodekit.make_node(tmp_path)
    assert again.ledger_view() == before
    assert again.ledger.info()[0] == node.ledger.info()[0]
    # The rest of the cut frame is garbage on the new line; the host re-sends and it applies once.
    again.handle_line(half[20:].rstrip(b"\n"))
    assert again.out.take()[0].startswith(b"error: unknown command")
    assert nodekit.answer(again, half)[-1].kind == "ok"
    assert nodekit.answer(again, half)[-1].kind == "ok"  # the stored answer
    assert again.ledger.balance(again.ledger.account("load")) == before["accounts"][1][2] + 7


def test_offline_keeps_running_and_replays(tmp_path):
    node, feed = start(tmp_path, heartbeat_ms=20, offline_after=2)
    node.run(200_000)
    assert node.events.offline
    beats = [f for f in frames(node) if f.kind == "ev" and f.body["kind"] == "heartbeat"]
    assert len(beats) == 1  # the first heartbeat; the second made the node offline
    node.emit("violation", {"msg": "test"})
    assert frames(node) == []
    jobs = node.sched.stats(node.tasks[2][0])[0]
    feed.data += nodekit.request(5, "status", {})
    node.run(100_000)
    fs = frames(node)
    # On a loaded machine deadline misses are buffered too; they come back with the violation.
    answer = [i for i, f in enumerate(fs) if f.kind == "ok"]
    assert len(answer) == 1 and fs[answer[0]].body["offline"] is False
    replayed = [f.body["kind"] for f in fs[: answer[0]]]
    assert "violation" in replayed and "heartbeat" not in replayed
    assert node.sched.stats(node.tasks[2][0])[0] > jobs  # the meter never stopped


def test_miss_events_are_coalesced_per_heartbeat(tmp_path):
    import aii_host

    node, _ = start(tmp_path, heartbeat_ms=10_000)
    node.start()
    tid = node.tasks[2][0]
    for i in range(5):
        node._on_miss(tid, aii_host.MISS, 100 + i)
    node._on_miss(tid, aii_host.OVERRUN, 7)
    evs = [f.body for f in frames(node)]
    assert evs == [
        {"task": "meter", "us": 100, "more": 0, "kind": "miss"},
        {"task": "meter", "us": 7, "more": 0, "kind": "overrun"},
    ]
    node.miss_log[(tid, aii_host.MISS)][0] -= 20_000  # a heartbeat period later
    node._on_miss(tid, aii_host.MISS, 9)
    assert [f.body for f in frames(node)] == [{"task": "meter", "us": 9, "more": 4, "kind": "miss"}]
