# SPDX-License-Identifier: MIT
"""Inference as deadline jobs on aii_host.Scheduler (the firmware's C core through cffi).

Each frame is one job of a periodic task: pre-processing, invoke and post-processing, each
timed. The scheduler decides when a frame runs and reports misses (response > deadline) and
overruns (execution > budget) through on_miss; on a miss the configured policy acts:

- "skip-next-frame": the next job takes its frame and drops it, so the pipeline catches up;
- "lower-rate": the task is re-admitted with its period (and deadline) times rate_factor, up
  to max_period_us;
- "cheaper-model": the pipeline is switched to the `cheaper` one (once);
- "stop-safely": on_stop() is called (put outputs in a safe state) and the run ends;
- "none": the miss is only recorded (benchmarks measure the miss rate this way).

Every action is recorded in the report with the frame that caused it. Process memory and CPU
use are sampled by psutil from a small thread while run() runs (never in the constructor).
"""

import threading
import time
from dataclasses import dataclass

import numpy as np

from ..core import sched as _sched
from ..core.stats import percentile
from .errors import EdgeError

POLICIES = ("skip-next-frame", "lower-rate", "cheaper-model", "stop-safely", "none")
STAGES = ("pre", "invoke", "post")


@dataclass
class Pipeline:
    """Three stages: pre(frame) -> x, invoke(x) -> y, post(y) -> result."""

    name: str
    pre: object
    invoke: object
    post: object


def facedet_pipeline(
    detector, grounded=True, name="face_detection_short_range", opinions="default", tracker=None
):
    """The face detector as a Pipeline; post returns a grounding Verdict when grounded.

    opinions and tracker are handed to grounding.ground (a temporal.Tracker for a video
    stream: its frames then also pass the temporal check).
    """
    from .grounding import default_opinions, ground

    if grounded and opinions == "default":
        opinions = default_opinions()  # loaded here, not in the first job

    def pre(frame):
        t, lb = detector.preprocess(frame)
        return frame, t, lb

    def invoke(x):
        frame, t, lb = x
        return frame, detector.infer(t), lb

    def post(y):
        frame, raw, lb = y
        dets = detector.postprocess(raw, lb)
        if not grounded:
            return dets
        return ground(
            frame, dets, score_thresh=detector.score_thresh, opinions=opinions, tracker=tracker
        )

    return Pipeline(name, pre, invoke, post)


def model_pipeline(model, x, name=None):
    """A bare model with a fixed input: pre copies it in, post copies the outputs out."""
    return Pipeline(
        name or (model.path or "model"),
        lambda frame: model.set_input(x if frame is None else frame),
        lambda _: model.invoke(),
        lambda _: [model.output(i).copy() for i in range(len(model.outputs))],
    )


def summarize(values):
    """p50 / p99 / max / mean of a list of microsecond times (nearest-rank percentiles)."""
    if not values:
        return {"n": 0}
    a = np.sort(np.asarray(values, np.float64))
    return {
        "n": int(a.size),
        "p50": round(float(percentile(a, 50)), 1),
        "p99": round(float(percentile(a, 99)), 1),
        "max": round(float(a[-1]), 1),
        "mean": round(float(a.mean()), 1),
    }


class _Sampler:
    """psutil samples of this process (CPU %, RSS) and of the machine, every interval_s."""

    def __init__(self, interval_s):
        self.interval_s = interval_s
        self.samples = []
        self._done = threading.Event()
        self._t = None

    def start(self):
        try:
            import psutil
        except ImportError:
            self.samples = None  # reported as "not sampled", not as zeros
            return
        self._p = psutil.Process()
        self._psutil = psutil
        self._p.cpu_percent(None)
        psutil.cpu_percent(None)
        self._t0 = time.monotonic()
        self._t = threading.Thread(target=self._loop, name="aii-edge-sampler", daemon=True)
        self._t.start()

    def _sample(self):
        self.samples.append(
            {
                "t_s": round(time.monotonic() - self._t0, 3),
                "proc_cpu_pct": self._p.cpu_percent(None),
                "rss_mb": round(self._p.memory_info().rss / 2**20, 1),
                "sys_cpu_pct": self._psutil.cpu_percent(None),
            }
        )

    def _loop(self):
        while not self._done.wait(self.interval_s):
            self._sample()

    def stop(self):
        if self._t is not None:
            self._done.set()
            self._t.join()
            self._sample()

    def summary(self):
        if self.samples is None:
            return {"sampled": False, "reason": "psutil not installed"}
        if not self.samples:
            return {"sampled": True, "n": 0}
        return {
            "sampled": True,
            "n": len(self.samples),
            "proc_cpu_pct_mean": round(
                float(np.mean([s["proc_cpu_pct"] for s in self.samples])), 1
            ),
            "rss_mb_max": max(s["rss_mb"] for s in self.samples),
            "sys_cpu_pct_mean": round(float(np.mean([s["sys_cpu_pct"] for s in self.samples])), 1),
        }


class InferenceJob:
    """InferenceJob(pipeline, frames, *, period_us, budget_us, deadline_us=None,
    policy="skip-next-frame", cheaper=None, rate_factor=2, max_period_us=None, on_stop=None,
    on_result=None, sched_policy=SKIP, overhead_us=0, clock=None, sleep=None, tick_period=None,
    sample_s=0.5)

    frames() returns the next frame, or None at the end of the stream (the run then stops).
    clock/sleep/tick_period are passed to the Scheduler and also time the stages, so a test
    can drive everything from a virtual clock; by default stages are timed by perf_counter_ns.
    """

    def __init__(
        self,
        pipeline,
        frames,
        *,
        period_us,
        budget_us,
        deadline_us=None,
        policy="skip-next-frame",
        cheaper=None,
        rate_factor=2,
        max_period_us=None,
        on_stop=None,
        on_result=None,
        sched_policy=_sched.SKIP,
        overhead_us=0,
        clock=None,
        sleep=None,
        tick_period=None,
        sample_s=0.5,
    ):
        if policy not in POLICIES:
            raise EdgeError("policy must be one of {}".format(", ".join(POLICIES)))
        if policy == "cheaper-model" and cheaper is None:
            raise EdgeError("policy cheaper-model needs a cheaper pipeline")
        if rate_factor < 1:
            raise EdgeError("rate_factor must be >= 1")
        self.pipeline = pipeline
        self.frames = frames
        self.period_us = int(period_us)
        self.deadline_us = int(deadline_us or period_us)
        self.budget_us = int(budget_us)
        self.policy = policy
        self.cheaper = cheaper
        self.rate_factor = rate_factor
        self.max_period_us = int(max_period_us or 8 * self.period_us)
        self.on_stop = on_stop
        self.on_result = on_result
        self.sched_policy = sched_policy
        self.sample_s = sample_s
        self._virtual = clock is not None
        self._clock = clock
        self.sched = _sched.Scheduler(
            overhead_us=overhead_us,
            on_miss=self._on_event,
            clock=clock,
            sleep=sleep,
            tick_period=tick_period,
        )
        self._tid = None

    def _now_us(self):
        return self._clock() if self._virtual else time.perf_counter_ns() / 1000.0

    # --- the job ------------------------------------------------------------------------------

    def _job(self):
        frame = self.frames()
        if frame is None:
            self.stop_reason = "end of stream"
            self.sched.stop()
            return
        self.frame_no += 1
        if self._left is not None:
            # Stop after this frame, so no extra job runs just to learn the stream ended.
            self._left -= 1
            if self._left <= 0:
                self.stop_reason = "frame count reached"
                self.sched.stop()
        if self._skip_next:
            self._skip_next = False
            self.skipped_frames += 1
            return
        p = self.pipeline
        t0 = self._now_us()
        x = p.pre(frame)
        t1 = self._now_us()
        y = p.invoke(x)
        t2 = self._now_us()
        result = p.post(y)
        t3 = self._now_us()
        self.times["pre"].append(t1 - t0)
        self.times["invoke"].append(t2 - t1)
        self.times["post"].append(t3 - t2)
        self.times["total"].append(t3 - t0)
        self.last_result = result
        if self.on_result is not None:
            self.on_result(self.frame_no, result)

    def _on_event(self, tid, kind, detail):
        # Called by the scheduler after the job completed, with small ints only.
        if kind == _sched.OVERRUN:
            self.overruns += 1
            return
        if kind == _sched.DROPPED:
            self.events.append({"frame": self.frame_no, "kind": "dropped", "late_us": detail})
            return
        self.misses += 1
        ev = {"frame": self.frame_no, "kind": "miss", "late_us": detail, "action": None}
        self.events.append(ev)
        ev["action"] = self._apply_policy()

    def _apply_policy(self):
        if self.policy == "none":
            return "recorded"
        if self.policy == "skip-next-frame":
            self._skip_next = True
            return "skip next frame"
        if self.policy == "lower-rate":
            if self.period_us >= self.max_period_us:
                return f"rate already at its floor (period {self.period_us} us)"
            self._bank_stats()
            self.sched.remove(self._tid)
            self.period_us = min(self.max_period_us, int(self.period_us * self.rate_factor))
            self.deadline_us = min(self.period_us, int(self.deadline_us * self.rate_factor))
            self._admit()
            return f"period now {self.period_us} us"
        if self.policy == "cheaper-model":
            if self.pipeline is self.cheaper:
                return "already on the cheaper model"
            self.pipeline = self.cheaper
            return f"switched to {self.cheaper.name}"
        # stop-safely
        self.stop_reason = f"deadline miss at frame {self.frame_no}: stopped safely"
        if self.on_stop is not None:
            self.on_stop()
        self.sched.stop()
        return "stopped safely"

    # --- running ------------------------------------------------------------------------------

    def _admit(self):
        self._tid = self.sched.add(
            self._job,
            budget_us=self.budget_us,
            period_us=self.period_us,
            deadline_us=self.deadline_us,
            policy=self.sched_policy,
        )

    def _bank_stats(self):
        st = self.sched.stats(self._tid)
        self._banked.append(st)

    def run(self, max_frames=None, duration_us=None):
        """Admits the task, runs until the stream ends, max_frames, duration_us or a safe stop."""
        self.frame_no = 0
        self.skipped_frames = 0
        self.misses = 0
        self.overruns = 0
        self.events = []
        self.times = {k: [] for k in STAGES + ("total",)}
        self.last_result = None
        self.stop_reason = None
        self._skip_next = False
        self._banked = []
        self.start_pipeline = self.pipeline.name
        self.start_period_us = self.period_us
        self._left = max_frames
        self._admit()
        sampler = _Sampler(self.sample_s)
        sampler.start()
        t0 = time.monotonic()
        try:
            self.sched.run(duration_us)
        finally:
            wall = time.monotonic() - t0
            sampler.stop()
        if self.stop_reason is None:
            self.stop_reason = "duration reached"
        self._bank_stats()
        return self._report(sampler, wall)

    def _report(self, sampler, wall_s):
        # Scheduler statistics summed over every admission of the task (lower-rate re-admits).
        b = self._banked
        jobs = sum(s[0] for s in b)
        lost = sum(s[3] + s[4] for s in b)
        resp_sum = sum(s[0] * s[7] for s in b)
        return {
            "pipeline": self.start_pipeline,
            "pipeline_final": self.pipeline.name,
            "policy": self.policy,
            "period_us": self.start_period_us,
            "period_us_final": self.period_us,
            "deadline_us": self.deadline_us,
            "budget_us": self.budget_us,
            "frames": self.frame_no,
            "jobs": jobs,
            "processed": len(self.times["total"]),
            "skipped_frames": self.skipped_frames,
            "sched_skipped": sum(s[4] for s in b),
            "dropped": sum(s[3] for s in b),
            "misses": self.misses,
            "overruns": self.overruns,
            "miss_rate": round(self.misses / jobs, 5) if jobs else 0.0,
            # Releases not served on time: late jobs plus releases skipped or dropped while behind.
            "late_or_lost_rate": round((self.misses + lost) / (jobs + lost), 5) if jobs else 0.0,
            "resp_mean_us": round(resp_sum / jobs, 1) if jobs else 0.0,
            "resp_max_us": max((s[6] for s in b), default=0),
            "latency_max_us": max((s[8] for s in b), default=0),
            "stages_us": {k: summarize(v) for k, v in self.times.items()},
            "events": self.events,
            "stop_reason": self.stop_reason,
            "wall_s": round(wall_s, 3),
            "resources": sampler.summary(),
        }


# --- measurement helpers shared by `aii edge-bench` and bench/edge_bench.py ---------------------


def bare_loop(pipeline, frame, n, warmup=3):
    """Runs the pipeline n times back to back, no scheduler; per-stage times in us."""
    for _ in range(warmup):
        pipeline.post(pipeline.invoke(pipeline.pre(frame)))
    times = {k: [] for k in STAGES + ("total",)}
    ns = time.perf_counter_ns
    for _ in range(n):
        t0 = ns()
        x = pipeline.pre(frame)
        t1 = ns()
        y = pipeline.invoke(x)
        t2 = ns()
        pipeline.post(y)
        t3 = ns()
        times["pre"].append((t1 - t0) / 1000)
        times["invoke"].append((t2 - t1) / 1000)
        times["post"].append((t3 - t2) / 1000)
        times["total"].append((t3 - t0) / 1000)
    return times


def job_run(
    pipeline, frame, n, deadline_us, budget_us=None, policy="none", overhead_us=0, on_result=None
):
    """n frames as a periodic deadline job (period = deadline); returns (report, job).
    on_result(frame_no, result) after each frame (outside its measured time)."""
    job = InferenceJob(
        pipeline,
        lambda: frame,
        period_us=int(deadline_us),
        deadline_us=int(deadline_us),
        budget_us=int(min(deadline_us, budget_us or deadline_us)),
        policy=policy,
        overhead_us=overhead_us,
        sample_s=0.25,
        on_result=on_result,
    )
    return job.run(max_frames=n), job
