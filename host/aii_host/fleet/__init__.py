# SPDX-License-Identifier: MIT
"""The fleet: many AII nodes checked as one system (docs/fleet.md).

- `aggregate`: one selector loop keeping a connection per node (heartbeats, offline detection,
  reconnection, resynchronisation of each node's journal into a host replica);
- `verify`: epochs (consistent cuts keyed by journal seq) and the fleet balance equation;
- `coord`: two-phase transfers between nodes over their holds, with a durable SQLite log;
- `audit`: the hash-chained audit trail;
- `proxy`: a link proxy that injects byte faults, for tests and the soak run.
"""
