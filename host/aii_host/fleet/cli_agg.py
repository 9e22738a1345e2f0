# SPDX-License-Identifier: MIT
"""`aii aggregate` (run the aggregation loop, print events and verdicts) and `aii status`
(the operator view: a table of nodes and the global verdict); docs/fleet.md §5."""

import argparse
import contextlib
import json
import signal
import sys
import time

from .. import clikit
from ..clikit import UsageError, amount_text

_VERDICTS = """\
verdicts (the last line of the table, `verdict.status` in --json; exit status as monitoring
plugins, e.g. Nagios or Icinga, read it):
  0 OK        every configured node online and verified at the epoch, the balance holds
  1 DEGRADED  the balance holds over what was verified, but a node is offline, not yet
              verified, inconsistent, or in storage_fault/recovery: each one named, with why
  2 VIOLATION the balance equation fails, or a node is isolated (aii aggregate --clear NODE)
  3 UNKNOWN   no verdict: no epoch verified yet, or an error (the fleet file, the database)
  64          usage error (see --help); 130 interrupted
"""

AGG_EPILOG = (
    """\
examples:
  aii aggregate --fleet fleet.toml                 run until Ctrl-C: events, verdicts, a status line
  aii aggregate --fleet fleet.toml --seconds 10    run 10 s, then print the final table
  aii aggregate --fleet fleet.toml --clear n2      end n2's isolation (audited), then exit
  aii aggregate --node n1=/dev/ttyACM0 --node n2=tcp:127.0.0.1:7001 --seconds 30
                                                   nodes named on the command line, no file
                                                   (database ./fleet.db, or --db)
the exit status is the last verdict's:
"""
    + _VERDICTS
)

STATUS_EPILOG = (
    """\
examples:
  aii status --fleet fleet.toml            one table (from a running `aii aggregate`, else a
                                           short aggregation of its own)
  aii status --fleet fleet.toml --json     the same for programs (amounts in raw units, with
                                           each quantity's format byte in `formats`)
  aii status --fleet fleet.toml --watch    a live table until Ctrl-C
  aii status --node n1=/dev/ttyACM0        one node, no fleet file
status only reads: without a database (the fleet file's, or --db) it aggregates into a
temporary one and creates no file.
"""
    + _VERDICTS
)


def args_aggregate(p):
    _args_fleet(p, "with --node: the fleet database (default: ./fleet.db)")
    p.add_argument(
        "--seconds",
        type=clikit.positive_float,
        help="stop after this many seconds (default: Ctrl-C)",
    )
    p.add_argument("--clear", metavar="NODE", help="end NODE's isolation (audited) and exit")
    p.add_argument("--quiet", action="store_true", help="no status line, only events")
    from ..sites.cli import args_gateway

    args_gateway(p)


def args_status(p):
    _args_fleet(
        p,
        "with --node: a fleet database to read or to create (default: ./fleet.db "
        "when it exists, else a temporary one)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    p.add_argument(
        "--seconds",
        type=clikit.positive_float,
        default=3.0,
        help="own aggregation time (default: %(default)s)",
    )
    p.add_argument("--clear", metavar="NODE", help="end NODE's isolation (audited) first")


def _heartbeat(text):
    v = clikit.positive_float(text)
    if not 0.01 <= v <= 60:
        raise argparse.ArgumentTypeError(f"must be 0.01 .. 60 seconds, got {text!r}")
    return v


def _args_fleet(p, db_help):
    p.add_argument("--fleet", help="fleet file (TOML, docs/fleet.md): nodes, keys, database")
    p.add_argument(
        "--node",
        action="append",
        default=[],
        metavar="NAME=PORT",
        help="instead of --fleet: a node and its port (a serial device, a simulated board's pty, "
        "tcp:HOST:PORT); repeatable; a name given again adds a backup link. Reads need no key",
    )
    p.add_argument("--db", help=db_help)
    p.add_argument(
        "--heartbeat",
        type=_heartbeat,
        default=0.5,
        help="with --node: poll period, s (%(default)s)",
    )
    p.add_argument(
        "--raw", action="store_true", help="amounts in raw units (default: decimals, unit)"
    )


_BAD_IN_NODE = set('"\\') | {chr(c) for c in range(32)} | {chr(127)}


def _fleet_of(args, db):
    """The fleet of --fleet FILE, or of the --node NAME=PORT options (database `db`)."""
    from pathlib import Path

    from .config import ORIGINS, Policy, dumps, load, loads

    if args.fleet and args.node:
        raise UsageError("give --fleet FILE or --node NAME=PORT options, not both")
    if args.fleet:
        if args.db:
            raise UsageError("--db goes with --node; a fleet file names its own database")
        return load(args.fleet)
    if not args.node:
        raise UsageError(
            "no nodes: give --fleet FILE (docs/fleet.md) or --node NAME=PORT, e.g. "
            "--node n1=/dev/ttyACM0 --node n2=tcp:127.0.0.1:7001"
        )
    links = {}  # a name given again adds a link (the first one given is preferred)
    for item in args.node:
        name, sep, port = item.partition("=")
        if not (sep and name and port) or set(item) & _BAD_IN_NODE:
            raise UsageError(f"--node {item!r}: expected NAME=PORT, e.g. n1=/dev/ttyACM0")
        if port in links.get(name, ()):
            raise UsageError(f"--node {item!r}: {name} has that port already")
        links.setdefault(name, []).append(port)
    nodes = [(name, ports if len(ports) > 1 else ports[0], None) for name, ports in links.items()]
    if set(str(db)) & _BAD_IN_NODE:
        raise UsageError(f"--db {str(db)!r}: not a usable file name")
    fleet = loads(dumps(db, args.heartbeat, nodes), "--node options", Path.cwd())
    # No fleet file, no policy: a look at nodes judges no origins (docs/fleet.md §8).
    fleet.policy = Policy(tuple(ORIGINS))
    return fleet


# ---- aggregate ---------------------------------------------------------------------------------


def _fmt_event(name, kind, data, fmt_of=lambda node, q: None):
    t = time.strftime("%H:%M:%S")
    who = name or "fleet"
    if kind == "event":
        d = dict(data)
        n, k = d.pop("n", "?"), d.pop("kind", "?")
        return f"{t} {who}: event #{n} {k} {json.dumps(d, sort_keys=True)}"
    if kind == "violation":
        q = data.get("quantity")
        extra = {k: v for k, v in data.items() if k not in ("node", "kind", "quantity", "delta")}
        return (
            f"{t} {who}: VIOLATION {data['kind']}{' ' + q if q else ''} delta "
            f"{_signed(data['delta'], fmt_of(name, q), False, q or '')} "
            f"{json.dumps(extra, sort_keys=True, default=str)}"
        )
    return f"{t} {who}: {kind} {json.dumps(data, sort_keys=True, default=str)}"


def _signed(v, fmt, raw, unit=""):
    text = amount_text(v, fmt, raw, unit)
    return text if v is None or v < 0 else "+" + text


def _clear(fleet, node):
    from .aggregate import open_db
    from .verify import clear

    if node not in fleet.names():
        raise UsageError(
            f"--clear: no node {node!r} in the fleet (have: {', '.join(fleet.names())})"
        )
    db = open_db(fleet.db)
    try:
        return clear(db, fleet.db, node, by="cli")
    finally:
        db.close()


def do_aggregate(args):
    from .aggregate import Aggregator
    from .relay import RelayServer

    fleet = _fleet_of(args, args.db or "fleet.db")
    if args.clear:
        done = _clear(fleet, args.clear)
        print(f"{args.clear}: " + ("isolation cleared (audited)" if done else "was not isolated"))
        return 0
    tty = sys.stdout.isatty() and not args.quiet
    last_line = [0.0]
    agg = None

    def fmt_of(node, q):
        # On the loop thread: the units the node's replica holds.
        n = agg.nodes.get(node) if agg is not None else None
        return (n.units or {}).get(q) if n is not None else None

    def on_event(name, kind, data):
        if tty:
            sys.stdout.write("\r\x1b[2K")
        print(_fmt_event(name, kind, data, fmt_of), flush=True)

    agg = Aggregator(fleet, on_event=on_event)
    relay = RelayServer(agg, fleet.db)
    gw = None
    if any(getattr(args, k, None) for k in ("mqtt", "site", "mqtt_cred")):
        from ..sites.cli import gateway_of

        gw = gateway_of(args, agg, fleet, lambda kind, data: on_event(None, kind, data))
    relay.check()
    with _sigterm_stops():
        return _aggregate(args, fleet, agg, relay, tty, last_line, gw)


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


def _aggregate(args, fleet, agg, relay, tty, last_line, gw=None):
    end = None if args.seconds is None else time.monotonic() + args.seconds
    verdict = None
    with agg, relay, contextlib.ExitStack() as stack:
        if gw is not None:
            gw.start()
            stack.callback(gw.stop)
        print(
            f"aggregating {len(fleet.nodes)} node(s), heartbeat {agg.hb} s, db {fleet.db} "
            "(Ctrl-C stops); `aii transfer` on this fleet goes through it",
            flush=True,
        )
        try:
            while end is None or time.monotonic() < end:
                time.sleep(min(0.5, agg.hb, max(0.0, end - time.monotonic()) if end else 0.5))
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
        rows, v = settled_view(agg, 2 * agg.hb)
    if tty:
        print()
    _print_table(rows, v, args.raw)
    return v["exit"]


def _status_line(snap, verdict):
    on = sum(1 for v in snap.values() if v["state"] == "online")
    sync = sum(1 for v in snap.values() if v["verified"])
    seqs = sum(v["replica_seq"] for v in snap.values())
    if verdict is None:
        vtxt = "no epoch yet"
    else:
        v = verdict.to_json()
        _judge(_rows_from_snapshot(snap, verdict), v)
        who = ", ".join(sorted({p["node"] for p in v["problems"] if p["node"]}))
        vtxt = f"epoch {verdict.epoch} {v['status']}" + (f" ({who})" if who else "")
    return f"{on}/{len(snap)} online, {sync} verified, {seqs} records, {vtxt}"


# ---- the verdict -------------------------------------------------------------------------------

OK, DEGRADED, VIOLATION, UNKNOWN = "OK", "DEGRADED", "VIOLATION", "UNKNOWN"
_EXIT = {
    OK: clikit.EXIT_OK,
    DEGRADED: clikit.EXIT_WARNING,
    VIOLATION: clikit.EXIT_CRITICAL,
    UNKNOWN: clikit.EXIT_UNKNOWN,
}


def _judge(rows, verdict):
    """Adds the fleet's health to `verdict` (a dict): `status` (OK, DEGRADED, VIOLATION,
    UNKNOWN), `exit` (0..3, as monitoring plugins read it) and `problems` ([{node, why}], each
    node named). OK needs every configured node online and verified at the epoch (the host's
    copy at the epoch's cut found equal to the node's journal at that seq) and the balance
    equation holding; a violation or an isolated node is VIOLATION whatever else holds."""
    fmts, _ = _formats(rows)
    crit, warn = [], []
    for node, q, d in verdict.get("residuals") or []:
        crit.append((node, f"violation: {q} off by {_signed(d, fmts.get(q), False, q)}"))
    for node, why in sorted((verdict.get("isolated") or {}).items()):
        crit.append((node, f"isolated ({why}): clear it with aii aggregate --clear {node}"))
    if verdict.get("ok") is False and not crit:
        crit.append((None, "the fleet balance equation does not hold"))
    for r in rows:
        state = r.get("state")
        if state != "online":
            why = r.get("reason") or "no answer"
            if state == "unknown":
                why = "not seen by the aggregator yet"
            warn.append((r["name"], f"{state}: {why}"))
        elif not r.get("verified"):
            seqs = f"the host's copy is at seq {r.get('replica_seq')}, the node at {r.get('seq')}"
            warn.append((r["name"], f"not verified at the epoch: {seqs}"))
        if r.get("node_state") in ("storage_fault", "recovery"):
            # The node refuses every change until its storage works again or it is repaired.
            what = "aii node-repair" if r["node_state"] == "recovery" else "its storage"
            warn.append(
                (r["name"], f"{r['node_state']}: refuses changes (see {what}, docs/faults.md)")
            )
    for what, nodes in sorted((verdict.get("inconsistent") or {}).items()):
        for n in nodes:
            warn.append((n, f"{what} digest differs from the majority"))
    if crit:
        status = VIOLATION
    elif warn:
        status = DEGRADED
    elif not rows:
        status, warn = UNKNOWN, [(None, "no nodes")]
    elif verdict.get("ok") is None or verdict.get("epoch") is None:
        status, warn = UNKNOWN, [(None, "no epoch verified yet")]
    else:
        status = OK
    verdict["status"], verdict["exit"] = status, _EXIT[status]
    verdict["problems"] = [{"node": n, "why": w} for n, w in crit + warn]
    return verdict


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
                "verified": v.get("verified", False),
                "node_state": v.get("node_state", "ok"),
                "link": v.get("link"),
                "link_index": v.get("link_index", 1),
                "links": v.get("links", 1),
                "link_note": v["reason"] if v["state"] == "online" else "",
                "totals": totals,
                "formats": v.get("formats", {}),
                "isolated": (verdict.isolated.get(name) if verdict else None),
            }
        )
    return rows


def _rows_from_db(db, fleet, max_age):
    from . import units

    now = time.time()
    iso = {r[0]: r[1] for r in db.execute("SELECT node, reason FROM isolated")}
    fmts = units.load(db)
    rows, fresh = [], True
    by_name = {
        r[0]: r
        for r in db.execute(
            "SELECT name, state, last_rx, latency_ms, misses, seq, replica_seq, totals, updated, "
            "reason, verified, node_state, port FROM nodes"
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
                "verified": bool(r[10]),
                "node_state": r[11] or "ok",
                # The link the aggregator used last (nodes.port), among the node's links.
                "link": r[12],
                "link_index": spec.ports.index(r[12]) + 1 if r[12] in spec.ports else None,
                "links": len(spec.ports),
                # Online on a backup link: the reason names the preferred link's failure.
                "link_note": r[9] if r[1] == "online" else "",
                "totals": json.loads(r[7] or "{}"),
                "formats": fmts.get(spec.name, {}),
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


def _formats(rows):
    """({quantity: format byte} the nodes agree on, {quantity: [nodes]} where they do not)."""
    from . import units

    return units.merge({r["name"]: r.get("formats") for r in rows})


_STYLE = {OK: "green", DEGRADED: "yellow", VIOLATION: "red", UNKNOWN: "yellow"}


def _table(rows, verdict, raw=False):
    """The operator view: nodes, the equation per quantity (exact decimals with the unit, raw
    units with `raw`) and the verdict naming every node that keeps it from OK."""
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    if "status" not in verdict:
        _judge(rows, verdict)
    fmts, differ = _formats(rows)

    def amt(v, q):
        return amount_text(v, fmts.get(q), raw)

    qs = sorted({q for r in rows for q in (r.get("totals") or {})})
    t = Table(title="fleet nodes")
    # Nodes with several links (docs/fleet.md §3.1): which one is in use, a backup in yellow.
    links = any((r.get("links") or 1) > 1 for r in rows)
    cols = ("node", "state") + (("link",) if links else ())
    for col in cols + ("last hb", "latency", "misses", "seq", "replica"):
        t.add_column(col, justify="left" if col in cols else "right")
    for q in qs:
        t.add_column(f"{q} (raw)" if raw else q, justify="right")
    t.add_column("isolated")
    for r in rows:
        state = r["state"]
        style = {"online": "green", "offline": "red"}.get(state, "yellow")
        why = r.get("reason") if state != "online" else ""
        t.add_row(
            r["name"],
            f"[{style}]{state}[/]" + (f" ({escape(why[:60])})" if why else ""),
            *((_link_cell(r),) if links else ()),
            _num(r.get("last_heartbeat_s"), "{:.1f} s"),
            _num(r.get("latency_ms"), "{:.1f} ms"),
            _num(r.get("misses")),
            _num(r.get("seq")),
            _num(r.get("replica_seq")) + ("" if r.get("verified") else " *"),
            *[amt((r.get("totals") or {}).get(q), q) for q in qs],
            f"[red]{escape(r['isolated'])}[/]" if r.get("isolated") else "",
        )
    title = "raw units" if raw else "exact, in each quantity's unit"
    v = Table(title=f"fleet balance per quantity ({title})")
    for col in ("quantity", "balances+held", "in flight", "opening", "inflow", "outflow", "delta"):
        v.add_column(col, justify="left" if col == "quantity" else "right")
    for q, x in sorted((verdict.get("totals") or {}).items()):
        d = x["delta"]
        v.add_row(
            q,
            *[amt(x[k], q) for k in ("held", "in_flight", "opening", "inflow", "outflow")],
            f"[green]{amt(0, q)}[/]" if d == 0 else f"[red]{_signed(d, fmts.get(q), raw)}[/]",
        )
    st = verdict["status"]
    lines = [
        f"verdict: [{_STYLE[st]}]{st}[/], epoch {verdict.get('epoch')} (exit {verdict['exit']})"
    ]
    for p in verdict["problems"]:
        lines.append(f"  {escape(p['node'] or 'fleet')}: {escape(p['why'])}")
    for q, nodes in sorted(differ.items()):
        lines.append(f"  {q}: the nodes' units differ ({', '.join(nodes)}): shown in raw units")
    return Group(t, v, Text.from_markup("\n".join(lines)))


def _link_cell(r):
    from rich.markup import escape

    i, k, port = r.get("link_index"), r.get("links") or 1, r.get("link") or "?"
    text = f"{i or '?'}/{k} {escape(port[-28:])}"
    return text if i == 1 or k == 1 else f"[yellow]{text}[/]"


def _print_table(rows, verdict, raw=False):
    from rich.console import Console

    Console(width=160).print(_table(rows, verdict, raw))


def _grab(agg):
    # On the loop thread: every node's row with its replica's totals and units.
    out = {}
    for n in agg.nodes.values():
        row = agg._row(n)
        rep = n.replica
        names = rep.quantities()
        row["totals"] = {names[q]: rep.bal_held(q) for q in names}
        row["formats"] = {names[q]: rep.led.format(q) for q in names}
        out[n.name] = row
    return out


def settled_view(agg, timeout):
    """(rows, verdict dict): the nodes' rows and an epoch taken together on the loop thread (the
    same instant), at a moment when every online node's copy is verified, that is not in the
    middle of a poll that found the node ahead; after `timeout` seconds, what there is."""
    end = time.monotonic() + timeout
    while True:
        snap, verdict = agg.call(lambda: (_grab(agg), agg._verify()))
        rows = _rows_from_snapshot(snap, verdict)
        if time.monotonic() >= end or all(r["verified"] for r in rows if r["state"] == "online"):
            return rows, _judge(rows, verdict.to_json())
        time.sleep(min(0.05, agg.hb / 4))


def _own_aggregation(fleet, seconds, db_path):
    from .aggregate import Aggregator, AggregatorError

    with Aggregator(fleet, db_path=db_path) as agg:
        try:
            agg.wait_synced(timeout=seconds)
        except AggregatorError:
            pass  # show what we have: offline nodes are part of the picture
        return settled_view(agg, min(seconds, 2.0))


def _gather(fleet, seconds, create):
    """(rows, verdict) from a running aggregator's database when it is fresh, else from an own
    aggregation: into the fleet's database when it exists (or `create`: --db was given), else
    into a temporary one, so that reading a fleet creates no file."""
    import tempfile
    from pathlib import Path

    from .aggregate import open_db

    db_path = Path(fleet.db)
    if db_path.exists():
        db = open_db(db_path)
        try:
            from .verify import SCHEMA

            db.executescript(SCHEMA)
            rows, fresh = _rows_from_db(db, fleet, max(2.0, 5 * fleet.heartbeat_s))
            if fresh:
                v = _verdict_from_db(db)
                v["source"] = "aggregator"
                return rows, _judge(rows, v)
        finally:
            db.close()
    elif not create:
        with tempfile.TemporaryDirectory(prefix="aii-status-") as td:
            rows, v = _own_aggregation(fleet, seconds, Path(td) / "fleet.db")
        v["source"] = "own (temporary database)"
        return rows, _judge(rows, v)
    rows, v = _own_aggregation(fleet, seconds, db_path)
    v["source"] = "own"
    return rows, _judge(rows, v)


def do_status(args):
    fleet = _fleet_of(args, args.db or "fleet.db")
    create = bool(args.db)  # asked for: --db FILE
    if args.clear:
        done = _clear(fleet, args.clear)
        print(f"{args.clear}: " + ("isolation cleared (audited)" if done else "was not isolated"))
    if not args.watch:
        rows, v = _gather(fleet, args.seconds, create)
        if args.json:
            print(json.dumps({"nodes": rows, "verdict": v}, default=str))
        else:
            _print_table(rows, v, args.raw)
        return v["exit"]
    from rich.console import Console
    from rich.live import Live

    v = {"exit": clikit.EXIT_UNKNOWN}
    with Live(console=Console(width=160), refresh_per_second=4) as live:
        try:
            while True:
                rows, v = _gather(fleet, args.seconds, create)
                if args.json:
                    print(json.dumps({"nodes": rows, "verdict": v}, default=str), flush=True)
                else:
                    live.update(_table(rows, v, args.raw))
                time.sleep(max(0.5, fleet.heartbeat_s))
        except KeyboardInterrupt:
            return v["exit"]  # the last verdict's, as without --watch
