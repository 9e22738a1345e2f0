# SPDX-License-Identifier: MIT
"""The schedulability report: Scheduler.analysis() as people read it."""

# aii_sched.h: AII_BLOCKER_NONE, AII_BLOCKER_GC, AII_BLOCKER_LOOP (the analysis' blocker codes)
_BLOCKERS = {-1: "nothing", -2: "a collection (gc_idle_us)", -3: "the loop's idle pass (overhead)"}


def blocker_name(blocker, names=None):
    if blocker >= 0:
        return f"task {(names or {}).get(blocker, blocker)} ({blocker})"
    return _BLOCKERS.get(blocker, str(blocker))


def report(analysis, names=None, costs=None):
    """One dict per task, highest priority first: its response bound against its deadline, the
    slack between them (negative: the bound does not hold), what blocks it and for how long,
    its jitter and the jobs of its busy period. analysis: Scheduler.analysis(); costs:
    Scheduler.costs() (adds the interrupt load line)."""
    rows = []
    for tid, level, wcrt, deadline, blocking, jobs, blocker, jitter in analysis:
        unbounded = wcrt == 0xFFFFFFFF
        rows.append(
            {
                "tid": tid,
                "name": (names or {}).get(tid, str(tid)),
                "level": level,
                "wcrt_us": None if unbounded else wcrt,
                "deadline_us": deadline,
                "slack_us": None if unbounded else deadline - wcrt,
                "holds": not unbounded and wcrt <= deadline,
                "blocking_us": blocking,
                "blocker": blocker,
                "blocked_by": blocker_name(blocker, names),
                "jitter_us": jitter,
                "jobs_in_busy_period": jobs,
            }
        )
    return rows


def report_text(rows, costs=None):
    """Lines for a terminal: one per task, then what the analysis assumed."""
    head = f"{'task':<16}{'bound':>9}{'deadline':>10}{'slack':>9}  blocked by (us)"
    lines = [head]
    for r in rows:
        bound = "inf" if r["wcrt_us"] is None else r["wcrt_us"]
        slack = "-" if r["slack_us"] is None else r["slack_us"]
        flag = "" if r["holds"] else "   DOES NOT HOLD"
        lines.append(
            f"{r['name'][:15]:<16}{bound:>9}{r['deadline_us']:>10}{slack:>9}  "
            f"{r['blocked_by']} {r['blocking_us']}"
            + (f", jitter {r['jitter_us']}" if r["jitter_us"] else "")
            + flag
        )
    if costs:
        over, jitter, gc_idle, gc_max, isr_c, isr_t, busy, retiring = costs
        lines.append(
            f"assumed: overhead {over} us per job, sporadic jitter {jitter} us, "
            + (f"collections of {max(gc_idle, gc_max)} us, " if gc_idle else "no collections, ")
            + (f"interrupts {isr_c} us every {isr_t} us" if isr_c else "no interrupt load")
            + f"; longest busy period {busy} us"
            + (f"; {retiring} task(s) retiring" if retiring else "")
        )
    return lines
