# SPDX-License-Identifier: MIT
"""The node's console and protocol over TCP (firmware/aii_node/net.py) on a loopback port."""

import socket

import nodekit
from aii_host import frame as host


def test_same_protocol_over_tcp(tmp_path):
    node = nodekit.make_node(tmp_path, tcp_port=0)
    t = nodekit.run_in_thread(node, 3)
    try:
        port = node.tcp.port()
        move = {"src": "tank", "dst": "sink", "quantity": "l", "amount": 7}
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            f = c.makefile("rb")
            c.sendall(b"ledger\n" + nodekit.request(1, "transfer", move) * 2)
            got, answers = [], []
            while len(answers) < 2:
                line = f.readline()
                assert line, b"".join(got)
                got.append(line)
                if line.startswith(b"@"):
                    fr = host.decode(line)
                    if fr.kind != "ev":
                        answers.append(fr)
            text = b"".join(got).decode()
            assert "grid     Wh" in text  # the human table came back on the socket
            assert answers[0].kind == "ok" and answers[1].body == answers[0].body
            c.sendall(b"@" + b"x" * 2000 + b"\n")
            while True:
                fr = host.decode(f.readline())
                if fr.kind == "err":
                    break
            assert (fr.seq, fr.body["code"]) == (0, host.E_TOO_LONG)
    finally:
        node.sched.stop()
        t.join(10)
    assert not t.is_alive()
    assert node.ledger.balance(node.ledger.account("sink")) == 7  # once, though sent twice
    assert node.tcp is None  # closed on the way out, so a restart can listen again
