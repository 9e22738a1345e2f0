# SPDX-License-Identifier: MIT
"""One scenario in simulated time (docs/navigation.md, 5-6): the world, the sensors, the edge
board and the microcontroller, each board a real aii_host.Scheduler (the C core) on its own
simulated clock, the monitor the firmware's own code (firmware/aii_nav/monitor.py) in this
process.

Time advances in 1 ms ticks. A job runs when its board's scheduler dispatches it; the job does
its work at once in this process, then its board's clock moves on by the job's duration: what
the work measured (camera="real": the real face detector), or a draw from measured durations
(Timing). Its outputs appear when the job ends. The edge board runs `perceive` and `plan`
(period and deadline 100 ms); the microcontroller runs `console` (stores arriving frames in
the monitor, as the node's I/O job) and `monitor` (critical, step() then the drive output),
and feeds a watchdog (WDT_US) while no critical task has missed. With monitor=False the
microcontroller passes the latest command to the drive, unchecked: the baseline.
"""

import heapq
import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..core import sched as _sched
from ..core._errors import AIIError
from . import faults as _faults
from . import fw
from .camera import DetectionModel, FaceFinder, render
from .perception import RAY_ANGLES, Perception, Scan
from .planner import Planner
from .robot import Drive

TICK = 1000
SENSORS = {
    # period, latency (lo, hi) us, frame drop probability
    "lidar": (100000, (10000, 25000), 0.01),
    "odom": (50000, (1000, 4000), 0.01),
    "camera": (100000, (20000, 40000), 0.02),
}
LINK_LAT = (1000, 5000)  # us on the wire to the microcontroller
RANGE_SIGMA = 10.0  # mm, the planner's lidar (clipped at the monitor's range_err)
RAY_DROP = 0.002  # a ray without a return
SECTOR_DROP = 0.0005  # a safety-scanner sector with no evidence (reported 0)
EDGE_PERIOD = 100000
EDGE_OFFSET = 30000
PERCEIVE_BUDGET = 60000
PLAN_BUDGET = 25000
CONSOLE_PERIOD = 20000
CONSOLE_BUDGET = 5000
WDT_US = 200000
BOOT_US = 300000  # a reset's reboot until the node runs again
# The node's settings for the monitor in these runs (docs/navigation.md, 3): link_us covers
# the wire and the console job's period and response (frames wait for it).
NODE_NAV = {}


@dataclass
class Timing:
    """Durations (us) jobs draw from: perceive, plan (edge board), console, monitor (board)."""

    perceive: list
    plan: list
    console: list
    monitor: list

    @classmethod
    def nominal(cls):
        # Plausible, not measured: what `aii navigate --board none` and the tests use; the
        # benchmark measures perceive and plan first (run.measure). console and monitor are
        # the microcontroller's, assumed within their budgets (a 20 ms console job of 5 ms,
        # the monitor's check 1.5-2.5 ms).
        return cls([30000, 35000, 42000], [4000, 6000], [800, 1200], [1500, 2500])

    def as_dict(self):
        return {k: list(getattr(self, k)) for k in ("perceive", "plan", "console", "monitor")}


@dataclass
class Result:
    seed: int
    size: tuple
    monitor: bool
    faults: list
    collisions: int = 0
    collision: dict = None
    goal_reached: bool = False
    time_to_goal_s: float = None
    sim_s: float = 0.0
    stops: dict = field(default_factory=dict)
    monitor_misses: int = 0
    plan_jobs: int = 0
    plan_misses: int = 0
    plan_jobs_clean: int = 0  # outside timing-fault windows
    plan_misses_clean: int = 0
    min_clearance_mm: float = None  # while moving
    min_clearance_any_mm: float = None
    camera: dict = field(default_factory=dict)
    wall_s: float = 0.0
    track: list = field(default_factory=list)  # [t_s, x, y, v]
    stop_marks: list = field(default_factory=list)  # [t_s, x, y, cause]
    people_tracks: list = field(default_factory=list)
    d_us: int = 0
    wcrt_us: int = 0
    deadman: int = 0  # times the drive's dead-man braked on its own
    board: dict = None  # the simulated board's link figures (real-time runs)
    errors: list = field(default_factory=list)  # requests to the board that failed

    def summary(self):
        rate = self.plan_misses / self.plan_jobs if self.plan_jobs else 0.0
        clean = self.plan_misses_clean / self.plan_jobs_clean if self.plan_jobs_clean else 0.0
        return {
            "seed": self.seed,
            "size_mm": list(self.size),
            "monitor": self.monitor,
            "faults": [f.as_dict() for f in self.faults],
            "collisions": self.collisions,
            "collision": self.collision,
            "goal_reached": self.goal_reached,
            "time_to_goal_s": self.time_to_goal_s,
            "sim_s": round(self.sim_s, 2),
            "stops": self.stops,
            "monitor_misses": self.monitor_misses,
            "planner_miss_rate": round(rate, 4),
            "planner_miss_rate_no_faults": round(clean, 4),
            "planner_jobs": self.plan_jobs,
            "min_clearance_mm": _r(self.min_clearance_mm),
            "min_clearance_any_mm": _r(self.min_clearance_any_mm),
            "deadman_brakes": self.deadman,
            "camera": self.camera,
            "d_us": self.d_us,
            "monitor_wcrt_us": self.wcrt_us,
            "wall_s": round(self.wall_s, 2),
            "board": self.board,
            "errors": self.errors,
        }


def _r(v):
    return None if v is None or not math.isfinite(v) else round(v, 1)


class _Board:
    """A processor in simulated time: an aii_host.Scheduler reading `now`."""

    def __init__(self, on_miss=None, wdt=None):
        self.now = 0
        self.sched = _sched.Scheduler(clock=self._clock, on_miss=on_miss, wdt=wdt)

    def _clock(self):
        return self.now

    def poll(self, t):
        self.now = max(self.now, t)
        while self.now <= t:
            if self.sched.run_once() is None:
                break


class _Wdt:
    def __init__(self):
        self.fed = 0

    def feed(self):
        self.fed = self._t()


class Sim:
    def __init__(
        self,
        world,
        *,
        monitor=True,
        faults=(),
        camera="model",
        detection=None,
        timing=None,
        seed=0,
        limit_s=None,
        nav=None,
        progress=None,
        board=None,
    ):
        self.world = world
        self.board = board  # a board.Board: the monitor runs there, in real time
        self.use_monitor = monitor
        self.rng = np.random.default_rng([seed, 25])
        self.trng = np.random.default_rng([seed, 26])  # durations
        mod = fw.monitor()
        self.mod = mod
        self.nav_cfg = dict(NODE_NAV, **(nav or {}))
        self.p = {k: v[0] for k, v in mod.PARAMS.items()}
        self.p.update(self.nav_cfg)
        self.p["radius_mm"] = world.robot_r
        self.timing = timing or Timing.nominal()
        self.camera = camera
        if camera == "real":
            self.finder = FaceFinder()
        elif camera == "model":
            self.finder = detection or DetectionModel([0.9] * 12, [30000])
        else:
            self.finder = None
        self.perception = Perception(
            self.finder, np.random.default_rng([seed, 27]), self._is_person
        )
        straight = math.hypot(world.goal[0] - world.start[0], world.goal[1] - world.start[1])
        self.limit_us = int((limit_s or (straight / 400.0 + 20.0)) * 1e6)
        # Faults fall while the robot is on its way (it goes about 0.6 m/s on average).
        span = max(4e6, straight / 600.0 * 1e6)
        self.faults = _faults.schedule(faults, np.random.default_rng([seed, 28]), span)
        self.progress = progress
        self.measured = {"perceive": [], "plan": []}  # us, with camera="real"
        self.res = Result(seed, (world.w, world.h), monitor, self.faults)
        self.events = []  # heap of (t, n, fn)
        self._n = 0
        self.t = 0
        self.drive = Drive(world.start, self.p, self.rng)
        self.mcu_in = []  # frames waiting for the console job: (arrival, kind, body)
        self.host_scan = None
        self.host_odom = None
        self.host_frame = None
        self.view = None
        self.cmd_seq = self.scan_seq = self.odom_seq = 0
        self.min_move = math.inf
        self.min_any = math.inf
        self.next_check = 0
        self.done = False
        self._setup_edge()
        self._boot_mcu(first=True)

    # ---- plumbing ----
    def at(self, t, fn):
        self._n += 1
        heapq.heappush(self.events, (t, self._n, fn))

    def active(self, kind, t=None):
        t = self.t if t is None else t
        return any(f.kind == kind and f.active(t) for f in self.faults)

    def _draw(self, values):
        return int(values[int(self.trng.integers(len(values)))])

    def _is_person(self, x, y):
        return any(math.hypot(p.x - x, p.y - y) < 600 for p in self.world.people)

    # ---- the edge board ----
    def _setup_edge(self):
        self.edge = _Board()
        s = self.edge.sched
        # Released EDGE_OFFSET after each lidar capture, when the scan has arrived.
        kw = {"period_us": EDGE_PERIOD, "offset_us": EDGE_OFFSET}
        self.t_perceive = s.add(self._perceive, budget_us=PERCEIVE_BUDGET, **kw)
        self.t_plan = s.add(self._plan, budget_us=PLAN_BUDGET, **kw)
        self.plan_release = EDGE_OFFSET

    def _job_time(self, kind, measured):
        if kind == "perceive":
            d = measured if measured is not None else self._draw(self.timing.perceive)
        else:
            d = measured if measured is not None else self._draw(self.timing.plan)
        if kind == "plan" and self.active("overrun", self.edge.now):
            d = int(d * self.trng.uniform(2.0, 4.0)) + EDGE_PERIOD
        if self.active("hog", self.edge.now):
            d += int(self.trng.uniform(40000, 80000))
        return d

    def _perceive(self):
        b = self.edge
        scan = self.host_scan
        measured = None
        if scan is not None:
            hide = self._hide if self.active("hallucination", b.now) else None
            frame = pose = None
            if self.host_frame is not None:
                frame, pose = self.host_frame
            t0 = time.perf_counter()
            self.view = self.perception.update(scan, frame, pose, hide)
            if self.camera == "real":
                measured = int((time.perf_counter() - t0) * 1e6)
                self.measured["perceive"].append(measured)
        b.now += self._job_time("perceive", measured)

    def _hide(self, pts):
        # The hallucination: nothing in a corridor 1.2 m wide from 0.4 to 6 m ahead.
        x, y, th = self.drive.odo.x, self.drive.odo.y, self.drive.odo.th
        dx, dy = pts[:, 0] - x, pts[:, 1] - y
        along = dx * math.cos(th) + dy * math.sin(th)
        side = -dx * math.sin(th) + dy * math.cos(th)
        return (along > 400) & (along < 6000) & (np.abs(side) < 600)

    def _plan(self):
        b = self.edge
        release = self.plan_release
        self.plan_release += EDGE_PERIOD
        start = b.now
        measured = None
        cmd = None
        if self.view is not None and self.host_odom is not None:
            t0 = time.perf_counter()
            cmd = self.planner.plan(start, self.view, self.host_odom)
            if self.camera == "real":
                measured = int((time.perf_counter() - t0) * 1e6)
                self.measured["plan"].append(measured)
        b.now += self._job_time("plan", measured)
        end = b.now
        missed = end - release > EDGE_PERIOD
        self.res.plan_jobs += 1
        self.res.plan_misses += missed
        if not any(
            f.kind in _faults.TIMING and f.t0 - EDGE_PERIOD <= release < f.t1 for f in self.faults
        ):
            self.res.plan_jobs_clean += 1
            self.res.plan_misses_clean += missed
        if cmd is None:
            return
        self.cmd_seq += 1
        body = {"seq": self.cmd_seq, "age": end - release, "v": cmd.v, "w": cmd.w, "path": cmd.path}
        self.at(end, lambda: self._to_mcu("cmd", body))

    # ---- the microcontroller ----
    def _boot_mcu(self, first=False, cause="boot"):
        if self.board is not None:
            st = self.board.status
            self.res.d_us, self.res.wcrt_us = st["d_us"], st["wcrt_us"]
            self.planner = Planner(self.world, self.p, st["wcrt_us"])
            self.mcu = None
            self.hung_until = None
            return
        self.wdt = _Wdt()
        self.wdt._t = lambda: self.mcu.now
        self.mcu = _Board(wdt=self.wdt)
        self.mcu.now = self.t
        self.wdt.fed = self.t
        self.mcu_in = []
        s = self.mcu.sched
        self.t_console = s.add(self._console, period_us=CONSOLE_PERIOD, budget_us=CONSOLE_BUDGET)
        m = self.mod.Monitor(
            {k: v for k, v in self.p.items() if k in self.mod.PARAMS}, self.t, cause
        )
        self.monitor = m
        self.t_monitor = s.add(
            self._monitor_job,
            period_us=m.period_us,
            budget_us=m.budget_us,
            deadline_us=m.deadline_us,
            critical=True,
        )
        self.mon_due = self.t
        for row in s.admit():
            if row[0] == self.t_monitor:
                m.set_response(row[2])
        self.res.d_us, self.res.wcrt_us = m.d, m.wcrt
        m.on_stop = self._on_stop
        if first:
            self.planner = Planner(self.world, self.p, m.wcrt)
        if self.use_monitor:
            self._on_stop(cause, None)
        self.mcu_monitor_misses = 0
        self.hung_until = None

    def _on_stop(self, cause, details):
        d = self.drive
        self.res.stops[cause] = self.res.stops.get(cause, 0) + 1
        self.res.stop_marks.append([round(self.t / 1e6, 2), round(d.x), round(d.y), cause])

    def _to_mcu(self, kind, body):
        if self.active("link"):
            return
        if self.board is not None:
            self.board.send(kind, body)
            return
        self.mcu_in.append((self.t + int(self.rng.integers(*LINK_LAT)), kind, body))

    def _console(self):
        b = self.mcu
        m = self.monitor
        n = 0
        keep = []
        for item in self.mcu_in:
            if item[0] > b.now:
                keep.append(item)
                continue
            n += 1
            kind, body = item[1], item[2]
            if not self.use_monitor:
                if kind == "cmd":
                    self.pass_cmd = (body["v"], body["w"])
                continue
            try:
                getattr(m, {"scan": "scan", "odom": "odom", "cmd": "command"}[kind])(b.now, body)
            except ValueError:
                pass  # refused (counted by the monitor)
        self.mcu_in = keep
        b.now += sum(self._draw(self.timing.console) for _ in range(max(1, n)))

    def _monitor_job(self):
        b = self.mcu
        m = self.monitor
        start = b.now
        if self.use_monitor:
            m.estop(self.active("estop", start))
            out = list(m.step(start))
        else:
            out = list(getattr(self, "pass_cmd", (0, 0)))
        b.now += self._draw(self.timing.monitor)
        end = b.now
        if end - self.mon_due > m.deadline_us:
            self.res.monitor_misses += 1
            if self.use_monitor:
                m.late(end)
                out = [0, 0]
        self.mon_due += m.period_us
        self.at(end, lambda: self.drive.output(self.t, out[0], out[1]))

    # ---- sensors ----
    def _sensors(self, t):
        w, d = self.world, self.drive
        for name, (period, (lo, hi), drop) in SENSORS.items():
            if t % period != 0:
                continue
            if self.rng.random() < drop:
                continue
            lat = int(self.rng.integers(lo, hi))
            if name == "lidar":
                if self.active("dropout"):
                    continue
                if self.active("stale"):
                    lat += int(self.rng.integers(250000, 400000))
                self._lidar(t, lat)
            elif name == "odom":
                r = d.odo.reading()
                self.odom_seq += 1
                body = {"seq": self.odom_seq, "age": lat, "pose": list(r[:3]), "v": r[3], "w": r[4]}
                self.at(t + lat, lambda r=r: setattr(self, "host_odom", r + (t,)))
                self.at(t + lat, lambda b=body: self._to_mcu("odom", b))
            elif name == "camera" and self.camera == "real":
                frame, _ = render(w, (d.x, d.y, d.th), self.rng)
                pose = d.odo.reading()[:3]
                self.at(t + lat, lambda f=frame, p=pose: setattr(self, "host_frame", (f, p)))
            elif name == "camera" and self.camera == "model":
                pose = d.odo.reading()[:3]
                self.at(t + lat, lambda p=pose: setattr(self, "host_frame", (None, p)))

    def _lidar(self, t, lat):
        w, d, p, rng = self.world, self.drive, self.p, self.rng
        rmax = p["range_max"]
        pose = d.odo.reading()[:3]
        rays = w.raycast(d.x, d.y, RAY_ANGLES + d.th, rmax)
        noise = np.clip(rng.normal(0, RANGE_SIGMA, rays.shape), -p["range_err"], p["range_err"])
        rays = rays + noise
        rays[(rays >= rmax - 1) | (rng.random(rays.shape) < RAY_DROP)] = np.nan
        scan = Scan(t, pose, rays)
        sec = w.sector_mins(d.x, d.y, d.th, p["sectors"], rmax)
        sec = sec + rng.integers(-p["range_err"], p["range_err"] + 1, sec.shape)
        sec = np.clip(np.floor(sec), 0, rmax).astype(int)
        sec[rng.random(sec.shape) < SECTOR_DROP] = 0
        self.scan_seq += 1
        body = {"seq": self.scan_seq, "age": lat, "pose": list(pose), "r": [int(v) for v in sec]}
        self.at(t + lat, lambda: setattr(self, "host_scan", scan))
        self.at(t + lat, lambda: self._to_mcu("scan", body))

    # ---- the world ----
    def _check(self, t):
        w, d = self.world, self.drive
        cb, cp = w.clearance(d.x, d.y, w.robot_r)
        c = min(cb, cp)
        self.min_any = min(self.min_any, c)
        moving = d.v > 0
        if moving:
            self.min_move = min(self.min_move, c)
        if c <= 0 and moving:
            self.res.collisions += 1
            what = "box or wall" if cb <= cp else "person"
            self.res.collision = {
                "t_s": round(t / 1e6, 3),
                "with": what,
                "speed_mm_s": round(d.speed),
                "x": round(d.x),
                "y": round(d.y),
            }
            self.done = True
        # Nothing can close the gap faster than the robot and a person together (people move
        # in 5 ms steps: 8 mm at once at most): look again no later than that could.
        close = d.speed + 1500.0
        self.next_check = t + max(TICK, int(max(c - 8, 0) / close * 1e6) // TICK * TICK)

    def run(self):
        t0 = time.perf_counter()
        wall0 = time.monotonic()
        res, w, d = self.res, self.world, self.drive
        boot_at = None
        for f in self.faults:
            if f.kind == "watchdog" and self.board is None:
                self.at(f.t0, self._hang)
            if f.kind == "estop" and self.board is not None:
                self.at(f.t0, lambda: self._board_request("nav_estop"))
                self.at(f.t1, lambda: self._board_request("nav_release", True))
        while self.t < self.limit_us and not self.done:
            self.t += TICK
            t = self.t
            while self.events and self.events[0][0] <= t:
                heapq.heappop(self.events)[2]()
            self._sensors(t)
            if self.board is not None:
                self._board_tick(t, wall0)
            elif self.hung_until is None:
                self.edge.poll(t)
                self.mcu.poll(t)
                if t - self.wdt.fed > WDT_US:
                    self.hung_until = t + BOOT_US  # reset: the board reboots
                    boot_at = t + BOOT_US
            else:
                self.edge.poll(t)
                if boot_at is not None and t >= boot_at:
                    boot_at = None
                    self._boot_mcu(cause="watchdog")
            before = d.deadman
            d.tick(t)
            if d.deadman and not before:
                res.deadman += 1
            if t % 5000 == 0:
                w.step_people(5000, d.x, d.y, w.robot_r)
            if t >= self.next_check:
                self._check(t)
            if t % 100000 == 0:
                res.track.append([round(t / 1e6, 2), round(d.x), round(d.y), round(d.speed)])
                if t % 500000 == 0:
                    res.people_tracks.append([[round(p.x), round(p.y)] for p in w.people])
                if self.progress:
                    self.progress(t, self.limit_us)
            if math.hypot(w.goal[0] - d.x, w.goal[1] - d.y) <= 300 and d.v == 0:
                res.goal_reached = True
                res.time_to_goal_s = round(t / 1e6, 2)
                self.done = True
        res.sim_s = self.t / 1e6
        res.min_clearance_mm = self.min_move
        res.min_clearance_any_mm = self.min_any
        res.camera = {"asked": self.perception.asked, "found": self.perception.found}
        res.wall_s = time.perf_counter() - t0
        return res

    def _board_request(self, kind, auth=None):
        try:
            self.board.request(kind, auth=auth)
        except AIIError as e:
            # Not delivered (a board resetting, a loaded host): said in the result; the run
            # goes on as the robot would, without that request.
            self.res.errors.append(f"{kind}: {e}"[:160])

    def _board_tick(self, t, wall0):
        # Real time: the world waits for the clock; the board's outputs act when they arrive.
        ahead = t / 1e6 - (time.monotonic() - wall0)
        if ahead > 0.002:
            time.sleep(ahead)
        self.edge.poll(t)
        for item in self.board.take():
            if item[0] == "drive":
                self.drive.output(t, item[1], item[2])
            elif item[1] == "stop":
                cause = item[2].get("cause", "?")
                self._on_stop(cause, item[2])
            elif item[1] == "miss" and item[2].get("task") == "nav":
                # The node sends one miss event per heartbeat, counting the others in "more".
                self.res.monitor_misses += 1 + int(item[2].get("more", 0))

    def _hang(self):
        # The microcontroller stops running anything: its watchdog is not fed, and resets it.
        self.mcu.now = self.t + 10**9
