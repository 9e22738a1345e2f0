# SPDX-License-Identifier: MIT
"""Nothing admitted misses, in the system that actually runs (issue 14).

Hypothesis writes scenarios: task sets of periodic and sporadic tasks (utilisation up to 1 and
beyond: the refused ones are refused), one-shots released in the past and future, adds and
removals between run() slices and from inside jobs (chains of one-shots in one busy period),
triggers at the maximum rate, in bursts and at random, each seen by the idle wait up to the
declared jitter late, interrupt load stealing the processor at its maximum rate or at random
gaps, idle-time collections of up to their declared length, and the watchdog's feed costing up
to the declared overhead after every dispatch. Execution times are the budgets (the worst case)
or anything below.

aii_host.Scheduler runs each scenario in a npfp.World (virtual time); npfp.Runtime, the
independent simulator of docs/scheduler.md's run loop, runs it in an identical world with the
outcomes the scheduler gave (which adds it admitted, and the priority order). Their timelines -
every job's task, release, start and finish - must be equal, and no job of either may finish
after its deadline. Release patterns enumerated: periodic tasks released together or one tick
apart (a lower job started just before the others, the non-preemptive critical instant); each
sporadic task at its maximum rate from a phase, in bursts faster than its gap, or at random;
interrupts at their maximum rate from a phase or at random gaps; and whatever a sequence of
changes makes of them. tests/host/test_sched_admission.py enumerates the critical instants of
static sets exactly; bench/sched_pessimism.py measures how far the analysis is from them.
"""

import json
import os

import aii_host
import npfp
import pytest
from aii_host import AdmissionError
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("AII_GUARANTEE_EXAMPLES", "250"))


# --- scenarios ---------------------------------------------------------------------------------


@st.composite
def task_spec(draw, kind, worst):
    if kind == "o":
        c = draw(st.integers(1, 800))
        spec = {
            "kind": "o",
            "budget_us": c,
            "release_at": draw(st.sampled_from([-3000, -1, 0, 1, 500, 4000])),
            "deadline_at": draw(st.integers(max(1, c // 2), 6 * c + 2000)),
        }
    else:
        base = draw(st.sampled_from([60, 97, 150, 230, 400, 700, 1000, 1600, 4000]))
        t = base + draw(st.integers(0, base // 4))
        c = draw(st.integers(1, max(1, t // draw(st.sampled_from([1, 2, 3, 6, 20])))))
        spec = {"kind": kind, "budget_us": c, "t": t}
        if draw(st.booleans()):
            spec["deadline_us"] = draw(st.integers(c, t))
        if kind == "p":
            spec["offset_us"] = draw(st.sampled_from([0, 0, 1, draw(st.integers(0, t))]))
    c = spec["budget_us"]
    if worst or draw(st.booleans()):
        spec["exec"] = [c]
    else:
        spec["exec"] = draw(st.lists(st.integers(0, c), min_size=1, max_size=4))
    return spec


@st.composite
def scenarios(draw):
    worst = draw(st.booleans())  # every job runs its whole budget, every source at full rate
    o_decl = draw(st.sampled_from([0, 0, 3, 20]))
    jitter = draw(st.sampled_from([0, 40, 200]))
    g_decl = draw(st.sampled_from([0, 0, 150, 600]))
    sc = {
        "t0": draw(st.integers(10_000, 10**6)),
        "explicit": draw(st.booleans()),
        "overhead_us": o_decl,
        "o": o_decl if worst else draw(st.integers(0, o_decl)),
        "jitter_us": jitter,
        "latency": jitter if worst else draw(st.integers(0, jitter)),
        "gc_idle_us": g_decl,
        "gc": g_decl if worst else draw(st.integers(g_decl // 2, g_decl)),
        "isr": None,
    }
    if draw(st.integers(0, 2)) == 0:
        cost = draw(st.sampled_from([2, 10, 40]))
        gap = draw(st.sampled_from([60, 300, 1500]))
        sc["isr"] = {"cost": cost, "gap": gap, "max_rate": worst or draw(st.booleans())}
        sc["isr"]["phase"] = draw(st.integers(0, gap))
    n = draw(st.integers(1, 5))
    tasks = {}
    ops = []
    for i in range(n):
        name = f"t{i}"
        tasks[name] = draw(task_spec(draw(st.sampled_from("pps")), worst))
        ops.append([0, "add", name])
    for k in range(draw(st.integers(1, 8))):
        what = draw(
            st.sampled_from(
                [
                    "run",
                    "add",
                    "add",
                    "add_in_job",
                    "add_in_job",
                    "remove",
                    "remove_in_job",
                    "chain",
                ]
            )
        )
        if what == "chain":
            # One-shots one after another, each admissible alone, into one busy period (issue
            # 14's first reproduction, generalised).
            c = draw(st.integers(1, 2000))
            for j in range(draw(st.integers(2, 4))):
                name = f"x{k}_{j}"
                tasks[name] = {
                    "kind": "o",
                    "budget_us": c,
                    "release_at": 0,
                    "deadline_at": draw(st.integers(c, 4 * c + 1000)),
                    "exec": [c],
                }
                ops.append([draw(st.integers(1, c + 50)) if j else 0, "add", name])
            continue
        # Short slices end inside busy periods: changes then meet the tasks still retiring.
        slice_us = draw(st.integers(1, 300)) if draw(st.booleans()) else draw(st.integers(1, 6000))
        if what in ("add", "add_in_job"):
            name = f"x{k}"
            tasks[name] = draw(task_spec(draw(st.sampled_from("ppso")), worst))
            ops.append([slice_us, what, name, draw(st.integers(0, 20))])
        elif what in ("remove", "remove_in_job"):
            ops.append([slice_us, what, draw(st.integers(0, 40)), draw(st.integers(0, 20))])
        else:
            ops.append([slice_us, "run"])
    ops.append([draw(st.integers(10_000, 80_000)), "run"])
    horizon = sum(op[0] for op in ops)
    triggers = []
    for name, spec in tasks.items():
        if spec["kind"] != "s":
            continue
        pattern = "max" if worst else draw(st.sampled_from(["max", "burst", "random"]))
        at = draw(st.integers(0, spec["t"]))
        while at < horizon:
            triggers.append([at, name])
            if pattern == "burst" and draw(st.integers(0, 3)) == 0:
                triggers += [[at + d, name] for d in range(1, draw(st.integers(2, 4)))]
            at += spec["t"] if pattern != "random" else draw(st.integers(1, 3 * spec["t"]))
    sc.update(tasks=tasks, ops=ops, triggers=triggers, horizon=horizon)
    return sc


def isr_hits(sc):
    isr = sc["isr"]
    if not isr:
        return []
    hits, at = [], sc["t0"] + isr["phase"]
    k = 0
    while at < sc["t0"] + sc["horizon"] + 10_000:
        hits.append(at)
        # At least the declared gap apart; at the maximum rate, exactly that.
        at += isr["gap"] + (0 if isr["max_rate"] else (k * 7919) % (2 * isr["gap"]))
        k += 1
    return hits


def make_world(sc):
    isr = sc["isr"]
    return npfp.World(
        sc["t0"],
        hits=isr_hits(sc),
        isr_cost=isr["cost"] if isr else 0,
        triggers=[(sc["t0"] + at, name) for at, name in sc["triggers"]],
        latency=sc["latency"],
    )


def exec_fn(spec):
    return lambda n: spec["exec"][n % len(spec["exec"])]


def add_kwargs(sc, name, now, prio):
    spec = sc["tasks"][name]
    kw = {"budget_us": spec["budget_us"]}
    if spec["kind"] == "o":
        kw["release_at"] = now + spec["release_at"]
        kw["deadline_at"] = now + max(spec["release_at"], 0) + spec["deadline_at"]
    else:
        kw["period_us" if spec["kind"] == "p" else "min_gap_us"] = spec["t"]
        for k in ("deadline_us", "offset_us"):
            if k in spec:
                kw[k] = spec[k]
    if sc["explicit"]:
        kw["priority"] = prio
    return kw


def sim_task(spec, kw, now):
    c = spec["budget_us"]
    if spec["kind"] == "o":
        return {
            "kind": "o",
            "c": c,
            "release_at": kw["release_at"],
            "deadline_at": kw["deadline_at"],
            "exec": exec_fn(spec),
        }
    return {
        "kind": spec["kind"],
        "c": c,
        "t": spec["t"],
        "d": spec.get("deadline_us") or spec["t"],
        "offset": spec.get("offset_us", 0),
        "exec": exec_fn(spec),
    }


# --- the scheduler in its world ----------------------------------------------------------------


class _Feeder:
    """The watchdog: feeding it costs the loop `o` of processor time. It also drains the
    scheduler's timeline (in no time), so the ring never overflows."""

    def __init__(self, world, o):
        self.world, self.o = world, o
        self.drain = None

    def feed(self):
        self.drain()
        self.world.consume(self.o)


class _Collector:
    """Stands in for the gc module inside aii_host.sched: a collection costs `gc` us."""

    def __init__(self, world, us):
        self.world, self.us = world, us

    def collect(self):
        self.world.consume(self.us)


def _in_job_choice(alive, op):
    """The task at the end of whose next job a change `op` is made (None: nothing alive)."""
    names = sorted(alive)
    return names[op[-1] % len(names)] if names else None


def play_scheduler(sc, monkeypatch):
    """Runs the scenario on aii_host.Scheduler; returns (outcomes, jobs, scheduler). An outcome
    is [op, name or removed tid, tid or None, refusal text, add() arguments, time, order]."""
    world = make_world(sc)
    isr = sc["isr"] or {}
    feeder = _Feeder(world, sc["o"])
    s = aii_host.Scheduler(
        clock=world,
        sleep=world.sleep,
        tick_period=1 << 62,
        overhead_us=sc["overhead_us"],
        gc_idle_us=sc["gc_idle_us"],
        jitter_us=sc["jitter_us"],
        isr_budget_us=isr.get("cost", 0),
        isr_min_gap_us=isr.get("gap", 0),
        wdt=feeder,
    )
    monkeypatch.setattr(aii_host.sched, "gc", _Collector(world, sc["gc"]))
    alive, outcomes, runs, in_job = {}, [], {}, {}

    def fire(name, when):
        if name in alive:
            s.trigger(alive[name])

    world.on_trigger = fire

    def apply(op):
        what = op[1]
        if what.startswith("add"):
            name = op[2]
            kw = add_kwargs(sc, name, world.t, len(outcomes))
            try:
                tid = s.add(job(name), **kw)
            except AdmissionError as e:
                outcomes.append([what, name, None, str(e), kw, world.t, None])
                return
            alive[name] = tid
            outcomes.append([what, name, tid, None, kw, world.t, [a[0] for a in s.analysis()]])
        else:
            ids = sorted(set(alive.values()) & set(s.stats()))
            tid = ids[op[2] % len(ids)] if ids else None
            if tid is not None:
                s.remove(tid)
                for name in [n for n, t in alive.items() if t == tid]:
                    del alive[name]
            outcomes.append([what, tid, None, None, None, world.t, [a[0] for a in s.analysis()]])

    def job(name):
        spec = sc["tasks"][name]

        def fn():
            n = runs.get(name, 0)
            runs[name] = n + 1
            world.consume(exec_fn(spec)(n))
            for op in in_job.pop((name, n), ()):
                apply(op)

        return fn

    s.trace(True)
    t0 = world.t
    jobs = []
    starts = {}

    def drain():
        for t, kind, tid, arg in s.trace():
            if kind == aii_host.sched.lib.AII_TRACE_START:
                starts[tid] = (t0 + t - arg, t0 + t)
            elif kind == aii_host.sched.lib.AII_TRACE_FINISH:
                r, begin = starts.pop(tid)
                jobs.append([tid, r, begin, t0 + t])

    feeder.drain = drain

    for op in sc["ops"]:
        if op[0]:
            s.run(op[0])
            drain()
        if op[1].endswith("_in_job"):
            name = _in_job_choice(alive, op)
            if name is not None:
                in_job.setdefault((name, runs.get(name, 0)), []).append(op)
        elif op[1] != "run":
            apply(op)
    assert s.trace_lost() == 0
    return outcomes, jobs, s


# --- the independent simulator in an identical world ---------------------------------------------


def play_simulator(sc, outcomes):
    """The scenario in npfp.Runtime, with the scheduler's outcomes at the same points."""
    world = make_world(sc)
    isr = sc["isr"] or {}
    rt = npfp.Runtime(
        world,
        o=sc["o"],
        gc_idle=sc["gc_idle_us"],
        gc=sc["gc"],
        isr=(isr.get("cost", 0), isr.get("gap", 0)),
    )
    todo = list(outcomes)
    alive, runs, in_job = {}, {}, {}
    name_of = {}

    def fire(name, when):
        if name in alive:
            rt.trigger(alive[name], when)

    world.on_trigger = fire

    def apply(op):
        what, key, tid, _err, kw, when, order = todo.pop(0)
        assert what == op[1] and when == world.t, (op, what, when, world.t)
        if what.startswith("add"):
            if tid is not None:
                alive[key] = tid
                name_of[tid] = key
                rt.add(tid, sim_task(sc["tasks"][key], kw, when), when)
        elif key is not None:
            rt.remove(key)
            for name in [n for n, t in alive.items() if t == key]:
                del alive[name]
        if order is not None:
            rt.order(order)

    def after_job(tid, n):
        name = name_of[tid]
        runs[name] = n + 1
        for op in in_job.pop((name, n), ()):
            apply(op)

    rt.in_job = after_job
    for op in sc["ops"]:
        if op[0]:
            rt.run(op[0])
        if op[1].endswith("_in_job"):
            name = _in_job_choice(alive, op)
            if name is not None:
                in_job.setdefault((name, runs.get(name, 0)), []).append(op)
        elif op[1] != "run":
            apply(op)
    assert not todo, f"outcomes the simulator never reached: {todo}"
    return rt


# --- the tests ----------------------------------------------------------------------------------


def check(sc, monkeypatch):
    outcomes, core_jobs, s = play_scheduler(sc, monkeypatch)
    rt = play_simulator(sc, outcomes)
    sim_jobs = [[tid, r, start, finish] for tid, r, _d, start, finish in rt.jobs]
    assert core_jobs == sim_jobs, "the scheduler and the simulator differ:\n" + json.dumps(sc)
    late = [j for j in rt.jobs if j[4] > j[2]]
    assert not late, f"admitted jobs missed (task, release, deadline, start, finish): {late}"
    assert s.info()[3] == 0
    return outcomes, rt


SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@SETTINGS
@given(scenarios())
def test_nothing_admitted_misses(monkeypatch, sc):
    check(sc, monkeypatch)


def _kinds(sc, outcomes, rt):
    """The hard cases one scenario reached."""
    seen = set()
    for what, _k, tid, err, *_ in outcomes:
        if err:
            seen.add("refused: " + ("idle" if "idle instant" in err else "analysis"))
        elif what == "add_in_job" and tid is not None:
            seen.add("added during a busy period")
    if rt.collections:
        seen.add("collection")
    if sc["isr"] and rt.jobs:
        seen.add("interrupts")
    if any(j[3] - j[1] > 0 for j in rt.jobs):
        seen.add("a job waited")
    return seen


HARD_CASES = (
    "refused: idle",
    "refused: analysis",
    "added during a busy period",
    "collection",
    "interrupts",
    "a job waited",
)


@pytest.mark.parametrize("kind", HARD_CASES)
def test_scenarios_reach_the_hard_cases(monkeypatch, kind):
    """The generator reaches what it is meant to: refusals of every kind, changes during busy
    periods, collections, interrupt load, late triggers; guards against a vacuous check. Each
    case is searched for (hypothesis.find, up to 300 scenarios, no shrinking) and the scenario
    that reaches it must pass the check too."""

    def reaches(sc):
        outcomes, rt = check(sc, monkeypatch)
        return kind in _kinds(sc, outcomes, rt)

    # A scenario that reaches it, or NoSuchExample: the generator cannot.
    find(
        scenarios(),
        reaches,
        settings=settings(
            max_examples=300,
            derandomize=True,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        ),
    )


# --- directed cases -----------------------------------------------------------------------------


def _directed(**kw):
    sc = {
        "t0": 100_000,
        "explicit": False,
        "overhead_us": 0,
        "o": 0,
        "jitter_us": 0,
        "latency": 0,
        "gc_idle_us": 0,
        "gc": 0,
        "isr": None,
        "triggers": [],
    }
    sc.update(kw)
    sc["horizon"] = sum(op[0] for op in sc["ops"])
    return sc


def test_oneshot_chain_is_refused_until_idle(monkeypatch):
    """Issue 14, first reproduction, in the running system: a low task (6 ms in 10 ms), a
    one-shot (3 ms, deadline 9.5 ms) that runs, then another one."""
    tasks = {
        "low": {"kind": "p", "budget_us": 6000, "t": 10000, "exec": [6000]},
        "a": {"kind": "o", "budget_us": 3000, "release_at": 0, "deadline_at": 9500, "exec": [3000]},
        "b": {"kind": "o", "budget_us": 3000, "release_at": 0, "deadline_at": 9500, "exec": [3000]},
        "c": {"kind": "o", "budget_us": 3000, "release_at": 0, "deadline_at": 9500, "exec": [3000]},
    }
    # a runs first (deadline-monotonic); b comes when a has run, while low's job waits: refused
    # until the idle instant; c comes after low's job, at the idle instant, and is admitted.
    ops = [
        [0, "add", "low"],
        [0, "add", "a"],
        [3000, "add", "b"],
        [6500, "add", "c"],
        [30000, "run"],
    ]
    sc = _directed(tasks=tasks, ops=ops)
    outcomes, rt = check(sc, monkeypatch)
    b = next(o for o in outcomes if o[1] == "b")
    assert b[2] is None and "next idle instant, at most 9000 us away" in b[3]
    c = next(o for o in outcomes if o[1] == "c")
    assert c[2] is not None  # added at the idle instant after the low job
    assert len(rt.jobs) >= 5


def test_oneshot_released_in_the_past_is_refused(monkeypatch):
    """Issue 14, second reproduction: release_at 9 ms ago, deadline in 1.5 ms, budget 2 ms."""
    tasks = {
        "o": {
            "kind": "o",
            "budget_us": 2000,
            "release_at": -9000,
            "deadline_at": 1500,
            "exec": [2000],
        }
    }
    sc = _directed(tasks=tasks, ops=[[0, "add", "o"], [5000, "run"]])
    outcomes, rt = check(sc, monkeypatch)
    assert outcomes[0][3] == "task 0: worst-case response 2000 us > deadline 1500 us"
    assert rt.jobs == []


def test_trigger_during_a_collection(monkeypatch):
    """A sporadic trigger that comes while an idle-time collection runs waits for all of it:
    the collection is its blocking, and it still meets its deadline."""
    tasks = {
        "tick": {"kind": "p", "budget_us": 100, "t": 5000, "exec": [100]},
        "button": {"kind": "s", "budget_us": 200, "t": 5000, "deadline_us": 900, "exec": [200]},
    }
    # The collection starts when the periodic job ends (at 100) and runs 600 us; the trigger
    # comes 50 us into it.
    sc = _directed(
        tasks=tasks,
        ops=[[0, "add", "tick"], [0, "add", "button"], [20000, "run"]],
        gc_idle_us=600,
        gc=600,
        triggers=[[150, "button"]],
    )
    _outcomes, rt = check(sc, monkeypatch)
    t0 = sc["t0"]
    assert rt.collections[0] == (t0 + 100, t0 + 700)
    press = next(j for j in rt.jobs if j[0] == 1)
    # Released at its own time, run after the collection, within its deadline.
    assert press[1:] == [t0 + 150, t0 + 150 + 900, t0 + 700, t0 + 900]


def test_collection_is_the_sporadic_tasks_blocking():
    s = aii_host.Scheduler(clock=lambda: 0, sleep=lambda us: None, gc_idle_us=600)
    s.add(lambda: None, budget_us=100, period_us=5000)
    b = s.add(lambda: None, budget_us=200, min_gap_us=5000, deadline_us=900)
    top, low = s.analysis()
    assert top[0] == b and top[4] == 600 and top[6] == aii_host.sched.lib.AII_BLOCKER_GC
    assert low[6] == aii_host.sched.lib.AII_BLOCKER_GC  # a sporadic task is above it
    assert top[2] == 800 <= top[3]
    with pytest.raises(AdmissionError, match="response 1000 us > deadline 700 us"):
        s2 = aii_host.Scheduler(clock=lambda: 0, sleep=lambda us: None, gc_idle_us=800)
        s2.add(lambda: None, budget_us=200, min_gap_us=5000, deadline_us=700)
