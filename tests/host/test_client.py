# SPDX-License-Identifier: MIT
"""NodeClient over a scripted transport: retries resend the same bytes, damaged-frame answers
trigger a resend, timeouts explain themselves, E_REPLAY teaches the seq, events are queued."""

import pytest
from aii_host import frame as fr
from aii_host.client import NodeClient, NodeError, NodeTimeout
from aii_host.transport import Transport

KEY = bytes(range(32))


class Scripted(Transport):
    """Answers each write with the next scripted reply: a function of the request Frame
    returning bytes (b"" = say nothing)."""

    def __init__(self, *replies):
        self.replies = list(replies)
        self.writes = []
        self.pending = b""

    def write(self, data):
        self.writes.append(data)
        reply = self.replies.pop(0) if self.replies else (lambda f: b"")
        self.pending += reply(fr.decode(data))

    def read(self, timeout):
        out, self.pending = self.pending, b""
        return out

    def close(self):
        pass


def ok(body):
    return lambda f: fr.encode(f.seq, "ok", body)


def err(code, msg="x", seq=None):
    return lambda f: fr.encode(f.seq if seq is None else seq, "err", {"code": code, "msg": msg})


def silent(f):
    return b""


def test_timeout_resends_the_same_bytes_then_succeeds():
    t = Scripted(silent, ok({"seq": 7}))
    c = NodeClient(t, key=KEY, timeout=0.05, retries=2, node="n1")
    c.next_seq = 100
    assert c.transfer("a", "b", "Wh", 5) == {"seq": 7}
    assert len(t.writes) == 2 and t.writes[0] == t.writes[1]
    assert fr.verify(fr.decode(t.writes[0]), KEY, "n1")
    assert not fr.verify(fr.decode(t.writes[0]), KEY, "n2")  # bound to its node


def test_damaged_frame_answer_triggers_a_resend():
    t = Scripted(err(fr.E_CRC), err(fr.E_FRAME, seq=0), ok({"proto": 1}))
    c = NodeClient(t, timeout=0.05, retries=2)
    assert c.hello() == {"proto": 1}
    assert len(set(t.writes)) == 1 and len(t.writes) == 3


def test_a_seq_0_refusal_on_the_last_try_does_not_end_the_wait():
    # The node refuses an earlier damaged line (seq 0: unreadable) just before it answers
    # ours; on the last try that refusal must not be taken for the answer to our frame.
    late = err(fr.E_FRAME, msg="no crc", seq=0)
    t = Scripted(lambda f: late(f) + ok({"proto": 1})(f))
    c = NodeClient(t, timeout=0.05, retries=0)
    assert c.hello() == {"proto": 1}
    t = Scripted(silent, lambda f: late(f) + ok({"proto": 1})(f))
    c = NodeClient(t, timeout=0.05, retries=1)
    assert c.hello() == {"proto": 1}
    assert len(t.writes) == 2


def test_timeout_fails_with_what_the_line_carried():
    t = Scripted(lambda f: b"some console noise\n", silent)
    c = NodeClient(t, timeout=0.05, retries=1)
    with pytest.raises(NodeTimeout) as e:
        c.hello()
    assert "2 tries" in str(e.value) and "some console noise" in str(e.value)


def test_replay_error_teaches_the_node_seq_once():
    t = Scripted(ok({"auth_seq": 0}), err(fr.E_REPLAY, "seq must be above 41"), ok({"seq": 3}))
    c = NodeClient(t, key=KEY, timeout=0.05, node="n1")
    assert c.transfer("a", "b", "Wh", 1) == {"seq": 3}
    assert [fr.decode(w).seq for w in t.writes[1:]] == [1, 42]
    assert c.next_seq == 43


def test_errors_become_node_error_and_events_are_queued():
    ev = fr.encode(5, "ev", {"kind": "heartbeat"})
    t = Scripted(lambda f: ev + err(fr.E_LEDGER, "insufficient balance")(f))
    c = NodeClient(t, key=KEY, timeout=0.05, retries=0, node="n1")
    c.next_seq = 1
    with pytest.raises(NodeError) as e:
        c.transfer("a", "b", "Wh", 10**9)
    assert (e.value.code, e.value.name, e.value.msg) == (9, "E_LEDGER", "insufficient balance")
    assert [f.body["kind"] for f in c.events] == ["heartbeat"]


def test_a_client_without_the_node_id_learns_it_from_hello_first():
    # A MAC is bound to the node id (docs/protocol.md section 3): the first signed request of
    # a client given none asks the node's `hello` for it.
    t = Scripted(ok({"proto": 1, "node": "n7"}), ok({"seq": 9}))
    c = NodeClient(t, key=KEY, timeout=0.05, retries=0)
    c.next_seq = 5
    assert c.transfer("a", "b", "Wh", 1) == {"seq": 9}
    assert [fr.decode(w).kind for w in t.writes] == ["hello", "transfer"]
    assert fr.verify(fr.decode(t.writes[1]), KEY, "n7") and c.node == "n7"


def test_signed_requests_need_a_key():
    c = NodeClient(Scripted(), timeout=0.05)
    with pytest.raises(Exception, match="needs the node key"):
        c.commit_tx(1)


def test_another_protocol_version_is_named():
    """A host meeting a node of another protocol says which side to update (issue 11)."""
    from aii_host.client import ProtocolError

    newer = {"proto": fr.VERSION + 1, "node": "n1", "fw": "0" * 32, "cfg": "0" * 32}
    c = NodeClient(Scripted(ok(newer)), timeout=0.05, retries=0)
    with pytest.raises(ProtocolError, match="update the aii host tools"):
        c.hello()
    older = dict(newer, proto=fr.VERSION - 1)
    c = NodeClient(Scripted(ok(older)), timeout=0.05, retries=0)
    with pytest.raises(ProtocolError, match="update the node's firmware"):
        c.hello()
    refused = err(fr.E_VERSION, "unsupported version (node speaks 2)")
    c = NodeClient(Scripted(refused), timeout=0.05, retries=0)
    with pytest.raises(ProtocolError, match="node speaks 2"):
        c.status()
