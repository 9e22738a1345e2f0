# SPDX-License-Identifier: MIT
"""`aii dashboard`: the operator's live page, /metrics, alerts and JSON-lines events for one
fleet (docs/dashboard.md)."""

import argparse
import contextlib
import json
import sys
import threading
import time
from pathlib import Path

from .. import clikit
from ..clikit import UsageError
from ..core import keys
from ..core._errors import AIIError

POLL_S = 0.5  # the fleet database is read this often: a change shows within about a second
DEFAULT_HTTP = "127.0.0.1:8765"

EPILOG = """\
examples:
  aii dashboard --demo                       three simulated nodes, a violation injected after
                                             10 s; open http://127.0.0.1:8765/
  aii dashboard --fleet fleet.toml           the fleet of a running `aii aggregate` (or, when
                                             none runs, its own aggregation of the fleet)
  aii dashboard --fleet fleet.toml --http 0.0.0.0:8765 --alert-webhook http://alerts.lan/aii
  aii dashboard --fleet fleet.toml --events events.jsonl --alert-command 'logger -t aii'
  aii keygen --operator alice                a token for the one action (clear an isolation)

what it serves (read-only without an operator token):
  /              the live page: verdict and equation per quantity, a card per node, alerts,
                 transfers, the audit trail (updates by server-sent events, no script from
                 elsewhere)
  /metrics       Prometheus text format, every name prefixed aii_ (docs/dashboard.md §3)
  /api/state     the same snapshot as JSON; /api/events: its server-sent event stream
  /api/clear     POST {"node": NAME} with Authorization: Bearer <token>: clear an isolation,
                 audited with the operator's name

alerts (violation, isolated, cleared, offline, online, deadline_miss, storage_fault, recovery,
storage_ok): --alert-command runs CMD (no shell) with the event as JSON on stdin and in
AII_EVENT_JSON, AII_EVENT_KIND, AII_EVENT_NODE, AII_EVENT_SEVERITY, AII_EVENT_TEXT;
--alert-webhook POSTs the same JSON. Every event also goes to --events FILE as a JSON line, and
with --json to stdout.
exit status: the last verdict's, as `aii status` (0 OK, 1 DEGRADED, 2 VIOLATION, 3 UNKNOWN).
"""


def _http(text):
    """--http HOST:PORT ([::1]:PORT for IPv6; PORT 0: any free port)."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, e.g. 127.0.0.1:8765, got {text!r}")
    return host, int(port)


def args_dashboard(p):
    src = p.add_mutually_exclusive_group()
    src.add_argument("--fleet", help="fleet file (TOML, docs/fleet.md)")
    src.add_argument(
        "--demo",
        action="store_true",
        help="three simulated nodes, a transfer and an injected violation, as in `aii demo`",
    )
    p.add_argument(
        "--http",
        type=_http,
        default=DEFAULT_HTTP,
        metavar="HOST:PORT",
        help="where to serve (default: %(default)s; port 0 picks a free one)",
    )
    p.add_argument(
        "--operators",
        metavar="DIR",
        help="folder of operator tokens (*.operator, made by aii keygen --operator); "
        "default: the keys folder ($AII_KEYS_DIR or ~/.config/aii/keys)",
    )
    p.add_argument("--alert-command", metavar="CMD", help="run CMD for each alert (see below)")
    p.add_argument("--alert-webhook", metavar="URL", help="POST each alert as JSON to URL")
    p.add_argument(
        "--critical",
        action="append",
        metavar="TASK",
        help="a task whose deadline misses alert (repeatable; default: every task)",
    )
    p.add_argument("--events", metavar="FILE", help="append every event to FILE as a JSON line")
    p.add_argument("--json", action="store_true", help="events on stdout as JSON lines")
    p.add_argument(
        "--seconds",
        type=clikit.positive_float,
        help="stop after this many seconds (default: Ctrl-C)",
    )
    p.add_argument(
        "--inject-after",
        type=clikit.nonnegative_float,
        default=10.0,
        metavar="S",
        help="with --demo: inject the violation S seconds after the first transfer "
        "(default: %(default)s)",
    )
    p.add_argument("--verbose", action="store_true", help="log every request on stderr")


def _printer(as_json):
    lock = threading.Lock()

    def out(ev):
        if as_json:
            line = json.dumps(ev, sort_keys=True, default=str)
        else:
            line = f"{time.strftime('%H:%M:%S', time.localtime(ev['t']))} {ev['text']}"
        with lock:
            try:
                print(line, flush=True)
            except (BrokenPipeError, ValueError):
                pass  # stdout closed: the events file and the page still get them

    return out


def _appender(path):
    f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by the caller's ExitStack
    lock = threading.Lock()

    def out(ev):
        with lock:
            f.write(json.dumps(ev, sort_keys=True, default=str) + "\n")
            f.flush()

    return f, out


def _db_clear(fleet, node, by):
    from ..fleet.aggregate import open_db
    from ..fleet.verify import clear

    db = open_db(fleet.db)
    try:
        return clear(db, fleet.db, node, by=by)
    finally:
        db.close()


def do_dashboard(args):
    from ..fleet import config as fconfig
    from ..fleet import relay as frelay
    from . import tokens
    from .alerts import Alerts
    from .events import Watcher, event
    from .server import DashboardServer, Hub
    from .view import ViewReader

    if not args.fleet and not args.demo:
        raise UsageError("give --fleet FILE (docs/fleet.md) or --demo")
    if args.inject_after != 10.0 and not args.demo:
        raise UsageError("--inject-after goes with --demo")
    printer = _printer(args.json)
    alerts = Alerts(args.alert_command, args.alert_webhook)  # UsageError for a bad one
    folder = Path(args.operators) if args.operators else keys.keys_dir()
    if args.operators and not folder.is_dir():
        raise UsageError(f"--operators {args.operators}: not a folder")
    operator_tokens = tokens.load(folder)
    outputs = [printer]
    with contextlib.ExitStack() as stack:
        if args.events:
            f, out = _appender(args.events)
            stack.callback(f.close)
            outputs.append(out)
        demo = None
        if args.demo:
            from .demo import Demo

            demo = stack.enter_context(Demo(args.inject_after))
            fleet = fconfig.load(demo.fleet_file)
        else:
            fleet = fconfig.load(args.fleet)
        agg = None
        if demo is not None or not frelay.running(fleet.db):
            from ..fleet.aggregate import Aggregator

            agg = Aggregator(fleet)
            rel = frelay.RelayServer(agg, fleet.db)
            rel.check()
            stack.enter_context(agg)
            stack.enter_context(rel)
            source = "demo" if demo is not None else "own aggregation"

            def clear(node, by):
                return agg.clear(node, by)
        else:
            source = "aggregator"

            def clear(node, by):
                return _db_clear(fleet, node, by)

        hub = Hub(clear, alerts, outputs)
        alerts.report = hub.publish
        stack.callback(alerts.close)
        try:
            server = DashboardServer(args.http, hub, operator_tokens, args.verbose)
        except OSError as e:
            host, port = args.http
            raise AIIError(
                f"cannot serve on {host}:{port}: {e.strerror or e} (another dashboard? choose "
                "another --http HOST:PORT)"
            ) from None
        host, port = server.server_address[:2]
        url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
        thread = threading.Thread(target=server.serve_forever, name="aii-dashboard", daemon=True)
        thread.start()
        stack.callback(server.stop)
        alerts.start()
        where = {"demo": "demo fleet", "own aggregation": "fleet (own aggregation)"}.get(
            source, "fleet of a running aggregator"
        )
        hub.publish(
            event(
                "dashboard",
                None,
                f"dashboard: serving {url} ({where}, {len(fleet.nodes)} node(s); metrics at "
                f"{url}metrics; {len(operator_tokens)} operator token(s) from {folder}; "
                "Ctrl-C stops)",
                url=url,
                source=source,
                fleet=str(fleet.path),
                db=str(fleet.db),
                operators=len(operator_tokens),
            )
        )
        if host not in ("127.0.0.1", "::1", "localhost"):
            print(
                f"aii dashboard: {url} is reachable from other hosts: the page and /metrics are "
                "readable without a token, and a token travels unencrypted (put TLS in front)",
                file=sys.stderr,
            )
        stop = threading.Event()
        if demo is not None:
            script = threading.Thread(
                target=demo.run, args=(agg, hub.publish, stop), name="aii-demo", daemon=True
            )
            script.start()
            stack.callback(script.join, 30)
            stack.callback(stop.set)
        from ..fleet.cli_agg import _sigterm_stops

        with _sigterm_stops():
            return _loop(args, fleet, source, hub, ViewReader, Watcher(args.critical), event)


def _loop(args, fleet, source, hub, ViewReader, watcher, event):
    reader = ViewReader(fleet, source)
    end = None if args.seconds is None else time.monotonic() + args.seconds
    exit_code = clikit.EXIT_UNKNOWN
    failing = None
    try:
        while end is None or time.monotonic() < end:
            t0 = time.monotonic()
            try:
                view = reader.read()
            except Exception as e:  # noqa: BLE001 - the page keeps its last snapshot; said once
                why = f"{type(e).__name__}: {e}"
                if why != failing:
                    failing = why
                    print(f"aii dashboard: cannot read {fleet.db}: {why}", file=sys.stderr)
            else:
                failing = None
                hub.update(view, watcher.diff(view))
                exit_code = view["verdict"]["exit"]
            left = POLL_S - (time.monotonic() - t0)
            if end is not None:
                left = min(left, end - time.monotonic())
            if left > 0:
                time.sleep(left)
    except KeyboardInterrupt:
        pass
    finally:
        reader.close()
    hub.publish(event("dashboard", None, "dashboard: stopped", exit=exit_code))
    return exit_code
