# SPDX-License-Identifier: MIT
"""Non-blocking byte links for the aggregator's selector loop: a serial port (or a simulated
board's pty) through pyserial's file descriptor, or a TCP connection.

The blocking Transport classes (aii_host.transport*) suit one tool talking to one node; a loop
serving hundreds of nodes must never wait on one, so these expose `fileno()` and read/write
only what is ready. Errors become LinkError (a TransportError) here, once.
"""

import errno
import os
import socket

from ..core import transport
from ..core.transport import TransportError


class LinkError(TransportError):
    """The link failed or closed."""


def parse_port(port):
    """("tcp", host, port) or ("serial", device, None), as aii_host.transport.open_transport;
    "vboard:NAME|DIR" names a simulated board's current pty (node/ports.py)."""
    from ..node.ports import resolve_port

    try:
        return transport.parse_port(resolve_port(port))
    except TransportError as e:
        raise LinkError(str(e)) from None


class Link:
    """One open connection. `connecting` is True while a TCP connect is under way (wait for
    writable, then call `finish_connect()`)."""

    def __init__(self, port, baudrate=115200):
        self.port = port
        self.kind, self.host, self.num = None, None, None
        self.baudrate = baudrate
        self.connecting = False
        self._ser = None
        self._sock = None
        self._fd = None
        self.out = bytearray()  # bytes waiting for the link to accept them

    def open(self):
        self.kind, self.host, self.num = parse_port(self.port)
        if self.kind == "tcp":
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            err = s.connect_ex((self.host, self.num))
            if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
                s.close()
                raise LinkError(f"cannot connect to {self.port}: {os.strerror(err)}")
            self._sock, self._fd = s, s.fileno()
            self.connecting = err != 0
        else:
            import serial

            try:
                self._ser = serial.Serial(self.host, self.baudrate, timeout=0, exclusive=True)
            except (serial.SerialException, OSError) as e:
                raise LinkError(f"cannot open {self.host}: {e}") from None
            self._fd = self._ser.fileno()
            os.set_blocking(self._fd, False)
        return self

    def finish_connect(self):
        err = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise LinkError(f"cannot connect to {self.port}: {os.strerror(err)}")
        self.connecting = False

    def fileno(self):
        return self._fd

    def recv(self):
        """The bytes available now (b"" when none); LinkError when the link is gone."""
        try:
            if self._sock is not None:
                data = self._sock.recv(65536)
                if not data:
                    raise LinkError(f"{self.port} closed the connection")
                return data
            return os.read(self._fd, 65536)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError as e:
            # A pty whose other side closed reads EIO: the board is gone.
            raise LinkError(f"read from {self.port} failed: {e.strerror or e}") from None

    def send(self, data=b""):
        """Queues `data` and writes what the link takes now; True when all is written."""
        self.out += data
        if self.connecting or not self.out:
            return not self.out
        try:
            if self._sock is not None:
                n = self._sock.send(self.out)
            else:
                n = os.write(self._fd, self.out)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError as e:
            raise LinkError(f"write to {self.port} failed: {e.strerror or e}") from None
        del self.out[:n]
        return not self.out

    def close(self):
        if self._sock is not None:
            self._sock.close()
        if self._ser is not None:
            try:
                self._ser.close()
            except OSError:
                pass  # the device vanished under us; nothing left to release
        self._sock = self._ser = self._fd = None
        self.out.clear()
