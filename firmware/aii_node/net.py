# SPDX-License-Identifier: MIT
"""The same console and protocol over TCP (docs/protocol.md §1): one client at a time, polled
from the console job without blocking. For boards with networking and the unix port; the
simulated board bridges its own TCP port to the serial line instead."""

import select
import socket

from .console import LineReader


class TcpLink:
    def __init__(self, port, host="127.0.0.1"):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(socket.getaddrinfo(host, port)[0][-1])
        s.listen(1)
        self.srv = s
        self.conn = None
        self.reader = LineReader(None, None)
        self.poll = select.poll()
        self.poll.register(s, select.POLLIN)

    def port(self):
        return self.srv.getsockname()[1] if hasattr(self.srv, "getsockname") else None

    def _ready(self):
        # Only one socket is registered at a time: the server, or the client being served.
        return bool(self.poll.poll(0))

    def lines(self):
        """Completed lines from the client (bytes or LineReader markers); accepts a client
        when there is none."""
        if self.conn is None:
            if not self._ready():
                return []
            self.conn = self.srv.accept()[0]
            self.poll.unregister(self.srv)  # one client at a time: the next one waits
            self.poll.register(self.conn, select.POLLIN)
            self.reader = LineReader(None, None)
            return []
        if not self._ready():
            return []
        data = self.conn.recv(256)
        if not data:
            self.close_client()
            return []
        return self.reader.feed(data)

    def send(self, data):
        if self.conn is None:
            return
        try:
            if hasattr(self.conn, "sendall"):
                self.conn.sendall(data)
            else:
                self.conn.write(data)
        except OSError:
            self.close_client()  # the client went away; the node carries on

    def close_client(self):
        if self.conn is not None:
            self.poll.unregister(self.conn)
            self.conn.close()
            self.conn = None
            self.poll.register(self.srv, select.POLLIN)

    def close(self):
        self.close_client()
        self.srv.close()
