# SPDX-License-Identifier: MIT
"""NodeClient: requests, responses and events of the node protocol (docs/protocol.md) over any
Transport.

Exactly-once over an unreliable link: a request keeps its sequence number and its exact bytes
across retries, so a node that already ran it answers from its cache and changes nothing.
Timeouts fail with what the line carried, so a failure explains itself.
"""

import collections
import random
import time

from . import frame as fr
from ._errors import AIIError
from .transport import TransportError


class NodeError(AIIError):
    """The node answered `err`: `.code` (docs/protocol.md §2), `.msg`, `.name` ("E_AUTH")."""

    def __init__(self, code, msg, kind="?"):
        self.code, self.msg, self.kind = code, msg, kind
        self.name = fr.ERROR_NAMES.get(code, f"E_{code}")
        super().__init__(f"{kind}: {msg} ({self.name} {code})")


class NodeTimeout(TransportError):
    """No answer in time; the message carries the last bytes received."""


# Errors that mean the line damaged our frame (we never build such frames): resend it.
_DAMAGED = (fr.E_FRAME, fr.E_CRC, fr.E_TOO_LONG)


def _code(f):
    return f.body.get("code") if isinstance(f.body, dict) else None


def _replay_floor(msg):
    # The node says "seq must be above N"; None when the message does not tell.
    words = str(msg).split()
    return int(words[-1]) if words and words[-1].isdigit() else None


def _tail(lines, n=12):
    return "\n".join("  " + repr(x) for x in list(lines)[-n:]) or "  (nothing)"


class NodeClient:
    """`NodeClient(transport, key=None, timeout=2.0, retries=2)`; the transport must be open.

    `key` (bytes) signs the requests that change the ledger (fr.MUTATING) or any request
    given `auth=True`."""

    def __init__(self, transport, key=None, timeout=2.0, retries=2):
        self.t = transport
        self.key = key
        self.timeout = timeout
        self.retries = retries
        self.events = collections.deque(maxlen=1000)
        self.next_seq = None  # learnt from the node on the first signed request
        self._buf = bytearray()
        self._seen = collections.deque(maxlen=64)  # recent lines, for failure messages
        # Unsigned requests take seqs from a random point high in the range: apart from the
        # signed ones (counted up from the node's auth_seq) and from another host's, so a late
        # answer to an old request is not taken for the answer to a new one.
        self._plain_seq = random.randrange(2**30, 2**31 - 2**24)

    # -- lines ------------------------------------------------------------------------------

    def _lines(self, timeout):
        """Yields complete lines (bytes, no line end) arriving within `timeout` seconds."""
        end = time.monotonic() + timeout
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl]).rstrip(b"\r")
                del self._buf[: nl + 1]
                self._seen.append(line)
                yield line
                continue
            left = end - time.monotonic()
            if left <= 0:
                return
            self._buf += self.t.read(min(left, 0.2))

    def drain(self, quiet=0.1):
        """Reads and returns what the node sends until it has been quiet for `quiet` seconds;
        events found are queued."""
        out = []
        while True:
            got = list(self._lines(quiet))
            if not got:
                return out
            for line in got:
                self._note_event(line)
                out.append(line)

    def _note_event(self, line):
        if line.startswith(b"@"):
            try:
                f = fr.decode(line)
            except fr.FrameError:
                return None
            if f.kind == "ev":
                self.events.append(f)
                return None
            return f
        return None

    # -- requests ---------------------------------------------------------------------------

    def send_frame(self, data, seq, timeout=None, retries=None):
        """Sends `data` (an encoded frame) and returns the response Frame with `seq`; resends the
        same bytes on timeout, and on an E_FRAME / E_CRC / E_TOO_LONG answer (the line damaged
        the frame) while tries remain."""
        timeout = self.timeout if timeout is None else timeout
        retries = self.retries if retries is None else retries
        for attempt in range(retries + 1):
            self.t.write(data)
            for line in self._lines(timeout):
                f = self._note_event(line)
                if f is None or f.kind not in ("ok", "err"):
                    continue
                damaged = f.kind == "err" and _code(f) in _DAMAGED
                if f.seq == seq and not (damaged and attempt < retries):
                    return f
                # Our frame arrived damaged: send the same bytes again. A seq-0 refusal may as
                # well answer an earlier line (a damaged frame's seq cannot be read), so on the
                # last try it ends nothing: the answer to our frame can still come.
                if damaged and f.seq in (0, seq) and attempt < retries:
                    break
        raise NodeTimeout(
            f"no answer to {data[:80]!r} in {timeout:.1f} s ({retries + 1} tries); "
            f"last lines:\n{_tail(self._seen)}"
        )

    def _seq_for(self, signed):
        if not signed:
            # Unsigned requests: any seq; the node does not order them.
            self._plain_seq += 1
            if self._plain_seq > fr.SEQ_MAX:
                self._plain_seq = 2**30
            return self._plain_seq
        if self.next_seq is None:
            # The node's last authenticated seq, when its status tells; else start low and
            # learn it from the first E_REPLAY.
            self.next_seq = int(self.request("status").get("auth_seq", 0)) + 1
        s = self.next_seq
        self.next_seq += 1
        return s

    def request(self, kind, body=None, auth=None, timeout=None, retries=None, seq=None):
        """Sends one request and returns the `ok` body; raises NodeError on `err`."""
        body = {} if body is None else body
        signed = (kind in fr.MUTATING) if auth is None else auth
        if signed and self.key is None:
            raise AIIError(f"{kind} needs the node key (--key)")
        fresh = seq is None
        if fresh:
            seq = self._seq_for(signed)
        data = fr.encode(seq, kind, body, self.key if signed else None)
        f = self.send_frame(data, seq, timeout, retries)
        if f.kind == "err":
            b = f.body if isinstance(f.body, dict) else {}
            code, msg = b.get("code", 0), b.get("msg", str(f.body))
            above = _replay_floor(msg) if code == fr.E_REPLAY and fresh and signed else None
            if above is not None:
                # Our counter was behind the node's (new client, node state restored): nothing
                # happened, so send it again as a new request above the node's last seq.
                self.next_seq = above + 1
                return self.request(kind, body, auth, timeout, retries)
            raise NodeError(code, msg, kind)
        return f.body

    # -- commands (docs/protocol.md §4) ----------------------------------------------------

    def hello(self):
        return self.request("hello")

    def status(self):
        return self.request("status")

    def tasks(self):
        return self.request("tasks")

    def ledger(self):
        return self.request("ledger")

    def transfer(self, src, dst, quantity, amount):
        return self.request(
            "transfer", {"src": src, "dst": dst, "quantity": quantity, "amount": amount}
        )

    def hold(self, txid, account, quantity, amount, kind="hold"):
        return self.request(
            kind, {"txid": txid, "account": account, "quantity": quantity, "amount": amount}
        )

    def prepare(self, txid, account, quantity, amount):
        return self.hold(txid, account, quantity, amount, kind="prepare")

    def commit_tx(self, txid):
        return self.request("commit_tx", {"txid": txid})

    def abort_tx(self, txid):
        return self.request("abort_tx", {"txid": txid})

    def fetch_events(self, ack=0):
        return self.request("events", {"ack": ack})

    def balances(self):
        """{account name: balance} from `ledger`."""
        return {a[0]: a[2] for a in self.ledger()["accounts"]}

    # -- human console ----------------------------------------------------------------------

    def console(self, line, quiet=0.3, timeout=5.0):
        """Sends one console line and returns the text lines the node printed until it was
        quiet for `quiet` seconds (frames among them are handled as usual)."""
        self.drain(0.02)
        self.t.write(line.encode() + b"\n")
        end = time.monotonic() + timeout
        out = []
        while time.monotonic() < end:
            got = self.drain(quiet)
            out += [x.decode("utf-8", "replace") for x in got if not x.startswith(b"@")]
            if not got and out:
                break
        return out
