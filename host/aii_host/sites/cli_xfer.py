# SPDX-License-Identifier: MIT
"""`aii transfer --broker URL --db FILE SITE/NODE:ACCOUNT SITE/NODE:ACCOUNT QUANTITY AMOUNT`:
the same command, its modes (--recover, --list, --holds) and its output as a transfer inside
one fleet (fleet/cli_tx.py), with nodes of other sites reached through their gateways
(sites/xfer.py, docs/fleet.md §10.9)."""

import os
import sqlite3
import sys
from pathlib import Path

from ..clikit import UsageError
from ..core._errors import AIIError

XSITE_EPILOG = """\
across sites (docs/fleet.md section 10.9; the gateways run `aii aggregate --mqtt URL --site NAME
--trust-coordinator ID=PUBKEY`, the sites file is verify-global's):
  aii transfer --broker mqtt://127.0.0.1:1883 --db coord.db --sites sites.toml \\
      north/n1:battery south/s7:battery Wh 5
  aii transfer --broker mqtt://127.0.0.1:1883 --db coord.db --sites sites.toml --recover
  aii transfer --db coord.db --list
a site whose gateway is dead, or that sent no signed epoch report naming the node online in
the last 5 s, is refused before anything is logged (exit 1).
"""


def args_xsite(p):
    g = p.add_argument_group("across sites (docs/fleet.md section 10.9)")
    g.add_argument(
        "--broker",
        metavar="URL",
        help="reach nodes of other sites (SITE/NODE:ACCOUNT) through their gateways on this "
        "MQTT broker (mqtts://HOST:PORT with --mqtt-cred, or mqtt://HOST:PORT)",
    )
    g.add_argument(
        "--mqtt-cred",
        metavar="FILE",
        help="with --broker: the coordinator's broker credential (aii broker-init "
        "--coordinators ID writes creds/coord-ID.toml)",
    )
    g.add_argument(
        "--db",
        metavar="FILE",
        help="with --broker: the cross-site coordinator's log (SQLite, made when missing); "
        "recovery on another host runs from a copy of it",
    )
    g.add_argument(
        "--id",
        default="coordinator",
        help="with --broker: this coordinator's id, its topic level (default: %(default)s)",
    )
    g.add_argument(
        "--key",
        metavar="FILE",
        help="with --broker: the coordinator's Ed25519 key (made when missing; default "
        "FILE.key beside --db); gateways trust it with --trust-coordinator ID=PUBKEY",
    )
    g.add_argument(
        "--sites", metavar="FILE", help="with --broker: the trusted sites (verify-global's file)"
    )
    g.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="SITE=PUBKEY",
        help="with --broker: a trusted site and its public key; repeatable",
    )


def _log_nodes(db):
    """Every SITE/NODE the log names: --recover and --holds ask each of them."""
    try:
        c = sqlite3.connect(Path(db).resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error:
        return []
    try:
        rows = c.execute("SELECT src_node FROM tx UNION SELECT dst_node FROM tx").fetchall()
    except sqlite3.Error:
        rows = []
    finally:
        c.close()
    return sorted(r[0] for r in rows)


def _split(name):
    site, slash, node = name.partition("/")
    if not slash:
        raise UsageError(f"{name!r}: across sites, nodes are named SITE/NODE")
    return site, node


def do_transfer_xsite(args):
    from ..fleet import cli_tx
    from ..fleet.coord import CoordError, Coordinator
    from . import topics, xfer_wire
    from .broker import load_key, parse_url
    from .cli import _cred_is, _sites, mqtt_cred
    from .payload import public_hex
    from .xfer import CoordLink

    if args.fleet:
        raise UsageError("--fleet (one fleet) or --broker/--db (across sites): not both")
    if not args.db:
        raise UsageError("--broker needs --db FILE: the cross-site coordinator's log")
    if not os.path.exists(args.db) and (args.list or args.recover):
        print(f"no transfers yet (no coordinator log at {args.db})")
        return 0
    link = None
    if not args.list:
        if not args.broker:
            raise UsageError("--db without --list needs --broker URL")
        parse_url(args.broker)
        try:
            topics.check_name("coordinator id", args.id)
        except ValueError as e:
            raise UsageError(f"--id: {e}") from None
        cred = mqtt_cred(args, args.broker)
        _cred_is(cred, "coord", args.id, "--id")
        sites = _sites(args)
        key_file = args.key or f"{args.db}.key"
        key, made = load_key(key_file)
        print(
            f"coordinator {args.id}: key {key_file}{' (new)' if made else ''}; gateways obey it "
            f"with --trust-coordinator {args.id}={public_hex(key)}",
            file=sys.stderr,
        )
        link = CoordLink(args.broker, args.id, key, sites, timeout=args.timeout, cred=cred)
        link.start()

    def check(src, dst):
        for name, acct in (src, dst):
            try:
                xfer_wire.endpoint(f"{name}:{acct}")
            except ValueError as e:
                raise CoordError(str(e)) from None
        wanted = {}
        for name in (src[0], dst[0]):
            site, node = _split(name)
            wanted.setdefault(site, []).append(node)
        bad = link.offline(wanted)
        if bad:
            why = "; ".join(f"site {s}: {w}" for s, w in sorted(bad.items()))
            raise CoordError(f"refused, nothing changed: a site is offline ({why}); retry later")
        # The destination's gateway asked once before anything is logged (the source's is,
        # for the quantity's unit): one that does not obey this coordinator, or a node without
        # the quantity, refuses the transfer here instead of leaving it to abort.
        site, node = _split(dst[0])
        try:
            formats = link.node(site, node).request("ledger").get("formats")
        except AIIError as e:
            raise CoordError(f"refused, nothing changed: {e}") from None
        if formats is not None and args.quantity not in formats:
            have = ", ".join(sorted(formats)) or "none"
            raise CoordError(f"node {dst[0]} has no quantity {args.quantity!r} (it has: {have})")

    def make():
        if args.list:
            names = []
        elif args.recover or args.holds:
            names = _log_nodes(args.db)
        else:
            names = [cli_tx._endpoint(args.src, "SRC")[0], cli_tx._endpoint(args.dst, "DST")[0]]
        eps = {n: link.node(*_split(n)) for n in names}
        coord = Coordinator(
            args.db,
            eps,
            crash_after=cli_tx.crash_hook(args),
            wait=args.wait,
            exclusive=not args.list,
            on_state=link.decision if link is not None else None,
        )
        if link is not None:
            link.lookup = coord.get
        return coord, eps

    try:
        return cli_tx.run(args, args.db, check, make)
    except sqlite3.Error as e:
        raise CoordError(f"--db {args.db}: not a readable coordinator log ({e})") from None
    finally:
        if link is not None:
            link.stop()
