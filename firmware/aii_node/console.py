# SPDX-License-Identifier: MIT
"""Human console (docs/protocol.md §7) and the bounded, non-blocking line reader.

Every line that does not start with `@` is a human command; answers are small tables, and
errors start with `error:` and say what to try next. Handlers never raise.
"""

from .frame import MAX_FRAME
from .store import StorageFault

MAX_LINE = MAX_FRAME  # console lines share the frame bound
LONG_FRAME = 1  # markers LineReader returns for a dropped overlong line
LONG_TEXT = 2


class LineReader:
    """Collects bytes into lines without blocking; a line longer than MAX_LINE is dropped up to
    its newline and reported as LONG_FRAME (it started with '@') or LONG_TEXT.

    `ready()` says whether a byte can be read now, `read1()` reads one (bytes or str).
    """

    def __init__(self, ready, read1, max_line=MAX_LINE, per_call=256):
        self.ready = ready
        self.read1 = read1
        self.max_line = max_line
        self.per_call = per_call  # bytes per poll: bounds the time a console job takes
        self.buf = bytearray()
        self.discard = 0  # 0, or the marker of the line being dropped

    def feed(self, data):
        """Consume bytes; returns the completed lines (bytes without '\\n') and markers."""
        lines = []
        for c in data:
            if c == 10:  # \n
                if self.discard:
                    lines.append(self.discard)
                elif self.buf:
                    lines.append(bytes(self.buf))
                self.buf = bytearray()
                self.discard = 0
            elif c == 13 or self.discard:
                pass
            elif len(self.buf) >= self.max_line - 1:
                self.discard = LONG_FRAME if self.buf[0] == 0x40 else LONG_TEXT
                self.buf = bytearray()
            else:
                self.buf.append(c)
        return lines

    def poll(self):
        data = bytearray()
        while len(data) < self.per_call and self.ready():
            c = self.read1()
            if not c:
                break
            data.extend(c.encode() if isinstance(c, str) else c)
        return self.feed(data)


def stdin_reader():
    """LineReader over sys.stdin with select.poll (MicroPython and CPython alike)."""
    import select
    import sys

    p = select.poll()
    p.register(sys.stdin, select.POLLIN)
    stream = getattr(sys.stdin, "buffer", sys.stdin)

    def ready():
        return bool(p.poll(0))

    def read1():
        return stream.read(1)

    return LineReader(ready, read1)


HELP = """commands:
  help                          this list
  status                        node id, uptime, ledger seq and digest, memory, link
  tasks                         scheduled tasks with deadline statistics
  ledger                        balances and open holds
  transfer SRC DST QTY AMOUNT   move AMOUNT (decimal, e.g. 1.5) of QTY from SRC to DST
  config [KEY [VALUE]]          show the configuration, one key, or set a key
  reset                         persist and restart the node
machine frames start with '@' (docs/protocol.md)"""


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


def do_transfer(node, args):
    if len(args) != 4:
        return "error: usage: transfer SRC DST QTY AMOUNT (e.g. transfer grid load Wh 1.5)"
    if not node.console_writes():
        return "error: console transfers are disabled (config console_writes 1 to allow)"
    src, dst, qty, amount = args
    try:
        q = node.quantity_id(qty)
        a = node.account_id(src)
        b = node.account_id(dst)
        v = node.parse_amount(q, amount)
    except (ValueError, OverflowError) as e:
        return "error: %s (see 'ledger')" % e
    try:
        r = node.move("transfer", a, q, v, b)
    except (ValueError, RuntimeError, OverflowError) as e:
        return "error: refused: %s" % (str(e) or "ledger error")
    except StorageFault as e:
        return "error: not applied: storage fault (%s); see status, docs/faults.md" % e
    return "ok: journal seq %d" % r["seq"]


def do_config(node, args):
    cfg = node.config_public()
    if not args:
        return table(["key", "value"], [[k, cfg[k]] for k in sorted(cfg)])
    if len(args) == 1:
        if args[0] not in cfg:
            return "error: no key %r (try 'config' for the list)" % args[0]
        return "%s %s" % (args[0], cfg[args[0]])
    if len(args) > 2:
        return "error: usage: config KEY VALUE"
    try:
        node.config_set(args[0], args[1])
    except ValueError as e:
        return "error: %s" % e
    return "ok: %s %s" % (args[0], node.config_public()[args[0]])


def do_reset(node, args):
    node.request_reset()
    return "ok: persisted, restarting"


COMMANDS = {
    "help": do_help,
    "status": do_status,
    "tasks": do_tasks,
    "ledger": do_ledger,
    "transfer": do_transfer,
    "config": do_config,
    "reset": do_reset,
}


def handle(node, line):
    """Answer one human line (bytes); returns text. Never raises."""
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
        return fn(node, words[1:])
    except Exception as e:  # noqa: BLE001 - a console typo must not stop the node
        node.log_exception(e)
        return "error: internal error in %s (see status)" % words[0]
