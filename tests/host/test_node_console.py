# SPDX-License-Identifier: MIT
"""Human console of the node (firmware/aii_node/console.py) on CPython. Most tests deploy a
config with `console_writes` on (a transfer needs it); the attacks on the console run on the
default config."""

import nodekit
import pytest
from aii_node import console
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@pytest.fixture
def node(tmp_path):
    return nodekit.make_node(tmp_path, console_writes=1)


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
        (b"config node n2", "the console does not change settings: send a signed config_set"),
        (b"config offline_after 5", "the console does not change settings"),
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


def test_signed_config_set_persists(node, tmp_path):
    body = {"key": "offline_after", "value": 5}
    assert nodekit.answer(node, nodekit.request(1, "config_set", body))[-1].kind == "ok"
    assert node.events.offline_after == 5
    assert "offline_after 5" in say(nodekit.make_node(tmp_path), b"config offline_after")


def test_console_without_the_key_changes_no_setting_and_no_balance(tmp_path):
    # The attack of issue 15: turn console writes back on from the console, then transfer.
    node = nodekit.make_node(tmp_path)  # the default config: console writes off
    before, cfg = node.ledger.digest(), dict(node.cfg)
    for line in (b"config console_writes 1", b"config tcp_host 0.0.0.0", b"config key 00"):
        assert say(node, line).startswith("error: the console does not change settings")
    assert "console transfers are off" in say(node, b"transfer grid load Wh 1")
    assert node.cfg == cfg and node.ledger.digest() == before
    assert nodekit.make_node(tmp_path).console_writes() is False  # nothing was written


def test_network_clients_change_nothing_even_with_console_writes_on(node):
    # A line from a network client (a simulated board's bridge tags it, net.py's clients are
    # remote): read-only, whatever the config allows the serial line.
    before = node.ledger.digest()
    for line in (b"transfer grid load Wh 1", b"reset", b"config console_writes 0"):
        text = say(node, console.REMOTE + line)
        assert text.startswith("error:"), text
    assert not node.reset_requested and node.ledger.digest() == before
    assert "grid     Wh        1000.000" in say(node, console.REMOTE + b"ledger")


def test_a_console_transfer_carries_its_origin(node):
    from aii_node import _record as R

    assert say(node, b"transfer grid load Wh 1").startswith("ok: journal seq ")
    rec = node.store.read_journal()[-R.REC_SIZE :]
    assert rec[R.REC_OP] == R.OP_TRANSFER and rec[R.REC_ORIGIN] == R.ORIGIN_CONSOLE


def reads(data):
    """A stream's readinto over bytearray `data`: one byte into a 1-byte buffer."""

    def readinto(buf):
        buf[0] = data.pop(0)
        return 1

    return readinto


def test_line_reader_bounds_and_markers():
    data = bytearray(b"a\r\nb\n" + b"z" * 5000 + b"\n@" + b"q" * 1023 + b"\nc\n")
    r = console.LineReader(lambda: bool(data), reads(data), per_call=64)
    buf = r.buf
    lines = []
    for _ in range(1000):
        lines += r.poll()
        assert r.n < console.MAX_LINE and r.buf is buf  # one buffer, never grown
    assert lines == [b"a", b"b", console.LONG_TEXT, console.LONG_FRAME, b"c"]
    assert len(buf) == console.MAX_LINE - 1 + len(console.REMOTE)


def test_line_reader_waits_for_the_rest_of_a_burst_not_for_a_pause():
    # A UART that hands over one byte at a time (qemu's): every other byte is "not ready yet"
    # when asked at once, but arrives within the short wait.
    data, handed = bytearray(b"hello\nworld"), [True]
    waits = []

    def readinto(buf):
        handed[0] = False  # the next byte comes a moment later
        buf[0] = data.pop(0)
        return 1

    def wait(ms):
        waits.append(ms)
        handed[0] = True
        return bool(data)

    r = console.LineReader(lambda: bool(data) and handed[0], readinto, wait=wait)
    # One call reads the whole line, waiting for each late byte.
    assert r.poll() == [b"hello"] and waits == [console.GAP_MS] * 5
    # Between lines (nothing begun in this call) a reader never waits.
    waits.clear()
    assert r.poll() == [] and waits == []
    # The next burst: read as it comes; the sender's pause costs one wait, not one per job.
    handed[0] = True
    assert r.poll() == [] and r.pending() == b"world" and not data and len(waits) == 5


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
