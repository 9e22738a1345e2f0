# SPDX-License-Identifier: MIT
"""Human console (docs/protocol.md §7) and the bounded, non-blocking line reader.

Every line that does not start with `@` is a human command; answers are small tables, and
errors start with `error:` and say what to try next. Handlers never raise. The console reads;
it changes nothing (docs/protocol.md §9): settings and balances change through signed requests,
`transfer` only where a signed config_set (or the deployed config) turned `console_writes` on,
and never from a network client.
"""

from ._record import ORIGIN_CONSOLE, ORIGIN_NONE
from .frame import MAX_FRAME
from .store import StorageFault

MAX_LINE = MAX_FRAME  # console lines share the frame bound
LONG_FRAME = 1  # markers LineReader returns for a dropped overlong line
LONG_TEXT = 2
GAP_MS = 1  # the longest wait for the next byte of a burst (LineReader.poll)
CTRL_C = 3  # marker: a 0x03 byte read as data (it also drops the line typed so far)
NO_MEMORY_FRAME = 4  # markers for a line the heap had no room for (started with '@' or not)
NO_MEMORY_TEXT = 5
# A simulated board's bridge puts REMOTE before each line one of its network clients sent
# (host/aii_host/vboard/supervisor.py): read-only, like a client of net.py on a board.
REMOTE = b"\x01"
_TAG = len(REMOTE)
_TAG_BYTE = REMOTE[0]


class LineReader:
    """Collects bytes into lines without blocking, in one buffer allocated once; a line longer
    than MAX_LINE is dropped up to its newline and reported as LONG_FRAME (it started with '@')
    or LONG_TEXT.

    `ready()` says whether a byte can be read now; `readinto(buf)` reads into a 1-byte buffer
    and returns how many bytes it read (a stream's readinto: one byte never blocks once ready()
    said so, where a longer read would wait for all of it on ports whose stdin loops on the
    UART); `wait(ms)`, if given, whether a byte arrives within ms: in the middle of a burst the
    next byte may be a moment behind (qemu's UART holds one byte and hands over the next only
    after the guest read the last), and a line would otherwise take one console job per byte
    or two. Reading allocates nothing but each completed line.
    """

    def __init__(self, ready=None, readinto=None, max_line=MAX_LINE, per_call=256, wait=None):
        self.ready = ready
        self.readinto = readinto
        self.wait = wait
        self.max_line = max_line
        self.per_call = per_call  # bytes per poll: bounds the time a console job takes
        self.buf = bytearray(max_line - 1 + _TAG)  # the longest line, and a network tag
        self.mv = memoryview(self.buf)
        self.n = 0  # bytes of the line being read
        self.one = bytearray(1)
        self.discard = 0  # 0, or the marker of the line being dropped
        self.lines = []  # what poll and feed return: reused, taken before the next call

    def pending(self):
        """The line read so far (bytes)."""
        return bytes(self.mv[: self.n])

    def _byte(self, c):
        # One byte; returns a completed line (bytes), a marker, or None.
        n = self.n
        if c == 10:  # \n
            self.n = 0
            d, self.discard = self.discard, 0
            if d:
                return d
            if not n:
                return None
            try:
                return bytes(self.mv[:n])
            except MemoryError:
                at = _TAG if self.buf[0] == _TAG_BYTE else 0
                return NO_MEMORY_FRAME if self.buf[at] == 64 else NO_MEMORY_TEXT
        if c == 3:
            self.n = self.discard = 0
            return CTRL_C
        if c == 13 or self.discard:
            return None
        at = _TAG if n and self.buf[0] == _TAG_BYTE else 0
        if n >= self.max_line - 1 + at:
            self.discard = LONG_FRAME if self.buf[at] == 64 else LONG_TEXT  # '@'
            self.n = 0
            return None
        self.buf[n] = c
        self.n = n + 1
        return None

    def feed(self, data):
        """Consume bytes; returns the completed lines (bytes without '\\n') and markers, in
        the reader's own list (empty it, or copy it, before the next call)."""
        lines = self.lines
        if lines:
            lines.clear()
        for c in data:
            x = self._byte(c)
            if x is not None:
                lines.append(x)
        return lines

    def poll(self):
        """Reads what is there (at most per_call bytes); returns lines as feed() does."""
        lines = self.lines
        if lines:
            lines.clear()
        ready, readinto, one = self.ready, self.readinto, self.one
        begun = False
        for _ in range(self.per_call):
            # A burst in progress (a line begun in this call) is worth one short wait per
            # byte; a pause of GAP_MS ends the call (a human typing costs one wait per key).
            if not ready() and not (begun and self.wait is not None and self.wait(GAP_MS)):
                break
            if not readinto(one):
                break
            c = one[0]
            x = self._byte(c)
            if x is not None:
                lines.append(x)
            begun = c != 10
        return lines


def stdin_reader():
    """LineReader over sys.stdin with select.poll (MicroPython and CPython alike)."""
    import select
    import sys

    p = select.poll()
    p.register(sys.stdin, select.POLLIN)
    stream = getattr(sys.stdin, "buffer", sys.stdin)
    ipoll = getattr(p, "ipoll", None)  # MicroPython's poll that allocates no list

    if ipoll is None:

        def ready():
            return bool(p.poll(0))

        def wait(ms):
            return bool(p.poll(ms))

    else:

        def ready():
            for _ in ipoll(0):
                return True
            return False

        def wait(ms):
            for _ in ipoll(ms):
                return True
            return False

    return LineReader(ready, stream.readinto, wait=wait)


HELP = """commands:
  help                          this list
  status                        node id, uptime, ledger seq and digest, memory, link
  tasks                         scheduled tasks with deadline statistics
  ledger                        balances and open holds
  transfer SRC DST QTY AMOUNT   move AMOUNT (decimal, e.g. 1.5) of QTY from SRC to DST
                                (only when console_writes is on: signed config_set)
  config [KEY]                  show the configuration, or one key
  reset                         persist and restart the node
settings change through signed requests (aii node-config) or aii deploy;
machine frames start with '@' (docs/protocol.md)"""
NOT_REMOTE = "error: %s is not taken from a network client: use a signed request (docs/protocol.md section 3)"


def table(header, rows):
    """Left-aligned text columns."""
    rows = [[str(c) for c in r] for r in rows]
    w = [len(h) for h in header]
    for r in rows:
        for i, c in enumerate(r):
            w[i] = max(w[i], len(c))
    out = []
    for r in [header] + rows:
        out.append("  ".join(c + " " * (w[i] - len(c)) for i, c in enumerate(r)).rstrip())
    return "\n".join(out)


def do_help(node, args):
    return HELP


def do_status(node, args):
    s = node.status()
    return "\n".join("%-10s %s" % (k, s[k]) for k in sorted(s))


def do_tasks(node, args):
    hdr = ["task", "period_us", "budget_us", "jobs", "misses", "overruns", "resp_max", "lat_max"]
    return table(hdr, node.task_table())


def do_ledger(node, args):
    v = node.ledger_view(human=True)
    out = table(["account", "quantity", "balance"], v["accounts"])
    if v["holds"]:
        out += "\n\n" + table(["txid", "account", "amount", "kind"], v["holds"])
    return out + "\n\ndigest " + v["digest"]


def do_transfer(node, args, remote=False):
    if remote:
        return NOT_REMOTE % "transfer"
    if len(args) != 4:
        return "error: usage: transfer SRC DST QTY AMOUNT (e.g. transfer grid load Wh 1.5)"
    if not node.console_writes():
        return (
            "error: console transfers are off: a signed config_set console_writes 1 "
            "(aii node-config) or the deployed config turns them on"
        )
    src, dst, qty, amount = args
    try:
        q = node.quantity_id(qty)
        a = node.account_id(src)
        b = node.account_id(dst)
        v = node.parse_amount(q, amount)
    except (ValueError, OverflowError) as e:
        return "error: %s (see 'ledger')" % e
    node.origin = (ORIGIN_CONSOLE, 0)  # stamped on its record
    try:
        r = node.move("transfer", a, q, v, b)
    except (ValueError, RuntimeError, OverflowError) as e:
        return "error: refused: %s" % (str(e) or "ledger error")
    except StorageFault as e:
        return "error: not applied: storage fault (%s); see status, docs/faults.md" % e
    finally:
        node.origin = (ORIGIN_NONE, 0)
    return "ok: journal seq %d" % r["seq"]


def do_config(node, args, remote=False):
    cfg = node.config_public()
    if not args:
        return table(["key", "value"], [[k, cfg[k]] for k in sorted(cfg)])
    if len(args) == 1:
        if args[0] not in cfg:
            return "error: no key %r (try 'config' for the list)" % args[0]
        return "%s %s" % (args[0], cfg[args[0]])
    return (
        "error: the console does not change settings: send a signed config_set "
        "(aii node-config --port PORT --key KEY %s VALUE) or deploy a config" % args[0][:32]
    )


def do_reset(node, args, remote=False):
    if remote:
        return NOT_REMOTE % "reset"
    if node.locked():
        # A boot is the one moment Ctrl-C could reach the REPL: not for whoever is at the line.
        return (
            "error: a locked console does not reset the node: send a signed maintenance "
            "(aii node-unlock) first (docs/protocol.md section 9)"
        )
    node.request_reset()
    return "ok: persisted, restarting"


_CHANGING = (do_transfer, do_config, do_reset)

COMMANDS = {
    "help": do_help,
    "status": do_status,
    "tasks": do_tasks,
    "ledger": do_ledger,
    "transfer": do_transfer,
    "config": do_config,
    "reset": do_reset,
}


def handle(node, line, remote=False):
    """Answer one human line (bytes) from the serial line, or from a network client
    (`remote`: nothing that changes the node); returns text. Never raises."""
    try:
        text = line.decode()
    except UnicodeError:  # MicroPython raises UnicodeError, CPython a subclass
        return "error: not text (type 'help')"
    words = text.split()
    if not words:
        return ""
    fn = COMMANDS.get(words[0])
    if fn is None:
        return "error: unknown command %r (type 'help')" % words[0][:32]
    try:
        if fn in _CHANGING:
            return fn(node, words[1:], remote)
        return fn(node, words[1:])
    except Exception as e:  # noqa: BLE001 - a console typo must not stop the node
        node.log_exception(e)
        return "error: internal error in %s (see status)" % words[0]
