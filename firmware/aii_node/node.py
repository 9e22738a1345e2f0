# SPDX-License-Identifier: MIT
"""The node (docs/protocol.md): config, ledger, scheduled tasks, console and persistence.

Config is a JSON file on the device (docs/protocol.md §8). The heartbeat, the console reader
and the user tasks are all jobs of one aii.Scheduler; Ctrl-C stops it after persisting, unless
the console is locked (lock.py). Only signed requests change balances and settings; every
journal record carries its origin (the signed seq, the task, the console, the config).
"""

import json
import sys
from binascii import hexlify, unhexlify

import aii

from . import auth, console, lock, proto, scan
from ._record import ORIGIN_CONFIG, ORIGIN_NONE, ORIGIN_TASK
from .clock import ticks_add, ticks_diff, ticks_ms, ticks_us
from .events import Events
from .frame import E_ARGS, E_INTERNAL, E_RECOVERY, E_STATE, E_STORAGE, E_TOO_LONG, build
from .session import Session, resolve_intent
from .store import SESSION, StorageFault, Store, error_text

VERSION = "0.1.0"
OK, FAULT, RECOVERY = "ok", "storage_fault", "recovery"
METER_BATCH = 8  # meter periods applied per commit (one transaction, one durable append)
CONFIG = "aii_node.json"
SETTABLE = ("offline_after", "console_writes", "label")  # by a signed config_set only
PER_NODE = ("node", "key", "label", "tcp_port", "tcp_host", "data_dir")


def _canon(v):
    # json.dumps with sorted keys at every level; MicroPython's json has no sort_keys.
    if type(v) is dict:
        return "{" + ",".join(json.dumps(k) + ":" + _canon(v[k]) for k in sorted(v)) + "}"
    if type(v) is list:
        return "[" + ",".join(_canon(x) for x in v) + "]"
    return json.dumps(v)


def _stdout_write(data):
    out = getattr(sys.stdout, "buffer", None)
    if out is not None:
        out.write(data)
        if hasattr(out, "flush"):
            out.flush()
    else:
        sys.stdout.write(data.decode())


class Node:
    def __init__(
        self, config_path=CONFIG, data_dir=None, reader=None, write=None, fs=None, fs_open=None
    ):
        self.config_path = config_path
        self.fs_open = fs_open or open
        with open(config_path, "rb") as f:
            data = f.read()
        cfg = json.loads(data)
        self._cfg_digest = _digest(data)  # the file's bytes are not kept: 1 KB of heap
        data = None
        self.cfg = cfg
        self.node_id = cfg.get("node", "node")
        self.key = unhexlify(cfg["key"]) if cfg.get("key") else b""
        self.events = Events(cfg.get("events", 32), cfg.get("offline_after", 3))
        self.store = Store(
            data_dir or cfg.get("data_dir", "aii_data"), fs, fs_open, cfg.get("compact_at", 64)
        )
        self.reader = reader
        self.lines = []  # read but not yet handled
        self.write = write or _stdout_write
        self.sched = None
        self.tcp = None  # net.TcpLink when the config has tcp_port
        self._fw = None  # fw_digest(), computed once
        self.miss_log = {}  # (tid, kind) -> [ticks_ms of the last event, misses not sent since]
        self.tasks = []  # (tid, name, period_us, budget_us)
        self.errors = 0  # exceptions caught in handlers (see status)
        self.last_error = ""
        self.reset_requested = False
        self.t_last = ticks_ms()
        self.uptime = 0
        self.refused = {}
        self.meters = []  # [name, periods due, (src, dst, quantity, amount) ids or None, task]
        self.nav = None  # aii_nav.link.Nav when the config has "nav" (attached by start())
        self.probe_ms = cfg.get("probe_ms", 2000)
        self.origin = (ORIGIN_NONE, 0)  # who asks for the change under way (proto, console)
        self.serial = auth.Guard("serial")  # bad MACs on the serial line
        # ... and on the network, one count for every client (net.py, a simulated board's
        # bridge): a client that reconnects does not start afresh.
        self.network = auth.Guard("network", True)
        self.lock = "off"  # the console lock (lock.py), applied when the node runs
        self.boot()
        if "particles" in cfg:
            from . import particles  # docs/particles.md section 8

            particles.attach(self)

    # ---- boot and persistence (docs/protocol.md §6, docs/faults.md) ----
    def boot(self):
        """Reads storage back (scan.py): repairs a damaged copy from the other, or, when no
        good copy is left, boots in the recovery state; a failing write puts the node in its
        storage-fault state."""
        self.state, self.fault, self.damage = OK, None, []
        sc = scan.recover(self.store, aii.Ledger)
        self.ledger = sc.led
        self.torn = sc.torn
        self.repaired = sc.repaired
        self.top = sc.top
        saved = sc.session
        self.session = Session(saved[0], saved[1], self.key, self.node_id) if saved else Session()
        if sc.refuse is not None or sc.damage:
            self._recovery(sc)
            return
        try:
            scan.apply_fixes(self.store, sc)
        except OSError as e:
            self.enter_fault("boot repair", e)
            return
        resolve_intent(self.session, self.ledger_seq())
        try:
            self.save_session()
        except StorageFault:
            return
        self._ensure_config_objects()

    def _recovery(self, sc):
        # Nothing is written and nothing changes until a host repairs the node (repair.py).
        self.state = RECOVERY
        self.damage = sc.damage or [
            {"file": "", "offset": 0, "first": None, "last": None, "what": sc.refuse}
        ]
        self.scan = sc
        if [d for d in sc.damage if d["file"] == SESSION]:
            self.session.trusted = False  # no copy of the replay floor left
        self.nonce = hexlify(_random(8)).decode()
        self.repair_seq = self.session.last if self.session.trusted else 0
        self.staged = None
        self.emit("recovery", {"damage": self.damage[:2]})

    def repair_frame(self, seq, args):
        """A signed `repair` request (repair.py)."""
        from . import repair

        try:
            return repair.handle(self, seq, args, proto.ProtoError)
        except (OSError, StorageFault) as e:
            msg = e.msg if isinstance(e, StorageFault) else error_text(e)
            raise proto.ProtoError(E_STORAGE, "repair: storage write failed: " + msg)

    def _ensure_config_objects(self):
        # Creates what the config names and the ledger lacks: a first boot, an interrupted one,
        # or a config that gained an account. Existing balances are never touched. A storage
        # fault stops it; leaving the fault runs it again.
        try:
            self._create_config_objects()
        except StorageFault:
            pass

    def _create_config_objects(self):
        led = self.ledger
        led.set_origin(ORIGIN_CONFIG, 0)
        for q in self.cfg.get("quantities", []):
            try:
                led.quantity(q["name"])
            except ValueError:
                if "bits" in q:
                    led.add_quantity(q["name"], bits=q["bits"])
                else:
                    led.add_quantity(q["name"], digits=q.get("digits", 0))
            self.persist()
        for a in self.cfg.get("accounts", []):
            try:
                led.account(a["name"])
            except ValueError:
                q = led.quantity(a["quantity"])
                init = a.get("initial", 0)
                if type(init) is str:
                    init = aii.fx_parse_exact(init, led.format(q))
                led.open(a["name"], q, initial=init, non_negative=a.get("non_negative", True))
            self.persist()

    def persist(self):
        """Makes the last commit durable (both journal copies); returns once it is. On a
        failure the commit is undone, the node enters its storage-fault state and
        StorageFault is raised: nothing unwritten stays visible."""
        recs = self.ledger.journal()
        if not recs:
            return
        try:
            self.store.append(recs)
        except (OSError, MemoryError) as e:
            # MemoryError: a write that could not be made is a storage fault like any other.
            try:
                self.ledger.undo()
            except RuntimeError:
                pass  # not the last commit's records (a SEAL): reconcile() puts it on storage
            self.enter_fault("journal write", e)
            raise StorageFault("journal write", self.fault["error"])
        if self.store.records >= self.store.compact_at:
            try:
                self.store.compact(self.ledger)
            except (OSError, MemoryError) as e:
                self.enter_fault("compaction", e)  # the change itself is on storage: it stands

    def save_session(self):
        try:
            self.store.replace2(SESSION, self.session.encode())
        except (OSError, MemoryError) as e:
            self.enter_fault("session write", e)
            raise StorageFault("session write", self.fault["error"])
        self.session.durable = self.session.last

    def enter_fault(self, op, e):
        if self.state == RECOVERY:
            return
        first = self.state != FAULT
        self.state = FAULT
        err = error_text(e) if isinstance(e, OSError) else "out of memory"
        self.fault = {"op": op, "error": err, "since_ms": self.uptime, "probes": 0}
        self.next_probe = ticks_add(ticks_ms(), self.probe_ms)
        if first:
            self.emit("storage_fault", {"op": op, "error": self.fault["error"]})

    def probe(self):
        """Tries to leave the storage-fault state: a probe write, storage made to give back
        exactly the ledger in RAM, then read back (scan.reconcile). True when it left."""
        f = self.fault
        f["probes"] += 1
        self.next_probe = ticks_add(ticks_ms(), self.probe_ms)
        s = self.session
        try:
            same, wrote = scan.reconcile(self.store, self.ledger, aii.Ledger)
            # Storage holds no record RAM lacks: whether the request under way landed is what
            # RAM says (a change is undone unless its records were written), and the session
            # can say so before anything else is written.
            resolve_intent(s, self.ledger_seq())
            self.store.replace2(SESSION, s.encode())
            if not same:
                scan.rewrite(self.store, self.ledger)
            if wrote or not same:
                scan.verify(self.store, self.ledger, aii.Ledger)
        except (OSError, MemoryError) as e:
            # MemoryError: reading storage back needs a few ledgers' worth of heap; a probe
            # that cannot have it now tries again, as one whose write failed.
            f["error"] = error_text(e) if isinstance(e, OSError) else "out of memory"
            return False
        s.durable = s.last
        self.state, self.fault = OK, None
        self.emit("storage_ok", {"op": f["op"], "probes": f["probes"]})
        self._ensure_config_objects()
        return True

    def changeable(self):
        """Raises the error answer that refuses a ledger change in this state."""
        if self.state == FAULT:
            raise proto.ProtoError(
                E_STORAGE,
                "storage fault (%s: %s): changes refused until storage works again"
                % (self.fault["op"], self.fault["error"]),
            )
        if self.state == RECOVERY:
            d = self.damage[0]
            raise proto.ProtoError(
                E_RECOVERY,
                "recovery: %s %s: changes refused until aii node-repair" % (d["file"], d["what"]),
            )

    def ledger_seq(self):
        return self.ledger.info()[0]

    # ---- ledger operations (shared by console and protocol) ----
    def account_id(self, name):
        try:
            return self.ledger.account(name)
        except ValueError as e:
            raise proto.ProtoError(E_ARGS, str(e))  # the ledger's words

    def quantity_id(self, name):
        try:
            return self.ledger.quantity(name)
        except ValueError as e:
            raise proto.ProtoError(E_ARGS, str(e))

    def parse_amount(self, q, text):
        # Exact or refused, never rounded: what moves is what was typed.
        fmt = self.ledger.format(q)
        try:
            return aii.fx_parse_exact(text, fmt)
        except ValueError as e:
            n = fmt & 0x7F
            unit = "%d decimals" % n if fmt & 0x80 else "a unit of 2**-%d" % n
            raise ValueError("amount %s: %s (it has %s)" % (text[:24], e, unit))

    def _stamp(self):
        now = ticks_ms()
        self.uptime += ticks_diff(now, self.t_last)
        self.t_last = now
        self.ledger.set_time(self.uptime)

    def move(self, op, a, q, amount, b=None, txid=None):
        """One ledger change, made durable before it returns (StorageFault otherwise)."""
        self.changeable()
        if amount <= 0 or amount > 0x7FFFFFFFFFFFFFFF:
            raise proto.ProtoError(E_ARGS, "amount must be 1 .. 2**63-1")
        self._stamp()
        led = self.ledger
        led.set_origin(self.origin[0], self.origin[1])
        if op == "transfer":
            led.transfer(a, b, q, amount)
        elif op == "inflow":
            led.inflow(a, q, amount)
        elif op == "outflow":
            led.outflow(a, q, amount)
        elif op == "hold":
            led.hold(txid, a, q, amount)
        else:
            led.prepare(txid, a, q, amount)
        self.persist()
        return {"seq": self.ledger_seq()}

    def finish(self, op, txid):
        self.changeable()
        led = self.ledger
        try:
            led.hold_info(txid)
        except ValueError:
            raise proto.ProtoError(E_STATE, "no such transaction")
        self._stamp()
        led.set_origin(self.origin[0], self.origin[1])
        if op == "settle":
            led.settle(txid)
        else:
            led.release(txid)
        self.persist()
        return {"seq": self.ledger_seq()}

    # ---- views ----
    def _names(self):
        return [a["name"] for a in self.cfg.get("accounts", [])]

    def status(self):
        try:
            import gc

            mem = gc.mem_free()
        except (ImportError, AttributeError):
            mem = -1
        self._stamp()
        return {
            "node": self.node_id,
            "uptime_ms": self.uptime,
            "seq": self.ledger_seq(),
            "auth_seq": self.session.last if self.session.trusted else None,
            "digest": hexlify(self.ledger.digest()).decode(),
            "mem_free": mem,
            "offline": self.events.offline,
            "events": self.events.last,
            "dropped": self.events.dropped,
            "errors": self.errors,
            "last_error": self.last_error[:80],
            "journal_cut": self.torn,
            "state": self.state,
            "fault": self.fault,
            "damage": self.damage,
            "repaired": len(self.repaired),
            "lost": self.session.lost,
            "recovery": {"nonce": self.nonce, "top": self.top} if self.state == RECOVERY else None,
            "lock": self.lock,
            "bad_mac": self.serial.count + self.network.count,
        }

    def task_rows(self):
        rows = []
        for tid, name, _, _ in self.tasks:
            s = self.sched.stats(tid)
            rows.append([name, s[0], s[1], s[2], s[6], s[8]])
        return rows

    def task_table(self):
        rows = []
        for (tid, name, period, budget), r in zip(self.tasks, self.task_rows()):
            rows.append([name, period, budget] + r[1:])
        return rows

    def ledger_view(self, human=False):
        led = self.ledger
        accounts, by_id = [], {}
        for name in self._names():
            try:
                aid = led.account(name)
            except ValueError:
                continue
            by_id[aid] = name
            qname = self._qty_of(name)
            bal = led.balance(aid)
            if human:
                bal = aii.fx_format(bal, led.format(led.quantity(qname)))
            accounts.append([name, qname, bal])
        holds = []
        for txid, aid, amount, kind in led.holds():
            name = by_id.get(aid, aid)
            if human and aid in by_id:
                qname = self._qty_of(name)
                amount = aii.fx_format(amount, led.format(led.quantity(qname))) + " " + qname
            holds.append([txid, name, amount, "hold" if kind == aii.HOLD else "credit"])
        formats = {}  # the fixed-point format byte per quantity: hosts parse "1.5" with it
        for q in self.cfg.get("quantities", []):
            try:
                formats[q["name"]] = led.format(led.quantity(q["name"]))
            except ValueError:
                pass
        return {
            "accounts": accounts,
            "holds": holds,
            "formats": formats,
            "digest": hexlify(led.digest()).decode(),
        }

    def _qty_of(self, name):
        for a in self.cfg.get("accounts", []):
            if a["name"] == name:
                return a["quantity"]
        return "?"

    def journal_range(self, lo, hi, limit):
        # Never past RAM: records on storage that RAM undid (a failed write) are not served.
        hi = min(hi, self.ledger_seq())
        return self.store.journal_range(lo, hi, limit, self.ledger_seq() + 1)

    def fw_digest(self):
        """Digest of the node's sources when they are files (deployed with mpremote); a frozen
        image has none, and its version stands for it."""
        if self._fw is None:
            import hashlib
            import os

            h = hashlib.sha256(b"aii_node " + VERSION.encode())
            d = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
            try:
                names = sorted(n for n in os.listdir(d) if n.endswith(".py"))
            except OSError:
                names = []
            for n in names:
                with open(d + "/" + n, "rb") as f:
                    h.update(n.encode() + b"\0" + f.read())
            self._fw = hexlify(h.digest()[:16]).decode()
        return self._fw

    def cfg_digest(self):
        return self._cfg_digest

    def common_digest(self):
        """Digest of the configuration without what differs per node by design (id, key,
        label, network and folder), canonically serialised (sorted keys), so that a fleet
        of nodes set up alike shares it (docs/fleet.md section 4)."""
        cfg = {k: v for k, v in self.cfg.items() if k not in PER_NODE}
        return _digest(_canon(cfg).encode())

    # ---- config ----
    def config_public(self):
        out = {}
        for k in self.cfg:
            v = self.cfg[k]
            if k == "key":
                v = "(set)" if v else "(none)"
            elif type(v) is list:
                v = "%d entries" % len(v)
            out[k] = v
        for k in SETTABLE:
            out.setdefault(k, self._setting(k))
        return out

    def _setting(self, k):
        if k == "offline_after":
            return self.events.offline_after
        if k == "console_writes":
            return 1 if self.console_writes() else 0
        return self.cfg.get(k, "")

    def console_writes(self):
        # Off unless a signed config_set or the deployed config turned it on.
        return bool(self.cfg.get("console_writes", 0))

    def locked(self):
        return lock.locked(self.lock)

    def maintenance(self):
        """A signed `maintenance` request: Ctrl-C stops the app again until the next boot."""
        self.lock = lock.unlock()
        self.emit("maintenance", {"lock": self.lock})
        return {"lock": self.lock}

    def config_set(self, key, value):
        if key not in SETTABLE:
            raise proto.ProtoError(E_ARGS, "settable keys: " + " ".join(SETTABLE))
        if key in ("offline_after", "console_writes"):
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise proto.ProtoError(E_ARGS, key + " must be an integer")
            if key == "offline_after" and not 1 <= value <= 1000:
                raise proto.ProtoError(E_ARGS, "offline_after must be 1 .. 1000")
        elif type(value) is not str or len(value) > 32:
            raise proto.ProtoError(E_ARGS, key + " must be a string of at most 32 chars")
        cfg = dict(self.cfg)
        cfg[key] = value
        self._write_config(cfg)
        if key == "offline_after":
            self.events.offline_after = value
        return {"key": key, "value": value}

    def key_set(self, key):
        """A signed `key_set`: the node's key is replaced (rotation, docs/protocol.md §9). The
        config holding it is on storage before the answer; from then on only the new key's
        MACs check. The answer and `hello` carry the new key's id, so a host whose answer was
        lost learns from `hello` which key the node runs with."""
        try:
            new = unhexlify(key) if type(key) is str else b""
        except ValueError:
            new = b""
        if len(new) != 32:
            raise proto.ProtoError(E_ARGS, "key must be 64 hex digits (32 bytes)")
        cfg = dict(self.cfg)
        cfg["key"] = key.lower()
        self._write_config(cfg)
        self.key = new
        kid = auth.key_id(new)
        self.emit("key_set", {"key_id": kid})
        return {"key_id": kid}

    def _write_config(self, cfg):
        # Whole or not at all: a temporary file, synced, renamed over the config.
        data = json.dumps(cfg).encode()
        tmp = self.config_path + ".tmp"
        try:
            with self.fs_open(tmp, "wb") as f:
                self.store._write(f, data)
                self.store._sync(f)
            self.store.fs.rename(tmp, self.config_path)
        except OSError as e:
            self.enter_fault("config write", e)
            raise StorageFault("config write", error_text(e))
        self.cfg, self._cfg_digest = cfg, _digest(data)

    # ---- events and jobs ----
    def log_exception(self, e):
        self.errors += 1
        self.last_error = repr(e)

    def emit(self, kind, body, buffered=True):
        """An unsolicited event: buffered until acked, sent now unless the host is offline."""
        n = self.events.push(kind, body) if buffered else self.events.last
        if not self.events.offline:
            b = dict(body) if buffered else body  # the ring keeps the body without its kind
            b["kind"] = kind
            line = build(n, b"ev", proto.dumps(b))
            self.write(line)
            if self.tcp is not None:
                self.tcp.send(line)

    def _on_miss(self, tid, kind, detail):
        if self.nav is not None:
            self.nav.on_miss(tid, kind)  # the monitor's own miss is a stop (aii_nav.link)
        # At most one event per task and kind per heartbeat period, counting the others in
        # "more": on an overloaded node, a frame per miss would only add to the load.
        key = (tid, kind)
        now = ticks_ms()
        last = self.miss_log.get(key)
        if last is not None and ticks_diff(now, last[0]) < self.cfg.get("heartbeat_ms", 1000):
            last[1] += 1
            return
        more = last[1] if last is not None else 0
        self.miss_log[key] = [now, 0]
        name = "?"
        for t in self.tasks:
            if t[0] == tid:
                name = t[1]
        what = {aii.MISS: "miss", aii.OVERRUN: "overrun"}.get(kind, "dropped")
        self.emit(what, {"task": name, "us": detail, "more": more})

    def _heartbeat(self):
        if self.events.heartbeat():
            return  # just went offline: events are buffered from now on
        if not self.events.offline:
            self._stamp()
            self.emit("heartbeat", {"uptime_ms": self.uptime, "seq": self.ledger_seq()}, False)

    def handle_line(self, line, write=None, link=None):
        """Answer one line (or LineReader marker) on `write` (default: the serial console).
        `link`: an auth.Guard, the serial line's by default; a remote one (a network client)
        changes nothing and cannot stop the app without a signed request."""
        write = write or self.write
        try:
            self._handle_line(line, write, link)
        except MemoryError:
            # A line whose answer the heap had no room for ends with one line, not the node:
            # prebuilt, since nothing more may fit now.
            self.errors += 1
            self.last_error = proto.OUT_OF_MEMORY
            at = 1 if type(line) is not int and line[:1] == console.REMOTE else 0
            frame = type(line) is int or line[at : at + 1] == b"@"
            write(_NO_MEMORY_FRAME if frame else _NO_MEMORY_TEXT)

    def _handle_line(self, line, write, link):
        if link is None:
            link = self.serial
            if type(line) is not int and line[:1] == console.REMOTE:
                link, line = self.network, line[1:]
        if line == console.LONG_FRAME:
            write(proto.error(0, E_TOO_LONG, "frame too long"))
        elif line == console.LONG_TEXT:
            write(b"error: line too long (at most 1023 characters)\n")
        elif line == console.CTRL_C:
            self._ctrl_c(link, write)
        elif line == console.NO_MEMORY_FRAME:
            write(_NO_MEMORY_FRAME)
        elif line == console.NO_MEMORY_TEXT:
            write(_NO_MEMORY_TEXT)
        elif line[:1] == b"@":
            for out in proto.handle(self, line, link):
                write(out)
        else:
            text = console.handle(self, line, link.remote)
            if text:
                write(text.encode() + b"\n")

    def _ctrl_c(self, link, write):
        # 0x03 read as data: a locked console (kbd_intr(-1)), a port whose UART does not raise
        # KeyboardInterrupt, or a network client. Only the serial line of an unlocked node
        # stops the app with it.
        if link.remote:
            write(b"error: ctrl-c is not taken over the network\n")
        elif self.locked():
            write(b"locked: ctrl-c is off while the node runs (docs/protocol.md section 9)\n")
        else:
            raise KeyboardInterrupt

    def _console(self):
        # The node's I/O job: meter periods become durable here, storage is probed here, and
        # requests are answered here (never inside the meter's own deadline job).
        # One line at least, more while under half the budget: a burst of input is spread over
        # several jobs instead of making one job overrun.
        t0 = ticks_us()
        self.housekeeping()
        if not self.lines:
            self.lines = self.reader.poll()
        while self.lines:
            self.handle_line(self.lines.pop(0))
            if ticks_diff(ticks_us(), t0) > self.console_budget // 2:
                break
        if self.tcp is not None:
            for line, client in self.tcp.lines():
                self.handle_line(line, client.send, self.network)
        if self.reset_requested:
            self.sched.stop()

    def housekeeping(self):
        if self.state == FAULT and ticks_diff(ticks_ms(), self.next_probe) >= 0:
            self.probe()
        self.flush_meters()

    def _meter(self, t):
        # [name, periods due, resolved ids, task, its number: the origin of its records]
        m = [t["name"], 0, None, t, self.cfg["tasks"].index(t) + 1]
        self.meters.append(m)

        def job():
            # Only counted here: the transfer is made, and becomes visible, once the I/O job
            # has written it (flush_meters). A node in recovery meters nothing.
            if self.state != RECOVERY:
                m[1] += 1

        return job

    def flush_meters(self, batch=METER_BATCH):
        """Applies due meter periods, at most `batch` in one transaction, and makes them
        durable; on a storage fault they stay due."""
        if self.state != OK or not _due(self.meters):
            return 0
        led = self.ledger
        done = []
        self._stamp()
        led.begin()
        try:
            self._meter_periods(led, done, batch)
        except BaseException:
            # Ctrl-C (KeyboardInterrupt) mid-batch: no transaction may stay open.
            led.rollback()
            for m in done:
                m[1] += 1
            raise
        led.commit()
        try:
            self.persist()
        except StorageFault:
            for m in done:
                m[1] += 1  # undone: still due
            return 0
        return len(done)

    def _meter_periods(self, led, done, batch):
        for m in self.meters:
            t = m[3]
            try:
                if m[2] is None:
                    q = led.quantity(t["quantity"])
                    v = t.get("amount", 1)
                    v = v if type(v) is int else aii.fx_parse_exact(v, led.format(q))
                    m[2] = (led.account(t["src"]), led.account(t["dst"]), q, v)
                a, b, q, v = m[2]
            except (ValueError, OverflowError) as e:
                self._refused(t["name"], e)
                m[1] = 0
                continue
            led.set_origin(ORIGIN_TASK, m[4])
            while m[1] > 0 and len(done) < batch:
                m[1] -= 1
                try:
                    led.transfer(a, b, q, v)
                    self.refused[t["name"]] = False
                    done.append(m)
                except (ValueError, RuntimeError, OverflowError) as e:
                    self._refused(t["name"], e)

    def _refused(self, name, e):
        # One event per run of refusals, not one per period.
        if not self.refused.get(name):
            self.refused[name] = True
            self.emit("refused", {"task": name, "msg": str(e)})

    def _noop(self):
        pass

    def start(self):
        cfg = self.cfg
        if self.reader is None:
            self.reader = console.stdin_reader()
        # What the admission analysis counts (docs/scheduler.md, section 5): the loop's own
        # cost per job, measured on this board at start unless the config gives it; idle-time
        # collections only where gc_idle_us fits (tools/node_budgets.py measures both, and the
        # budgets); the watchdog fed while no critical task has missed.
        s = aii.Scheduler(
            on_miss=self._on_miss,
            overhead_us=cfg.get("overhead_us", "auto"),
            gc_idle_us=cfg.get("gc_idle_us", 0),
            wdt=_watchdog(cfg.get("wdt_ms")),
        )
        self.sched = s
        hb = cfg.get("heartbeat_ms", 1000) * 1000
        self.console_budget = cfg.get("console_budget_us", 5000)
        self._add(self._heartbeat, "heartbeat", hb, cfg.get("heartbeat_budget_us", 5000))
        self._add(
            self._console, "console", cfg.get("console_period_us", 20000), self.console_budget
        )
        for t in cfg.get("tasks", []):
            fn = self._meter(t) if t.get("action") == "meter" else self._noop
            self._add(fn, t["name"], t["period_us"], t["budget_us"], t.get("critical", False))
        if "nav" in cfg:
            self.attach_nav()

    def _add(self, fn, name, period, budget, critical=False):
        try:
            tid = self.sched.add(fn, period_us=period, budget_us=budget, critical=critical)
        except ValueError as e:  # AdmissionError too: the config's periods and budgets
            raise TaskError("task %s (period %d us, budget %d us): %s" % (name, period, budget, e))
        self.tasks.append((tid, name, period, budget))

    def attach_nav(self):
        """The safety monitor (aii_nav, docs/navigation.md) as a critical task of this node."""
        from aii_nav.link import attach

        self.nav = attach(self)

    def request_reset(self):
        self.reset_requested = True

    def shutdown(self):
        while self.flush_meters():
            pass
        if self.state == OK:
            try:
                self.persist()  # a change Ctrl-C cut short: its intent tells the boot
            except StorageFault:
                pass
            try:
                self.save_session()
            except StorageFault:
                pass  # the fault is reported; what was acknowledged is on storage already
        if self.tcp is not None:
            self.tcp.close()
            self.tcp = None

    def run(self, duration_us=None):
        """Run until Ctrl-C, `reset` or duration_us; state is persisted on the way out."""
        if self.sched is None:
            self.start()
        if self.cfg.get("tcp_port") is not None and self.tcp is None:
            from .net import TcpLink

            cfg = self.cfg
            self.tcp = TcpLink(
                cfg["tcp_port"],
                cfg.get("tcp_host", "127.0.0.1"),
                cfg.get("tcp_max_clients", 4),
                cfg.get("tcp_idle_s", 60),
            )
        self.lock = lock.at_boot(self.cfg)
        self.write(b"aii node %s ready (proto 1, type help)\n" % self.node_id.encode())
        try:
            self.sched.run(duration_us)
        except KeyboardInterrupt:
            self.write(b"\naii node stopped (ctrl-c), state saved\n")
        finally:
            self.shutdown()


_NO_MEMORY_FRAME = proto.error(0, E_INTERNAL, proto.OUT_OF_MEMORY)
_NO_MEMORY_TEXT = b"error: " + proto.OUT_OF_MEMORY.encode() + b"\n"


def _digest(data):
    # The first 16 bytes of SHA-256, in hex (cfg_digest, common_digest).
    import hashlib

    return hexlify(hashlib.sha256(data).digest()[:16]).decode()


def _due(meters):
    # Whether a meter has periods due; asked every console job, so it allocates nothing.
    for m in meters:
        if m[1]:
            return True
    return False


class TaskError(Exception):
    """A task of the config that the scheduler refuses (its parameters or the admission)."""


def _watchdog(timeout_ms):
    # machine.WDT when the config asks for one and the port has it (not the unix port).
    if not timeout_ms:
        return None
    try:
        from machine import WDT
    except ImportError:
        return None
    return WDT(timeout=timeout_ms)


def _random(n):
    try:
        from os import urandom

        return urandom(n)
    except ImportError:  # ports without os.urandom: the nonce only has to differ per recovery
        return bytes((ticks_us() >> (3 * i)) & 255 for i in range(n))


def main(config_path=CONFIG):
    try:
        node = Node(config_path)
    except OSError:
        print("error: no %s here: copy one with aii deploy --config FILE" % config_path)
        return
    try:
        node.start()
    except TaskError as e:
        # Before the console is locked (run() locks it): the REPL stays, as without a config.
        print(
            "error: the scheduler refuses %s; measure the budgets with tools/node_budgets.py "
            "or give that task a longer period" % e
        )
        return
    try:
        node.run()
    finally:
        # A locked console must not fall through to the REPL (an error, the end of a run):
        # the board boots the node again instead. `reset` does the same on purpose.
        if node.reset_requested or node.locked():
            try:
                import machine

                machine.reset()
            except (ImportError, AttributeError):
                sys.exit(0)
