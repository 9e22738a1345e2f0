# SPDX-License-Identifier: MIT
"""Public path kept for users of `aii_host.client`: the client lives in aii_host.core.client
(docs/architecture.md, re-exports)."""

from .core.client import NodeClient, NodeError, NodeTimeout, ProtocolError

__all__ = ["NodeClient", "NodeError", "NodeTimeout", "ProtocolError"]
