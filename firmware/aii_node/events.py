# SPDX-License-Identifier: MIT
"""Bounded ring of events (docs/protocol.md §5): numbered, kept until the host acks them.

While the host is offline (no request for `offline_after` heartbeats) events are only buffered;
when it is back the unacked ones are sent again. A full ring drops its oldest event and counts it.
"""


class Events:
    def __init__(self, capacity=32, offline_after=3):
        self.capacity = capacity
        self.offline_after = offline_after
        self.ring = []  # [n, kind, body-dict], oldest first
        self.last = 0  # number of the newest event
        self.dropped = 0
        self.silent = 0  # heartbeats since the host last spoke
        self.offline = False

    def push(self, kind, body):
        """Buffer an event; returns its number."""
        self.last += 1
        if len(self.ring) >= self.capacity:
            self.ring.pop(0)
            self.dropped += 1
        self.ring.append([self.last, kind, body])
        return self.last

    def ack(self, n):
        """Forget the events numbered <= n."""
        while self.ring and self.ring[0][0] <= n:
            self.ring.pop(0)

    def since(self, n):
        return [e for e in self.ring if e[0] > n]

    def heartbeat(self):
        """Count one heartbeat without an answer; True when that makes the host offline."""
        self.silent += 1
        if not self.offline and self.silent >= self.offline_after:
            self.offline = True
            return True
        return False

    def host_seen(self):
        """The host spoke; returns the events to send again if it was offline, else []."""
        self.silent = 0
        if self.offline:
            self.offline = False
            return list(self.ring)
        return []
