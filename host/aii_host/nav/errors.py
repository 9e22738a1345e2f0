# SPDX-License-Identifier: MIT
"""Errors of aii_host.nav: one line for the CLI (an AIIError)."""

from ..core._errors import AIIError


class NavError(AIIError):
    """A scenario, fault list or board that cannot be used; the message says what to do."""
