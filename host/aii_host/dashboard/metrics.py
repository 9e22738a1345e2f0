# SPDX-License-Identifier: MIT
"""Prometheus metrics (prometheus-client) made at each scrape from the dashboard's latest
snapshot of the fleet, so /metrics and the page always show the same instant.

METRICS is the one list of what is exported (name, type, labels, help): the collector emits
only these, and the tests check that every query of the shipped Grafana dashboard and alerting
rules (ops/) names one of them. Amounts are in each quantity's raw units (integers, exact): a
quantity's decimals are `aii_quantity_digits`.
"""

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..core.ledger import fx_format
from .events import ALERT_KINDS

STATUS_CODE = {"OK": 0, "DEGRADED": 1, "VIOLATION": 2, "UNKNOWN": 3}

# name: (type, labels, help)
METRICS = {
    "aii_up": ("gauge", (), "1 while the fleet database is fresh (an aggregator updates it)"),
    "aii_fleet_status": (
        "gauge",
        (),
        "the fleet's verdict as aii status exits: 0 OK, 1 DEGRADED, 2 VIOLATION, 3 UNKNOWN",
    ),
    "aii_fleet_nodes": ("gauge", (), "nodes in the fleet file"),
    "aii_node_online": ("gauge", ("node",), "1 when the aggregator reaches the node"),
    "aii_node_verified": ("gauge", ("node",), "1 when the host's copy is verified at the epoch"),
    "aii_node_isolated": ("gauge", ("node",), "1 while the node is isolated"),
    "aii_node_storage_state": (
        "gauge",
        ("node", "state"),
        "1 for the node's own storage state (ok, storage_fault, recovery)",
    ),
    "aii_node_latency_seconds": ("gauge", ("node",), "round trip of the last status request"),
    "aii_node_heartbeat_age_seconds": ("gauge", ("node",), "time since the node's last frame"),
    "aii_node_journal_seq": ("gauge", ("node",), "the node's journal seq at its last status"),
    "aii_node_replica_seq": ("gauge", ("node",), "the host's copy of the journal, last seq"),
    "aii_node_journal_lag_records": (
        "gauge",
        ("node",),
        "records of the node's journal not yet copied to the host",
    ),
    "aii_task_jobs": ("counter", ("node", "task"), "jobs the task has run (since the node's boot)"),
    "aii_task_deadline_misses": (
        "counter",
        ("node", "task"),
        "deadline misses of the task (since the node's boot)",
    ),
    "aii_task_overruns": ("counter", ("node", "task"), "budget overruns of the task"),
    "aii_task_response_max_seconds": ("gauge", ("node", "task"), "the task's longest response"),
    "aii_epoch": ("gauge", (), "number of the last verified epoch"),
    "aii_epoch_ok": ("gauge", (), "1 when the balance equation held at the last epoch"),
    "aii_epoch_age_seconds": ("gauge", (), "time since the last epoch row"),
    "aii_epoch_verification_seconds": ("gauge", (), "time the last epoch's verification took"),
    "aii_quantity_held": (
        "gauge",
        ("quantity",),
        "sum over nodes of balances and held escrow, raw units",
    ),
    "aii_quantity_in_flight": ("gauge", ("quantity",), "committed transfers in flight, raw units"),
    "aii_quantity_opening": ("gauge", ("quantity",), "sum of the opening balances, raw units"),
    "aii_quantity_inflow": ("gauge", ("quantity",), "inflow across the fleet boundary, raw units"),
    "aii_quantity_outflow": ("gauge", ("quantity",), "outflow across the fleet boundary, raw"),
    "aii_quantity_delta": (
        "gauge",
        ("quantity",),
        "held + in flight - (opening + inflow - outflow): 0 when the quantity is conserved",
    ),
    "aii_quantity_digits": ("gauge", ("quantity",), "decimal digits of the quantity's unit"),
    "aii_violations": ("counter", ("kind",), "violations recorded in the fleet database"),
    "aii_transfers": ("gauge", ("state",), "transfers in the coordinator's log, by state"),
    "aii_audit_records": ("gauge", (), "records in the audit trail"),
    "aii_audit_chain_ok": ("gauge", (), "1 when the audit chain verifies, 0 when it does not"),
    "aii_events": ("counter", ("kind",), "events this dashboard has seen, by kind"),
    "aii_alerts_failed": ("counter", ("sink",), "alerts a sink could not deliver"),
}


def registry(hub):
    """A CollectorRegistry whose only collector reads `hub.view` (and its counters)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Collector(hub))
    return reg


def exposition(reg):
    return generate_latest(reg)


def _digits(fmt):
    # A decimal unit's digits: the same text fx_format makes of 1 raw unit ("0.001": 3).
    try:
        text = fx_format(1, fmt)
    except Exception:  # noqa: BLE001 - a binary unit (bits) has no decimal digits
        return None
    return len(text.split(".")[1]) if "." in text else 0


class _Collector:
    def __init__(self, hub):
        self.hub = hub

    def describe(self):
        return []

    def collect(self):
        view = self.hub.view
        fams = {}

        def fam(name):
            if name not in fams:
                kind, labels, text = METRICS[name]
                cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
                fams[name] = cls(name, text, labels=list(labels))
            return fams[name]

        def put(name, value, *labels):
            if value is not None:
                fam(name).add_metric(list(labels), float(value))

        for name in METRICS:
            if not METRICS[name][1]:
                fam(name)  # unlabelled ones are always there (as 0 or a value below)
        counts = self.hub.event_counts()
        for kind in ALERT_KINDS:
            put("aii_events", counts.get(kind, 0), kind)
        for kind, n in sorted(counts.items()):
            if kind not in ALERT_KINDS:
                put("aii_events", n, kind)
        for sink, n in sorted(self.hub.alert_failures().items()):
            put("aii_alerts_failed", n, sink)
        if view is None:
            put("aii_up", 0)
            return list(fams.values())
        v = view["verdict"]
        put("aii_up", int(view["fleet"]["fresh"]))
        put("aii_fleet_status", STATUS_CODE.get(v.get("status"), 3))
        put("aii_fleet_nodes", len(view["nodes"]))
        iso = {i["node"] for i in view["isolated"]}
        for r in view["nodes"]:
            n = r["name"]
            put("aii_node_online", int(r["state"] == "online"), n)
            put("aii_node_verified", int(bool(r.get("verified"))), n)
            put("aii_node_isolated", int(n in iso), n)
            for st in ("ok", "storage_fault", "recovery"):
                put("aii_node_storage_state", int((r.get("node_state") or "ok") == st), n, st)
            lat = r.get("latency_ms")
            put("aii_node_latency_seconds", None if lat is None else lat / 1000, n)
            put("aii_node_heartbeat_age_seconds", r.get("last_heartbeat_s"), n)
            put("aii_node_journal_seq", r.get("seq"), n)
            put("aii_node_replica_seq", r.get("replica_seq"), n)
            put("aii_node_journal_lag_records", r.get("lag"), n)
            for t in r.get("tasks") or []:
                put("aii_task_jobs", t.get("jobs"), n, t["name"])
                put("aii_task_deadline_misses", t.get("misses"), n, t["name"])
                put("aii_task_overruns", t.get("overruns"), n, t["name"])
                resp = t.get("resp_max_us")
                put(
                    "aii_task_response_max_seconds",
                    None if resp is None else resp / 1e6,
                    n,
                    t["name"],
                )
        put("aii_epoch", v.get("epoch") or 0)
        put("aii_epoch_ok", None if v.get("ok") is None else int(v["ok"]))
        put("aii_epoch_age_seconds", v.get("age_s"))
        ms = v.get("ms")
        put("aii_epoch_verification_seconds", None if ms is None else ms / 1000)
        fmts = {}
        for r in view["nodes"]:
            fmts.update(r.get("formats") or {})
        for q, t in sorted((v.get("totals") or {}).items()):
            for part in ("held", "in_flight", "opening", "inflow", "outflow", "delta"):
                put(f"aii_quantity_{part}", t.get(part), q)
            if q in fmts and q not in view.get("units_differ", {}):
                put("aii_quantity_digits", _digits(fmts[q]), q)
        for kind, n in sorted(view["violation_counts"].items()):
            put("aii_violations", n, kind)
        for state, n in sorted(view["transfers"]["counts"].items()):
            put("aii_transfers", n, state)
        a = view["audit"]
        put("aii_audit_records", a.get("stored", a.get("count", 0)))
        put("aii_audit_chain_ok", None if a.get("ok") is None else int(a["ok"]))
        return list(fams.values())
