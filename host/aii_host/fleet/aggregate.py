# SPDX-License-Identifier: MIT
"""Aggregator: one selector thread keeping a connection to every node of a fleet
(docs/fleet.md §3).

Per node: connect (serial/pty or TCP, non-blocking), `hello` (firmware and config digests),
then a poll every heartbeat period (`status`; the node itself goes offline after
`offline_after` heartbeats without a request), its buffered events fetched and acked, its
journal copied into the host database (table `records`) and replayed into a host replica
(aii_host.Ledger, the firmware's own core) whose digest must equal the node's at the same seq.
A node is offline after 3 heartbeat periods without a frame; it is reconnected with exponential
backoff. A mismatch is narrowed by segment hashes (SEAL records): only the first differing
segment is read again. A host copy that fell behind a node's compaction restarts from the
node's checkpoint.

Each node's conversation is a generator that yields requests and receives answers, driven by
the loop: the loop thread never blocks. Other threads use `agg.client(name).request(...)`
(NodeClient's API); their requests are queued to the loop and they wait on a future.

The class is put together from one mixin per concern: loop.py (the selector thread and the
calls into it), conversation.py (connections, frames, the per-node conversation), sync.py
(journal copy and replica sync) and store.py (the SQLite fleet database); this module holds the
public API and the verdicts.
"""

import collections
import socket
import threading
import time
from pathlib import Path

from . import config as fconfig
from .conversation import MISSED, AggregatorError, Conversation, LoopClient, NodeState
from .failover import FAILBACK_S, Failover
from .loop import Loop
from .store import RECORDS_FORMAT, SCHEMA, Store, open_db
from .sync import ReplicaSync

__all__ = ["RECORDS_FORMAT", "SCHEMA", "Aggregator", "AggregatorError", "NodeState", "open_db"]


def _nodes_of(fleet_or_nodes):
    if isinstance(fleet_or_nodes, (str, Path)):
        return fconfig.load(fleet_or_nodes)
    if isinstance(fleet_or_nodes, fconfig.Fleet):
        return fleet_or_nodes
    specs = [n if isinstance(n, fconfig.NodeSpec) else fconfig.NodeSpec(*n) for n in fleet_or_nodes]
    return fconfig.Fleet(Path("fleet.db"), 0.5, specs)


class Aggregator(Loop, Conversation, Failover, ReplicaSync, Store):
    """`Aggregator(fleet_or_nodes, db_path=None, heartbeat_s=None, on_event=None,
    verify_s=None, backoff_max=2.0, offline_s=None, policy=None, failback_s=5.0)`.

    `fleet_or_nodes`: a fleet file path, a config.Fleet, or a list of NodeSpec / (name, port,
    key). `on_event(name, kind, data)` is called on the loop thread (keep it short) for node
    state changes, node events and verdicts. `start()` opens nothing until called."""

    def __init__(
        self,
        fleet_or_nodes,
        db_path=None,
        heartbeat_s=None,
        on_event=None,
        verify_s=None,
        backoff_max=2.0,
        offline_s=None,
        policy=None,
        failback_s=FAILBACK_S,
    ):
        self.fleet = _nodes_of(fleet_or_nodes)
        # Which record origins each node may have (docs/fleet.md §8): the fleet file's.
        self.policy = policy if policy is not None else self.fleet.policy
        self.db_path = Path(db_path) if db_path is not None else Path(self.fleet.db)
        self.hb = float(heartbeat_s if heartbeat_s is not None else self.fleet.heartbeat_s)
        self.verify_s = float(verify_s if verify_s is not None else self.hb)
        self.backoff_max = backoff_max
        # Offline after MISSED heartbeat periods of silence; a longer bound for fleets whose
        # nodes answer slower than that (many simulated nodes on a small machine).
        self.offline_s = float(offline_s) if offline_s is not None else MISSED * self.hb
        # How often a node on a backup link probes its preferred one (failover.py).
        self.failback_s = float(failback_s)
        self.on_event = on_event
        self.nodes = {s.name: NodeState(s) for s in self.fleet.nodes}
        self.log = collections.deque(maxlen=1000)  # (wall time, node, kind, data)
        self.verifier = None
        self.verdict = None
        # Called with each Verdict on the loop thread (a site's gateway publishes it).
        self.on_epoch = None
        self.db = None
        self._sel = None
        self._inbox = collections.deque()
        self._wake_r = self._wake_w = None
        self._thread = None
        self._stop = False
        self._ready = threading.Event()
        self._error = None
        self._next_verify = 0.0
        self._seq_lock = threading.Lock()
        self._last_commit = 0.0

    def start(self):
        if self._thread is not None:
            return self
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._thread = threading.Thread(target=self._main, name="aii-aggregate", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def stop(self):
        if self._thread is None:
            return
        self._stop = True
        self._wake()
        self._thread.join(10)
        self._thread = None
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def names(self):
        return list(self.nodes)

    def client(self, name, timeout=2.0, retries=2):
        """An object with NodeClient's `request(kind, body=None, auth=None, timeout=None,
        retries=None)` for node `name`, executed by the loop thread."""
        if name not in self.nodes:
            raise AggregatorError(f"no node {name!r} in the fleet")
        spec = self.nodes[name].spec
        return LoopClient(self, name, spec.key, timeout, retries, spec.node_id)

    def reload_keys(self):
        """Reads the keys in the fleet file again (aii keygen --rotate replaced one): each node
        takes its new key for the requests signed from now on; names, ports and the rest stay.
        Returns the names whose key changed."""
        import dataclasses

        if self.fleet.path is None:
            raise AggregatorError("this aggregator was given no fleet file to read keys from")
        specs = {s.name: s for s in fconfig.load(self.fleet.path).nodes}

        def swap():
            changed = []
            for n in self.nodes.values():
                s = specs.get(n.name)
                if s is not None and s.key != n.spec.key:
                    n.spec = dataclasses.replace(n.spec, key=s.key)
                    changed.append(n.name)
            return changed

        return self.call(swap)

    def snapshot(self):
        """{name: dict} of every node's state, taken on the loop thread."""
        return self.call(lambda: {n.name: self._row(n) for n in self.nodes.values()})

    def verify_now(self):
        """Runs an epoch now (on the loop thread) and returns its Verdict."""
        return self.call(self._verify)

    def clear(self, name, by="operator"):
        """Ends the isolation of `name` (audited)."""
        return self.call(lambda: self.verifier.clear(name, by))

    def wait(self, pred, timeout=20.0, what="condition"):
        """Polls `pred(snapshot)` until true; AggregatorError with the snapshot on timeout."""
        end = time.monotonic() + timeout
        snap = None
        while time.monotonic() < end:
            snap = self.snapshot()
            if pred(snap):
                return snap
            time.sleep(min(0.05, self.hb / 2))
        rows = {k: (v["state"], v["seq"], v["replica_seq"], v["reason"]) for k, v in snap.items()}
        raise AggregatorError(f"timed out after {timeout:.0f} s waiting for {what}: {rows}")

    def wait_seq(self, name, seq, timeout=20.0):
        """Waits until `name`'s replica has applied the node's journal up to `seq` (e.g. the
        `seq` a request answered)."""
        return self.wait(lambda s: s[name]["replica_seq"] >= seq, timeout, f"{name} at {seq}")

    def wait_synced(self, timeout=20.0, names=None):
        """Waits until every node (or `names`) is online with a replica equal to the node."""
        names = names or list(self.nodes)
        return self.wait(
            lambda s: all(s[n]["state"] == "online" and s[n]["synced"] for n in names),
            timeout,
            "nodes online and in sync",
        )

    def _verify(self):
        # Every row stays fresh while the loop runs, also of nodes it cannot reach: `aii
        # status` then reads them instead of opening the ports itself. State, seqs and whether
        # the copy is verified are written with each epoch, so a reader sees them as it saw.
        now = time.time()
        self._w(
            "UPDATE nodes SET updated = ?, state = ?, seq = ?, replica_seq = ?, verified = ? "
            "WHERE name = ?",
            [
                (
                    now,
                    n.state,
                    (n.status or {}).get("seq"),
                    n.replica.seq,
                    self._verified(n),
                    n.name,
                )
                for n in self.nodes.values()
            ],
            many=True,
        )
        v = self.verifier.epoch(
            {n.name: n.replica for n in self.nodes.values()},
            {n.name: n.hello for n in self.nodes.values() if n.hello},
        )
        self.verdict = v
        if self.on_epoch is not None:
            try:
                self.on_epoch(v)
            except Exception as e:  # noqa: BLE001 - a publisher must not stop the loop
                self._emit(None, "error", {"msg": f"on_epoch: {type(e).__name__}: {e}"})
        return v

    @staticmethod
    def _verified(n):
        return n.verified_seq is not None and n.verified_seq == n.replica.seq

    def _row(self, n):
        st = n.status or {}
        rep = n.replica
        return {
            "name": n.name,
            "port": n.spec.port,
            # The link in use (or being tried), 1-based among the node's `ports`.
            "link": self._port(n),
            "link_index": n.link_i + 1,
            "links": len(n.spec.ports),
            "failovers": n.failovers,
            "failbacks": n.failbacks,
            "state": n.state,
            "reason": n.reason,
            "seq": st.get("seq"),
            "replica_seq": rep.seq,
            "synced": n.synced,
            "verified": self._verified(n),
            "digest": st.get("digest"),
            "replica_digest": rep.digest().hex(),
            "last_rx_age": None if not n.last_rx_wall else time.time() - n.last_rx_wall,
            "latency_ms": None if n.latency is None else n.latency * 1000,
            "misses": sum(r[2] for r in n.tasks) if n.tasks else None,
            "hello": n.hello,
            "reconnects": n.reconnects,
            "events": list(n.events),
            "gaps": list(rep.gaps),
            "broken": rep.broken,
            "node_state": n.node_state,
        }

    def _emit(self, name, kind, data):
        self.log.append((time.time(), name, kind, data))
        if self.on_event is not None:
            try:
                self.on_event(name, kind, data)
            except Exception as e:  # noqa: BLE001 - a bad callback must not stop the loop
                self.log.append((time.time(), name, "error", {"msg": f"on_event: {e!r}"}))
