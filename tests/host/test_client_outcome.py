# SPDX-License-Identifier: MIT
"""No double effect through the host's NodeClient (issue 11, docs/client.md §3): an answer lost
while another key holder makes signed requests, a storage fault under the request, a counter
behind the node's. Every time the transfer moves its amount once, or the client says it cannot
tell; it never re-sends a request as a new one unless the node says that seq did not run it.
The node runs in-process (nodekit); its console job's housekeeping (probes) runs before each
line, as on a board."""

import durakit
import nodekit
import pytest
from aii_host.client import NodeClient, NodeError
from aii_host.core import frame as host

T, S = "tank", "sink"


class Link:
    """A line to an in-process node that can lose the next answer to a request of `kind`,
    running `meanwhile()` (another key holder's requests) before the retry."""

    def __init__(self, node):
        self.node = node
        self.buf = b""
        self.lose, self.meanwhile = None, None
        self.lose_request = None  # kind of a request lost on its way to the node

    def write(self, data):
        for line in bytes(data).split(b"\n"):
            if not line:
                continue
            if self.lose_request and b"|" + self.lose_request.encode() + b"|" in line:
                self.lose_request = None
                if self.meanwhile:
                    self.meanwhile()
                continue
            self.node.housekeeping()
            self.node.handle_line(line)
            out = b"".join(self.node.out.take())
            if self.lose and b"|" + self.lose.encode() + b"|" in line:
                self.lose = None  # it ran; its answer is lost on the way back
                if self.meanwhile:
                    self.meanwhile()
                continue
            self.buf += out

    def read(self, timeout):
        out, self.buf = self.buf, b""
        return out

    def close(self):
        pass


def _setup(tmp_path, **config):
    st = durakit.Stack(probe_ms=0, **config)
    node = st.node(tmp_path)
    a = NodeClient(Link(node), key=nodekit.KEY, timeout=0.05, retries=1, fault_wait=2.0)
    b = NodeClient(durakit.LocalTransport(node), key=nodekit.KEY, timeout=0.05, retries=0)
    return st, node, a, b


def _sink(node):
    return node.ledger.balance(node.ledger.account(S))


def _others(b, n):
    def run():
        for _ in range(n):
            b.request("inflow", {"account": T, "quantity": "l", "amount": 1})

    return run


def test_lost_answer_then_other_requests_is_answered_from_the_table(tmp_path):
    """The issue's reproduction, within the node's table (16 outcomes; firmware 0.1 kept 8
    and the client then sent the transfer again as a new one: it moved twice)."""
    _st, node, a, b = _setup(tmp_path)
    a.t.lose, a.t.meanwhile = "transfer", _others(b, 9)
    body = a.request("transfer", {"src": T, "dst": S, "quantity": "l", "amount": 10})
    assert set(body) == {"seq"}
    assert _sink(node) == 10


def test_lost_answer_past_the_table_is_never_sent_as_new(tmp_path):
    """More signed requests than the table holds came between: the node cannot say whether
    that seq ran, so the client says so instead of guessing; it moved once."""
    _st, node, a, b = _setup(tmp_path)
    a.t.lose, a.t.meanwhile = "transfer", _others(b, 20)
    with pytest.raises(NodeError, match="cannot tell whether seq") as e:
        a.request("transfer", {"src": T, "dst": S, "quantity": "l", "amount": 10})
    assert e.value.code == host.E_REPLAY
    assert _sink(node) == 10


def test_seq_taken_by_another_key_holder_is_sent_as_new(tmp_path):
    """Our frame was lost on its way; meanwhile another client took its seq. Our retry gets
    E_REPLAY; the node says that seq ran another request (another MAC), so ours never ran:
    it is sent once more under a new seq, and moves once."""
    _st, node, a, b = _setup(tmp_path)
    a.request("status")
    a.next_seq = node.session.last + 1
    a.t.lose_request, a.t.meanwhile = "transfer", _others(b, 1)
    got = a.request("transfer", {"src": T, "dst": S, "quantity": "l", "amount": 5})
    assert set(got) == {"seq"}
    assert _sink(node) == 5
    assert node.session.last == a.next_seq - 1  # the new seq, above the one b took


@pytest.mark.parametrize("where", ["journal", "session"])
def test_storage_fault_under_the_request_moves_it_once(tmp_path, where):
    """journal: the append fails, the change is undone, the client waits for the node to come
    back, finds the seq free and sends the same bytes again. session: the change is on
    storage but its answer is not; once back, the node says it ran, and the client returns
    that answer without sending anything again."""
    st, node, a, b = _setup(tmp_path)
    trace = st.ffs.trace
    st.ffs.trace = []
    body = {"src": T, "dst": S, "quantity": "l", "amount": 3}
    b.request("transfer", body)
    kinds = [(k, p.rsplit("/", 1)[1]) for k, p, _ in st.ffs.trace]
    st.ffs.trace = trace
    # The first write of the journal append, or of the session save after it.
    name = "journal.bin" if where == "journal" else "session.json.tmp"
    at = [i for i, k in enumerate(kinds) if k == ("open", name)][-1]
    st.ffs.plan = {"at": st.ffs.n + at, "do": "error", "errno": 5, "count": 1}
    sent = []
    real = a.t.write
    a.t.write = lambda data: (sent.append(bytes(data)), real(data))
    got = a.request("transfer", body)
    assert got["seq"] == node.ledger_seq()
    assert _sink(node) == 6
    transfers = [x for x in sent if b"|transfer|" in x]
    assert len(transfers) == (2 if where == "journal" else 1)
    assert len(set(transfers)) == 1  # the same bytes, never a new seq
