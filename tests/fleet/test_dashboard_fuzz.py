# SPDX-License-Identifier: MIT
"""The dashboard server's inputs fuzzed: hypothesis-made HTTP requests (request lines, methods,
paths, versions, headers, operator tokens good and bad, bodies of any bytes and lengths) sent
over raw sockets to a running `aii dashboard`. Every answer is a status below 500 (a bad
request is a 4xx with a JSON error), the server keeps serving, and it never prints a traceback.
AII_FUZZ_EXAMPLES (make fuzz) runs more examples."""

import json
import os
import socket

import pytest
from aii_host.dashboard import tokens
from dashboard_util import Dashboard, write_fleet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("AII_FUZZ_EXAMPLES", "150"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dashfuzz")
    fleet = write_fleet(tmp / "fleet.toml", [("n1", "tcp:127.0.0.1:1"), ("n2", "/dev/ttyNOPE")])
    ops = tmp / "ops"
    tokens.keygen("fuzzer", ops)
    d = Dashboard(tmp, "--fleet", str(fleet), "--operators", str(ops), "--seconds", "600")
    d.token = (ops / "fuzzer.operator").read_text().strip()
    yield d
    _rc, _out, err = d.stop()
    assert "Traceback" not in err and "internal error" not in err, err


TEXT = st.text(st.characters(min_codepoint=1, max_codepoint=0x2FF), max_size=40)
METHOD = st.one_of(
    st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"]),
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=8),
    TEXT,
)
PATH = st.one_of(
    st.sampled_from(
        [
            "/",
            "/api/state",
            "/api/clear",
            "/api/events",
            "/metrics",
            "/healthz",
            "/static/app.js",
            "/static/style.css",
            "/static/../server.py",
            "/static/%2e%2e/server.py",
            "/static/",
            "//",
            "*",
            "http://x/api/state",
            "/api/clear?node=n1",
            "/" + "a" * 5000,
        ]
    ),
    TEXT.map(lambda t: "/" + t),
    TEXT,
)
VERSION = st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/0.9", "HTTP/2.0", "HTTP/1.1x", "", "X"])


@st.composite
def request(draw, token):
    method, path, version = draw(METHOD), draw(PATH), draw(VERSION)
    line = " ".join(x for x in (method, path, version) if x)
    headers = []
    auth = draw(
        st.sampled_from(["none", "good", "bad", "junk", "basic"]),
    )
    if auth == "good":
        headers.append(("Authorization", "Bearer " + token))
    elif auth == "bad":
        headers.append(
            ("Authorization", "Bearer " + draw(st.text("0123456789abcdef", max_size=70)))
        )
    elif auth == "junk":
        headers.append(("Authorization", draw(TEXT)))
    elif auth == "basic":
        headers.append(("Authorization", "Basic YTpi"))
    if draw(st.booleans()):
        headers.append(
            ("Content-Type", draw(st.sampled_from(["application/json", "text/plain", ""]) | TEXT))
        )
    body = draw(
        st.one_of(
            st.binary(max_size=300),
            st.builds(
                lambda n: json.dumps({"node": n}).encode(),
                st.one_of(TEXT, st.integers(), st.none()),
            ),
            st.sampled_from([b'{"node": "n1"}', b'{"node": "n9"}', b"[]", b"{}", b"null", b'"n1"']),
        )
    )
    length = draw(
        st.sampled_from(["right", "none", "short", "long", "junk", "negative", "huge"]),
    )
    if length == "right":
        headers.append(("Content-Length", str(len(body))))
    elif length == "short":
        headers.append(("Content-Length", str(max(0, len(body) - 3))))
    elif length == "long":
        headers.append(("Content-Length", str(len(body) + 10)))
    elif length == "junk":
        headers.append(("Content-Length", draw(TEXT)))
    elif length == "negative":
        headers.append(("Content-Length", "-5"))
    elif length == "huge":
        headers.append(("Content-Length", "99999999999999999999"))
    for _ in range(draw(st.integers(0, 3))):
        headers.append((draw(TEXT), draw(TEXT)))
    if draw(st.booleans()):
        headers.append(("Transfer-Encoding", "chunked"))
    head = line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode("utf-8", "surrogatepass") + body


def _exchange(url, data):
    host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)  # a body shorter than its Content-Length ends here
        got = b""
        while b"\r\n\r\n" not in got:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
    return got


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_any_request_gets_an_answer_below_500(server, data):
    raw = data.draw(request(server.token))
    got = _exchange(server.url, raw)
    if not got:
        return  # the server closed a connection that sent no request line it could read
    status_line = got.split(b"\r\n", 1)[0]
    parts = status_line.split()
    assert parts[0].startswith(b"HTTP/"), (raw[:200], got[:300])
    code = int(parts[1])
    assert 200 <= code < 500, (raw[:300], got[:500])
    if code >= 400 and b"\r\n\r\n" in got:
        assert b"application/json" in got.split(b"\r\n\r\n")[0], got[:500]


def test_server_still_serves_after_fuzzing(server):
    st_, _, body = server.get("/healthz")
    assert st_ == 200 and body == b"ok\n"
    # Nothing was isolated, so no request could clear anything: no `clear` in the audit trail.
    done = [e for e in server.events("operator") if e["data"].get("done")]
    assert done == []
