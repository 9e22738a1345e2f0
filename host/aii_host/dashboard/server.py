# SPDX-License-Identifier: MIT
"""The dashboard's HTTP server (standard library only): the page and its vendored assets, the
fleet's snapshot as JSON, a server-sent event stream of snapshots, Prometheus' /metrics, and the
operator's one action.

    GET  /                  the page (static/index.html; app.js and style.css beside it)
    GET  /api/state         the latest snapshot (view.py) with the recent events, JSON
    GET  /api/events        text/event-stream: a `state` event per new snapshot
    GET  /metrics           Prometheus text format (metrics.py)
    GET  /healthz           "ok"
    POST /api/clear         {"node": NAME} with `Authorization: Bearer <operator token>`:
                            ends NAME's isolation (audited, the operator named)

Every answer to a bad request is a 4xx with a one-line JSON error; no request can make the
server print a traceback (handle_error prints one line). The page's Content-Security-Policy
allows scripts from this server only: nothing is loaded from elsewhere."""

import collections
import json
import mimetypes
import sys
import threading
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from . import metrics, tokens
from .events import event

STATIC = Path(__file__).resolve().parent / "static"
BODY_MAX = 4096  # the one action's body: {"node": NAME}
STREAMS_MAX = 32  # SSE clients at once; more get 429
KEEPALIVE_S = 15.0
RECENT_EVENTS = 100
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
}


class Hub:
    """What the server shows: the latest snapshot, the recent events and their counts, shared
    between the thread that reads the fleet (`update`) and the request threads."""

    def __init__(self, clear=None, alerts=None, outputs=()):
        self.view = None
        self.version = 0
        self.closed = False
        self.events = collections.deque(maxlen=RECENT_EVENTS)
        self._counts = collections.Counter()
        self._cond = threading.Condition()
        self._clear = clear  # clear(node, by) -> bool, or None: read-only
        self._alerts = alerts
        self._outputs = list(outputs)  # callables taking each event
        self._json = json.dumps(self._state()).encode()

    # -- the reader's side --

    def update(self, view, evs=()):
        for ev in evs:
            self.publish(ev)
        with self._cond:
            self.view = view
            self._json = json.dumps(self._state(), default=str).encode()
            self.version += 1
            self._cond.notify_all()

    def publish(self, ev):
        """Records an event, writes it to the outputs and, for an alert kind, to the sinks."""
        from .events import ALERT_KINDS

        with self._cond:
            self.events.append(ev)
            self._counts[ev["kind"]] += 1
        for out in self._outputs:
            out(ev)
        if self._alerts is not None and ev["kind"] in ALERT_KINDS:
            self._alerts.send(ev)

    def close(self):
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    # -- the request threads' side --

    def event_counts(self):
        with self._cond:
            return dict(self._counts)

    def alert_failures(self):
        return dict(self._alerts.failed) if self._alerts is not None else {}

    def state_json(self):
        with self._cond:
            return self._json, self.version

    def wait(self, version, timeout):
        """(state JSON, version) once the version differs from `version` (or after `timeout`)."""
        with self._cond:
            self._cond.wait_for(lambda: self.version != version or self.closed, timeout)
            return self._json, self.version

    def _state(self):
        return {
            "view": self.view,
            "events": list(self.events)[-50:],
            "actions": self._clear is not None,
        }

    def clear(self, node, who, peer):
        """(HTTP status, answer dict) of an operator's clear of `node`."""
        if self._clear is None:
            return HTTPStatus.CONFLICT, {"error": "this dashboard cannot act on the fleet"}
        names = [r["name"] for r in (self.view or {}).get("nodes", [])]
        if node not in names:
            return HTTPStatus.NOT_FOUND, {"error": f"no node {node!r} in the fleet"}
        by = f"operator {who} (aii dashboard, from {peer})"
        done = self._clear(node, by)
        self.publish(
            event(
                "operator",
                node,
                f"{node}: isolation cleared by operator {who}"
                if done
                else f"{node}: operator {who} asked to clear it, but it was not isolated",
                action="clear",
                operator=who,
                peer=peer,
                done=done,
            )
        )
        if not done:
            return HTTPStatus.CONFLICT, {"error": f"{node} is not isolated", "node": node}
        return HTTPStatus.OK, {"cleared": node, "by": who, "audited": True}


class _Handler(BaseHTTPRequestHandler):
    server_version = "aii-dashboard"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = 30  # a client that sends nothing for this long is dropped

    # -- plumbing --

    def log_message(self, format, *args):
        if self.server.verbose:
            sys.stderr.write(f"dashboard: {self.address_string()} {format % args}\n")

    def _send(self, status, body, ctype="application/json", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in HEADERS.items():
            self.send_header(k, v)
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status, obj, extra=()):
        self._send(status, json.dumps(obj, default=str).encode() + b"\n", extra=extra)

    def _error(self, status, msg, extra=()):
        self._json(status, {"error": msg}, extra)

    def parse_request(self):
        if not super().parse_request():
            return False
        if self.request_version not in ("HTTP/1.0", "HTTP/1.1"):
            # HTTP/0.9 (a bare "GET /") would get a body without a status line: refused.
            self.send_error(HTTPStatus.BAD_REQUEST, "use HTTP/1.1")
            return False
        return True

    def send_error(self, code, message=None, explain=None):
        # http.server's own errors (a bad request line, too long a header): one JSON line too,
        # and a 4xx, as every bad request gets (its 501 for an unknown method, 505 for an
        # unknown HTTP version are the client's mistakes, not the server's).
        self.close_connection = True
        if code == HTTPStatus.NOT_IMPLEMENTED:
            code, message = HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not used here"
        elif code == HTTPStatus.HTTP_VERSION_NOT_SUPPORTED:
            code, message = HTTPStatus.BAD_REQUEST, "use HTTP/1.1"
        if self.request_version not in ("HTTP/1.0", "HTTP/1.1"):
            self.request_version = "HTTP/1.0"  # so that the answer has its status line
        try:
            self._error(code, message or HTTPStatus(code).phrase, [("Connection", "close")])
        except OSError:
            pass  # the client went away

    def _path(self):
        return urllib.parse.urlsplit(self.path).path

    # -- methods --

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = self._path()
        if path == "/api/events":
            return self._stream()
        if path == "/api/state":
            body, _ = self.server.hub.state_json()
            return self._send(HTTPStatus.OK, body + b"\n")
        if path == "/metrics":
            body = metrics.exposition(self.server.registry)
            return self._send(HTTPStatus.OK, body, "text/plain; version=0.0.4; charset=utf-8")
        if path == "/healthz":
            return self._send(HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8")
        name = (
            "index.html"
            if path == "/"
            else path[len("/static/") :]
            if path.startswith("/static/")
            else None
        )
        if name is not None and name in self.server.assets:
            ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
            if ctype.startswith("text/") or ctype == "application/javascript":
                ctype += "; charset=utf-8"
            return self._send(HTTPStatus.OK, self.server.assets[name], ctype)
        if path in ("/api/clear",):
            return self._error(HTTPStatus.METHOD_NOT_ALLOWED, "use POST", [("Allow", "POST")])
        self._error(HTTPStatus.NOT_FOUND, f"no such page: {path[:100]}")

    def do_POST(self):
        path = self._path()
        if path != "/api/clear":
            if path in ("/", "/api/state", "/api/events", "/metrics", "/healthz"):
                return self._error(HTTPStatus.METHOD_NOT_ALLOWED, "use GET", [("Allow", "GET")])
            return self._error(HTTPStatus.NOT_FOUND, f"no such action: {path[:100]}")
        # The token first: without one nobody learns anything about the body's checks.
        who = tokens.check(self.server.tokens, self.headers.get("Authorization"))
        if who is None:
            self._drain()
            given = bool(self.headers.get("Authorization"))
            self.server.hub.publish(
                event(
                    "operator",
                    None,
                    f"refused: a clear from {self.client_address[0]} "
                    + ("with an unknown token" if given else "without a token"),
                    action="clear",
                    refused=True,
                    peer=self.client_address[0],
                )
            )
            if not given:
                return self._error(
                    HTTPStatus.UNAUTHORIZED,
                    "an operator token is needed (aii keygen --operator; Authorization: Bearer ...)",
                    [("WWW-Authenticate", 'Bearer realm="aii"')],
                )
            return self._error(HTTPStatus.FORBIDDEN, "not an operator token of this dashboard")
        body = self._body()
        if body is None:
            return
        node = body.get("node") if isinstance(body, dict) else None
        if not isinstance(node, str) or not node:
            return self._error(HTTPStatus.BAD_REQUEST, 'expected {"node": NAME}')
        status, answer = self.server.hub.clear(node, who, self.client_address[0])
        self._json(status, answer)

    def do_PUT(self):
        self._not_allowed()

    do_DELETE = do_PATCH = do_OPTIONS = do_PUT

    def _not_allowed(self):
        self._drain()
        self._error(
            HTTPStatus.METHOD_NOT_ALLOWED,
            f"{self.command} is not used here",
            [("Allow", "GET, POST")],
        )

    def _length(self):
        text = self.headers.get("Content-Length")
        if text is None:
            return 0
        if not text.strip().isdigit():
            return None
        return int(text)

    def _drain(self):
        # A body the answer does not read would be taken for the next request: close instead.
        if self._length() != 0:
            self.close_connection = True

    def _body(self):
        n = self._length()
        if n is None:
            self.close_connection = True
            self._error(HTTPStatus.BAD_REQUEST, "Content-Length must be a number")
            return None
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self._error(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length")
            return None
        if n > BODY_MAX:
            self.close_connection = True
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {BODY_MAX} bytes")
            return None
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        raw = self.rfile.read(n) if n else b""
        if len(raw) < n:
            self.close_connection = True
            self._error(HTTPStatus.BAD_REQUEST, "body shorter than its Content-Length")
            return None
        if ctype != "application/json":
            self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send Content-Type: application/json")
            return None
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            self._error(HTTPStatus.BAD_REQUEST, "the body is not JSON")
            return None

    def _stream(self):
        hub = self.server.hub
        if not self.server.streams.acquire(blocking=False):
            return self._error(HTTPStatus.TOO_MANY_REQUESTS, "too many live pages; try again later")
        try:
            self.close_connection = True
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            for k, v in HEADERS.items():
                self.send_header(k, v)
            self.end_headers()
            if self.command == "HEAD":
                return
            self.wfile.write(b"retry: 2000\n\n")
            body, version = hub.state_json()
            while not hub.closed and not self.server.stopping:
                self.wfile.write(b"event: state\ndata: " + body + b"\n\n")
                self.wfile.flush()
                while True:
                    last = version
                    body, version = hub.wait(version, KEEPALIVE_S)
                    if version != last or hub.closed:
                        break
                    self.wfile.write(b": keepalive\n\n")  # finds a client that went away
                    self.wfile.flush()
        except OSError:
            pass  # the page was closed
        finally:
            self.server.streams.release()


class DashboardServer(ThreadingHTTPServer):
    """`DashboardServer((host, port), hub, operator_tokens, verbose=False)`; `serve_forever()`
    in a thread of the caller's, `shutdown()` and `server_close()` to end."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, hub, operator_tokens, verbose=False):
        self.hub, self.tokens, self.verbose = hub, operator_tokens, verbose
        self.registry = metrics.registry(hub)
        self.streams = threading.BoundedSemaphore(STREAMS_MAX)
        self.stopping = False
        self.assets = {p.name: p.read_bytes() for p in STATIC.iterdir() if p.is_file()}
        super().__init__(address, _Handler)

    def handle_error(self, request, client_address):
        # A bug met by one request: one line, the server goes on (AII_DEBUG=1: the traceback).
        import os

        e = sys.exc_info()[1]
        if isinstance(e, (ConnectionError, TimeoutError)):
            return  # the client went away or stalled
        if os.environ.get("AII_DEBUG"):
            super().handle_error(request, client_address)
            return
        sys.stderr.write(
            f"dashboard: internal error on a request from {client_address[0]}: "
            f"{type(e).__name__}: {e} (a bug in aii; AII_DEBUG=1 shows the traceback)\n"
        )

    def stop(self):
        self.stopping = True
        self.hub.close()
        self.shutdown()
        self.server_close()
