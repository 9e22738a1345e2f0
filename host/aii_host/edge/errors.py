# SPDX-License-Identifier: MIT
"""Errors of the edge subpackage, in the one aii_host hierarchy (the CLI prints them once)."""

from ..core._errors import AIIError, AIIRuntimeError, AIIValueError


class EdgeError(AIIError):
    """Base of errors raised by aii_host.edge."""


class RuntimeMissingError(EdgeError, AIIRuntimeError):
    """Neither ai-edge-litert nor tflite-runtime is installed."""


class ModelError(EdgeError, AIIValueError):
    """A model file is missing, unreadable or not what the caller expects."""
