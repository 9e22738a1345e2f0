# SPDX-License-Identifier: MIT
"""Plays one recorded scheduler scenario on any Scheduler class (MicroPython and CPython).

A case is plain JSON data (see tests/host/test_sched_differential.py). The scheduler runs on a
virtual clock: jobs advance it by their execution time, idle waits by the time asked for.
Everything observable goes into one log: call results and errors, job runs, on_miss events, and
at the end stats(), admit(), info() and the watchdog feeds.
"""

# A runaway case (jobs longer than their period, a long run) stops after this many job runs.
JOB_CAP = 2000


class JobError(Exception):
    pass


def ename(e):
    # The exception's class as the caller sees it, whichever binding raised it.
    n = type(e).__name__
    if n in ("AdmissionError", "JobError"):
        return n
    for c in (TypeError, OverflowError, ValueError, RuntimeError):
        if isinstance(e, c):
            return c.__name__
    return n


def plain(v):
    # JSON-ready: tuples become lists, dicts become sorted [key, value] pairs.
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return [[k, plain(v[k])] for k in sorted(v)]
    return v


class _Case:
    def __init__(self, Scheduler, case):
        self.Scheduler = Scheduler
        self.case = case
        self.log = []
        self.vt = case["start"]
        self.period = case["tick_period"] or (1 << 62)
        self.jobs = 0
        self.feeds = 0
        self.tid_of = {}  # job spec -> tid
        self.kind_of = {}  # tid -> kind ("p", "s", "o")
        self.runs = {}  # job spec -> runs so far
        self.s = None

    # --- the world around the scheduler -----------------------------------------------------

    def clock(self):
        return self.vt

    def sleep(self, dt):
        self.vt += dt

    def feed(self):
        self.feeds += 1

    def on_miss(self, tid, kind, detail):
        self.log.append(["ev", tid, kind, detail])

    # --- picking tasks ----------------------------------------------------------------------

    def alive(self, kind=None):
        ids = sorted(self.s.stats())
        if kind:
            ids = [t for t in ids if self.kind_of.get(t) == kind]
        return ids

    def pick(self, sel, kind=None):
        # {"k": n}: the n-th live task (of a kind); {"raw": v}: v itself, valid or not.
        if "raw" in sel:
            return sel["raw"]
        ids = self.alive(kind)
        if not ids:
            return None
        return ids[sel["k"] % len(ids)]

    def value(self, v):
        # {"rel": d}: the tick count d from now (a raw clock value); {"abs": v}: v as is.
        if isinstance(v, dict):
            if "rel" in v:
                return (self.vt + v["rel"]) % self.period
            return v["abs"]
        return v

    # --- jobs -------------------------------------------------------------------------------

    def make_job(self, spec, job):
        def fn():
            n = self.runs.get(spec, 0)
            self.runs[spec] = n + 1
            self.jobs += 1
            ex = job["exec"]
            self.vt += ex[n % len(ex)]
            self.log.append(["job", spec, n, self.vt])
            if self.jobs >= JOB_CAP:
                self.s.stop()
            for when, act in job.get("act", ()):
                if when == n:
                    self.action(act)
            if n in job.get("raise", ()):
                raise JobError(f"job {spec} run {n}")

        return fn

    def action(self, act):
        what = act[0]
        try:
            if what == "stop":
                self.s.stop()
                r = None
            elif what == "run_once":
                r = self.s.run_once()
            elif what == "remove_self":
                r = self.s.remove(self.tid_of[act[1]])
            elif what == "remove":
                tid = self.pick(act[1])
                r = None if tid is None else self.s.remove(tid)
            elif what == "trigger":
                tid = self.pick(act[1], "s")
                r = None if tid is None else self.s.trigger(tid)
            elif what == "add":
                r = self.add(act[1], act[2], act[3])
            else:
                raise AssertionError(what)
            self.log.append(["act", what, r])
        except Exception as e:
            if isinstance(e, AssertionError):
                raise
            self.log.append(["act-err", what, ename(e), str(e)])

    def add(self, spec, kw, job):
        args = {}
        for k in kw:
            args[k] = self.value(kw[k])
        fn = 42 if args.pop("fn_bad", None) else self.make_job(spec, job)
        tid = self.s.add(fn, **args)
        self.tid_of[spec] = tid
        kind = "p"
        if args.get("min_gap_us"):
            kind = "s"
        elif args.get("deadline_at") is not None:
            kind = "o"
        self.kind_of[tid] = kind
        return tid

    # --- operations -------------------------------------------------------------------------

    def op(self, op):
        what = op[0]
        s = self.s
        if what == "add":
            return self.add(op[1], op[2], op[3])
        if what == "remove":
            tid = self.pick(op[1])
            return "none" if tid is None else s.remove(tid)
        if what == "trigger":
            # A sporadic task, or with "any" a task of any kind (refused unless sporadic).
            tid = self.pick(op[1], None if op[1].get("any") else "s")
            return "none" if tid is None else s.trigger(tid)
        if what == "advance":
            self.vt += op[1]
            return self.vt
        if what == "run_once":
            return s.run_once()
        if what == "run":
            return s.run(op[1])
        if what == "stats":
            return s.stats(None if op[1] is None else self.pick(op[1]))
        if what == "admit":
            return s.analysis()
        if what == "info":
            return s.info()
        if what == "calibrate":
            return s.calibrate()
        if what == "burst":
            # One-shots due soon, then a stall: all late at the next dispatch (more drops at once
            # than the event ring holds).
            out = []
            for j, d in enumerate(op[1]):
                kw = {"budget_us": 10, "deadline_at": {"rel": d}, "policy": op[2]}
                if op[3] is not None:
                    kw["priority"] = op[3]
                try:
                    out.append(self.add(f"b{j}", kw, {"exec": [5]}))
                except Exception as e:  # noqa: BLE001 - a refusal is a result
                    out.append([ename(e), str(e)])
            self.vt += op[4]
            out.append(s.run_once())
            return out
        if what == "fill":
            n = 0
            kw = {"budget_us": 1, "min_gap_us": 10000000}
            if op[2] is not None:
                kw["priority"] = op[2]
            try:
                while n < 40:
                    self.add(f"fill{n}", kw, op[1])
                    n += 1
            except Exception as e:  # noqa: BLE001 - the error ends the fill and is its result
                return [n, ename(e), str(e)]
            return [n]
        raise AssertionError(what)

    def play(self):
        c = self.case
        kw = {"clock": self.clock, "sleep": self.sleep}
        for k in (
            "tick_period",
            "overhead_us",
            "gc_idle_us",
            "jitter_us",
            "isr_budget_us",
            "isr_min_gap_us",
        ):
            if c.get(k) is not None:
                kw[k] = c[k]
        if c.get("on_miss"):
            kw["on_miss"] = self.on_miss
        if c.get("wdt"):
            kw["wdt"] = self
        try:
            self.s = self.Scheduler(**kw)
        except Exception as e:  # noqa: BLE001 - a refused constructor call is a result
            self.log.append(["new-err", ename(e), str(e)])
            return self.log
        for i, op in enumerate(c["ops"]):
            try:
                r = self.op(op)
                self.log.append(["r", i, plain(r)])
            except Exception as e:
                if isinstance(e, AssertionError):
                    raise
                self.log.append(["e", i, ename(e), str(e)])
        self.log.append(["stats", plain(self.s.stats())])
        self.log.append(["admit", plain(self.s.analysis())])
        self.log.append(["info", plain(self.s.info())])
        self.log.append(["costs", plain(self.s.costs())])
        self.log.append(["end", self.feeds, self.vt, self.jobs])
        return self.log


def play(Scheduler, case):
    """The log of one case played on Scheduler."""
    return _Case(Scheduler, case).play()
