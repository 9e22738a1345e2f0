# SPDX-License-Identifier: MIT
"""Scheduler.trace() events as jobs and as Chrome/Perfetto trace JSON.

An event is (t_us, kind, tid, arg) with kind a name of aii_trace_kind_t (aii_sched.h):
release (arg: the relative deadline), start (arg: the latency), finish (arg: the execution
time), miss (arg: the lateness), drop (arg: the lateness) and gc (tid -1, arg: its duration; t
is its end). Times count from when the timeline was switched on.
"""

KINDS = ("", "release", "start", "finish", "miss", "drop", "gc")
GC_TID = -1


def _kind(k):
    return KINDS[k] if isinstance(k, int) else k


def jobs(events):
    """[{tid, release, deadline, start, finish, missed}] in start order; a job whose start or
    finish the trace lacks (the ring overwrote it, or it ran over the end) is left out."""
    out, running, deadline_of = [], {}, {}
    for t, kind, tid, arg in events:
        kind = _kind(kind)
        if kind == "release":
            deadline_of[(tid, t)] = t + arg
        elif kind == "start":
            release = t - arg
            job = {
                "tid": tid,
                "release": release,
                "deadline": deadline_of.pop((tid, release), None),
                "start": t,
                "finish": None,
                "missed": False,
            }
            running[tid] = job
        elif kind == "finish" and tid in running:
            job = running.pop(tid)
            job["finish"] = t
            out.append(job)
        elif kind == "miss" and out and out[-1]["tid"] == tid:
            out[-1]["missed"] = True
    return out


def chrome(events, names=None, process="aii scheduler", lost=0):
    """A Chrome/Perfetto trace (a dict: json.dump it): one track per task, each job a slice
    from its start to its finish (its release, deadline and latency in args), instants for
    releases, deadlines, misses and drops, and the idle-time collections on a track of their
    own."""
    names = names or {}
    out = [{"name": "process_name", "ph": "M", "pid": 1, "args": {"name": process}}]
    tids = sorted({tid for _t, _k, tid, _a in events} | set(names))
    for tid in tids:
        label = "collections (gc)" if tid == GC_TID else f"{names.get(tid, 'task')} ({tid})"
        out.append(
            {"name": "thread_name", "ph": "M", "pid": 1, "tid": tid, "args": {"name": label}}
        )
        # Tasks by priority would need the analysis; ids keep the tracks in a stable order.
        out.append(
            {
                "name": "thread_sort_index",
                "ph": "M",
                "pid": 1,
                "tid": tid,
                "args": {"sort_index": tid},
            }
        )

    def instant(name, t, tid, **args):
        out.append({"name": name, "ph": "i", "s": "t", "ts": t, "pid": 1, "tid": tid, "args": args})

    for job in jobs(events):
        out.append(
            {
                "name": names.get(job["tid"], f"task {job['tid']}"),
                "cat": "job",
                "ph": "X",
                "ts": job["start"],
                "dur": job["finish"] - job["start"],
                "pid": 1,
                "tid": job["tid"],
                "args": {
                    "release_us": job["release"],
                    "deadline_us": job["deadline"],
                    "latency_us": job["start"] - job["release"],
                    "response_us": job["finish"] - job["release"],
                    "missed": job["missed"],
                },
            }
        )
    for t, kind, tid, arg in events:
        kind = _kind(kind)
        if kind == "release":
            instant("release", t, tid, deadline_us=t + arg)
            instant("deadline", t + arg, tid, released_us=t)
        elif kind == "miss":
            instant("MISS", t, tid, late_us=arg)
        elif kind == "drop":
            instant("DROP", t, tid, late_us=arg)
        elif kind == "gc":
            out.append(
                {
                    "name": "gc.collect",
                    "cat": "gc",
                    "ph": "X",
                    "ts": t - arg,
                    "dur": arg,
                    "pid": 1,
                    "tid": GC_TID,
                }
            )
    return {
        "traceEvents": out,
        "displayTimeUnit": "ms",
        "otherData": {"source": process, "events": len(events), "events_lost": lost},
    }
