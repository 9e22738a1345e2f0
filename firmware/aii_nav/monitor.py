# SPDX-License-Identifier: MIT
"""The safety monitor of the Simplex pair (docs/navigation.md): a small integer filter between
the planner (the complex controller on the edge board) and the drive.

It passes a command only while the latest fresh sensor data prove that the robot, if this
command ran until the monitor's next chance to stop it and the drive then braked at its
guaranteed deceleration, would stop before it could touch anything: an obstacle, or a person
who walked toward it at the maximum speed people have from where the scan last saw free space.
Everything else is a stop, with its cause: `estop` (the pin or a signed request), `link` (no
frame for link_timeout_us), `stale` (scan or odometry older than its limit), `deadline` (the
planner's command expired or came late), `unsupported` (the stopping path or the plan crosses
space the scan does not prove free), `monitor_miss` (this monitor's own job ended after its
deadline), and at start `boot` or `watchdog`. The robot goes again only on evidence newer than
the stop: a scan and odometry captured after it, a command received after it, and a check that
passes.

All quantities are integers (mm, mm/s, mm/s^2, mrad, mrad/s, us; angles inside are binary
angles, 4096 per turn, with a sine table), so this file runs alike on CPython and on any
MicroPython (products stay below 2**30 for the ranges the inputs are checked against) and the
host can check it exactly (tests/host/test_nav_*.py). It imports nothing: the caller passes
`now` (ticks) and, on a port whose ticks wrap, ticks_diff/ticks_add.

Braking model (docs/navigation.md, 2): the drive works in 1 ms ticks; each tick the robot
moves its speed's worth, then a braking drive takes at least b_min mm/s off the speed. A robot
going at most v for d us and then braking covers at most envelope(v, d) mm.
"""

CAUSES = ("boot", "watchdog", "estop", "link", "stale", "deadline", "unsupported", "monitor_miss")

# name: (default, lo, hi). Units in the name; docs/navigation.md, section 3, says what each is.
PARAMS = {
    "radius_mm": (250, 50, 2000),  # the robot is a disc of this radius
    "margin_mm": (50, 0, 1000),  # kept free around it on top of every error bound
    "v_max": (1500, 1, 3000),  # mm/s: faster commands are refused as bad input
    "w_max": (2000, 1, 10000),  # mrad/s
    "a_max": (1000, 1, 20000),  # mm/s^2: the drive never accelerates faster
    "alpha_max": (4000, 1, 100000),  # mrad/s^2: nor turns up faster
    "b_min": (2000, 100, 20000),  # mm/s^2: braking takes at least this off the speed
    "people": (1000, 0, 5000),  # mm/s: nobody moves faster (walking; docs/navigation.md, 3)
    "sectors": (64, 16, 256),  # lidar sectors (a power of two), each the minimum of its rays
    "range_max": (10000, 1000, 10000),  # mm: a sector with no return reports this
    "range_err": (30, 0, 500),  # mm: a range is at most this much longer than the truth
    "v_err": (30, 0, 1000),  # mm/s: measured speed error bound
    "w_err": (30, 0, 2000),  # mrad/s: gyro error bound
    "odo_err_mm": (10, 0, 1000),  # relative odometry between two readings: this ...
    "odo_pct": (2, 0, 50),  # ... plus this % of the distance between them
    "head_err": (10, 0, 500),  # mrad: relative heading error between two readings
    "link_us": (10000, 0, 1000000),  # from the host sending a frame to its bytes at the node
    "scan_age_us": (350000, 1000, 2000000),  # freshness limits
    "odom_age_us": (200000, 1000, 2000000),
    "link_timeout_us": (150000, 1000, 5000000),  # no frame at all for this long: `link`
    "cmd_valid_us": (200000, 1000, 5000000),  # a command is good for this long after arrival
    "plan_deadline_us": (100000, 1000, 5000000),  # a command older than this came late
    "period_us": (40000, 1000, 1000000),  # the monitor task
    "deadline_us": (15000, 100, 1000000),
    "budget_us": (8000, 100, 1000000),
    "act_us": (10000, 0, 1000000),  # from our output to the drive acting on it
    "deadman_us": (60000, 1000, 5000000),  # the drive brakes after this without an output
    "step_mm": (50, 5, 500),  # sample spacing along the stopping path and the plan
    "turn_max": (785, 1, 1571),  # mrad: heading change allowed over a stop while moving
}
QUANT = 2  # mrad: pose headings come as mrad and are rounded to binary angles
XY_MAX = 10000000  # mm: poses and plan points
REL_MAX = 20000  # mm: samples farther than this from the scan's origin are never free
SEQ_MAX = 2147483647
PATH_MAX = 16
HIST = 8  # outputs remembered: they cover odom_age_us + act_us + a period (checked at start)

# sin(2*pi*4*i/4096) * 16384, rounded, for i in 0..256: a quarter turn in steps of 4 binary
# angles (tests/host/test_nav_monitor.py recomputes it and bounds the error of _sin by 2/16384).
# fmt: off
SIN = (
    0, 101, 201, 302, 402, 503, 603, 704, 804, 904, 1005, 1105, 1205, 1306, 1406, 1506, 1606,
    1706, 1806, 1906, 2006, 2105, 2205, 2305, 2404, 2503, 2603, 2702, 2801, 2900, 2999, 3098,
    3196, 3295, 3393, 3492, 3590, 3688, 3786, 3883, 3981, 4078, 4176, 4273, 4370, 4467, 4563,
    4660, 4756, 4852, 4948, 5044, 5139, 5235, 5330, 5425, 5520, 5614, 5708, 5803, 5897, 5990,
    6084, 6177, 6270, 6363, 6455, 6547, 6639, 6731, 6823, 6914, 7005, 7096, 7186, 7276, 7366,
    7456, 7545, 7635, 7723, 7812, 7900, 7988, 8076, 8163, 8250, 8337, 8423, 8509, 8595, 8680,
    8765, 8850, 8935, 9019, 9102, 9186, 9269, 9352, 9434, 9516, 9598, 9679, 9760, 9841, 9921,
    10001, 10080, 10159, 10238, 10316, 10394, 10471, 10549, 10625, 10702, 10778, 10853, 10928,
    11003, 11077, 11151, 11224, 11297, 11370, 11442, 11514, 11585, 11656, 11727, 11797, 11866,
    11935, 12004, 12072, 12140, 12207, 12274, 12340, 12406, 12472, 12537, 12601, 12665, 12729,
    12792, 12854, 12916, 12978, 13039, 13100, 13160, 13219, 13279, 13337, 13395, 13453, 13510,
    13567, 13623, 13678, 13733, 13788, 13842, 13896, 13949, 14001, 14053, 14104, 14155, 14206,
    14256, 14305, 14354, 14402, 14449, 14497, 14543, 14589, 14635, 14680, 14724, 14768, 14811,
    14854, 14896, 14937, 14978, 15019, 15059, 15098, 15137, 15175, 15213, 15250, 15286, 15322,
    15357, 15392, 15426, 15460, 15493, 15525, 15557, 15588, 15619, 15649, 15679, 15707, 15736,
    15763, 15791, 15817, 15843, 15868, 15893, 15917, 15941, 15964, 15986, 16008, 16029, 16049,
    16069, 16088, 16107, 16125, 16143, 16160, 16176, 16192, 16207, 16221, 16235, 16248, 16261,
    16273, 16284, 16295, 16305, 16315, 16324, 16332, 16340, 16347, 16353, 16359, 16364, 16369,
    16373, 16376, 16379, 16381, 16383, 16384, 16384,
)
# fmt: on


def _sin(a):
    # sin of a binary angle (4096 per turn) in Q14, linear between table entries.
    a &= 4095
    i = a & 1023
    if a & 1024:
        i = 1024 - i
    k = i >> 2
    s = SIN[k]
    f = i & 3
    if f:
        s += ((SIN[k + 1] - s) * f) >> 2
    return -s if a & 2048 else s


def _cos(a):
    return _sin(a + 1024)


def bam(mrad):
    """A heading in mrad (-6284 .. 6284) as a binary angle (0 .. 4095)."""
    return ((mrad * 4096 + 3141) // 6283) & 4095


def envelope(v, d_us, b_min):
    """mm a robot covers when it goes at most v mm/s for d_us, then brakes at >= b_min mm/s^2,
    in 1 ms ticks (docs/navigation.md, 2): an upper bound within 4 mm of the model's worst case
    (tests/host/test_nav_envelope.py checks both over a grid, exactly)."""
    d_ms = (d_us + 999) // 1000
    # cruise: d_ms ticks of v um each; braking: (1000 v + b/2)^2 / 2b nm at most, that is
    # v^2/2b + v/2000 + b/8e6 mm.
    return (
        (v * d_ms + 999) // 1000 + (v * v + 2 * b_min - 1) // (2 * b_min) + (v + 1999) // 2000 + 1
    )


def _int(a, name, lo, hi):
    v = a.get(name)
    # bool is an int in Python; a JSON true is not a number, nor is 1.0 or NaN.
    if type(v) is not int or v < lo or v > hi:
        raise ValueError("%s must be an integer %d..%d" % (name, lo, hi))
    return v


def _pose(a):
    p = a.get("pose")
    if type(p) is not list or len(p) != 3:
        raise ValueError("pose must be [x_mm, y_mm, heading_mrad]")
    for v in p:
        if type(v) is not int:
            raise ValueError("pose must be [x_mm, y_mm, heading_mrad] integers")
    x, y, th = p
    if not (-XY_MAX <= x <= XY_MAX and -XY_MAX <= y <= XY_MAX and -6284 <= th <= 6284):
        raise ValueError("pose out of range (|x|, |y| <= %d mm, |heading| <= 6284 mrad)" % XY_MAX)
    return x, y, bam(th)


def _sub(a, b):
    return a - b


def _add(a, b):
    return a + b


class Monitor:
    """One robot's monitor. Inputs: scan(), odom(), command(), estop(); step() every period
    returns the output (v mm/s, w mrad/s) for the drive. Bad input raises ValueError and
    changes nothing."""

    def __init__(self, cfg=None, now=0, cause="boot", diff=_sub, add=_add):
        p = {}
        for k in PARAMS:
            p[k] = PARAMS[k][0]
        for k in cfg or {}:
            if k not in PARAMS:
                raise ValueError("nav: unknown setting %s" % k)
            lo, hi = PARAMS[k][1], PARAMS[k][2]
            _int(cfg, k, lo, hi)
            p[k] = cfg[k]
        n = p["sectors"]
        if n & (n - 1):
            raise ValueError("nav: sectors must be a power of two")
        self.p = p
        self._diff = diff
        self._add = add
        for k in PARAMS:
            setattr(self, k, p[k])
        self.n = n
        w = 4096 // n
        self.bx = [_cos(b * w) for b in range(n)]  # the sector boundaries' directions, Q14
        self.by = [_sin(b * w) for b in range(n)]
        self.r = [0] * n  # the latest scan, corrected by range_err
        self.rmin = 0
        self.s_seq = self.o_seq = self.c_seq = 0
        self.s_t = self.o_t = self.c_t = None  # capture (scan, odometry) and arrival (command)
        self.s_x = self.s_y = self.s_th = 0
        self.o_x = self.o_y = self.o_th = self.o_v = self.o_w = 0
        self.c_v = self.c_w = 0
        self.c_late = False
        self.path = []
        self.rx = now  # the last good frame of any kind
        self.pin = False
        self.running = False
        self.cause = cause
        self.stop_t = now
        self.stops = {}
        for c in CAUSES:
            self.stops[c] = 0
        self.stops[cause] += 1
        self.refused = 0  # bad frames
        self.checks = 0
        self.misses = 0
        self.out = [0, 0]
        # The last HIST outputs (v, |w|): the drive's targets since any reading we use. Unknown
        # at start (the drive may still run a target from before a reset): the limits.
        self.hist = [self.v_max, self.w_max] * HIST
        self.hist_i = 0
        if HIST * self.period_us < self.odom_age_us + self.act_us + 2 * self.period_us:
            raise ValueError("nav: odom_age_us + act_us must be below %d periods" % (HIST - 2))
        self.last = [0, 0, ""]  # the last check: s_req, free (the first sample not free), why
        self.on_stop = None  # on_stop(cause, details): the node records it as an event
        self.on_go = None  # on_go(): moving again
        self.set_response(0)

    def set_response(self, wcrt_us):
        """The monitor task's worst-case response from admission (Scheduler.admit()): from a
        check to the next output that could stop the robot (or to the drive's dead-man when no
        output comes) plus the drive's own latency."""
        self.wcrt = wcrt_us
        self.d = wcrt_us + max(self.period_us, self.deadman_us) + self.act_us

    # ---- inputs (the node's I/O job calls these as frames arrive) ----
    def _refuse(self, e):
        self.refused += 1
        raise e

    def scan(self, now, a):
        """{"seq", "age": us since capture, "pose": odometry at capture, "r": [sectors] mm}."""
        try:
            seq = _int(a, "seq", 1, SEQ_MAX)
            age = _int(a, "age", 0, 10000000)
            x, y, th = _pose(a)
            r = a.get("r")
            n = self.n
            if type(r) is not list or len(r) != n:
                raise ValueError("r must be a list of %d ranges (mm)" % n)
            hi = self.range_max
            for v in r:
                if type(v) is not int or v < 0 or v > hi:
                    raise ValueError("r: every range an integer 0..%d mm" % hi)
            if seq <= self.s_seq:
                raise ValueError(
                    "scan seq must be above %d (a repeated or older frame)" % self.s_seq
                )
        except ValueError as e:
            self._refuse(e)
        rr = self.r
        e = self.range_err
        m = hi
        for i in range(n):
            v = r[i] - e
            v = max(v, 0)
            rr[i] = v
            m = min(m, v)
        self.rmin = m
        self.s_seq = seq
        self.s_t = self._add(now, -(age + self.link_us))
        self.s_x, self.s_y, self.s_th = x, y, th
        self.rx = now

    def odom(self, now, a):
        """{"seq", "age", "pose": [x, y, heading], "v": mm/s, "w": mrad/s} (wheels and gyro)."""
        try:
            seq = _int(a, "seq", 1, SEQ_MAX)
            age = _int(a, "age", 0, 10000000)
            x, y, th = _pose(a)
            v = _int(a, "v", -5000, 5000)
            w = _int(a, "w", -20000, 20000)
            if seq <= self.o_seq:
                raise ValueError(
                    "odom seq must be above %d (a repeated or older frame)" % self.o_seq
                )
        except ValueError as e:
            self._refuse(e)
        self.o_seq = seq
        self.o_t = self._add(now, -(age + self.link_us))
        self.o_x, self.o_y, self.o_th, self.o_v, self.o_w = x, y, th, v, w
        self.rx = now

    def command(self, now, a):
        """{"seq", "age": us since the planning job's release, "v", "w", "path": [[x, y], ...]
        in the odometry frame, from the robot on}."""
        try:
            seq = _int(a, "seq", 1, SEQ_MAX)
            age = _int(a, "age", 0, 10000000)
            v = _int(a, "v", 0, self.v_max)
            w = _int(a, "w", -self.w_max, self.w_max)
            path = a.get("path", [])
            if type(path) is not list or len(path) > PATH_MAX:
                raise ValueError("path must be a list of at most %d [x, y] points" % PATH_MAX)
            for q in path:
                if type(q) is not list or len(q) != 2:
                    raise ValueError("path must be a list of [x, y] points")
                if type(q[0]) is not int or type(q[1]) is not int:
                    raise ValueError("path points must be integers (mm)")
                if not (-XY_MAX <= q[0] <= XY_MAX and -XY_MAX <= q[1] <= XY_MAX):
                    raise ValueError("path point out of range (|x|, |y| <= %d mm)" % XY_MAX)
            if seq <= self.c_seq:
                raise ValueError(
                    "cmd seq must be above %d (a repeated or older frame)" % self.c_seq
                )
        except ValueError as e:
            self._refuse(e)
        self.c_seq = seq
        self.c_t = now
        self.c_v, self.c_w = v, w
        self.c_late = age > self.plan_deadline_us
        self.path = path
        self.rx = now

    def estop(self, on):
        """The E-stop input (a pin, or a signed request): held until released."""
        self.pin = bool(on)

    # ---- the periodic decision ----
    def hazard(self, now):
        """The cause that forbids motion now, or None."""
        diff = self._diff
        if self.pin:
            return "estop"
        if diff(now, self.rx) > self.link_timeout_us:
            return "link"
        if self.s_t is None or diff(now, self.s_t) > self.scan_age_us:
            return "stale"
        if self.o_t is None or diff(now, self.o_t) > self.odom_age_us:
            return "stale"
        if self.c_t is None or diff(now, self.c_t) > self.cmd_valid_us or self.c_late:
            return "deadline"
        if not self.check(now):
            return "unsupported"
        return None

    def step(self, now):
        """One job of the monitor task: returns [v, w], the output for the drive (a stop is
        [0, 0], which the drive brakes to at >= b_min)."""
        out = self._decide(now)
        h = self.hist
        i = self.hist_i
        h[i] = out[0]
        h[i + 1] = abs(out[1])
        self.hist_i = i + 2 if i + 2 < len(h) else 0
        return out

    def _decide(self, now):
        out = self.out
        cause = self.hazard(now)
        if cause is not None:
            if self.running:
                self.stop(now, cause)
            out[0] = out[1] = 0
            return out
        if not self.running:
            diff = self._diff
            t = self.stop_t
            if diff(self.s_t, t) <= 0 or diff(self.o_t, t) <= 0 or diff(self.c_t, t) <= 0:
                out[0] = out[1] = 0
                return out  # no evidence newer than the stop yet
            self.running = True
            if self.on_go is not None:
                self.on_go()
        out[0] = self.c_v
        # Turning on the spot is passed only to a robot standing still: braking keeps the
        # curvature of the motion (docs/navigation.md, 2), a turn from v = 0 has none.
        out[1] = self.c_w if self.c_v or self.o_v <= self.v_err else 0
        return out

    def stop(self, now, cause, details=None):
        """Stops (the output is [0, 0] from now on) and records why."""
        self.running = False
        self.cause = cause
        self.stop_t = now
        self.stops[cause] += 1
        self.out[0] = self.out[1] = 0
        if self.on_stop is not None:
            self.on_stop(cause, details or self.details())

    def late(self, now):
        """The monitor's own job ended after its deadline: its bound no longer holds."""
        self.misses += 1
        if self.running:
            self.stop(now, "monitor_miss")
        self.out[0] = self.out[1] = 0

    def details(self):
        last = self.last
        return {
            "cmd": self.c_seq,
            "scan": self.s_seq,
            "s_req": last[0],
            "free": last[1],
            "why": last[2],
        }

    def _fail(self, s_req, free, why):
        last = self.last
        last[0], last[1], last[2] = s_req, free, why
        return False

    def check(self, now):
        """True when the command in effect may run for one more response interval d: the
        robot's stopping path (cruise for d, then brake) and the plan up to the same length
        lie in space the scan proves free, each sample's disc grown by the robot's radius, the
        margin, every error bound and the way people could have walked since the scan."""
        self.checks += 1
        v = self.c_v
        if v == 0:
            self.last[0], self.last[1], self.last[2] = 0, 0, ""
            return True  # standing, or braking to stand: nothing better to do
        diff = self._diff
        to_ms = (diff(now, self.o_t) + 999) // 1000
        ts_ms = (diff(now, self.s_t) + 999) // 1000
        d_ms = (self.d + 999) // 1000
        # The speed now is at most what odometry said plus its error and what the drive can
        # have added since, and no more than the larger of that reading and the drive's
        # targets since (it approaches a target without overshoot); the command may ask for
        # more. The same for the turn rate.
        h = self.hist
        tv = tw = 0
        for i in range(0, len(h), 2):
            tv = max(tv, h[i])
            tw = max(tw, h[i + 1])
        v_hi = self.o_v + self.v_err
        v_hi = min(v_hi + (self.a_max * to_ms + 999) // 1000, max(v_hi, tv))
        v_hi = max(v_hi, v)
        b = self.b_min
        stop_ms = (v_hi * 1000 + b - 1) // b + 1
        s_req = (v_hi * to_ms + 999) // 1000 + envelope(v_hi, self.d, b)
        people = (self.people * (ts_ms + d_ms + stop_ms) + 999) // 1000
        w_hi = abs(self.o_w) + self.w_err
        w_hi = min(w_hi + (self.alpha_max * to_ms + 999) // 1000, max(w_hi, tw))
        w_hi = max(w_hi, abs(self.c_w))
        # How far the heading can turn from odometry's until the robot stands: sideways drift
        # over a path of length l is at most turn * l (sin x <= x; turn <= 45 degrees keeps the
        # path going forward).
        turn = (w_hi * (to_ms + d_ms + stop_ms) + 999) // 1000 + self.head_err + QUANT
        if turn > self.turn_max:
            return self._fail(s_req, 0, "turning too fast for the speed")
        dx = self.o_x - self.s_x
        dy = self.o_y - self.s_y
        if abs(dx) > REL_MAX or abs(dy) > REL_MAX:
            return self._fail(s_req, 0, "odometry and scan poses too far apart")
        c = _cos(self.s_th)
        s = _sin(self.s_th)
        rx = (dx * c + dy * s) >> 14  # the robot at the odometry reading, in the scan's frame
        ry = (dy * c - dx * s) >> 14
        hd = self.o_th - self.s_th
        ux = _cos(hd)
        uy = _sin(hd)
        l1 = abs(dx) + abs(dy)
        # Where the odometry reading sits in the scan's frame is known to within this: the
        # relative odometry error, its heading error turning (dx, dy), the sine table, floors.
        frame = (
            self.odo_err_mm
            + (l1 * self.odo_pct + 99) // 100
            + (l1 * (self.head_err + QUANT) + 999) // 1000
            + ((l1 + s_req) >> 12)
            + 3
        )
        step = self.step_mm
        base = self.radius_mm + self.margin_mm + frame + (step >> 1)
        grown = base + people
        j = 0
        while True:
            l = j * step
            rho = grown + (turn * l + 999) // 1000
            if not self._free(rx + ((l * ux) >> 14), ry + ((l * uy) >> 14), rho):
                return self._fail(s_req, l, "stopping path not observed free")
            if l >= s_req:
                break
            j += 1
        # The plan: the same length along the planner's path must be observed free too.
        arc = 0
        x0, y0 = rx, ry
        for q in self.path:
            ex = q[0] - self.s_x
            ey = q[1] - self.s_y
            if abs(ex) > REL_MAX or abs(ey) > REL_MAX:
                return self._fail(s_req, arc, "plan leaves the scan")
            x1 = (ex * c + ey * s) >> 14
            y1 = (ey * c - ex * s) >> 14
            seg = abs(x1 - x0) + abs(y1 - y0)
            k = (seg + step - 1) // step
            for i in range(1, k + 1):
                arc += seg // k
                if not self._free(x0 + (x1 - x0) * i // k, y0 + (y1 - y0) * i // k, base):
                    return self._fail(s_req, arc, "plan not observed free")
                if arc >= s_req:
                    break
            if arc >= s_req:
                break
            x0, y0 = x1, y1
        last = self.last
        last[0], last[1], last[2] = s_req, -1, ""
        return True

    def _near(self, b, x, y, rho):
        # Does the disc reach the sector boundary ray b? (Not behind the origin: |c| > rho.)
        ux = self.bx[b]
        uy = self.by[b]
        if x * ux + y * uy <= 0:
            return False
        return abs(x * uy - y * ux) <= rho << 14

    def _sector(self, x, y):
        # The sector holding direction (x, y): a half plane, then a binary search over its
        # boundaries by the sign of a cross product.
        n = self.n
        base = 0
        if y < 0 or (y == 0 and x < 0):
            base = n >> 1
            x, y = -x, -y
        bx, by = self.bx, self.by
        lo, hi = 0, n >> 1
        while hi - lo > 1:
            mid = (lo + hi) >> 1
            if bx[mid] * y - by[mid] * x >= 0:
                lo = mid
            else:
                hi = mid
        return base + lo

    def _reach(self, b, x, y, rho, r):
        """Does the disc stay within r along boundary ray b? Its extent along the ray is
        c.u + sqrt(rho^2 - (c x u)^2), taken high (floors are corrected by one mm)."""
        ux = self.bx[b]
        uy = self.by[b]
        t = r - ((x * ux + y * uy) >> 14) - 1
        if t < 0:
            return False
        q = abs((x * uy - y * ux) >> 14) - 1
        q = max(q, 0)
        return rho * rho - q * q <= t * t

    def _free(self, x, y, rho):
        """Is the disc (x, y, rho) inside the scan's free space (the union of sectors, each up
        to its range)? Each sector the disc meets must hold the disc's farthest point in it:
        |c| + rho in the sector of c, and elsewhere the disc's extent along the sector's
        boundary nearer c (the extent falls off with the angle from c). The cheap test
        (|c| + rho within the range) comes first."""
        hi = self.range_max
        if x > hi or -x > hi or y > hi or -y > hi:
            return False
        c2 = x * x + y * y
        r = self.r
        n = self.n
        if c2 <= rho * rho:
            # The disc holds the robot's origin: every sector meets it.
            k = self._sector(x, y) if c2 else -1
            for j in range(n):
                m = r[j] - rho
                if m >= 0 and m * m >= c2:
                    continue
                if j == k or c2 == 0:
                    return False
                b = j + 1 if j + 1 < n else 0
                if not (self._reach(j, x, y, rho, r[j]) and self._reach(b, x, y, rho, r[j])):
                    return False
            return True
        k = self._sector(x, y)
        m = r[k] - rho
        if m < 0 or m * m < c2:
            return False
        j = k
        while True:  # counter-clockwise: the boundary after sector j is j + 1
            b = j + 1 if j + 1 < n else 0
            if not self._near(b, x, y, rho):
                break
            j = b
            m = r[j] - rho
            if (m < 0 or m * m < c2) and not self._reach(b, x, y, rho, r[j]):
                return False
        j = k
        while True:  # clockwise: the boundary before sector j is j
            if not self._near(j, x, y, rho):
                break
            b = j
            j = j - 1 if j else n - 1
            m = r[j] - rho
            if (m < 0 or m * m < c2) and not self._reach(b, x, y, rho, r[j]):
                return False
        return True

    def status(self):
        return {
            "state": "run" if self.running else "stop",
            "cause": None if self.running else self.cause,
            "stops": self.stops,
            "refused": self.refused,
            "checks": self.checks,
            "misses": self.misses,
            "d_us": self.d,
            "wcrt_us": self.wcrt,
            "out": self.out,
            "seq": [self.s_seq, self.o_seq, self.c_seq],
            "last": self.details(),
        }
