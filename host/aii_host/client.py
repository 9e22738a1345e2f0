# SPDX-License-Identifier: MIT
"""NodeClient: requests, responses and events of the node protocol (docs/protocol.md) over any
Transport.

Exactly-once over an unreliable link: a request keeps its sequence number and its exact bytes
across retries, so a node that already ran it answers from its cache and changes nothing.
When the node cannot say so from its cache (E_REPLAY after a lost answer, E_STORAGE while its
storage fails), the client asks it what became of the seq (`outcome`) and sends the request
again as a new one only when the node says that seq never ran it (docs/client.md §3).
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


def _mac_of(data):
    # The MAC prefix the node keeps per outcome (docs/protocol.md §3) of an encoded frame.
    return bytes(data).rstrip(b"\n").rsplit(b"*", 1)[0].rsplit(b"|", 1)[1][:32].decode()


class ProtocolError(AIIError):
    """The node speaks another protocol version than this host."""


def _tail(lines, n=12):
    return "\n".join("  " + repr(x) for x in list(lines)[-n:]) or "  (nothing)"


class NodeClient:
    """`NodeClient(transport, key=None, timeout=2.0, retries=2, fault_wait=5.0, node=None)`;
    the transport must be open.

    `key` (bytes) signs the requests that change the ledger (fr.MUTATING) or any request
    given `auth=True`, for node id `node` (a MAC checks on that node only, docs/protocol.md
    §3); without one, the id the node gives in `hello` is taken before the first signed
    request."""

    def __init__(self, transport, key=None, timeout=2.0, retries=2, fault_wait=5.0, node=None):
        self.t = transport
        self.key = key
        self.node = node
        self.timeout = timeout
        self.retries = retries
        # How long a request waits for a node in its storage-fault state to say what became
        # of it before giving up with E_STORAGE (the node then still knows: ask `outcome`).
        self.fault_wait = fault_wait
        self.sends = 0  # how many times send_frame wrote the last frame
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
            self.sends = attempt + 1
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
            self.next_seq = int(self.request("status").get("auth_seq") or 0) + 1
        s = self.next_seq
        self.next_seq += 1
        return s

    def request(self, kind, body=None, auth=None, timeout=None, retries=None, seq=None):
        """Sends one request and returns the `ok` body; raises NodeError on `err`."""
        body = {} if body is None else body
        signed = (kind in fr.MUTATING) if auth is None else auth
        if signed and self.key is None:
            raise AIIError(f"{kind} needs the node key (--key)")
        if signed and self.node is None:
            self.node = self.request("hello").get("node")
        fresh = seq is None
        if fresh:
            seq = self._seq_for(signed)
        data = fr.encode(seq, kind, body, self.key if signed else None, node=self.node)
        f = self.send_frame(data, seq, timeout, retries)
        for _ in range(8):
            if f.kind != "err":
                return f.body
            b = f.body if isinstance(f.body, dict) else {}
            code, msg = b.get("code", 0), b.get("msg", str(f.body))
            if not signed or code not in (fr.E_REPLAY, fr.E_STORAGE):
                if code == fr.E_VERSION:
                    raise ProtocolError(
                        f"{kind}: the node refused protocol version {fr.VERSION} ({msg}): "
                        "use an aii host tool that speaks the node's version"
                    )
                raise NodeError(code, msg, kind)
            if code == fr.E_REPLAY and fresh and getattr(self, "sends", 2) == 1:
                # Refused on its only arrival, so it never ran: our counter was behind the
                # node's (a new client, node state restored). Send it as a new request.
                above = _replay_floor(msg)
                if above is None:
                    raise NodeError(code, msg, kind)
                self.next_seq = max(self.next_seq or 0, above + 1)
                return self.request(kind, body, auth, timeout, retries)
            st = self._outcome(kind, seq, data, code, msg)
            if st["state"] == "ran":
                a = st["answer"]
                if a["kind"] == "ok":
                    return a["body"]
                raise NodeError(a["body"].get("code", 0), a["body"].get("msg", ""), kind)
            if st["state"] == "free":
                f = self.send_frame(data, seq, timeout, retries)  # the same bytes again
                continue
            # "never": that seq ran another request or none, and can run nothing now.
            if not fresh:
                raise NodeError(code, f"seq {seq} did not run this request ({msg})", kind)
            self.next_seq = max(self.next_seq or 0, st["last"] + 1)
            return self.request(kind, body, auth, timeout, retries)
        raise NodeError(code, msg, kind)

    def _outcome(self, kind, seq, data, code, msg):
        """What became of our signed request `seq` (docs/protocol.md §4 `outcome`): waits while
        it is pending (a storage fault), up to fault_wait. Returns the `outcome` answer with
        state "ran" (ours: `answer`), "free" (may still run: send the same bytes) or "never"
        (ours did not run and cannot). Raises NodeError when the node cannot tell."""
        mac = _mac_of(data)
        end = time.monotonic() + self.fault_wait
        pause = 0.02
        while True:
            st = self.request("outcome", {"seq": seq})
            state = st.get("state")
            if state == "ran" and st.get("mac") != mac:
                st["state"] = "never"  # another request ran under this seq
                return st
            if state in ("ran", "free", "never"):
                return st
            if state == "pending" and time.monotonic() < end:
                time.sleep(pause)  # a node probes its storage every few seconds at most
                pause = min(pause * 1.5, 0.25)
                continue
            if state == "pending":
                why = "the node's storage fails: its outcome is pending"
                raise NodeError(
                    fr.E_STORAGE,
                    f"seq {seq}: {why} ({msg}); ask `outcome` again once the node is back",
                    kind,
                )
            raise NodeError(
                code,
                f"cannot tell whether seq {seq} ran: the node no longer remembers it ({state}; "
                f"{msg}); read the ledger before sending it again",
                kind,
            )

    # -- commands (docs/protocol.md §4) ----------------------------------------------------

    def hello(self):
        """The node's hello; ProtocolError when it speaks another protocol version."""
        h = self.request("hello")
        if h.get("proto") != fr.VERSION:
            raise ProtocolError(
                f"the node speaks protocol {h.get('proto')}, this host {fr.VERSION}: "
                + (
                    "update the aii host tools"
                    if (h.get("proto") or 0) > fr.VERSION
                    else "update the node's firmware (aii deploy)"
                )
            )
        return h

    def outcome(self, seq):
        """What became of signed seq `seq` on the node (docs/protocol.md §4)."""
        return self.request("outcome", {"seq": seq})

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
