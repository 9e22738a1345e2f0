# SPDX-License-Identifier: MIT
"""Transport over TCP: the same byte stream as the serial line (boards with networking, the
unix port, simulated boards listening on a loopback port)."""

import socket

from .transport import Transport, TransportError


class TcpTransport(Transport):
    def __init__(self, host, port):
        self.host, self.port = host, port
        self.name = f"tcp:{host}:{port}"
        self._sock = None

    def open(self):
        try:
            self._sock = socket.create_connection((self.host, self.port), timeout=5)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as e:
            raise TransportError(f"cannot connect to {self.name}: {e}") from None
        return self

    def write(self, data):
        try:
            self._sock.sendall(data)
        except OSError as e:
            raise TransportError(f"send to {self.name} failed: {e}") from None

    def read(self, timeout):
        try:
            self._sock.settimeout(timeout)
            data = self._sock.recv(4096)
        except TimeoutError:
            return b""
        except OSError as e:
            raise TransportError(f"receive from {self.name} failed: {e}") from None
        if not data:
            raise TransportError(f"{self.name} closed the connection")
        return data

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None
