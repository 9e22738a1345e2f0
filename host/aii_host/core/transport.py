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


def parse_port(port):
    """("tcp", host, number) for "tcp:HOST:PORT" (or "HOST:PORT" with a numeric port), else
    ("serial", device, None): a USB port or a simulated board's pseudo terminal."""
    if port.startswith("tcp:"):
        host, _, num = port[4:].rpartition(":")
        return "tcp", host or "127.0.0.1", _tcp_port(port, num)
    head, sep, num = port.rpartition(":")
    if sep and num.isdigit() and not port.startswith("/"):
        return "tcp", head or "127.0.0.1", _tcp_port(port, num)
    if not port:
        raise TransportError("no port given: a serial device, a pty or tcp:HOST:PORT")
    return "serial", port, None


def open_transport(port, baudrate=115200):
    """A Transport for `port` (parse_port). Names ("auto", "vboard:NAME") are resolved one
    room up, by aii_host.node.ports.open_transport (the public aii_host.transport's)."""
    from .transport_serial import SerialTransport
    from .transport_tcp import TcpTransport

    kind, where, num = parse_port(port)
    if kind == "tcp":
        return TcpTransport(where, num)
    return SerialTransport(where, baudrate)


def _tcp_port(port, num):
    if not (num.isascii() and num.isdigit() and 1 <= int(num) <= 65535):
        raise TransportError(
            f"{port!r}: expected tcp:HOST:PORT with PORT 1..65535, e.g. tcp:127.0.0.1:7001"
        )
    return int(num)
