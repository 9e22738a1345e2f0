# SPDX-License-Identifier: MIT
"""Events: what changed between two snapshots of the fleet (view.py), one dict each.

    {"t": 1765080000.1, "kind": "isolated", "node": "east", "severity": "critical",
     "text": "east: isolated (balance Wh +7000)", "data": {...}}

Kinds that alert (ALERT_KINDS: --alert-command, --alert-webhook): `violation`, `isolated`,
`cleared`, `offline`, `online` (after offline), `deadline_miss` (a critical task's misses grew),
`storage_fault`, `recovery`, `storage_ok`, `failover` (a node with several links is online on a
backup one, docs/fleet.md §3.1), `failback` (on its preferred link again). Kinds that are only events: `transfer` (a transfer
reached a state), `verdict` (the fleet's verdict changed), `operator` (an action asked for,
done or refused), `alert_failed`, `dashboard` (started, stopped), `injected` (--demo).

The first snapshot is compared with a fleet where all is well, so problems present at start are
reported once (a node offline, isolated, in storage_fault); violations and transfers already
stored are history and are not."""

import time

ALERT_KINDS = (
    "violation",
    "isolated",
    "cleared",
    "offline",
    "online",
    "deadline_miss",
    "storage_fault",
    "recovery",
    "storage_ok",
    "failover",
    "failback",
)
SEVERITY = {
    "violation": "critical",
    "isolated": "critical",
    "storage_fault": "critical",
    "recovery": "critical",
    "offline": "warning",
    "deadline_miss": "warning",
    "failover": "warning",
    "alert_failed": "warning",
}
_FINAL = ("committed", "aborted")
NOT_TRIED = "not connected yet"  # fleet/aggregate.py's NodeState.reason before a first try


def event(kind, node, text, **data):
    return {
        "t": time.time(),
        "kind": kind,
        "node": node,
        "severity": SEVERITY.get(kind, "info"),
        "text": text,
        "data": data,
    }


# The node's own tasks (firmware/aii_node): never critical there (they serve the host, and a
# loaded host's late requests show as their misses); their statistics are on the page.
NODE_TASKS = ("heartbeat", "console")


class Watcher:
    """`Watcher(critical=None)`: `diff(view)` returns the events since the previous view.
    `critical`: the task names whose deadline misses alert (None: every task of the node's
    configuration, not the node's own heartbeat and console)."""

    def __init__(self, critical=None):
        self.critical = set(critical) if critical else None
        self._prev = None
        self._down = set()  # nodes an `offline` event was sent for, until `online`
        self._link = {}  # the link index of each multi-link node last reported

    def _critical(self, task):
        return task in self.critical if self.critical is not None else task not in NODE_TASKS

    def diff(self, view):
        prev, self._prev = self._prev, _digest(view)
        cur = self._prev
        first = prev is None
        if first:
            prev = {
                "node_state": {},
                "isolated": {},
                "misses": cur["misses"],
                "violation_id": cur["violation_id"],
                "tx": cur["tx"],
                "status": None,
            }
        out = []
        for name, state in cur["state"].items():
            why = cur["reason"].get(name) or "no answer"
            # An aggregation that has not tried the node yet says nothing about it.
            if state == "offline" and why != NOT_TRIED and name not in self._down:
                self._down.add(name)
                out.append(event("offline", name, f"{name}: offline ({why})", why=why))
            elif state == "online" and name in self._down:
                self._down.discard(name)
                out.append(event("online", name, f"{name}: online again"))
        for name, (i, port) in cur["link"].items():
            # Against the link last reported, across offline periods (1 until one is).
            was, self._link[name] = self._link.get(name, 1), i
            if i != was and i == 1:
                out.append(event("failback", name, f"{name}: back on link 1 ({port})", link=port))
            elif i != was:
                text = f"{name}: on backup link {i} ({port})"
                out.append(event("failover", name, text, link=port, index=i))
        for v in reversed(view["violations"]):
            if v["id"] > prev["violation_id"]:
                what = f"{v['kind']} {v['quantity'] or ''} {v['delta_text']}".replace("  ", " ")
                out.append(
                    event(
                        "violation",
                        v["node"],
                        f"{v['node']}: VIOLATION {what}",
                        violation=v["kind"],
                        quantity=v["quantity"],
                        delta=v["delta"],
                        delta_text=v["delta_text"],
                        detail=v["data"],
                    )
                )
        for name, why in cur["isolated"].items():
            if name not in prev["isolated"]:
                out.append(event("isolated", name, f"{name}: isolated ({why})", reason=why))
        for name, why in prev["isolated"].items():
            if name not in cur["isolated"]:
                out.append(
                    event("cleared", name, f"{name}: isolation cleared (was: {why})", reason=why)
                )
        for name, st in cur["node_state"].items():
            was = prev["node_state"].get(name, "ok")
            if st != was:
                kind = "storage_ok" if st == "ok" else st
                if kind in ("storage_fault", "recovery", "storage_ok"):
                    out.append(event(kind, name, f"{name}: {st} (was {was})", was=was))
        for (name, task), n in cur["misses"].items():
            before = prev["misses"].get((name, task))
            if not self._critical(task):
                continue
            if before is not None and n > before:
                out.append(
                    event(
                        "deadline_miss",
                        name,
                        f"{name}: task {task} missed {n - before} deadline(s) ({n} in all)",
                        task=task,
                        new=n - before,
                        misses=n,
                    )
                )
        for txid, (state, text) in cur["tx"].items():
            if prev["tx"].get(txid, (None,))[0] != state and state in _FINAL:
                out.append(event("transfer", None, f"transfer {txid}: {state}: {text}", txid=txid))
        status = view["verdict"].get("status")
        # At start the problems come as their own events (offline, isolated, ...).
        if status != prev["status"] and not first:
            problems = "; ".join(
                f"{p['node'] or 'fleet'}: {p['why']}" for p in view["verdict"].get("problems", [])
            )
            out.append(
                event(
                    "verdict",
                    None,
                    f"fleet: {status}" + (f" ({problems})" if problems else ""),
                    status=status,
                    epoch=view["verdict"].get("epoch"),
                )
            )
        return out


def _digest(view):
    """The parts of a snapshot events are made from."""
    misses = {}
    for r in view["nodes"]:
        for t in r.get("tasks") or []:
            if t.get("misses") is not None:
                misses[(r["name"], t["name"])] = t["misses"]
    ids = [v["id"] for v in view["violations"]]
    return {
        "state": {r["name"]: r["state"] for r in view["nodes"]},
        "reason": {r["name"]: r.get("reason") for r in view["nodes"]},
        "node_state": {r["name"]: r.get("node_state") or "ok" for r in view["nodes"]},
        "isolated": {i["node"]: i["reason"] for i in view["isolated"]},
        "misses": misses,
        "violation_id": max(ids) if ids else 0,
        "tx": {
            t["txid"]: (t["state"], f"{t['src']} -> {t['dst']} {t['amount_text']}")
            for t in view["transfers"]["recent"]
        },
        "status": view["verdict"].get("status"),
        # The link in use of each online node that has several (index 1 is the preferred).
        "link": {
            r["name"]: (r.get("link_index"), r.get("link"))
            for r in view["nodes"]
            if (r.get("links") or 1) > 1 and r["state"] == "online" and r.get("link_index")
        },
    }
