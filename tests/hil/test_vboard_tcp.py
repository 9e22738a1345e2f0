# SPDX-License-Identifier: MIT
"""The same protocol over TCP: a simulated board's loopback port carries the node's stream."""

import contextlib
import json

from aii_host.client import NodeClient, NodeTimeout
from aii_host.core import frame as fr
from aii_host.node import vboard
from aii_host.transport import open_transport
from hil_util import CONFIG


def test_requests_over_tcp_match_the_serial_line(tmp_path):
    bdir = tmp_path / "hil1"
    bdir.mkdir()
    (bdir / "aii_node.json").write_text(json.dumps(CONFIG))
    with vboard.spawn("hil1", base=tmp_path, tcp=0, log=tmp_path / "log") as b:
        key = bytes.fromhex(CONFIG["key"])
        with open_transport(f"tcp:127.0.0.1:{b.tcp}") as tcp, open_transport(b.port) as ser:
            a = NodeClient(tcp, key=key, timeout=3.0)
            for _ in range(40):
                with contextlib.suppress(NodeTimeout):  # still booting
                    a.request("hello", timeout=0.5, retries=0)
                    break
            assert a.hello()["node"] == CONFIG["node"]
            before = a.balances()
            r = a.transfer("grid", "load", "Wh", 10)
            seq = a.next_seq - 1
            # The same signed bytes over the serial line: the cached answer, no second effect.
            s = NodeClient(ser, key=key, timeout=3.0)
            s.drain(0.3)  # the board mirrors its output to both: skip the answers TCP got
            body = {"src": "grid", "dst": "load", "quantity": "Wh", "amount": 10}
            again = s.send_frame(fr.encode(seq, "transfer", body, key, node=CONFIG["node"]), seq)
            assert again.kind == "ok" and again.body == r
            after = s.balances()
            assert after["load"] == before["load"] + 10
