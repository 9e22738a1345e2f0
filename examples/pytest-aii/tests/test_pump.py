# SPDX-License-Identifier: MIT
"""Tests of a pump node's firmware and configuration (node_config.json), written as a user of
AII writes them: the `aii_node` fixture comes from the aii pytest plugin (aii-host). Run

    pytest --aii-port vboard            # a fresh simulated board with node_config.json
    pytest --aii-port unix              # the same on the MicroPython unix port
    pytest --aii-port /dev/ttyACM0 --aii-key pump1.key   # the deployed board itself
"""

import re

import pytest
from aii_host.core.client import NodeError


def balances(node):
    return {name: bal for name, _, bal in node.request("ledger")["accounts"]}


def test_it_is_the_pump_and_says_so_on_its_console(aii_node):
    assert aii_node.request("hello")["node"] == "pump1"
    aii_node.write("ledger\n")
    aii_node.expect(re.compile(rb"well\s+l\s+\d+"))
    aii_node.expect("tank")


def test_the_pump_task_moves_water_and_nothing_else(aii_node):
    before = balances(aii_node)
    for _ in range(50):
        now = balances(aii_node)
        moved = now["tank"] - before["tank"]
        if moved >= 3:
            break
        aii_node.client.drain(0.1)
    assert moved >= 3
    assert now["well"] + now["tank"] == before["well"] + before["tank"]  # conserved, exactly


def test_a_transfer_needs_the_key(aii_node):
    key = aii_node.client.key
    aii_node.client.key = bytes(32)  # a wrong key
    try:
        with pytest.raises(NodeError, match="needs a valid mac"):
            aii_node.request(
                "transfer", {"src": "tank", "dst": "well", "quantity": "l", "amount": 1}
            )
    finally:
        aii_node.client.key = key
    before = balances(aii_node)
    aii_node.request("transfer", {"src": "well", "dst": "tank", "quantity": "l", "amount": 5})
    after = balances(aii_node)
    assert after["well"] + after["tank"] == before["well"] + before["tank"]


def test_balances_survive_a_reset(aii_node):
    aii_node.request("transfer", {"src": "well", "dst": "tank", "quantity": "l", "amount": 7})
    before = balances(aii_node)
    aii_node.reset()
    after = balances(aii_node)
    assert after["well"] + after["tank"] == before["well"] + before["tank"]
    assert after["tank"] >= before["tank"]
