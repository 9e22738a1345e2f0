# SPDX-License-Identifier: MIT
"""The node room: one node's tooling. Simulated boards (vboard), the qemu boards (qemu), deploy
and the console, node status, keys and settings, and a node's repair from a copy (repair)."""
