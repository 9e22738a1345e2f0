# SPDX-License-Identifier: MIT
"""Fleet commands (filled in by their area)."""


def add_parsers(sub):
    """Adds this area's subcommands to the `aii` parser."""
