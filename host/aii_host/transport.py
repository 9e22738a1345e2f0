# SPDX-License-Identifier: MIT
"""Public path kept for users of `aii_host.transport`: the transports live in
aii_host.core.transport (docs/architecture.md, re-exports); open_transport also takes the
port names "auto" and "vboard:NAME" (aii_host.node.ports)."""

from .core.transport import Transport, TransportError, parse_port
from .node.ports import open_transport

__all__ = ["Transport", "TransportError", "open_transport", "parse_port"]
