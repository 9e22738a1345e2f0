# SPDX-License-Identifier: MIT
"""Registers the fleet commands with the `aii` parser; each area owns its own module."""


def add_parsers(sub):
    from . import cli_agg, cli_repair, cli_tx

    cli_agg.add_parsers(sub)
    cli_tx.add_parsers(sub)
    cli_repair.add_parsers(sub)
