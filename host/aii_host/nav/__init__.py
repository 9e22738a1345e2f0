# SPDX-License-Identifier: MIT
"""Navigation with a safety monitor (docs/navigation.md): a simulated world (world, sim,
robot, camera, perception), the planner, the node link (board) and the monitor's own firmware
code run in this process (fw). `aii navigate` and `aii navigate-bench` (cli, run). numpy and
the face detector are the edge extra (pip install 'aii-host[edge]'): the CLI imports them only
when a nav command runs."""
