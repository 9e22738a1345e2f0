# SPDX-License-Identifier: MIT
"""Public path kept for users of `aii_host.transport`: the transports live in
aii_host.core.transport (docs/architecture.md, re-exports)."""

from .core.transport import Transport, TransportError, open_transport, parse_port

__all__ = ["Transport", "TransportError", "open_transport", "parse_port"]
