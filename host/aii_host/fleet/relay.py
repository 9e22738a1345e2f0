# SPDX-License-Identifier: MIT
"""The aggregator's relay: a running `aii aggregate` owns the nodes' ports (a serial port has one
owner), so other host processes on the same machine (`aii transfer`) reach the nodes through it.

A Unix stream socket private to the user (`socket_path(db)`: a 0700 folder of the user's, the
socket 0600), one JSON object per line each way (docs/fleet.md §6):

    -> {"node": "n1", "kind": "hold", "body": {...}, "auth": true, "timeout": 2.0, "retries": 2}
    <- {"ok": {...the node's answer body...}}
    <- {"error": "node", "code": 9, "msg": "insufficient balance", "kind": "hold"}  (NodeError)
    <- {"error": "timeout" | "link" | "relay", "msg": "..."}

A node's refusal keeps its code, so a coordinator behind the relay tells a refusal (abort)
from a lost answer (in doubt) exactly as on its own link. Signed requests use the aggregator's
per-node seq counter, shared with its own clients.
"""

import contextlib
import hashlib
import json
import os
import socket
import tempfile
import threading

from ..core._errors import AIIError
from ..core.client import NodeError, NodeTimeout
from ..core.transport import TransportError

LINE_MAX = 1 << 20  # a request or an answer; node bodies are far smaller
TIMEOUT_MAX = 60.0  # seconds per try a relayed request may ask for
RETRIES_MAX = 10


class RelayError(AIIError):
    pass


def socket_path(db):
    """The relay socket of the fleet whose database is `db`: short (AF_UNIX paths are limited to
    ~107 bytes), the same for every spelling of the path, and in a folder only the user can
    enter ($XDG_RUNTIME_DIR, else <tmp>/aii-<uid>)."""
    key = hashlib.sha256(os.path.realpath(str(db)).encode()).hexdigest()[:24]
    base = os.environ.get("XDG_RUNTIME_DIR")
    if not base or not os.path.isdir(base):
        base = os.path.join(tempfile.gettempdir(), f"aii-{os.getuid()}")
        os.makedirs(base, mode=0o700, exist_ok=True)
        st = os.stat(base)
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise RelayError(
                f"{base} belongs to another user or is open to others; remove it or set "
                "XDG_RUNTIME_DIR to a private folder"
            )
    return os.path.join(base, f"aii-relay-{key}.sock")


def _connect(path, timeout=1.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
    except OSError:
        s.close()
        return None
    return s


class RelayServer:
    """`RelayServer(agg, db).start()` serves `agg.client(node).request(...)` on the fleet's relay
    socket until `.stop()`. Refuses to start while another aggregator serves the same fleet."""

    def __init__(self, agg, db):
        self.agg = agg
        self.path = socket_path(db)
        self._sock = None
        self._ino = None
        self._conns = set()
        self._lock = threading.Lock()
        self._thread = None

    def check(self):
        """RelayError when another aggregator serves the fleet (call it before connecting to
        the nodes: a second one's connections would take their links from the first)."""
        other = _connect(self.path)
        if other is not None:
            other.close()
            raise RelayError(
                f"another `aii aggregate` already serves this fleet (relay {self.path}); one "
                "aggregator per fleet owns the nodes' ports: stop it first"
            )

    def start(self):
        self.check()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # left by an aggregator that died
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket is born 0600: no window where others may connect
        try:
            s.bind(self.path)
        finally:
            os.umask(old)
        s.listen(8)
        self._ino = os.stat(self.path).st_ino  # the file we bound, to remove only that one
        self._sock = s
        self._thread = threading.Thread(target=self._accept, name="aii-relay", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        s, self._sock = self._sock, None
        if s is None:
            return
        # Only our own socket file: a successor may have bound the path after a stale unlink.
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self._ino:
                os.unlink(self.path)
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        s.close()
        with self._lock:
            for c in list(self._conns):
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _accept(self):
        while True:
            s = self._sock
            if s is None:
                return
            try:
                c, _ = s.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(c)
            threading.Thread(
                target=self._serve, args=(c,), name="aii-relay-conn", daemon=True
            ).start()

    def _serve(self, c):
        try:
            f = c.makefile("rwb")
            while True:
                line = f.readline(LINE_MAX + 1)
                if not line:
                    return
                if len(line) > LINE_MAX or not line.endswith(b"\n"):
                    f.write(_line({"error": "relay", "msg": "request line too long"}))
                    f.flush()
                    return
                f.write(_line(self._answer(line)))
                f.flush()
        except OSError:
            return
        finally:
            with self._lock:
                self._conns.discard(c)
            c.close()

    def _answer(self, line):
        try:
            req = json.loads(line)
            if isinstance(req, dict) and req.get("op") == "reload_keys":
                # aii keygen --rotate: the fleet file's keys changed; nothing else is read.
                try:
                    return {"ok": {"changed": self.agg.reload_keys()}}
                except AIIError as e:
                    return {"error": "relay", "msg": str(e)}
            node, kind = req["node"], req["kind"]
            body, auth = req.get("body"), req.get("auth")
            timeout, retries = req.get("timeout"), req.get("retries")
            if not isinstance(node, str) or not isinstance(kind, str):
                raise TypeError("node and kind must be strings")
            if body is not None and not isinstance(body, dict):
                raise TypeError("body must be an object")
            if auth is not None and not isinstance(auth, bool):
                raise TypeError("auth must be true, false or null")
            # Bounded: a request that could never time out would hold the node's queue.
            if timeout is not None and not (
                isinstance(timeout, (int, float)) and 0 < timeout <= TIMEOUT_MAX
            ):
                raise ValueError(f"timeout must be a number of seconds in (0, {TIMEOUT_MAX}]")
            if retries is not None and not (type(retries) is int and 0 <= retries <= RETRIES_MAX):
                raise ValueError(f"retries must be an integer 0 .. {RETRIES_MAX}")
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            return {"error": "relay", "msg": f"bad request: {e}"}
        return run_request(self.agg, node, kind, body, auth, timeout, retries)


def run_request(agg, node, kind, body=None, auth=None, timeout=None, retries=None):
    """`agg.client(node).request(...)` as an answer object (the relay's, above): a node's
    refusal keeps its code, a timeout and a link error stay apart. Also used by a site's
    gateway for a cross-site coordinator (sites/xfer.py)."""
    try:
        client = agg.client(node)
        return {"ok": client.request(kind, body, auth=auth, timeout=timeout, retries=retries)}
    except NodeError as e:
        return {"error": "node", "code": e.code, "msg": e.msg, "kind": e.kind}
    except NodeTimeout as e:
        return {"error": "timeout", "msg": str(e)}
    except (TransportError, OSError) as e:
        return {"error": "link", "msg": str(e)}
    except AIIError as e:
        return {"error": "relay", "msg": str(e)}


def answer_of(ans, name, kind):
    """The node's answer body of a `run_request` answer, or the error it stands for (the
    inverse of run_request: NodeError, NodeTimeout, TransportError, RelayError)."""
    if "ok" in ans:
        return ans["ok"]
    err = ans.get("error")
    if err == "node":
        raise NodeError(ans["code"], ans["msg"], ans.get("kind", kind))
    if err == "timeout":
        raise NodeTimeout(ans["msg"])
    if err == "link":
        raise TransportError(ans["msg"])
    raise RelayError(f"{name}: {ans.get('msg', ans)}")


def _line(obj):
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def running(db):
    """True when an aggregator serves the fleet's relay."""
    try:
        s = _connect(socket_path(db))
    except RelayError:
        return False
    if s is None:
        return False
    s.close()
    return True


def reload_keys(db, timeout=5.0):
    """Tells the aggregator serving fleet `db` to read its fleet file's keys again (a key was
    rotated); returns the names whose key changed. RelayError when none serves it."""
    s = _connect(socket_path(db), timeout)
    if s is None:
        raise RelayError("no aggregator serves this fleet any more: nothing to tell it")
    try:
        f = s.makefile("rwb")
        f.write(_line({"op": "reload_keys"}))
        f.flush()
        ans = json.loads(f.readline(LINE_MAX + 1) or b"{}")
    except (OSError, ValueError) as e:
        raise RelayError(f"the aggregator relay failed: {e}") from None
    finally:
        s.close()
    if "ok" not in ans:
        raise RelayError(f"the aggregator did not read the keys again: {ans.get('msg', ans)}")
    return ans["ok"]["changed"]


class RelayNode:
    """An endpoint with NodeClient's `request(...)` for node `name`, through the relay of the
    fleet database `db`. A lost relay (the aggregator stopped) is a link error: the coordinator
    keeps the transfer in doubt and `aii transfer --recover` finishes it."""

    def __init__(self, db, name, timeout=2.0, retries=2):
        self.path, self.name = socket_path(db), name
        self.timeout, self.retries = timeout, retries
        self._sock = self._file = None
        self._lock = threading.Lock()

    def open(self):
        if self._sock is None:
            s = _connect(self.path)
            if s is None:
                raise TransportError(
                    f"no aggregator relay at {self.path} (is `aii aggregate` running?)"
                )
            self._sock, self._file = s, s.makefile("rwb")
        return self

    def request(self, kind, body=None, auth=None, timeout=None, retries=None):
        timeout = self.timeout if timeout is None else timeout
        retries = self.retries if retries is None else retries
        req = {"node": self.name, "kind": kind, "body": body, "auth": auth}
        req.update(timeout=timeout, retries=retries)
        with self._lock:
            self.open()
            # The aggregator retries itself; wait for all its tries plus a margin.
            self._sock.settimeout(timeout * (retries + 1) + 5.0)
            try:
                self._file.write(_line(req))
                self._file.flush()
                raw = self._file.readline(LINE_MAX + 1)
            except OSError as e:
                self.close()
                raise TransportError(f"{self.name}: the aggregator relay failed: {e}") from None
            if not raw.endswith(b"\n"):
                self.close()
                raise TransportError(
                    f"{self.name}: the aggregator relay closed (aggregator stopped?)"
                )
        return answer_of(json.loads(raw), self.name, kind)

    def close(self):
        with contextlib.suppress(OSError):
            if self._file is not None:
                self._file.close()
            if self._sock is not None:
                self._sock.close()
        self._sock = self._file = None
