# SPDX-License-Identifier: MIT
"""Human console of the node (firmware/aii_node/console.py) on CPython."""

import nodekit
import pytest
from aii_node import console
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@pytest.fixture
def node(tmp_path):
    return nodekit.make_node(tmp_path)


def say(node, line):
    node.handle_line(line)
    return b"".join(node.out.take()).decode()


def test_help_lists_every_command(node):
    text = say(node, b"help")
    for name in console.COMMANDS:
        assert "\n  " + name in text


def test_ledger_table_and_transfer(node):
    assert "grid     Wh        1000.000" in say(node, b"ledger")
    assert say(node, b"transfer grid load Wh 1.5").startswith("ok: journal seq ")
    text = say(node, b"ledger")
    assert "grid     Wh        998.500" in text and "load     Wh        1.500" in text


@pytest.mark.parametrize(
    "line, hint",
    [
        (b"transfer grid load Wh", "usage: transfer SRC DST QTY AMOUNT"),
        (b"transfer grid nowhere Wh 1", "no such account"),
        (b"transfer grid load kg 1", "no such quantity"),
        (b"transfer grid load Wh abc", "error:"),
        (b"transfer grid load Wh 1e3", "error:"),
        (b"transfer grid load Wh 99999999999999999999", "error:"),
        (b"transfer grid tank Wh 1", "refused: wrong quantity"),
        (b"transfer load grid Wh 5", "refused: insufficient balance"),
        (b"transfer grid load Wh -1", "error:"),
        (b"transfer grid load Wh 0", "error:"),
        # More decimals than the quantity has: refused, never rounded (issue 12: 1.5 litres
        # on a 0-digit quantity moved 2).
        (b"transfer tank sink l 1.5", "amount 1.5: more decimals than the unit has (it has 0"),
        (b"transfer grid load Wh 1.0005", "amount 1.0005: more decimals than the unit has (it"),
        (b"transfer grid load Wh 0.0001", "more decimals than the unit has"),
        (b"fly", "unknown command 'fly' (type 'help')"),
        (b"config nokey", "no key 'nokey'"),
        (b"config node n2", "settable keys"),
        (b"config offline_after many", "offline_after must be an integer"),
        (b"\xff\xfe", "error: not text"),
    ],
)
def test_errors_explain_and_change_nothing(node, line, hint):
    before = node.ledger.digest()
    text = say(node, line)
    assert text.startswith("error:") and hint in text, text
    assert node.ledger.digest() == before


def test_trailing_zeros_are_exact(node):
    # "1.50000" is exactly 1.5: nothing to round, so it moves 1.500 Wh.
    assert say(node, b"transfer grid load Wh 1.50000").startswith("ok: journal seq ")
    assert "load     Wh        1.500" in say(node, b"ledger")


def test_ledger_holds_show_decimals_and_the_unit(node):
    node.move("hold", node.account_id("grid"), node.quantity_id("Wh"), 2500, txid=7)
    text = say(node, b"ledger")
    assert "7     grid     2.500 Wh  hold" in text, text


def test_config_set_persists(node, tmp_path):
    assert say(node, b"config offline_after 5") == "ok: offline_after 5\n"
    assert node.events.offline_after == 5
    assert "offline_after 5" in say(nodekit.make_node(tmp_path), b"config offline_after")


def test_console_writes_can_be_disabled(tmp_path):
    node = nodekit.make_node(tmp_path, console_writes=0)
    assert "disabled" in say(node, b"transfer grid load Wh 1")


def test_line_reader_bounds_and_markers():
    data = bytearray(b"a\r\nb\n" + b"z" * 5000 + b"\n@" + b"q" * 1023 + b"\nc\n")
    r = console.LineReader(lambda: bool(data), lambda: bytes([data.pop(0)]), per_call=64)
    lines = []
    for _ in range(1000):
        lines += r.poll()
        assert len(r.buf) < console.MAX_LINE
    assert lines == [b"a", b"b", console.LONG_TEXT, console.LONG_FRAME, b"c"]


def test_line_reader_keeps_the_longest_allowed_line():
    r = console.LineReader(lambda: False, None)
    assert r.feed(b"x" * (console.MAX_LINE - 1) + b"\n") == [b"x" * (console.MAX_LINE - 1)]
    assert r.feed(b"x" * console.MAX_LINE + b"\n") == [console.LONG_TEXT]


WORDS = st.sampled_from(
    [
        "help",
        "status",
        "tasks",
        "ledger",
        "transfer",
        "config",
        "grid",
        "load",
        "tank",
        "Wh",
        "l",
        "1.5",
        "-3",
        "x",
        "",
        "offline_after",
        "label",
        "1e9",
        "0x10",
        "\u00e9",
        "@",
    ]
)


@settings(
    max_examples=nodekit.FUZZ,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(WORDS, max_size=6) | st.binary(max_size=300).map(lambda b: b.decode("latin-1").split())
)
def test_fuzz_console_never_raises_nor_moves_a_balance_without_ok(node, words):
    line = " ".join(words).encode("utf-8", "replace").replace(b"\n", b" ")
    if line.startswith(b"reset"):
        line = b"x" + line
    before = node.ledger.digest()
    text = say(node, line)
    if text.startswith("ok: journal seq"):
        assert node.ledger.digest() != before
    else:
        assert node.ledger.digest() == before
    assert node.errors == 0, node.last_error


def test_budgets_the_scheduler_refuses_are_one_line(tmp_path, monkeypatch, capsys):
    """A config whose tasks admission refuses stops the node with one line that says what to
    do, never a traceback."""
    from aii_node import node as node_mod

    path = nodekit.write_config(tmp_path, heartbeat_ms=10, heartbeat_budget_us=11000)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(node_mod.console, "stdin_reader", lambda: None)  # pytest owns stdin
    node_mod.main(path)
    out = capsys.readouterr().out
    assert out.startswith("error: the scheduler refuses task heartbeat (period 10000 us, budget ")
    assert "tools/node_budgets.py" in out and out.count("\n") == 1
