# SPDX-License-Identifier: MIT
"""The tests' broker: aii_host.sites.mosquitto (a Mosquitto of their own on a free loopback
port, persistence on), also what `aii demo --sites` and bench/sites_bench.py start."""

from aii_host.sites.mosquitto import Mosquitto  # noqa: F401
