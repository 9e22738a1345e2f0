# SPDX-License-Identifier: MIT
"""The same console and protocol over TCP (docs/protocol.md §1), polled from the console job
without blocking. For boards with networking and the unix port; the simulated board bridges its
own TCP port to the serial line instead (with the same rules).

A shared network is not the serial line: up to `max_clients` clients at once (config
`tcp_max_clients`, default 4; one more is told so and closed), a new one never drops another,
a client silent for `idle_s` seconds (`tcp_idle_s`, default 60) is closed, and every client is
remote: its console reads only, its Ctrl-C stops nothing, signed requests work as on the line.
Answers go to the client that asked; events to every client.
"""

import select
import socket

from .clock import ticks_diff, ticks_ms
from .console import LineReader

MAX_CLIENTS = 4
IDLE_S = 60


def _is(obj, sock):
    # poll() gives the object on MicroPython, its file descriptor on CPython.
    return obj is sock or (type(obj) is int and obj == sock.fileno())


class Client:
    def __init__(self, conn, link):
        self.conn = conn
        self.reader = LineReader(None, None)
        self.seen = ticks_ms()
        self.link = link

    def send(self, data):
        try:
            if hasattr(self.conn, "sendall"):
                self.conn.sendall(data)
            else:
                self.conn.write(data)
        except OSError:
            self.link.drop(self)  # the client went away; the node carries on


class TcpLink:
    def __init__(self, port, host="127.0.0.1", max_clients=MAX_CLIENTS, idle_s=IDLE_S):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(socket.getaddrinfo(host, port)[0][-1])
        s.listen(2)
        self.srv = s
        self.max_clients = max_clients
        self.idle_ms = int(idle_s * 1000)
        self.clients = []
        self.poll = select.poll()
        self.poll.register(s, select.POLLIN)

    def port(self):
        return self.srv.getsockname()[1] if hasattr(self.srv, "getsockname") else None

    def lines(self):
        """[(line, client)]: completed lines (bytes or LineReader markers) with the client
        that sent them; accepts new clients and closes idle ones."""
        out = []
        now = ticks_ms()
        for obj, ev in self.poll.poll(0):
            if _is(obj, self.srv):
                self._accept(now)
                continue
            c = self._client(obj)
            if c is None:
                continue
            try:
                data = c.conn.recv(256) if not ev & (select.POLLHUP | select.POLLERR) else b""
            except OSError:
                data = b""
            if not data:
                self.drop(c)
                continue
            c.seen = now
            for line in c.reader.feed(data):
                out.append((line, c))
        for c in list(self.clients):
            if ticks_diff(now, c.seen) > self.idle_ms:
                c.send(b"error: idle for %d s: closed\n" % (self.idle_ms // 1000))
                self.drop(c)
        return out

    def _client(self, obj):
        for c in self.clients:
            if _is(obj, c.conn):
                return c
        return None

    def _accept(self, now):
        sock = self.srv.accept()[0]
        if len(self.clients) >= self.max_clients:
            # Told and closed: an attacker's connections cannot push a host's out.
            try:
                sock.send(b"error: busy: %d clients already (tcp_max_clients)\n" % self.max_clients)
            except OSError:
                pass
            sock.close()
            return
        c = Client(sock, self)
        c.seen = now
        self.clients.append(c)
        self.poll.register(sock, select.POLLIN)

    def send(self, data):
        """To every client (events)."""
        for c in list(self.clients):
            c.send(data)

    def drop(self, c):
        if c in self.clients:
            self.clients.remove(c)
            try:
                self.poll.unregister(c.conn)
            except (OSError, ValueError, KeyError):
                pass
            c.conn.close()

    def close_client(self):
        for c in list(self.clients):
            self.drop(c)

    def close(self):
        self.close_client()
        self.srv.close()
