# SPDX-License-Identifier: MIT
"""`aii node-repair`: repairs a node in recovery (docs/faults.md §5) from the aggregator's copy of
its journal, or accepts the loss of what no copy holds; the result goes to the audit trail."""

import json
import sqlite3
import sys

from ..core._errors import AIIError

EPILOG = """\
examples:
  aii node-repair --fleet fleet.toml n2            repair n2 from the aggregator's copy
  aii node-repair --fleet fleet.toml n2 --json     the same, one JSON object out
  aii node-repair --port /dev/ttyACM0 --key KEY --accept-loss
                                                   a standalone node with no copy: keep the
                                                   state before the damage, give up the rest
  aii node-repair --port /dev/ttyACM0 --key KEY --accept-loss --floor 5000
                                                   ... and refuse signed seqs up to 5000
exit status: 0 repaired (or nothing to repair), 1 not repaired (the message says why).
"""


def args_node_repair(p):
    p.add_argument("node", nargs="?", metavar="NODE", help="the node's name in the fleet file")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--fleet", help="fleet file (TOML): the node, its key, the database")
    src.add_argument("--port", help="a standalone node's port (with --key and --accept-loss)")
    p.add_argument("--key", help="with --port: the node key (hex digits or a file)")
    p.add_argument(
        "--accept-loss",
        action="store_true",
        help="no copy holds the damaged records: keep the state before them, give up the rest",
    )
    p.add_argument(
        "--floor",
        type=int,
        help="replay floor to set when the node lost its session (default: above the highest "
        "signed seq the aggregator saw, or 2**29 when none did)",
    )
    p.add_argument(
        "--db", default="fleet.db", help="with --port: audit database (default: %(default)s)"
    )
    p.add_argument("--timeout", type=float, default=2.0, help="seconds per answer (default 2)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _endpoint(args):
    """(client-like endpoint, node name, fleet database path, key known)."""
    from ..core.client import NodeClient
    from ..core.keys import read_key as _read_key
    from ..node.console import open_port as _open_port
    from .config import load
    from .relay import RelayNode, running

    if args.fleet is not None:
        if not args.node:
            raise AIIError("node-repair --fleet needs the NODE to repair")
        fleet = load(args.fleet)
        spec = next((n for n in fleet.nodes if n.name == args.node), None)
        if spec is None:
            names = ", ".join(n.name for n in fleet.nodes)
            raise AIIError(f"no node {args.node!r} in {args.fleet} (it has: {names})")
        if running(fleet.db):
            return RelayNode(fleet.db, spec.name, args.timeout), spec.name, fleet.db
        from .failover import open_client

        return open_client(spec, args.timeout), spec.name, fleet.db
    if not args.accept_loss:
        raise AIIError(
            "a node on --port has no copy to repair from here: give --fleet FLEET NODE (the "
            "aggregator's copy), or --accept-loss to give up what is damaged"
        )
    if not args.port:
        raise AIIError("--port needs a port: a serial device, a pty or tcp:HOST:PORT")
    if not args.key:
        raise AIIError("--port needs --key (repairs are signed requests)")
    c = NodeClient(_open_port(args.port), key=_read_key(args.key), timeout=args.timeout)
    return c, None, args.db


def _known_floor(db, name):
    try:
        con = sqlite3.connect(str(db))
        try:
            row = con.execute("SELECT auth_seq FROM nodes WHERE name = ?", (name,)).fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def _from_copy(ep, name, db, status, floor):
    from ..node import repair
    from .aggregate import open_db
    from .replica import stored_copy

    con = open_db(db)
    try:
        base, records = stored_copy(con, name)
    finally:
        con.close()
    blob, recs, seq, digest = repair.source(base, records)
    damaged = repair.damaged_seqs(status)
    only_session = all(d["file"] == "session.json" for d in status.get("damage", []))
    out = {"action": "floor" if only_session else "repair", "copy_seq": seq, "floor": floor}
    if only_session:
        ans = repair.set_floor(ep, status, floor)
    else:
        if damaged and (damaged[1] is None or damaged[1] > seq):
            raise AIIError(
                f"the aggregator's copy of {name} ends at seq {seq}, before the damaged seqs "
                f"{damaged[0]}..{damaged[1] if damaged[1] is not None else '?'}: no copy holds "
                "them. `aii node-repair --fleet ... --accept-loss` gives them up"
            )
        ans = repair.repair(ep, status, blob, recs, seq, digest, floor)
        out["records"] = len(recs) // repair.RECORD
        out["seq"], out["digest"] = repair.check_after(ep, blob, recs, seq, digest)
    out["state"] = ans.get("state")
    return out


def repair_node(ep, name, db, accept_loss=False, floor=None, fleet=True):
    """Repairs the node behind endpoint `ep` (NodeClient's `request`) if it is in recovery:
    from the copy in fleet database `db`, or by accepting the loss. Audits what it did in
    `db`. Returns a dict with `verdict` ("repaired", "nothing to repair", "not repaired")."""
    from ..node import repair
    from .audit import Audit

    status = ep.request("status")
    name = name or status.get("node")
    if status.get("state") != "recovery":
        return {"node": name, "verdict": "nothing to repair", "state": status.get("state")}
    known = _known_floor(db, name) if fleet else None
    floor = floor if floor is not None else repair.floor_for(status, known)
    out = {"node": name, "damage": status.get("damage", [])}
    try:
        if accept_loss:
            ans = repair.accept_loss(ep, status, floor)
            out.update(action="accept_loss", lost=ans.get("lost"), floor=floor)
            out.update(state=ans.get("state"), seq=ans.get("seq"), digest=ans.get("digest"))
        else:
            out.update(_from_copy(ep, name, db, status, floor))
    except AIIError as e:
        out.update(verdict="not repaired", error=str(e))
        return out
    out["verdict"] = "repaired" if out.get("state") == "ok" else "not repaired"
    a = Audit(db)
    try:
        a.append("node_repair", {k: v for k, v in out.items() if k != "verdict"})
    finally:
        a.close()
    return out


def do_node_repair(args):
    ep, name, db = _endpoint(args)
    try:
        out = repair_node(ep, name, db, args.accept_loss, args.floor, fleet=bool(args.fleet))
    finally:
        t = getattr(ep, "t", None)
        if t is not None:
            t.close()
        elif hasattr(ep, "close"):
            ep.close()
    return _print(args, out, 1 if out["verdict"] == "not repaired" else 0)


def _print(args, out, rc):
    if args.json:
        print(json.dumps(out))
        return rc
    node = out.get("node")
    if out["verdict"] == "nothing to repair":
        print(f"node {node}: state {out.get('state')}: nothing to repair")
        return rc
    for d in out.get("damage", []):
        seqs = f" seqs {d['first']}..{d['last']}" if d.get("first") is not None else ""
        print(f"  damaged: {d['file']} at byte {d['offset']}{seqs}: {d['what']}")
    if rc:
        print(f"node {node}: not repaired: {out.get('error', out.get('state'))}", file=sys.stderr)
        return rc
    if out.get("action") == "accept_loss":
        lost = out.get("lost")
        what = f"seqs {lost[0]}..{lost[1]} given up" if lost else "nothing given up"
        print(f"node {node}: repaired by accepting the loss: {what}; now at seq {out['seq']}")
    elif out.get("action") == "floor":
        print(f"node {node}: repaired: replay floor set to {out['floor']}")
    else:
        print(
            f"node {node}: repaired from the aggregator's copy ({out['records']} records up to "
            f"seq {out['copy_seq']}); node at seq {out['seq']}, digest {out['digest']} equals "
            "the copy's"
        )
    return rc
