# SPDX-License-Identifier: MIT
"""The operator's view (docs/dashboard.md): `aii dashboard` serves a live page, Prometheus
metrics at /metrics, alert hooks and JSON-lines events, all read from the fleet database the
aggregator keeps (the same rows and verdict as `aii status`).

Rooms: `view` (one snapshot of the fleet from its database), `events` (what changed between two
snapshots), `alerts` (command and webhook sinks), `metrics` (the Prometheus collector),
`server` (HTTP: page, server-sent events, /metrics, the operator's one action), `tokens`
(operator tokens), `demo` (the three simulated nodes of `aii demo`), `cli` (the command).
"""
