# SPDX-License-Identifier: MIT
"""The core room: the firmware's C core through cffi (_aii: scheduler, ledger, particle kernel),
its error hierarchy, the wire format (frame, _record), the node client and its transports, keys
and whole-file writes. Everything else in aii_host builds on this room; it imports no other."""
