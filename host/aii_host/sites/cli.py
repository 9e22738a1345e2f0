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
  aii verify-global --mqtt mqtts://127.0.0.1:8883 --mqtt-cred mq/creds/verifier-v1.toml \
      --id v1 --sites sites.toml --seconds 10
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
fetched by request instead; docs/fleet.md section 10.10)
"""


def args_gateway(p):
    g = p.add_argument_group("sites (docs/fleet.md section 10)")
    g.add_argument(
        "--mqtt",
        metavar="URL",
        help="also publish through this MQTT broker (mqtts://HOST:PORT with --mqtt-cred; "
        "mqtt://HOST:PORT a local demo)",
    )
    g.add_argument(
        "--mqtt-cred",
        metavar="FILE",
        help="with --mqtt mqtts://...: this gateway's broker credential (made by aii "
        "broker-init: creds/gw-SITE.toml)",
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
        "--trust-coordinator",
        action="append",
        default=[],
        metavar="CID=PUBKEY",
        help="with --mqtt: a cross-site transfer coordinator (aii transfer --broker) whose "
        "signed requests this gateway runs on its nodes; repeatable (none: it obeys none)",
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
        if args.site or args.site_key or args.mqtt_cred or args.outbox:
            raise UsageError("--site, --site-key, --mqtt-cred and --outbox go with --mqtt URL")
        return None
    if not args.site:
        raise UsageError("--mqtt needs --site NAME (this gateway's site)")
    from . import topics
    from .gateway import Gateway
    from .outbox import Outbox

    cred = mqtt_cred(args)
    try:
        topics.check_name("site", args.site)
    except ValueError as e:
        raise UsageError(f"--site: {e}") from None
    _cred_is(cred, "site", args.site, "--site")
    key = args.site_key or Path(fleet.db).with_name(f"{args.site}.site.key")
    verifiers = _pairs(args.trust_verifier, "--trust-verifier", "VID=PUBKEY")
    coordinators = _pairs(args.trust_coordinator, "--trust-coordinator", "CID=PUBKEY")
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
        cred=cred,
        coordinators=coordinators,
        outbox=outbox,
    )
    made = " (new key)" if gw.key_created else ""
    print(
        f"site {args.site}: key {key}{made}; a verifier trusts it with:\n"
        f'  [[site]]\n  name = "{args.site}"\n  pubkey = "{gw.pubkey}"',
        flush=True,
    )
    return gw


def mqtt_cred(args, url=None):
    """The loaded --mqtt-cred of `args` (None without one) after checking the broker's URL
    (`url`, else --mqtt): a password goes only over TLS."""
    from .broker import load_cred, parse_url

    url = url or args.mqtt
    parse_url(url)
    if not args.mqtt_cred:
        return None
    if not url.startswith("mqtts:"):
        raise UsageError(
            f"--mqtt-cred sends a password: give the broker's TLS URL (mqtts://...), not {url}"
        )
    return load_cred(args.mqtt_cred)


def _cred_is(cred, role, name, option):
    """A credential made by broker-init for another party of the same role is refused here:
    the broker would refuse every publish (and drop the connection after each)."""
    from .brokerinit import user_of

    want = user_of(role, name)
    prefix = user_of(role, "")
    user = (cred or {}).get("username") or ""
    if user.startswith(prefix) and user != want:
        raise UsageError(
            f"--mqtt-cred is {user}'s, not {want}'s: the broker lets it write only its own "
            f"topics (give {option} {user[len(prefix) :]} or {want}'s credential)"
        )


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
    p.add_argument(
        "--mqtt",
        metavar="URL",
        required=True,
        help="the broker (mqtts://HOST:PORT with --mqtt-cred; mqtt://HOST:PORT a local demo)",
    )
    p.add_argument(
        "--mqtt-cred",
        metavar="FILE",
        help="this verifier's broker credential (aii broker-init: creds/verifier-ID.toml)",
    )
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
    p.add_argument(
        "--trust-coordinator",
        action="append",
        default=[],
        metavar="CID=PUBKEY",
        help="a cross-site transfer coordinator whose signed decisions it matches with the "
        "settles at both sites; repeatable, with or without [[coordinator]] in --sites",
    )
    p.add_argument(
        "--xfer",
        type=clikit.positive_float,
        default=60.0,
        metavar="S",
        help="a cross-site transfer not settled on both sides S seconds after its decision "
        "is DEGRADED (%(default)s)",
    )
    p.add_argument("--json", action="store_true", help="the final verdict as JSON")
    p.add_argument("--quiet", action="store_true", help="no event lines")


def _sites_doc(args):
    if not args.sites:
        return {}
    try:
        return tomllib.loads(Path(args.sites).read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"--sites {args.sites}: {e}") from None
    except OSError as e:
        raise UsageError(f"--sites {args.sites}: {e.strerror}") from None


def coordinators(args):
    """{coordinator id: public key hex} of [[coordinator]] (id, pubkey) in the sites file and
    the --trust-coordinator options."""
    out = {}
    entries = _sites_doc(args).get("coordinator", [])
    if not isinstance(entries, list):
        raise UsageError(f"--sites {args.sites}: [[coordinator]] entries expected")
    for i, c in enumerate(entries, 1):
        if not isinstance(c, dict) or set(c) != {"id", "pubkey"}:
            raise UsageError(f"--sites {args.sites}: [[coordinator]] #{i}: id and pubkey expected")
        out.update(_pairs([f"{c['id']}={c['pubkey']}"], "[[coordinator]]", "id and pubkey"))
    out.update(_pairs(args.trust_coordinator, "--trust-coordinator", "CID=PUBKEY"))
    return out


def _sites(args):
    from . import topics

    out = {}
    if args.sites:
        doc = _sites_doc(args)
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
    from .verifier import GlobalVerifier

    cred = mqtt_cred(args)
    sites = _sites(args)

    def on_event(kind, data):
        if not args.quiet and kind != "report":
            print(f"{time.strftime('%H:%M:%S')} {kind} {json.dumps(data, default=str)}", flush=True)

    try:
        from . import topics

        topics.check_name("verifier id", args.id)
    except ValueError as e:
        raise UsageError(f"--id: {e}") from None
    _cred_is(cred, "verifier", args.id, "--id")
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
        args.mqtt,
        sites,
        vid=args.id,
        stale_s=args.stale,
        on_event=on_event,
        key=key,
        cred=cred,
        coordinators=coordinators(args),
        xfer_s=args.xfer,
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
    xt = v.get("transfers") or {}
    if xt.get("in_flight") or xt.get("finished"):
        w(f"cross-site transfers: {xt['finished']} finished, {len(xt['in_flight'])} in flight\n")
        for t in xt["in_flight"][:20]:
            w(
                f"  tx {t['txid']} {t['state']}: {t['src']} -> {t['dst']} {t['amount']} "
                f"{t['quantity']} (debited {t['debited']}, credited {t['credited']}, "
                f"{t['age_s']} s)\n"
            )
    w(f"verdict: {v['status']} (exit {v['exit']})\n")
    for p in v["problems"]:
        who = "/".join(x for x in (p["site"], p["node"]) if x) or "global"
        w(f"  {who}: {p['why']}\n")
    for note in v.get("notes", []):
        w(f"note: {note}\n")


BROKER_INIT_EPILOG = """\
examples:
  aii broker-init mq --sites a,b --verifiers v1 --coordinators c1
      one broker: mq/mosquitto.conf (TLS on 127.0.0.1:8883), mq/ca.crt, mq/passwd, mq/acl,
      and a credential per party in mq/creds/ (gw-a.toml, verifier-v1.toml, coord-c1.toml)
  aii broker-init mq --region eu=127.0.0.1:8883:a,b --region us=127.0.0.1:8884:c \\
      --verifiers v1
      two regions, a broker each (mq/eu/, mq/us/); us bridges to eu (the first region)
then:
  mosquitto -c mq/mosquitto.conf
  aii aggregate --fleet a/fleet.toml --mqtt mqtts://127.0.0.1:8883 --mqtt-cred mq/creds/gw-a.toml --site a
  aii verify-global --mqtt mqtts://127.0.0.1:8883 --mqtt-cred mq/creds/verifier-v1.toml --id v1 --sites sites.toml
"""


def _names(text, option):
    out = [x.strip() for x in (text or "").split(",") if x.strip()]
    if text is not None and not out:
        raise UsageError(f"{option}: a comma-separated list of names")
    return out


def args_broker_init(p):
    p.add_argument("folder", help="where to write it (made; must not hold a setup already)")
    p.add_argument("--sites", metavar="A,B", help="one broker: the sites whose gateways use it")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="one broker: the address it listens on, in its certificate (%(default)s)",
    )
    p.add_argument(
        "--port",
        type=clikit.positive_int,
        default=8883,
        help="one broker: its TLS port (%(default)s)",
    )
    p.add_argument(
        "--region",
        action="append",
        default=[],
        metavar="NAME=HOST:PORT:SITE,SITE",
        help="a region with a broker of its own and the sites on it; repeatable; every "
        "region but the first bridges to the first",
    )
    p.add_argument(
        "--verifiers", metavar="V1,V2", help="global verifier ids (aii verify-global --id)"
    )
    p.add_argument(
        "--coordinators", metavar="C1", help="coordinator ids (writes under aii/v1/coord/ID/)"
    )
    p.add_argument(
        "--san",
        action="append",
        default=[],
        metavar="NAME",
        help="another host name or address every server certificate is valid for; repeatable",
    )
    p.add_argument("--json", action="store_true", help="what was written, as JSON")


def _regions(args):
    from .brokerinit import Region

    if args.region and args.sites:
        raise UsageError("give --sites (one broker) or --region ... (one broker per region)")
    if not args.region:
        if not args.sites:
            raise UsageError("no sites: give --sites A,B (or --region NAME=HOST:PORT:SITES)")
        return {"main": Region(_names(args.sites, "--sites"), args.host, args.port)}
    out = {}
    for item in args.region:
        name, sep, rest = item.partition("=")
        host, _, rest = rest.rpartition(":") if rest.count(":") >= 2 else ("", "", "")
        host, _, port = host.rpartition(":")
        try:
            if not sep or not host or not 0 < int(port) < 65536 or name in out:
                raise ValueError
        except ValueError:
            raise UsageError(
                f"--region {item!r}: expected NAME=HOST:PORT:SITE,SITE (each name once), "
                "e.g. eu=127.0.0.1:8883:a,b"
            ) from None
        out[name] = Region(_names(rest, f"--region {name}"), host, int(port))
    return out


def do_broker_init(args):
    from .brokerinit import InitError, broker_init

    regions = _regions(args)
    try:
        plan = broker_init(
            args.folder,
            regions,
            _names(args.verifiers, "--verifiers"),
            _names(args.coordinators, "--coordinators"),
            hosts=args.san,
        )
    except InitError as e:
        raise UsageError(str(e)) from None
    if args.json:
        print(
            json.dumps(
                {
                    "hub": plan.hub,
                    "brokers": {
                        r: {"url": plan.urls[r], "conf": str(plan.conf[r])} for r in plan.conf
                    },
                    "creds": {u: str(p) for u, p in plan.creds.items()},
                    "region_of": plan.region_of,
                }
            )
        )
        return 0
    w = sys.stdout.write
    w(f"CA {plan.folder / 'ca.crt'} (its key ca.key: keep it offline once done)\n")
    for r, conf in plan.conf.items():
        bridge = f"; bridges to {plan.hub}" if r != plan.hub else ""
        w(f"broker {r}: {plan.urls[r]}{bridge}\n  mosquitto -c {conf}\n")
    w("credentials (mode 0600; give each party its own, with --mqtt-cred FILE):\n")
    for user, p in plan.creds.items():
        w(f"  {user:<20} {p}\n")
    for site, r in plan.region_of.items():
        w(
            f"  aii aggregate --fleet FLEET --mqtt {plan.urls[r]} "
            f"--mqtt-cred {plan.creds['gw-' + site]} --site {site}\n"
        )
    return 0
