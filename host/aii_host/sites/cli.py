# SPDX-License-Identifier: MIT
"""`aii aggregate --mqtt URL --site NAME` (the gateway's options) and `aii verify-global`
(docs/fleet.md §10)."""

import json
import sys
import time
import tomllib
from pathlib import Path

from .. import clikit
from ..clikit import UsageError

VERIFY_EPILOG = """\
examples:
  aii verify-global --mqtt mqtt://127.0.0.1:1883 --sites sites.toml --seconds 10
  aii verify-global --mqtt mqtt://127.0.0.1:1883 --trust a=<64 hex> --trust b=<64 hex> --json
the sites file lists the trusted gateways (what `aii aggregate --mqtt` prints at its start):
  [[site]]
  name = "a"
  pubkey = "<64 hex: the site key's public half>"
verdicts (the last line, `status` in --json; exit status as aii status):
  0 OK        every site reported, signed, within --stale seconds; every node verified at the
              report's cut; the balance equation holds per quantity across all sites
  1 DEGRADED  the balance holds over what was verified, but a site is silent, offline (its
              will), stopped, catching up on what it queued offline, or not yet rebuilt, or a
              node is not verified: each one named
  2 VIOLATION a residual (site, node, quantity, delta), totals signed by a gateway that
              disagree with its records, or a divergence
  3 UNKNOWN   no epoch report verified yet (or an error: the broker, the sites file)
  64          usage error; 130 interrupted
a `note:` line says what a site's outbox dropped while the broker was away (the records
fetched by request instead; docs/fleet.md section 10.9)
"""


def args_gateway(p):
    g = p.add_argument_group("sites (docs/fleet.md section 10)")
    g.add_argument(
        "--mqtt", metavar="URL", help="also publish through this MQTT broker (mqtt://HOST:PORT)"
    )
    g.add_argument("--site", help="with --mqtt: this gateway's site name (a topic level)")
    g.add_argument(
        "--site-key",
        metavar="FILE",
        help="with --mqtt: the site's Ed25519 key (made when missing; default SITE.site.key "
        "beside the fleet database)",
    )
    g.add_argument(
        "--trust-verifier",
        action="append",
        default=[],
        metavar="VID=PUBKEY",
        help="with --mqtt: a verifier whose signed requests (isolate a node, re-send records) "
        "this gateway obeys; repeatable (none: it obeys none)",
    )
    g.add_argument(
        "--outbox",
        metavar="FILE",
        help="with --mqtt: where what the gateway must publish waits while the broker is away "
        "(SQLite; default SITE.outbox.db beside the fleet database)",
    )
    g.add_argument(
        "--outbox-max-mb",
        type=clikit.positive_float,
        default=256.0,
        metavar="MB",
        help="with --mqtt: the outbox's limit in MiB of messages; past it the oldest records "
        "and reports are dropped and counted (%(default)s)",
    )
    g.add_argument(
        "--outbox-max-msgs",
        type=clikit.positive_int,
        default=1_000_000,
        metavar="N",
        help="with --mqtt: the outbox's limit in messages (%(default)s)",
    )
    g.add_argument(
        "--report",
        type=clikit.positive_float,
        default=1.0,
        metavar="S",
        help="with --mqtt: an epoch report at least every S seconds (%(default)s)",
    )


def gateway_of(args, agg, fleet, on_event):
    """The Gateway the options ask for, or None without --mqtt."""
    if not args.mqtt:
        if args.site or args.site_key or args.outbox:
            raise UsageError("--site, --site-key and --outbox go with --mqtt URL")
        return None
    if not args.site:
        raise UsageError("--mqtt needs --site NAME (this gateway's site)")
    from . import topics
    from .broker import parse_url
    from .gateway import Gateway
    from .outbox import Outbox

    parse_url(args.mqtt)
    try:
        topics.check_name("site", args.site)
    except ValueError as e:
        raise UsageError(f"--site: {e}") from None
    key = args.site_key or Path(fleet.db).with_name(f"{args.site}.site.key")
    verifiers = _pairs(args.trust_verifier, "--trust-verifier", "VID=PUBKEY")
    outbox = Outbox(
        args.outbox or Path(fleet.db).with_name(f"{args.site}.outbox.db"),
        max_bytes=int(args.outbox_max_mb * (1 << 20)),
        max_msgs=args.outbox_max_msgs,
    )
    gw = Gateway(
        agg,
        args.mqtt,
        args.site,
        key,
        report_s=args.report,
        on_event=on_event,
        verifiers=verifiers,
        outbox=outbox,
    )
    made = " (new key)" if gw.key_created else ""
    print(
        f"site {args.site}: key {key}{made}; a verifier trusts it with:\n"
        f'  [[site]]\n  name = "{args.site}"\n  pubkey = "{gw.pubkey}"',
        flush=True,
    )
    return gw


def _pairs(items, option, shape):
    """{name: public key hex} of NAME=PUBKEY options; UsageError naming the bad one."""
    from . import topics

    out = {}
    for item in items:
        name, sep, key = item.partition("=")
        try:
            topics.check_name("name", name)
            if not sep or len(bytes.fromhex(key)) != 32:
                raise ValueError
        except ValueError:
            raise UsageError(
                f"{option} {item!r}: expected {shape}, the key 64 hex digits"
            ) from None
        out[name] = key
    return out


def args_verify_global(p):
    p.add_argument("--mqtt", metavar="URL", required=True, help="the broker (mqtt://HOST:PORT)")
    p.add_argument(
        "--sites", metavar="FILE", help="the trusted sites (TOML: [[site]] name, pubkey)"
    )
    p.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="SITE=PUBKEY",
        help="a trusted site and its public key (64 hex); repeatable, with or without --sites",
    )
    p.add_argument(
        "--id",
        default="verifier",
        help="this verifier's id: its topic level and MQTT session (default: %(default)s)",
    )
    p.add_argument(
        "--seconds",
        type=clikit.positive_float,
        help="stop after this many seconds (default: Ctrl-C)",
    )
    p.add_argument(
        "--stale",
        type=clikit.positive_float,
        default=5.0,
        help="a site without a verified report for this long is DEGRADED (%(default)s s)",
    )
    p.add_argument(
        "--key",
        metavar="FILE",
        help="this verifier's Ed25519 key (made when missing): with it, a violation it finds "
        "asks the site's gateway, signed, to isolate the node (gateways trust it with "
        "--trust-verifier ID=PUBKEY)",
    )
    p.add_argument("--json", action="store_true", help="the final verdict as JSON")
    p.add_argument("--quiet", action="store_true", help="no event lines")


def _sites(args):
    from . import topics

    out = {}
    if args.sites:
        try:
            doc = tomllib.loads(Path(args.sites).read_text())
        except tomllib.TOMLDecodeError as e:
            raise UsageError(f"--sites {args.sites}: {e}") from None
        for i, s in enumerate(doc.get("site", []), 1):
            if not isinstance(s, dict) or set(s) != {"name", "pubkey"}:
                raise UsageError(f"--sites {args.sites}: [[site]] #{i}: name and pubkey expected")
            out[s["name"]] = s["pubkey"]
    out.update(_pairs(args.trust, "--trust", "SITE=PUBKEY"))
    if not out:
        raise UsageError("no trusted sites: give --sites FILE or --trust SITE=PUBKEY")
    for name, key in out.items():
        try:
            topics.check_name("site", name)
            if not isinstance(key, str) or len(bytes.fromhex(key)) != 32:
                raise ValueError
        except ValueError:
            raise UsageError(f"site {name!r}: pubkey must be 64 hex digits (32 bytes)") from None
    return out


def do_verify_global(args):
    from .broker import parse_url
    from .verifier import GlobalVerifier

    parse_url(args.mqtt)
    sites = _sites(args)

    def on_event(kind, data):
        if not args.quiet and kind != "report":
            print(f"{time.strftime('%H:%M:%S')} {kind} {json.dumps(data, default=str)}", flush=True)

    try:
        from . import topics

        topics.check_name("verifier id", args.id)
    except ValueError as e:
        raise UsageError(f"--id: {e}") from None
    key = None
    if args.key:
        from .broker import load_key
        from .payload import public_hex

        key, made = load_key(args.key)
        print(
            f"verifier {args.id}: key {args.key}{' (new)' if made else ''}; gateways obey its "
            f"signed requests with --trust-verifier {args.id}={public_hex(key)}",
            file=sys.stderr,
        )
    gv = GlobalVerifier(
        args.mqtt, sites, vid=args.id, stale_s=args.stale, on_event=on_event, key=key
    )
    gv.start()
    end = None if args.seconds is None else time.monotonic() + args.seconds
    last = None
    try:
        while end is None or time.monotonic() < end:
            time.sleep(0.2 if end is None else max(0.0, min(0.2, end - time.monotonic())))
            v = gv.verdict()
            if v["status"] != last:
                last = v["status"]
                gv.publish_verdict(v)
                if not args.quiet:
                    print(f"{time.strftime('%H:%M:%S')} verdict {last}", flush=True)
    except KeyboardInterrupt:
        pass
    v = gv.verdict()
    gv.publish_verdict(v)
    gv.stop()
    if args.json:
        print(json.dumps(v, default=str))
    else:
        _print(v)
    return v["exit"]


def _print(v):
    w = sys.stdout.write
    w("sites:\n")
    for name, s in sorted(v["sites"].items()):
        o = s.get("outbox")
        drops = f"  outbox dropped {o['dropped']}" if o else ""
        w(
            f"  {name:<12} {s['state']:<8} epoch {s['epoch']}  age {s['age_s']} s  "
            f"nodes {', '.join(s['nodes'])}{drops}\n"
        )
    w("global balance per quantity (raw units):\n")
    for q, t in sorted(v["totals"].items()):
        w(
            f"  {q:<8} balances+held {t['held']}  in flight {t['in_flight']}  opening "
            f"{t['opening']}  inflow {t['inflow']}  outflow {t['outflow']}  delta {t['delta']:+d}\n"
        )
    for r in v["residuals"]:
        w(f"  residual: site {r[0]}, node {r[1]}, {r[2]} {r[3]:+d}\n")
    w(f"verdict: {v['status']} (exit {v['exit']})\n")
    for p in v["problems"]:
        who = "/".join(x for x in (p["site"], p["node"]) if x) or "global"
        w(f"  {who}: {p['why']}\n")
    for note in v.get("notes", []):
        w(f"note: {note}\n")
