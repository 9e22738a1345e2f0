# SPDX-License-Identifier: MIT
"""The scheduler's timeline and its analysis, for people (docs/scheduler.md, section 8).

- `chrome(events, names)`: a trace of Scheduler.trace() events as Chrome/Perfetto trace JSON
  (a `traceEvents` list: open it in https://ui.perfetto.dev or chrome://tracing).
- `jobs(events)`: the jobs of a trace, with their release, deadline, start, finish.
- `plot(events, names, path)`: a Gantt chart (chart.py, matplotlib) with releases, deadlines
  and misses.
- `report(analysis, names, costs)`: the schedulability report, per task: the response bound
  against the deadline, the slack, what blocks it; `report_text()` lays it out for a terminal.
- `demo`: the task set of `aii sched-demo`, on the host or on a MicroPython board.
"""

from .report import blocker_name, report, report_text
from .trace import chrome, jobs

__all__ = ["blocker_name", "chrome", "jobs", "plot", "report", "report_text"]


def plot(*args, **kwargs):
    """timeline.chart.gantt() (a module named plot would replace this function once imported);
    matplotlib is imported only when a chart is drawn."""
    from .chart import gantt

    return gantt(*args, **kwargs)
