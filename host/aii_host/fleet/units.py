# SPDX-License-Identifier: MIT
"""The units of a fleet's quantities as its nodes declare them (each node's format byte per
quantity name, from its ledger), kept in the fleet database so that every table shows exact
decimals with the unit: `aii status`, `aii aggregate`, `aii transfer --list` (docs/fleet.md §5).
The aggregator records them for every node it replicates, `aii transfer` for the source node of
each transfer; the node is the only authority on its units."""

import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS units (
    node TEXT, quantity TEXT, fmt INTEGER, PRIMARY KEY (node, quantity));
"""


def save(execute, node, formats):
    """Records `node`'s {quantity: format byte} with `execute` (the caller's db.execute, so the
    rows commit with the caller's transaction)."""
    for q, f in sorted(formats.items()):
        execute("INSERT OR REPLACE INTO units VALUES (?, ?, ?)", (node, q, int(f)))


def load(db):
    """{node: {quantity: format byte}} as stored; {} when nothing was stored yet."""
    out = {}
    try:
        rows = db.execute("SELECT node, quantity, fmt FROM units").fetchall()
    except sqlite3.OperationalError:
        return out  # a database made before units were kept
    for node, q, f in rows:
        out.setdefault(node, {})[q] = f
    return out


def merge(per_node):
    """({quantity: format byte}, {quantity: [nodes]}) from {node: {quantity: format byte}}: a
    quantity whose nodes disagree on its unit is left out of the first (its sums mix units and
    are shown raw) and named with its nodes in the second."""
    seen = {}
    for node, formats in per_node.items():
        for q, f in (formats or {}).items():
            seen.setdefault(q, {})[node] = f
    agreed, differ = {}, {}
    for q, by_node in seen.items():
        if len(set(by_node.values())) == 1:
            agreed[q] = next(iter(by_node.values()))
        else:
            differ[q] = sorted(by_node)
    return agreed, differ
