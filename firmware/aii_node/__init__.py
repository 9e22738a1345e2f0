# SPDX-License-Identifier: MIT
"""AII node application (docs/protocol.md)."""
