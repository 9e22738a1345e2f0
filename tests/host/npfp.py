# SPDX-License-Identifier: MIT
"""Independent reference for the admission tests: a brute-force non-preemptive fixed-priority
simulator and a textbook response-time analysis, in integer time, written from the papers
(Davis, Burns, Bril, Lukkien 2007) and not from the C core.

A task is (C, T, D): budget, period (or minimum gap), relative deadline. Priority orders are
lists of task indices, highest priority first.
"""

import heapq
from math import gcd


def simulate(releases, order, first=None):
    """Runs jobs non-preemptively, the highest-priority released job first.

    releases: list of (release_time, task, exec_time). order: task indices, highest first.
    first: index into releases of a job that starts at its release whatever else is released
    then (models a lower-priority job that started an instant before a synchronous release).
    Returns [(task, release, start, finish)] in start order.
    """
    rank = {task: pos for pos, task in enumerate(order)}
    todo = sorted(range(len(releases)), key=lambda k: (releases[k][0], k))
    ready = []
    out = []
    t = None
    i = 0
    if first is not None:
        r, task, c = releases[first]
        todo.remove(first)
        out.append((task, r, r, r + c))
        t = r + c
    while i < len(todo) or ready:
        if not ready and (t is None or t < releases[todo[i]][0]):
            t = releases[todo[i]][0]
        while i < len(todo) and releases[todo[i]][0] <= t:
            k = todo[i]
            r, task, c = releases[k]
            heapq.heappush(ready, (rank[task], r, k))
            i += 1
        _, r, k = heapq.heappop(ready)
        task, c = releases[k][1], releases[k][2]
        out.append((task, r, t, t + c))
        t += c
    return out


def worst_case_releases(tasks, order, analysed, horizon, shift=1, exec_fn=None):
    """Releases for the critical instant of task `analysed`.

    The longest lower-priority job (the blocker) is released at 0; every other task is released
    at `shift` and then as fast as it is allowed (every period) up to `horizon`. With shift=1
    the blocker has really started one tick before the others: a legal run. With shift=0 and
    simulate(first=<blocker's first job>) it started "an instant" before: the analysis' model.
    exec_fn(task, job_number) gives execution times (default: the budget).
    Returns (releases, index of the blocker's first job or None).
    """
    pos = order.index(analysed)
    lower = order[pos + 1 :]
    blocker = max(lower, key=lambda j: (tasks[j][0], -j)) if lower else None
    rel = []
    first = None
    for j, (c, period, _d) in enumerate(tasks):
        start = 0 if j == blocker else shift
        n = 0
        t = start
        while t < horizon:
            if j == blocker and n == 0:
                first = len(rel)
            rel.append((t, j, c if exec_fn is None or (j == blocker and n == 0) else exec_fn(j, n)))
            n += 1
            t += period
    return rel, first


def responses(trace, n_tasks):
    """Per task: list of (release, response)."""
    out = [[] for _ in range(n_tasks)]
    for task, r, _s, f in trace:
        out[task].append((r, f - r))
    return out


def rta(tasks, order, overhead=0):
    """Exact NP-FP response-time analysis of every task in `order`.

    Returns per position a dict with wcrt (None if the busy period does not converge within a
    bound), busy (level-i busy period), jobs (Q), blocking, worst_q (job giving the wcrt).
    """
    c = [t[0] + overhead for t in tasks]
    res = []
    for pos, i in enumerate(order):
        hp = order[:pos]
        lp = order[pos + 1 :]
        # A lower job, or the run loop's own idle pass (what the overhead bounds) in progress.
        b = max([c[j] for j in lp] + [overhead])
        ti = tasks[i][1]
        bound = 100 * lcm_all([tasks[j][1] for j in order]) + 1000
        busy = b + c[i]
        while True:
            nxt = b + sum(-(-busy // tasks[j][1]) * c[j] for j in hp + [i])
            if nxt == busy:
                break
            busy = nxt
            if busy > bound:
                busy = None
                break
        if busy is None:
            res.append(dict(wcrt=None, busy=None, jobs=None, blocking=b, worst_q=None))
            continue
        jobs = -(-busy // ti)
        worst, worst_q = -1, None
        for q in range(jobs):
            w = b + q * c[i]
            while True:
                nxt = b + q * c[i] + sum((w // tasks[j][1] + 1) * c[j] for j in hp)
                if nxt == w:
                    break
                w = nxt
            r = w + c[i] - q * ti
            if r > worst:
                worst, worst_q = r, q
        res.append(dict(wcrt=worst, busy=busy, jobs=jobs, blocking=b, worst_q=worst_q))
    return res


def schedulable(tasks, order, overhead=0):
    return all(
        e["wcrt"] is not None and e["wcrt"] <= tasks[i][2]
        for e, i in zip(rta(tasks, order, overhead), order)
    )


def dm_order(tasks):
    return sorted(range(len(tasks)), key=lambda j: (tasks[j][2], j))


def lcm_all(xs):
    out = 1
    for x in xs:
        out = out * x // gcd(out, x)
    return out
