# SPDX-License-Identifier: MIT
"""Navigation safety (docs/navigation.md): `monitor` (the integer safety monitor, no I/O) and
`link` (the monitor as a critical task of the aii_node node, its nav_* requests and drive
output). The node attaches it when its configuration has a "nav" section."""
