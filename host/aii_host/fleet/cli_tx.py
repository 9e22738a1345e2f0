# SPDX-License-Identifier: MIT
"""`aii transfer` (two-phase transfers between nodes, recovery, the log) and `aii audit` (verify
and show the hash-chained trail); docs/transfer.md §6."""

import argparse
import dataclasses
import json
import os
import sys
import time

from .. import clikit
from ..clikit import UsageError, amount_text
from ..core._errors import AIIError

TRANSFER_EPILOG = """\
examples:
  aii transfer --fleet fleet.toml n1:battery n2:load Wh 25.5     25.500 Wh from n1 to n2
  aii transfer --fleet fleet.toml n1:battery n2:load Wh 25500 --raw   the same in raw units
  aii transfer --fleet fleet.toml n1:battery n2:load Wh 1 --txid 42   idempotent: again = same
  aii transfer --fleet fleet.toml --recover       finish every in-doubt transfer
  aii transfer --fleet fleet.toml --list          the latest transfers and their states
  aii transfer --fleet fleet.toml --holds         open holds on the nodes against the log
AMOUNT is read in the unit the source node declares for QUANTITY (its `ledger` answer), the
only format there is: more decimals than the unit has is refused, never rounded (Wh with 3
digits: 25.5 and 25.500 are 25500 raw; 1.0005 is an error). Tables show decimals and the unit;
--raw shows raw units.
while `aii aggregate` runs on the fleet, the requests go through it (it owns the ports);
one `aii transfer` at a time per fleet (the next waits up to --wait seconds).
exit status: 0 committed (or nothing left in doubt), 1 aborted or refused, or an error
(--recover: a hold the log does not know, or a left-over hold that could not be released),
3 still in doubt (a node unreachable: run --recover when it is back), 64 usage error.
"""

AUDIT_EPILOG = """\
examples:
  aii audit verify --fleet fleet.toml      the first bad seq if anything was altered
  aii audit verify --fleet fleet.toml --anchor 120:3f9a0c1d2e4b5a69
                                           also: record 120 still has the hash kept elsewhere
  aii audit show --fleet fleet.toml --limit 20 --kind tx
verify checks the chain, its head file (authenticated with this host's audit key,
$AII_KEYS_DIR/audit.key), the anchors, and the coordinator's transfer log against the trail.
A rollback of database and head file together is caught only below an anchor: note `head seq
N <hash>` of a verify now and then somewhere else (docs/transfer.md section 5).
exit status of verify: 0 the trail is intact, 2 it was altered (CRITICAL), 3 it could not be
read or checked, e.g. no audit key on this host (UNKNOWN), 64 usage error.
"""


def _anchor(text):
    seq, _, h = text.partition(":")
    try:
        n = int(seq)
    except ValueError:
        n = 0
    h = h.lower()
    if n < 1 or not 16 <= len(h) <= 64 or set(h) - set("0123456789abcdef"):
        raise argparse.ArgumentTypeError(
            f"must be SEQ:HASH (a seq >= 1, 16 to 64 hex digits of its hash), got {text!r}"
        )
    return n, h


IN_DOUBT_EXIT = 3


def _txid(text):
    v = clikit.positive_int(text)
    if v >= 2**63:
        raise argparse.ArgumentTypeError(f"must be 1 .. 2**63-1, got {text!r}")
    return v


def args_transfer(p):
    p.add_argument(
        "--fleet", help="fleet file (TOML, docs/fleet.md); or --broker for a cross-site transfer"
    )
    p.add_argument("src", nargs="?", metavar="SRC_NODE:ACCOUNT")
    p.add_argument("dst", nargs="?", metavar="DST_NODE:ACCOUNT")
    p.add_argument("quantity", nargs="?", metavar="QUANTITY")
    p.add_argument(
        "amount", nargs="?", metavar="AMOUNT", help="decimal in the quantity's unit (e.g. 1.5)"
    )
    p.add_argument(
        "--raw",
        action="store_true",
        help="AMOUNT is an integer in raw units, and tables show raw units",
    )
    p.add_argument("--txid", type=_txid, help="transaction id 1 .. 2**63-1 (idempotent)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--recover", action="store_true", help="finish in-doubt transfers")
    mode.add_argument("--list", action="store_true", help="table of recent transfers")
    mode.add_argument(
        "--holds",
        action="store_true",
        help="open holds on every node against the log (exit 1 if one must not exist)",
    )
    p.add_argument(
        "--limit", type=clikit.positive_int, default=20, help="rows for --list (default: 20)"
    )
    p.add_argument(
        "--timeout",
        type=clikit.positive_float,
        default=2.0,
        help="seconds per node answer (default: 2.0)",
    )
    p.add_argument(
        "--wait",
        type=clikit.nonnegative_float,
        default=30.0,
        help="seconds to wait while another coordinator (aii transfer) runs on this fleet; "
        "one at a time writes to the nodes (default: 30)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    # Tests: exit abruptly (os._exit, no cleanup, as kill -9) right after this point.
    p.add_argument("--crash-after", help=argparse.SUPPRESS)
    from ..sites import cli_xfer

    cli_xfer.args_xsite(p)


def _args_audit(p):
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--fleet", help="fleet file (TOML): its database")
    src.add_argument("--db", help="the fleet database itself")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def args_audit_verify(p):
    _args_audit(p)
    p.add_argument(
        "--anchor",
        type=_anchor,
        action="append",
        default=[],
        metavar="SEQ:HASH",
        help="a record's hash kept outside this host (repeatable): catches a rollback below it",
    )


def args_audit_show(p):
    _args_audit(p)
    p.add_argument(
        "--limit", type=clikit.positive_int, default=20, help="records (default: 20, newest)"
    )
    p.add_argument("--kind", help="only records of this kind (tx, verify, violation, ...)")


# ---- nodes ---------------------------------------------------------------------------------


class _LazyNode:
    """A node endpoint whose link opens at its first request: --recover and a transfer only
    open the ports they need, and a port that cannot open is a link error for that node."""

    def __init__(self, spec, timeout):
        self.spec, self.timeout = spec, timeout
        self.client = None

    def open(self):
        if self.client is None:
            from .failover import open_client

            # The node's links in the fleet file's order, as the aggregator takes them.
            self.client = open_client(self.spec, self.timeout)
        return self.client

    def request(self, kind, body=None, auth=None, timeout=None, retries=None):
        return self.open().request(kind, body, auth=auth, timeout=timeout, retries=retries)

    def close(self):
        if self.client is not None:
            self.client.t.close()
            self.client = None


def _ports_text(spec):
    return f"port {spec.port}" if len(spec.ports) == 1 else f"links {', '.join(spec.ports)}"


def _open_or_refuse(name, ep):
    from ..core.transport import TransportError
    from .coord import CoordError
    from .relay import RelayNode

    try:
        ep.open()
    except TransportError as e:
        if isinstance(ep, RelayNode):
            raise CoordError(f"cannot reach node {name} through the aggregator: {e}") from None
        raise CoordError(
            f"cannot open node {name}'s {_ports_text(ep.spec)}: {e} (a serial port has one owner: "
            "is another program using it? A running `aii aggregate` is used automatically)"
        ) from None


def _load(path):
    from .config import load

    return load(path)


def _coordinator(args, fleet):
    from .coord import Coordinator
    from .relay import RelayNode, running

    if running(fleet.db):
        # `aii aggregate` owns the ports: every request goes through it (relay.py).
        eps = {n.name: RelayNode(fleet.db, n.name, args.timeout) for n in fleet.nodes}
        print("aii: through the running aggregator (aii aggregate)", file=sys.stderr)
    else:
        eps = {n.name: _LazyNode(n, args.timeout) for n in fleet.nodes}
    # --list only reads the log: it needs no lock, and works while a transfer runs.
    coord = Coordinator(
        fleet.db, eps, crash_after=crash_hook(args), wait=args.wait, exclusive=not args.list
    )
    return coord, eps


def crash_hook(args):
    """--crash-after's hook for the Coordinator (tests): os._exit(70) right after the point."""
    from .coord import POINTS, CoordError

    if not args.crash_after:
        return None
    if args.crash_after not in POINTS:
        raise CoordError(f"--crash-after: unknown point (known: {', '.join(POINTS)})")

    def hook(point, txid):
        if point == args.crash_after:
            sys.stdout.flush()
            os._exit(70)

    return hook


# ---- amounts ---------------------------------------------------------------------------------


def _format_of(ep, node, quantity, raw):
    """The quantity's format byte on `node`, from its `ledger` answer (docs/protocol.md): the
    node's unit is the only one amounts are read and shown in. None with --raw when the node
    does not say (firmware before `formats`)."""
    from .coord import CoordError

    formats = ep.request("ledger").get("formats")
    if formats is None:
        if raw:
            return None
        raise CoordError(
            f"node {node} does not give its quantities' units (firmware before `formats`): "
            "update it (aii deploy), or give AMOUNT in raw units with --raw"
        )
    if quantity not in formats:
        have = ", ".join(sorted(formats)) or "none"
        raise CoordError(f"node {node} has no quantity {quantity!r} (it has: {have})")
    return formats[quantity]


def _amount(args, fmt):
    from ..core.ledger import fx_parse_exact
    from .coord import CoordError

    text = args.amount.strip()
    if args.raw:
        if not (text.isascii() and text.isdigit()):
            raise CoordError(f"--raw: AMOUNT must be a whole number of raw units, got {text!r}")
        return int(text)
    try:
        return fx_parse_exact(text, fmt)
    except AIIError as e:
        unit = f"{fmt & 0x7F} decimals" if fmt & 0x80 else f"a unit of 2**-{fmt & 0x7F}"
        why = "nothing is rounded" if "decimals" in str(e) else "a decimal such as 25.5"
        raise CoordError(
            f"AMOUNT {text!r}: {e} ({args.quantity} on the source node has {unit}; {why})"
        ) from None


def _save_units(db_path, node, quantity, fmt):
    # What the source node said its unit is: `aii transfer --list` shows amounts in it.
    from .audit import connect
    from .units import SCHEMA, save

    c = connect(db_path)
    try:
        c.executescript(SCHEMA)
        save(c.execute, node, {quantity: fmt})
    finally:
        c.close()


def _known_units(db_path):
    """{quantity: format byte} the fleet database knows and the nodes agree on."""
    import sqlite3
    from pathlib import Path

    from .units import load, merge

    try:
        c = sqlite3.connect(Path(db_path).resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error:
        return {}
    try:
        return merge(load(c))[0]
    except sqlite3.Error:
        return {}
    finally:
        c.close()


def _endpoint(text, what):
    from .coord import CoordError

    node, sep, account = text.partition(":")
    if not sep or not node or not account:
        raise CoordError(f"{what} must be NODE:ACCOUNT, got {text!r}")
    return node, account


# ---- commands ------------------------------------------------------------------------------


def do_transfer(args):
    positional = [args.src, args.dst, args.quantity, args.amount]
    if args.recover or args.list or args.holds:
        if any(x is not None for x in positional):
            raise UsageError("--recover / --list / --holds take no SRC DST QUANTITY AMOUNT")
    elif None in positional:
        raise UsageError("need SRC_NODE:ACCOUNT DST_NODE:ACCOUNT QUANTITY AMOUNT (or --recover)")
    if args.broker or args.db:
        from ..sites import cli_xfer

        return cli_xfer.do_transfer_xsite(args)
    if args.mqtt_cred:
        raise UsageError("--mqtt-cred goes with --broker URL (a cross-site transfer)")
    if not args.fleet:
        raise UsageError(
            "need --fleet FILE (nodes of one fleet), or --broker URL --db FILE (nodes of "
            "other sites, SITE/NODE:ACCOUNT)"
        )
    fleet = _load(args.fleet)
    if not os.path.exists(fleet.db) and (args.list or args.recover):
        # Nothing was ever logged: nothing to list or finish, and a read creates no file.
        print(f"no transfers yet (no fleet database at {fleet.db})")
        return 0
    if args.holds and not os.path.exists(fleet.db):
        import tempfile

        with tempfile.TemporaryDirectory(prefix="aii-holds-") as td:
            # No log yet: every hold is held against an empty one, which creates no file.
            return _transfer(args, dataclasses.replace(fleet, db=os.path.join(td, "fleet.db")))
    return _transfer(args, fleet)


def _transfer(args, fleet):
    from .coord import CoordError

    def check(src, dst):
        for name in (src[0], dst[0]):
            if name not in fleet.names():
                raise CoordError(f"unknown node {name!r} (fleet: {', '.join(fleet.names())})")

    return run(args, fleet.db, check, lambda: _coordinator(args, fleet))


def run(args, db, check, make):
    """`aii transfer`'s modes over a coordinator: `check(src, dst)` refuses a transfer's
    endpoints ((node, account) pairs) before anything is logged; `make()` returns
    (Coordinator, {node: endpoint}). Also the cross-site transfer's (sites/cli_xfer.py)."""
    from .coord import ABORTED, COMMITTED

    src = dst = None
    if not (args.recover or args.list or args.holds):
        src, dst = _endpoint(args.src, "SRC"), _endpoint(args.dst, "DST")
        check(src, dst)
    coord, eps = make()
    try:
        if args.list:
            rows = coord.list(limit=args.limit)
            _print_rows(rows, args.json, units=_known_units(db), raw=args.raw)
            return 0
        if args.holds:
            rows = coord.check_holds()
            _print_holds(rows, args.json, _holds_units(eps, rows), args.raw)
            return 1 if any(r["problem"] or r["error"] for r in rows) else 0
        if args.recover:
            rows = coord.recover()
            left = coord.in_doubt()
            if args.json:
                print(
                    json.dumps(
                        {
                            "recovered": [r.as_dict() for r in rows],
                            "in_doubt": len(left),
                            "swept": coord.swept,
                            "unknown_holds": coord.unknown_holds,
                        }
                    )
                )
            else:
                _print_rows(rows, False, "recovered", _known_units(db), args.raw)
                units = _holds_units(eps, coord.swept + coord.unknown_holds)

                def hold_amount(h):
                    accounts, formats = units.get(h["node"], ({}, {}))
                    q = accounts.get(h["account"])
                    return amount_text(h["amount"], formats.get(q), args.raw, q or "")

                for h in coord.swept:
                    print(
                        f"left-over hold of tx {h['txid']} ({h['state']}) on {h['node']}:"
                        f"{h['account']}, {hold_amount(h)}: {h['action']}"
                        + (f" FAILED: {h['error']}" if h["error"] else "")
                    )
                for h in coord.unknown_holds:
                    print(
                        f"unknown hold on {h['node']}:{h['account']}: txid {h['txid']}, "
                        f"{hold_amount(h)} ({h['kind']}) is not in this fleet's log: left "
                        "alone; find who made it (aii transfer --holds lists every hold)"
                    )
                print(f"{len(rows)} in-doubt transfer(s) driven; {len(left)} still in doubt")
            if left:
                return IN_DOUBT_EXIT
            return 1 if coord.unknown_holds or any(h["error"] for h in coord.swept) else 0
        # Open both links before anything is logged: a port that will not open refuses the
        # transfer here instead of leaving it in doubt.
        for name in (src[0], dst[0]):
            _open_or_refuse(name, eps[name])
        fmt = _format_of(eps[src[0]], src[0], args.quantity, args.raw)
        amount = _amount(args, fmt)
        if fmt is not None:
            _save_units(db, src[0], args.quantity, fmt)
        t0 = time.monotonic()
        r = coord.transfer(src[0], src[1], dst[0], dst[1], args.quantity, amount, txid=args.txid)
        ms = (time.monotonic() - t0) * 1000
        if args.json:
            print(json.dumps(dict(r.as_dict(), ms=round(ms, 1))))
        else:
            what = amount_text(r.amount, fmt, args.raw, r.quantity)
            print(
                f"tx {r.txid}: {r.state}: {r.src_node}:{r.src_account} -> "
                f"{r.dst_node}:{r.dst_account}, {what}, {ms:.0f} ms"
                + (f"\n  {r.note}" if r.note else "")
            )
        if r.state == COMMITTED:
            return 0
        return 1 if r.state == ABORTED else IN_DOUBT_EXIT
    finally:
        for e in eps.values():
            e.close()
        coord.close()


def _print_rows(rows, as_json, title="transfers", units=None, raw=False):
    if as_json:
        print(json.dumps([r.as_dict() for r in rows]))
        return
    from rich.console import Console
    from rich.table import Table

    units = units or {}
    t = Table(title=title)
    for col in ("txid", "state", "from", "to", "amount (raw)" if raw else "amount", "updated"):
        t.add_column(col, justify="right" if col.startswith("amount") else "left")
    t.add_column("note")
    for r in rows:
        t.add_row(
            str(r.txid),
            r.state,
            f"{r.src_node}:{r.src_account}",
            f"{r.dst_node}:{r.dst_account}",
            amount_text(r.amount, units.get(r.quantity), raw, r.quantity),
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.updated)),
            r.note,
        )
    Console(width=160).print(t)


def _holds_units(eps, rows):
    """{node: ({account: quantity}, {quantity: format byte})} of the nodes with open holds,
    from their `ledger` answers: a hold names its account, the account its quantity."""
    out = {}
    for node in sorted({r["node"] for r in rows if not r["error"]}):
        try:
            led = eps[node].request("ledger")
        except (AIIError, OSError):
            continue  # its holds are shown in raw units
        out[node] = ({a[0]: a[1] for a in led.get("accounts", [])}, led.get("formats") or {})
    return out


def _print_holds(rows, as_json, units=None, raw=False):
    if as_json:
        print(json.dumps(rows))
        return
    if not rows:
        print("no open holds")
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title="open holds")
    for col in ("node", "txid", "account", "amount (raw)" if raw else "amount", "kind"):
        t.add_column(col, justify="right" if col.startswith("amount") else "left")
    t.add_column("logged state")
    t.add_column("problem")
    for r in rows:
        if r["error"]:
            t.add_row(r["node"], "", "", "", "", "", r["error"])
            continue
        state = r["state"] or "not in the log (not ours)"
        problem = "transfer is final: this hold must not exist" if r["problem"] else ""
        accounts, formats = (units or {}).get(r["node"], ({}, {}))
        q = accounts.get(r["account"])
        amount = amount_text(r["amount"], formats.get(q), raw, q or "")
        t.add_row(r["node"], str(r["txid"]), r["account"], amount, r["kind"], state, problem)
    Console(width=160).print(t)


def _audit(args, read):
    """read(Audit) on the fleet's database; a file that is not one is one line, not a trace."""
    import sqlite3

    from .audit import Audit

    db = args.db if args.db is not None else _load(args.fleet).db
    if not os.path.isfile(db):
        raise AIIError(f"no fleet database at {db}")
    a = None
    try:
        a = Audit(db)
        return a, read(a)
    except sqlite3.Error as e:
        raise AIIError(f"{db}: not a readable fleet database ({e})") from None
    finally:
        if a is not None:
            a.close()


def do_audit_verify(args):
    a, rep = _audit(args, lambda a: a.verify(args.anchor))
    if args.json:
        print(json.dumps(rep.__dict__))
    else:
        print(f"audit {a.db_path}: {rep}")
    if rep.ok:
        return clikit.EXIT_OK
    return clikit.EXIT_UNKNOWN if rep.unknown else clikit.EXIT_CRITICAL


def do_audit_show(args):
    _, recs = _audit(args, lambda a: a.tail(args.limit, kind=args.kind))
    if args.json:
        keys = ("seq", "time", "kind", "data", "prev_hash", "hash")
        print(json.dumps([dict(zip(keys, r)) for r in recs]))
        return 0
    for seq, t, kind, data, _ph, h in recs:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
        print(f"{seq:6}  {when}  {kind:10} {h[:12]}  {json.dumps(data, sort_keys=True)}")
    if not recs:
        print("(no records)")
    return 0
