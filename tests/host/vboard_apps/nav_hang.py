# SPDX-License-Identifier: MIT
# For tests/host/test_nav_node.py: the node app, whose monitor task hangs for 2 s on its 20th
# job when a file "hang" is in the board's folder (removed first, so the next boot runs
# normally): the critical task misses, the watchdog is no longer fed and resets the board.
import os
import time

from aii_nav import monitor
from aii_node import node

_step = monitor.Monitor.step
_jobs = [0]


def step(self, now):
    _jobs[0] += 1
    if _jobs[0] == 20 and "hang" in os.listdir():
        os.remove("hang")
        time.sleep(2)
    return _step(self, now)


monitor.Monitor.step = step
node.main()
