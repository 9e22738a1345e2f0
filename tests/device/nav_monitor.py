# SPDX-License-Identifier: MIT
# The navigation safety monitor (firmware/aii_nav/monitor.py, frozen into the AII images) gives
# the same integers on MicroPython as on CPython: the braking envelope over a grid, the check of
# commands against scans, every stop cause, and bad input refused without a crash.
try:
    from aii_nav import monitor as M
except ImportError:
    import sys

    here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    sys.path.insert(0, here + "/../../firmware")
    try:
        from aii_nav import monitor as M
    except ImportError:
        print("SKIP")
        raise SystemExit

# The envelope over a grid of speeds, delays and decelerations: one checksum and the largest.
tot = 0
top = 0
for v in range(0, 3001, 97):
    for d in (0, 999, 1000, 40000, 83000, 250001):
        for b in (100, 2000, 7919):
            e = M.envelope(v, d, b)
            tot += e
            top = max(top, e)
print("envelope", tot, top)

t = 0


def mon(**cfg):
    base = {"people": 0, "link_us": 0}
    base.update(cfg)
    m = M.Monitor(base, 0)
    m.set_response(5000)
    stops = []
    m.on_stop = lambda c, d: stops.append(c)
    return m, stops


def scan(m, now, seq, r, pose=(0, 0, 0)):
    m.scan(now, {"seq": seq, "age": 0, "pose": list(pose), "r": r})


def odom(m, now, seq, v, pose=(0, 0, 0)):
    m.odom(now, {"seq": seq, "age": 0, "pose": list(pose), "v": v, "w": 0})


def cmd(m, now, seq, v, w=0, path=None, age=0):
    m.command(now, {"seq": seq, "age": age, "v": v, "w": w, "path": path or []})


# The fastest command a scan passes, per range ahead (every sector the same).
for r in (400, 700, 1000, 1500, 3000):
    best = 0
    for v in range(0, 1501, 50):
        m, _ = mon()
        scan(m, 0, 1, [r] * 64)
        odom(m, 0, 1, v)
        cmd(m, 0, 1, v)
        m.hist = [v, 0] * M.HIST
        if m.check(0):
            best = v
    print("range", r, "fastest", best, "s_req", m.last[0])

# A turned, moved robot: the scan from one pose, odometry from another, a curved plan.
m, _ = mon()
r = [3000] * 64
r[10] = 900
scan(m, 0, 1, r, (1000, -500, 300))
odom(m, 0, 1, 600, (1400, -380, 420))
cmd(m, 0, 1, 600, 200, [[1800, -200], [2200, 100], [2500, 500]])
m.hist = [600, 200] * M.HIST
print("moved", m.check(0), m.last)

# Every cause, in turn; the robot resumes only on evidence newer than the stop.
m, stops = mon()
t = 1000
seq = 1


def fresh(v=300):
    global seq
    seq += 1
    scan(m, t, seq, [5000] * 64)
    odom(m, t, seq, v)
    cmd(m, t, seq, v)


fresh()
print("go", m.step(t + 1), m.running)
m.estop(True)
print("estop", m.step(t + 2), m.cause)
m.estop(False)
print("stale evidence", m.step(t + 3), m.running)
t += 10
fresh()
print("fresh", m.step(t + 1), m.running)
t += m.link_timeout_us + 5
print("link", m.step(t), m.cause)
t += 10
fresh()
m.step(t + 1)
scan_t = t
t += m.scan_age_us  # odometry and commands keep coming; the scan ages past its limit
seq += 1
odom(m, t, seq, 300)
cmd(m, t, seq, 300)
print("stale", m.step(t + 1), m.cause, t + 1 - scan_t > m.scan_age_us)
t += m.scan_age_us + 10
fresh()
m.step(t + 1)
t += 10
seq += 1
scan(m, t, seq, [5000] * 64)
odom(m, t, seq, 300)
cmd(m, t, seq, 300, age=m.plan_deadline_us + 1)
print("deadline", m.step(t + 1), m.cause)
t += 10
fresh()
m.step(t + 1)
t += 10
seq += 1
scan(m, t, seq, [350] * 64)
odom(m, t, seq, 300)
cmd(m, t, seq, 300)
print("unsupported", m.step(t + 1), m.cause, m.last[2])
t += 10
fresh()
m.step(t + 1)
m.late(t + 2)
print("miss", m.step(t + 3), m.cause, m.misses)
print("stops", stops)

# Bad input: refused with a reason, nothing changes, and the monitor goes on.
bad = [
    ("scan", {"seq": 99, "age": 0, "pose": [0, 0, 0], "r": [1.5] * 64}),
    ("scan", {"seq": 99, "age": 0, "pose": [0, 0, 0], "r": [1] * 65}),
    ("scan", {"seq": 99, "age": 0, "pose": [0, 0], "r": [1] * 64}),
    ("scan", {"seq": 99, "age": 0, "pose": [0, 0, 0], "r": [-1] * 64}),
    ("scan", {"seq": 1, "age": 0, "pose": [0, 0, 0], "r": [1] * 64}),
    ("odom", {"seq": 99, "age": 0, "pose": [0, 0, 0], "v": 1e9, "w": 0}),
    ("odom", {"seq": 99, "age": True, "pose": [0, 0, 0], "v": 0, "w": 0}),
    ("odom", {"seq": 99, "age": 0, "pose": [0, 0, 99999], "v": 0, "w": 0}),
    ("command", {"seq": 99, "age": 0, "v": 10, "w": 0, "path": [[0, 0, 0]]}),
    ("command", {"seq": 99, "age": 0, "v": 10, "w": 0, "path": "abc"}),
    ("command", {"seq": 99, "age": 0, "v": 10, "w": 99999}),
    ("command", {}),
]
for kind, body in bad:
    try:
        getattr(m, kind)(t + 5, body)
        print(kind, "taken?")
    except ValueError as e:
        print(kind, "refused:", e)
print("refused", m.refused, "seq", m.s_seq, m.o_seq, m.c_seq)
print("after", m.step(t + 6))
