# SPDX-License-Identifier: MIT
"""The monitor in the node (docs/navigation.md, 4): a critical task of the node's scheduler,
the nav_* requests (docs/protocol.md, 4), the drive output and the E-stop.

The node attaches it when its configuration has a "nav" section: `attach(node)` adds the task
(critical: a miss stops the watchdog being fed), takes the task's worst-case response from the
admission analysis into the monitor's bound, and records the start as a stop (`boot`, or
`watchdog` after a watchdog reset). Frames are only stored by the node's I/O job (requests are
answered there); every decision is the task's. Each job writes one drive frame, unbuffered and
sent even while the host is offline (it stands for the wire to the drive):
`@1|<n>|ev|{"kind":"drive","v":mm/s,"w":mrad/s,"n":job}|-*<crc>`. Stops and resumptions are
node events (`stop` with its cause, `go`), kept until the host acks them.
"""

from aii import MISS
from aii_node.clock import ticks_add, ticks_diff, ticks_us
from aii_node.frame import E_ARGS, E_STORAGE, build
from aii_node.proto import ProtoError

from .monitor import Monitor

GLUE = ("estop_pin", "estop_active")  # the node's settings; the rest are the monitor's
ESTOP_FILE = "nav_estop"  # in the data folder: a remote E-stop outlives a reset


def _reset_cause():
    try:
        import machine

        if machine.reset_cause() == machine.WDT_RESET:
            return "watchdog"
    except (ImportError, AttributeError):
        pass  # no machine module, or no reset causes (the unix port)
    return "boot"


class Nav:
    def __init__(self, node, cfg):
        if type(cfg) is not dict:
            raise ValueError("nav must be an object of settings (docs/navigation.md)")
        self.node = node
        mcfg = {}
        for k in cfg:
            if k not in GLUE:
                mcfg[k] = cfg[k]
        now = ticks_us()
        cause = _reset_cause()
        m = Monitor(mcfg, now, cause, ticks_diff, ticks_add)
        self.mon = m
        m.on_stop = self._on_stop
        m.on_go = self._on_go
        self.jobs = 0
        self.remote = node.store.exists(ESTOP_FILE)
        self.pin = None
        self.active = cfg.get("estop_active", 1)
        self.pin_error = None
        if cfg.get("estop_pin") is not None:
            try:
                from machine import Pin

                self.pin = Pin(cfg["estop_pin"], Pin.IN, Pin.PULL_UP)
            except (ImportError, AttributeError, ValueError, TypeError, OSError) as e:
                # An E-stop that cannot be read holds the robot: fail safe, and say why.
                self.pin_error = "estop_pin %r: %s" % (cfg["estop_pin"], e)
        m.estop(self._estop_level())
        s = node.sched
        self.tid = s.add(
            self._job,
            period_us=m.period_us,
            budget_us=m.budget_us,
            deadline_us=m.deadline_us,
            critical=True,
        )
        node.tasks.append((self.tid, "nav", m.period_us, m.budget_us))
        self.admit()
        node.emit("stop", self._body(cause, m.details()))

    def admit(self):
        """Takes this task's worst-case response from the scheduler's analysis into the bound
        (call again when the task set changes)."""
        for row in self.node.sched.admit():
            if row[0] == self.tid:
                self.mon.set_response(row[2])

    def _estop_level(self):
        if self.remote or self.pin_error is not None:
            return True
        return self.pin is not None and self.pin.value() == self.active

    def _job(self):
        m = self.mon
        m.estop(self._estop_level())
        out = m.step(ticks_us())
        self.jobs += 1
        self._drive(out)

    def on_miss(self, tid, kind):
        """The node's on_miss: this task ended after its deadline (the scheduler tells, once,
        for every task): the response bound no longer holds, so the robot stops. The watchdog
        is no longer fed either (a critical task missed): the board resets."""
        if tid == self.tid and kind == MISS:
            self.mon.late(ticks_us())

    def _drive(self, out):
        node = self.node
        body = b'{"kind":"drive","v":%d,"w":%d,"n":%d}' % (out[0], out[1], self.jobs)
        node.write(build(node.events.last, b"ev", body))

    def _body(self, cause, details):
        b = {"cause": cause}
        for k in details:
            b[k] = details[k]
        return b

    def _on_stop(self, cause, details):
        self.node.emit("stop", self._body(cause, details))

    def _on_go(self):
        m = self.mon
        self.node.emit("go", {"cmd": m.c_seq, "scan": m.s_seq})

    # ---- requests (aii_node.proto's table: nav_*) ----
    def _call(self, fn, args):
        try:
            fn(ticks_us(), args)
        except ValueError as e:
            raise ProtoError(E_ARGS, str(e))
        return self.state()

    def state(self):
        m = self.mon
        return {"state": "run" if m.running else "stop", "cause": None if m.running else m.cause}

    def scan(self, args):
        return self._call(self.mon.scan, args)

    def odom(self, args):
        return self._call(self.mon.odom, args)

    def cmd(self, args):
        out = self._call(self.mon.command, args)
        last = self.mon.last
        out["s_req"], out["free"], out["why"] = last[0], last[1], last[2]
        return out

    def status(self):
        st = self.mon.status()
        pin = self.pin_error or ("ok" if self.pin is not None else None)
        st["estop"] = {"remote": self.remote, "pin": pin}
        return st

    def press(self):
        """A remote E-stop: held at once, and on storage (best effort) so that a reset keeps
        it; never refused."""
        self.remote = True
        self.mon.estop(True)
        try:
            self.node.store.replace(ESTOP_FILE, b"1")
            durable = True
        except OSError:
            durable = False  # held in RAM; the host is told
        return {"estop": True, "durable": durable}

    def release(self):
        """Ends a remote E-stop (a signed request); the robot still needs fresh evidence."""
        try:
            self.node.store.remove(ESTOP_FILE)
        except OSError as e:
            raise ProtoError(E_STORAGE, "nav_release: the E-stop file stays: %s" % e)
        self.remote = False
        self.mon.estop(self._estop_level())
        return {"estop": self.mon.pin}


def attach(node):
    """The node's hook: a Nav when the config has "nav"; a bad section is reported (an event
    and nav requests answer why) and the robot never gets a drive frame, so its dead-man holds
    it."""
    cfg = node.cfg.get("nav")
    if cfg is None:
        return None
    try:
        return Nav(node, cfg)
    except ValueError as e:
        node.nav_error = str(e)
        node.emit("stop", {"cause": "config", "why": str(e)[:80]})
        return None
