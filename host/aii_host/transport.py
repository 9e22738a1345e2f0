# SPDX-License-Identifier: MIT
"""A byte stream to a node, whatever carries it (serial line, pseudo terminal, TCP).

Shaped like mpremote's transport.py: an abstract base and one error class; the concrete
transports convert their library's errors to TransportError once, at this boundary.
"""

from ._errors import AIIError


class TransportError(AIIError):
    """The link failed (port missing, closed, connection refused or reset)."""


class Transport:
    """Abstract: `write(data)`, `read(timeout)`, `close()`. Opening happens in `open()`,
    never in the constructor, so a Transport can be built, passed around and tested unopened."""

    name = "?"

    def open(self):
        raise NotImplementedError

    def write(self, data):
        """Writes all of `data` (bytes)."""
        raise NotImplementedError

    def read(self, timeout):
        """Returns the bytes available now, waiting at most `timeout` seconds for the first one;
        b"" when none came."""
        raise NotImplementedError

    def close(self):
        raise NotImplementedError

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc):
        self.close()


def open_transport(port, baudrate=115200):
    """A Transport for `port`: "tcp:HOST:PORT" (or "HOST:PORT" with a numeric port) is TCP,
    anything else a serial device (a USB port or a simulated board's pseudo terminal)."""
    from .transport_serial import SerialTransport
    from .transport_tcp import TcpTransport

    if port.startswith("tcp:"):
        host, _, num = port[4:].rpartition(":")
        return TcpTransport(host or "127.0.0.1", int(num))
    head, sep, num = port.rpartition(":")
    if sep and num.isdigit() and not port.startswith("/"):
        return TcpTransport(head or "127.0.0.1", int(num))
    return SerialTransport(port, baudrate)
