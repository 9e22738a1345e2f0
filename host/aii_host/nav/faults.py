# SPDX-License-Identifier: MIT
"""Injected faults (docs/navigation.md, 6): each a window of simulated time drawn from the seed.

overrun        planning jobs take 2-4x their drawn time (past the 100 ms deadline)
hog            another process takes the edge board's CPU: every job 40-80 ms longer
dropout        the lidar delivers nothing (a burst of dropped frames)
stale          lidar frames arrive 250-400 ms late (old on arrival)
link           the link to the microcontroller is cut (nothing reaches it)
watchdog       the microcontroller hangs; its watchdog resets it
hallucination  the planner's perception erases everything in a corridor ahead (a clear way
               that is not there)
estop          the E-stop is pressed for a while, then released
"""

from dataclasses import dataclass

from .errors import NavError

KINDS = ("overrun", "hog", "dropout", "stale", "link", "watchdog", "hallucination", "estop")
TIMING = ("overrun", "hog")  # faults that change job durations (the miss rate leaves them out)
LENGTH_S = {
    "overrun": (1.0, 2.5),
    "hog": (1.0, 3.0),
    "dropout": (0.4, 1.0),
    "stale": (0.5, 1.5),
    "link": (0.5, 1.5),
    "watchdog": (0.0, 0.0),
    "hallucination": (2.0, 4.0),
    "estop": (0.8, 2.0),
}


@dataclass
class Fault:
    kind: str
    t0: int  # us
    t1: int

    def active(self, t):
        return self.t0 <= t < self.t1

    def as_dict(self):
        return {"kind": self.kind, "t0_s": round(self.t0 / 1e6, 2), "t1_s": round(self.t1 / 1e6, 2)}


def parse(text):
    """'none' | 'all' | 'random' | comma-separated kinds -> a tuple of kinds (or 'random')."""
    t = (text or "none").strip().lower()
    if t in ("", "none"):
        return ()
    if t == "all":
        return KINDS
    if t == "random":
        return "random"
    out = []
    for k in t.split(","):
        k = k.strip()
        if k not in KINDS:
            raise NavError(
                f"--faults: unknown fault {k!r}; one of: none, all, random, " + ", ".join(KINDS)
            )
        if k not in out:
            out.append(k)
    return tuple(out)


def schedule(kinds, rng, span_us):
    """Windows for the kinds over a run expected to last span_us (each starts in its first
    two thirds, after 2 s). 'random': none (15 %) or one to three kinds."""
    if kinds == "random":
        if rng.random() < 0.15:
            return []
        n = int(rng.integers(1, 4))
        kinds = tuple(str(k) for k in rng.choice(KINDS, n, replace=False))
    out = []
    for k in kinds:
        lo, hi = LENGTH_S[k]
        t0 = int(rng.uniform(2e6, max(2.5e6, span_us * 0.66)))
        out.append(Fault(k, t0, t0 + int(rng.uniform(lo, hi) * 1e6)))
    return out
