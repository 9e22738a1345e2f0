# SPDX-License-Identifier: MIT
"""Bounded ring of events (docs/protocol.md §5): numbered, kept until the host acks them.

While the host is offline (no request for `offline_after` heartbeats) events are only buffered;
when it is back the unacked ones are sent again. A full ring drops its oldest event and counts it.
The ring is one list allocated at start (number, kind, body per slot): an event costs its body.
"""


class Events:
    def __init__(self, capacity=32, offline_after=3):
        self.capacity = capacity
        self.offline_after = offline_after
        self.slots = [0, None, None] * capacity  # slot i: [3i] number, [3i+1] kind, [3i+2] body
        self.head = 0  # slot of the oldest event
        self.count = 0
        self.last = 0  # number of the newest event
        self.dropped = 0
        self.silent = 0  # heartbeats since the host last spoke
        self.offline = False

    def push(self, kind, body):
        """Buffer an event; returns its number."""
        self.last += 1
        cap = self.capacity
        if self.count >= cap:
            self.head = (self.head + 1) % cap
            self.count -= 1
            self.dropped += 1
        i = 3 * ((self.head + self.count) % cap)
        s = self.slots
        s[i], s[i + 1], s[i + 2] = self.last, kind, body
        self.count += 1
        return self.last

    def ack(self, n):
        """Forget the events numbered <= n."""
        s = self.slots
        while self.count and s[3 * self.head] <= n:
            i = 3 * self.head
            s[i + 1] = s[i + 2] = None  # the body's memory goes back to the heap
            self.head = (self.head + 1) % self.capacity
            self.count -= 1

    def since(self, n, limit=None):
        """The buffered events numbered > n, oldest first, at most `limit`: [n, kind, body]."""
        out = []
        s = self.slots
        for k in range(self.count):
            i = 3 * ((self.head + k) % self.capacity)
            if s[i] > n:
                if limit is not None and len(out) >= limit:
                    break
                out.append([s[i], s[i + 1], s[i + 2]])
        return out

    def heartbeat(self):
        """Count one heartbeat without an answer; True when that makes the host offline."""
        self.silent += 1
        if not self.offline and self.silent >= self.offline_after:
            self.offline = True
            return True
        return False

    def host_seen(self):
        """The host spoke; returns the events to send again if it was offline, else none."""
        self.silent = 0
        if self.offline:
            self.offline = False
            return self.since(0)
        return ()
