# SPDX-License-Identifier: MIT
"""`aii aggregate` (run the aggregation loop, print events and verdicts) and `aii status`
(the operator view: a table of nodes and the global verdict); docs/fleet.md §5."""

import argparse
import contextlib
import json
import signal
import sys
import time

from .._errors import AIIError

_AGG_EPILOG = """\
examples:
  aii aggregate --fleet fleet.toml                 run until Ctrl-C: events, verdicts, a status line
  aii aggregate --fleet fleet.toml --seconds 10    run 10 s, then print the final table
  aii aggregate --fleet fleet.toml --clear n2      end n2's isolation (audited), then exit
  aii aggregate --node n1=/dev/ttyACM0 --node n2=tcp:127.0.0.1:7001 --seconds 30
                                                   nodes named on the command line, no file
exit status: 0 the last verdict held, 1 a violation is open (or an error).
"""

_STATUS_EPILOG = """\
examples:
  aii status --fleet fleet.toml            one table (from a running `aii aggregate`, else a
                                           short aggregation of its own)
  aii status --fleet fleet.toml --json     the same for programs
  aii status --fleet fleet.toml --watch    a live table until Ctrl-C
  aii status --node n1=/dev/ttyACM0        one node, no fleet file (database ./fleet.db)
"""


def add_parsers(sub):
    """Adds `aggregate` and `status` to the `aii` parser."""
    p = sub.add_parser(
        "aggregate",
        help="connect to every node of a fleet, keep their journals, verify the fleet",
        description="One loop for all the nodes of a fleet file: heartbeats, offline detection, "
        "reconnection, journals copied into the fleet database and replayed into host "
        "replicas, and the fleet balance equation verified at every epoch (docs/fleet.md).",
        epilog=_AGG_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _args_fleet(p)
    p.add_argument("--seconds", type=float, help="stop after this many seconds (default: Ctrl-C)")
    p.add_argument("--clear", metavar="NODE", help="end NODE's isolation (audited) and exit")
    p.add_argument("--quiet", action="store_true", help="no status line, only events")
    p.set_defaults(func=do_aggregate)

    s = sub.add_parser(
        "status",
        help="table of a fleet's nodes and its global verdict",
        description="Nodes (online state, last heartbeat, latency, deadline misses, per-quantity "
        "totals) and the global verdict. Reads what a running `aii aggregate` keeps in the "
        "fleet database; with none running, aggregates for a moment itself.",
        epilog=_STATUS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _args_fleet(s)
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    s.add_argument(
        "--seconds", type=float, default=3.0, help="own aggregation time (default: %(default)s)"
    )
    s.add_argument("--clear", metavar="NODE", help="end NODE's isolation (audited) first")
    s.set_defaults(func=do_status)


def _args_fleet(p):
    p.add_argument("--fleet", help="fleet file (TOML, docs/fleet.md): nodes, keys, database")
    p.add_argument(
        "--node",
        action="append",
        default=[],
        metavar="NAME=PORT",
        help="instead of --fleet: a node and its port (a serial device, a simulated board's pty, "
        "tcp:HOST:PORT); repeatable. Reads need no key",
    )
    p.add_argument("--db", default="fleet.db", help="with --node: the fleet database (%(default)s)")
    p.add_argument(
        "--heartbeat", type=float, default=0.5, help="with --node: poll period, s (%(default)s)"
    )


def _fleet_of(args):
    """The fleet of --fleet FILE, or of the --node NAME=PORT options."""
    from pathlib import Path

    from .config import dumps, load, loads

    if args.fleet and args.node:
        raise AIIError("give --fleet FILE or --node NAME=PORT options, not both")
    if args.fleet:
        return load(args.fleet)
    if not args.node:
        raise AIIError(
            "no nodes: give --fleet FILE (docs/fleet.md) or --node NAME=PORT, e.g. "
            "--node n1=/dev/ttyACM0 --node n2=tcp:127.0.0.1:7001"
        )
    nodes = []
    for item in args.node:
        name, sep, port = item.partition("=")
        if not (sep and name and port) or '"' in item or "\\" in item:
            raise AIIError(f"--node {item!r}: expected NAME=PORT, e.g. n1=/dev/ttyACM0")
        nodes.append((name, port, None))
    return loads(dumps(args.db, args.heartbeat, nodes), "--node options", Path.cwd())


# ---- aggregate ---------------------------------------------------------------------------------


def _fmt_event(name, kind, data):
    t = time.strftime("%H:%M:%S")
    who = name or "fleet"
    if kind == "event":
        d = dict(data)
        n, k = d.pop("n", "?"), d.pop("kind", "?")
        return f"{t} {who}: event #{n} {k} {json.dumps(d, sort_keys=True)}"
    if kind == "violation":
        q = f" {data['quantity']}" if data.get("quantity") else ""
        extra = {k: v for k, v in data.items() if k not in ("node", "kind", "quantity", "delta")}
        return (
            f"{t} {who}: VIOLATION {data['kind']}{q} delta {data['delta']:+d} "
            f"{json.dumps(extra, sort_keys=True, default=str)}"
        )
    return f"{t} {who}: {kind} {json.dumps(data, sort_keys=True, default=str)}"


def _clear(fleet, node):
    from .aggregate import open_db
    from .verify import clear

    if node not in fleet.names():
        raise AIIError(f"no node {node!r} in the fleet (have: {', '.join(fleet.names())})")
    db = open_db(fleet.db)
    try:
        return clear(db, fleet.db, node, by="cli")
    finally:
        db.close()


def do_aggregate(args):
    from .aggregate import Aggregator
    from .relay import RelayServer

    fleet = _fleet_of(args)
    if args.clear:
        done = _clear(fleet, args.clear)
        print(f"{args.clear}: " + ("isolation cleared (audited)" if done else "was not isolated"))
        return 0
    tty = sys.stdout.isatty() and not args.quiet
    last_line = [0.0]

    def on_event(name, kind, data):
        if tty:
            sys.stdout.write("\r\x1b[2K")
        print(_fmt_event(name, kind, data), flush=True)

    agg = Aggregator(fleet, on_event=on_event)
    relay = RelayServer(agg, fleet.db)
    with _sigterm_stops():
        return _aggregate(args, fleet, agg, relay, tty, last_line)


@contextlib.contextmanager
def _sigterm_stops():
    """SIGTERM (systemd, kill) ends `aii aggregate` as Ctrl-C does: the relay socket is
    removed, the database committed and the last table printed."""

    def stop(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends it at once
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _aggregate(args, fleet, agg, relay, tty, last_line):
    end = None if args.seconds is None else time.monotonic() + args.seconds
    verdict = None
    with agg, relay:
        print(
            f"aggregating {len(fleet.nodes)} node(s), heartbeat {agg.hb} s, db {fleet.db} "
            "(Ctrl-C stops); `aii transfer` on this fleet goes through it",
            flush=True,
        )
        try:
            while end is None or time.monotonic() < end:
                time.sleep(min(0.5, agg.hb))
                verdict = agg.verdict
                if time.monotonic() - last_line[0] >= 1.0 and not args.quiet:
                    last_line[0] = time.monotonic()
                    line = _status_line(agg.snapshot(), verdict)
                    if tty:
                        sys.stdout.write("\r\x1b[2K" + line)
                        sys.stdout.flush()
                    else:
                        print(line, flush=True)
        except KeyboardInterrupt:
            pass
        snap = _snapshot_with_totals(agg)
        verdict = agg.verify_now()
    if tty:
        print()
    _print_table(_rows_from_snapshot(snap, verdict), verdict.to_json())
    return 0 if verdict.ok else 1


def _status_line(snap, verdict):
    on = sum(1 for v in snap.values() if v["state"] == "online")
    sync = sum(1 for v in snap.values() if v["synced"])
    seqs = sum(v["replica_seq"] for v in snap.values())
    if verdict is None:
        vtxt = "no epoch yet"
    elif verdict.ok:
        vtxt = f"epoch {verdict.epoch} ok"
    else:
        vtxt = f"epoch {verdict.epoch} VIOLATION ({len(verdict.residuals)} residuals)"
    iso = f", isolated {','.join(verdict.isolated)}" if verdict and verdict.isolated else ""
    return f"{on}/{len(snap)} online, {sync} in sync, {seqs} records, {vtxt}{iso}"


# ---- status ------------------------------------------------------------------------------------


def _rows_from_snapshot(snap, verdict):
    rows = []
    for name, v in snap.items():
        totals = v.get("totals", {})  # per quantity: the replica's balances + held
        rows.append(
            {
                "name": name,
                "state": v["state"],
                "reason": v["reason"],
                "last_heartbeat_s": v["last_rx_age"],
                "latency_ms": v["latency_ms"],
                "misses": v["misses"],
                "seq": v["seq"],
                "replica_seq": v["replica_seq"],
                "synced": v["synced"],
                "totals": totals,
                "isolated": (verdict.isolated.get(name) if verdict else None),
            }
        )
    return rows


def _rows_from_db(db, fleet, max_age):
    now = time.time()
    iso = {r[0]: r[1] for r in db.execute("SELECT node, reason FROM isolated")}
    rows, fresh = [], True
    by_name = {
        r[0]: r
        for r in db.execute(
            "SELECT name, state, last_rx, latency_ms, misses, seq, replica_seq, totals, updated, "
            "reason FROM nodes"
        )
    }
    for spec in fleet.nodes:
        r = by_name.get(spec.name)
        if r is None or r[8] is None or now - r[8] > max_age:
            fresh = False
        if r is None:
            rows.append({"name": spec.name, "state": "unknown", "isolated": iso.get(spec.name)})
            continue
        rows.append(
            {
                "name": spec.name,
                "state": r[1],
                "reason": r[9] if r[1] != "online" else "",
                "last_heartbeat_s": None if r[2] is None else now - r[2],
                "latency_ms": r[3],
                "misses": r[4],
                "seq": r[5],
                "replica_seq": r[6],
                "synced": r[5] is not None and r[5] == r[6],
                "totals": json.loads(r[7] or "{}"),
                "isolated": iso.get(spec.name),
            }
        )
    return rows, fresh


def _verdict_from_db(db):
    r = db.execute(
        "SELECT id, t, cut, ok, totals, residuals, ms FROM epochs ORDER BY id DESC LIMIT 1"
    ).fetchone()
    iso = {x[0]: x[1] for x in db.execute("SELECT node, reason FROM isolated")}
    viol = db.execute("SELECT count(*) FROM violations").fetchone()[0]
    if r is None:
        return {"ok": None, "epoch": None, "isolated": iso, "violations": viol}
    return {
        "ok": bool(r[3]),
        "epoch": r[0],
        "age_s": time.time() - r[1],
        "cut": json.loads(r[2]),
        "totals": json.loads(r[4]),
        "residuals": json.loads(r[5]),
        "ms": r[6],
        "isolated": iso,
        "violations": viol,
    }


def _num(v, fmt="{:.0f}"):
    return "-" if v is None else fmt.format(v)


def _table(rows, verdict):
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table

    qs = sorted({q for r in rows for q in (r.get("totals") or {})})
    t = Table(title="fleet nodes")
    for col in ("node", "state", "last hb", "latency", "misses", "seq", "replica"):
        t.add_column(col, justify="left" if col in ("node", "state") else "right")
    for q in qs:
        t.add_column(q, justify="right")
    t.add_column("isolated")
    for r in rows:
        state = r["state"]
        style = {"online": "green", "offline": "red"}.get(state, "yellow")
        why = r.get("reason") if state != "online" else ""
        t.add_row(
            r["name"],
            f"[{style}]{state}[/]" + (f" ({escape(why[:60])})" if why else ""),
            _num(r.get("last_heartbeat_s"), "{:.1f} s"),
            _num(r.get("latency_ms"), "{:.1f} ms"),
            _num(r.get("misses")),
            _num(r.get("seq")),
            _num(r.get("replica_seq")) + ("" if r.get("synced") else " *"),
            *[_num((r.get("totals") or {}).get(q)) for q in qs],
            f"[red]{r['isolated']}[/]" if r.get("isolated") else "",
        )
    v = Table(title="global verdict (per quantity, integers)")
    for col in ("quantity", "balances+held", "in flight", "opening", "inflow", "outflow", "delta"):
        v.add_column(col, justify="left" if col == "quantity" else "right")
    for q, x in sorted((verdict.get("totals") or {}).items()):
        v.add_row(
            q,
            str(x["held"]),
            str(x["in_flight"]),
            str(x["opening"]),
            str(x["inflow"]),
            str(x["outflow"]),
            ("[green]0[/]" if x["delta"] == 0 else f"[red]{x['delta']:+d}[/]"),
        )
    ok = verdict.get("ok")
    word = "[green]OK[/]" if ok else "[red]VIOLATION[/]" if ok is False else "no epoch yet"
    res = verdict.get("residuals") or []
    lines = [f"verdict: {word}, epoch {verdict.get('epoch')}"]
    behind = [r["name"] for r in rows if not r.get("synced")]
    if behind:
        # The verdict covers the cut the host holds; these nodes may be ahead of it.
        lines.append(f"  not in sync (verified up to the host's copy): {', '.join(behind)}")
    for node, q, d in res:
        lines.append(f"  residual: node {node}, quantity {q}, delta {d:+d}")
    if verdict.get("inconsistent"):
        for what, nodes in verdict["inconsistent"].items():
            lines.append(f"  {what} digest differs from the majority: {', '.join(nodes)}")
    from rich.text import Text

    return Group(t, v, Text.from_markup("\n".join(lines)))


def _print_table(rows, verdict):
    from rich.console import Console

    Console(width=160).print(_table(rows, verdict))


def _snapshot_with_totals(agg):
    def grab():
        out = {}
        for n in agg.nodes.values():
            row = agg._row(n)
            rep = n.replica
            names = rep.quantities()
            row["totals"] = {names[q]: rep.bal_held(q) for q in names}
            out[n.name] = row
        return out

    return agg.call(grab)


def _own_aggregation(fleet, seconds):
    from .aggregate import Aggregator, AggregatorError

    with Aggregator(fleet) as agg:
        try:
            agg.wait_synced(timeout=seconds)
        except AggregatorError:
            pass  # show what we have: offline nodes are part of the picture
        snap = _snapshot_with_totals(agg)
        verdict = agg.verify_now()
    return _rows_from_snapshot(snap, verdict), verdict.to_json()


def _gather(fleet, seconds):
    from .aggregate import open_db

    db = open_db(fleet.db)
    try:
        from .verify import SCHEMA

        db.executescript(SCHEMA)
        rows, fresh = _rows_from_db(db, fleet, max(2.0, 5 * fleet.heartbeat_s))
        if fresh:
            v = _verdict_from_db(db)
            v["source"] = "aggregator"
            return rows, v
    finally:
        db.close()
    rows, v = _own_aggregation(fleet, seconds)
    v["source"] = "own"
    return rows, v


def do_status(args):
    fleet = _fleet_of(args)
    if args.clear:
        done = _clear(fleet, args.clear)
        print(f"{args.clear}: " + ("isolation cleared (audited)" if done else "was not isolated"))
    if not args.watch:
        rows, v = _gather(fleet, args.seconds)
        if args.json:
            print(json.dumps({"nodes": rows, "verdict": v}, default=str))
        else:
            _print_table(rows, v)
        return 0 if v.get("ok") is not False else 1
    from rich.console import Console
    from rich.live import Live

    with Live(console=Console(width=160), refresh_per_second=4) as live:
        try:
            while True:
                rows, v = _gather(fleet, args.seconds)
                if args.json:
                    print(json.dumps({"nodes": rows, "verdict": v}, default=str), flush=True)
                else:
                    live.update(_table(rows, v))
                time.sleep(max(0.5, fleet.heartbeat_s))
        except KeyboardInterrupt:
            return 0
