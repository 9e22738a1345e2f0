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
    """A node under test: `write()`, `expect()`, `request()`, `console()`, `reset()`, `client`
    (an aii_host NodeClient, signing with the node's key), `log_path`, `port`."""

    def __init__(self, transport, port, key=None, log_path=None, board=None):
        from ..core.client import NodeClient

        self.port, self.board = port, board
        self.log_path = Path(log_path) if log_path else None
        self._log = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115
        self.buffer = bytearray()  # everything since the last match (expect() consumes it)
        self.t = TeeTransport(transport, self._take)
        self.client = NodeClient(self.t, key=key, timeout=3.0, retries=2)

    def _take(self, data):
        self.buffer += data
        if self._log is not None:
            self._log.write(data)
            self._log.flush()

    # -- the console ------------------------------------------------------------------------

    def write(self, data):
        """Sends `data` (str or bytes) as it is: add "\\n" to end a console line."""
        self.t.write(data.encode() if isinstance(data, str) else bytes(data))

    def expect(self, pattern, timeout=10.0):
        """Waits for `pattern` (bytes or str: a regular expression; or a compiled one) in what
        the node sent since the last match; returns the match (bytes groups) and drops the
        buffer up to its end. ExpectTimeout (an AssertionError) after `timeout` seconds, with
        the buffer's tail and the log's path."""
        if isinstance(pattern, str):
            pattern = pattern.encode()
        rx = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern)
        end = time.monotonic() + timeout
        while True:
            m = rx.search(self.buffer)
            if m:
                del self.buffer[: m.end()]
                return m
            left = end - time.monotonic()
            if left <= 0:
                tail = bytes(self.buffer[-800:]).decode("utf-8", "replace")
                raise ExpectTimeout(
                    f"aii_node.expect({rx.pattern!r}) timed out after {timeout:g} s on "
                    f"{self.port}; the last {len(tail)} chars since the last match:\n{tail}\n"
                    f"(whole log: {self.log_path})"
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
        """Waits until the node answers `hello`; returns it."""
        end = time.monotonic() + timeout
        last = None
        while time.monotonic() < end:
            try:
                return self.client.request("hello", timeout=1.0, retries=0)
            except Exception as e:  # noqa: BLE001 - booting: any failure means "not yet"
                last = e
        raise ExpectTimeout(
            f"aii_node on {self.port}: no answer to hello in {timeout:g} s ({last}); "
            f"log: {self.log_path}"
        )

    def reset(self, timeout=20.0):
        """Stops the app (Ctrl-C: it persists; a locked console is first unlocked with a signed
        `maintenance`), boots it again (Ctrl-D) and waits until it answers."""
        if self.client.key and self.client.request("status").get("lock") == "on":
            self.client.request("maintenance")
        self.buffer.clear()
        self.write(b"\x03")
        self.expect(rb">>> ", timeout)
        self.write(b"\x04")
        self.expect(READY, timeout)
        return self.wait_ready(timeout)

    def close(self):
        self.t.close()
        if self._log is not None:
            self._log.close()
            self._log = None


def open_dut(port, key=None, log_path=None, board=None):
    """A Dut over `port` (any port aii takes: a device, vboard:NAME, tcp:HOST:PORT, auto)."""
    from ..node.ports import open_transport

    return Dut(open_transport(port).open(), port, key, log_path, board)
