# SPDX-License-Identifier: MIT
"""Testing your own firmware against an AII node: the `aii_node` pytest fixture (plugin.py,
registered through the `pytest11` entry point, inert unless `--aii-port` is given) and the
device-under-test object behind it, in the spirit of pytest-embedded's `dut`.

    def test_ledger(aii_node):
        aii_node.write("ledger\\n")
        aii_node.expect(r"grid\\s+Wh\\s+1000\\.000")
        assert aii_node.request("hello")["node"] == "demo1"

Every byte the node sends, whoever reads it (expect() or a request), goes to one buffer that
expect() searches and to a log file; a timeout fails with the buffer's tail and the log's path.
docs/testing.md.
"""

import re
import time
from pathlib import Path

from ..core.transport import Transport

READY = re.compile(rb"aii node \S+ ready \(proto")


class ExpectTimeout(AssertionError):
    """expect() saw no match in time: says what it waited for, what arrived, and the log."""


class TeeTransport(Transport):
    """Wraps an open transport: what is read is also appended to `sink(data)` (the buffer and
    the log), so bytes a NodeClient reads are still there for expect()."""

    def __init__(self, inner, sink):
        self.inner, self.sink, self.name = inner, sink, getattr(inner, "name", "?")

    def open(self):
        return self

    def write(self, data):
        self.inner.write(data)

    def read(self, timeout):
        data = self.inner.read(timeout)
        if data:
            self.sink(data)
        return data

    def close(self):
        self.inner.close()


class Dut:
    """A node under test: `write()`, `expect()`, `request()`, `console()`, `reset()`,
    `hard_reset()`, `client` (an aii_host NodeClient, signing with the node's key), `log_path`,
    `port`, `name`; `board` when the plugin started it (targets.Board)."""

    def __init__(self, transport, port, key=None, log_path=None, board=None):
        from ..core.client import NodeClient

        self.port, self.board = port, board
        self.name = board.name if board is not None else port
        # What starts the app at the REPL, and whether files survive a hard reset.
        self.boot = board.boot if board is not None else b"\x04"
        self.storage = board.storage if board is not None else True
        self.owns_board = False  # close() stops the board too (targets.start)
        self.log_path = Path(log_path) if log_path else None
        self._log = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115
        self.buffer = bytearray()  # everything since the last match (expect() consumes it)
        self.before = b""  # what came before the last match, as pexpect's `before`
        self.t = TeeTransport(transport, self._take)
        self.client = NodeClient(self.t, key=key, timeout=3.0, retries=2)

    @property
    def key(self):
        return self.client.key

    @property
    def node_id(self):
        """The node's id: signatures are bound to it (docs/protocol.md section 3)."""
        if self.client.node is None:
            self.client.node = self.client.hello()["node"]
        return self.client.node

    def _take(self, data):
        self.buffer += data
        if self._log is not None:
            self._log.write(data)
            self._log.flush()

    def _where(self):
        logs = [str(p) for p in (self.log_path, getattr(self.board, "log", None)) if p]
        return ", ".join(logs) or "not logged"

    # -- the console ------------------------------------------------------------------------

    def write(self, data):
        """Sends `data` (str or bytes) as it is: add "\\n" to end a console line."""
        self.t.write(data.encode() if isinstance(data, str) else bytes(data))

    def expect(self, pattern, timeout=10.0):
        """Waits for `pattern` (bytes or str: a regular expression; or a compiled one) in what
        the node sent since the last match; returns the match (bytes groups), keeps what came
        before it in `before` and drops the buffer up to its end. ExpectTimeout (an
        AssertionError) after `timeout` seconds, with the buffer's tail and the log's path."""
        if isinstance(pattern, str):
            pattern = pattern.encode()
        rx = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern)
        end = time.monotonic() + timeout
        while True:
            # On a copy: the match's groups must outlive the buffer's trimming.
            m = rx.search(bytes(self.buffer))
            if m:
                self.before = m.string[: m.start()]
                del self.buffer[: m.end()]
                return m
            left = end - time.monotonic()
            if left <= 0:
                tail = bytes(self.buffer[-800:]).decode("utf-8", "replace")
                raise ExpectTimeout(
                    f"aii_node.expect({rx.pattern!r}) timed out after {timeout:g} s on "
                    f"{self.name}; the last {len(tail)} chars since the last match:\n{tail}\n"
                    f"(whole log: {self._where()})"
                )
            self.t.read(min(left, 0.1))

    def console(self, line, quiet=0.3, timeout=5.0):
        """Sends one console line, returns the text lines the node printed (frames left out)."""
        return self.client.console(line, quiet, timeout)

    # -- the node protocol ------------------------------------------------------------------

    def request(self, kind, body=None, auth=None, timeout=None):
        """One request of the node protocol (docs/protocol.md §4); the ok body, or NodeError.
        Requests that change state are signed with the node's key."""
        return self.client.request(kind, body, auth=auth, timeout=timeout)

    def wait_ready(self, timeout=20.0):
        """Waits until the node answers `hello` (it may have booted before the port was
        opened); returns it."""
        end = time.monotonic() + timeout
        last = None
        while time.monotonic() < end:
            try:
                return self.client.request("hello", timeout=1.0, retries=0)
            except Exception as e:  # noqa: BLE001 - booting: any failure means "not yet"
                last = e
        raise ExpectTimeout(
            f"aii_node on {self.name}: no answer to hello in {timeout:g} s ({last}); "
            f"log: {self._where()}"
        )

    def unlock(self):
        """A locked console (the default) takes Ctrl-C and `reset` only after a signed
        `maintenance` request, as `aii deploy` sends it (docs/protocol.md section 9)."""
        if self.client.key and self.client.request("status").get("lock") == "on":
            lock = self.client.request("maintenance")["lock"]
            assert lock == "maintenance", f"{self.name}: maintenance answered lock {lock!r}"

    def reset(self, timeout=20.0):
        """Soft reset: stops the app (Ctrl-C, after unlock(): it persists and stops at the
        REPL), boots it again (Ctrl-D: a soft reboot runs main.py) and waits until it answers.
        Returns what the node printed up to the REPL's prompt."""
        self.unlock()
        self.buffer.clear()
        self.write(b"\x03")
        self.expect(rb">>> ", timeout)
        out = self.before
        self.write(self.boot)
        self.expect(READY, timeout)
        self.wait_ready(timeout)
        return out

    def hard_reset(self, timeout=20.0):
        """The node's console `reset` (after unlock()): it persists ("ok: persisted"), resets
        the machine and boots again; waits until it answers. Only where files survive a reset
        (`storage`: not qemu, whose machine.reset() ends the emulator)."""
        self.unlock()
        self.client.drain(0.05)
        self.buffer.clear()
        self.write(b"reset\n")
        self.expect(rb"ok: persisted", timeout)
        self.expect(READY, timeout)
        return self.wait_ready(timeout)

    def close(self):
        self.t.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.owns_board:
            self.owns_board = False
            self.board.stop()


def open_dut(port, key=None, log_path=None, board=None):
    """A Dut over `port` (any port aii takes: a device, vboard:NAME, tcp:HOST:PORT, auto)."""
    from ..node.ports import open_transport

    return Dut(open_transport(port).open(), port, key, log_path, board)
