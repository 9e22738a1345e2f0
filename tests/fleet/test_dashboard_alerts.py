# SPDX-License-Identifier: MIT
"""The dashboard's alerts and events: a node of a real fleet (simulated boards) goes offline and
comes back; `--alert-command` runs a program that records what it got (stdin, environment) and
`--alert-webhook` POSTs to a local HTTP receiver; both see `offline` then `online`, as do the
JSON-lines events (--events, --json). Sinks that fail (a command exiting non-zero, a program
that does not exist, a receiver answering 500, a port nobody serves) are retried where it helps
and reported as `alert_failed` events, never as a traceback."""

import json
import shlex
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aii_host.clikit import UsageError
from aii_host.dashboard.alerts import Alerts
from aii_host.dashboard.events import event
from dashboard_util import Dashboard

RECORDER = """\
import json, os, sys
ev = json.loads(sys.stdin.read())
env = {k: v for k, v in os.environ.items() if k.startswith("AII_EVENT_")}
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({"stdin": ev, "env": env}) + "\\n")
"""


class Receiver:
    """A local HTTP receiver: records each POST's JSON body; answers `codes` in turn (200 once
    they are used up)."""

    def __init__(self, codes=()):
        self.bodies, self.codes = [], list(codes)
        rec = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                rec.bodies.append((self.path, self.headers.get("Content-Type"), self.rfile.read(n)))
                code = rec.codes.pop(0) if rec.codes else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self):
        return [json.loads(b) for _p, _t, b in self.bodies]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _wait(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_alert_command_and_webhook_see_a_node_go_offline_and_back(make_fleet, tmp_path):
    env = make_fleet(2)
    script = tmp_path / "recorder.py"
    script.write_text(RECORDER)
    got = tmp_path / "alerts.jsonl"
    cmd = " ".join(shlex.quote(str(x)) for x in (sys.executable, script, got))
    rx = Receiver()
    dash = Dashboard(
        tmp_path,
        "--fleet",
        str(env.path),
        "--alert-command",
        cmd,
        "--alert-webhook",
        rx.url,
        "--seconds",
        "120",
    )
    try:

        def online(n):
            _st, _, body = dash.get("/api/state")
            view = json.loads(body)["view"]
            return bool(view) and all(r["state"] == "online" for r in view["nodes"][:n])

        _wait(lambda: online(2), 60, "both nodes online")
        env.boards["n2"].stop()
        dash.wait_event("offline", 30, lambda e: e["node"] == "n2")
        env.boards["n2"].start()
        dash.wait_event("online", 60, lambda e: e["node"] == "n2")

        def both_sinks_saw_online():
            cmd_kinds = [json.loads(x)["stdin"]["kind"] for x in _lines(got)]
            return "online" in cmd_kinds and "online" in [e["kind"] for e in rx.events()]

        _wait(both_sinks_saw_online, 30, "the online alert at both sinks")
    finally:
        _rc, out, err = dash.stop()
        rx.close()
    assert "Traceback" not in err, err
    recs = [json.loads(x) for x in _lines(got)]
    n2 = [r for r in recs if r["stdin"]["node"] == "n2"]
    assert [r["stdin"]["kind"] for r in n2] == ["offline", "online"], recs
    off = n2[0]
    assert off["env"]["AII_EVENT_KIND"] == "offline"
    assert off["env"]["AII_EVENT_NODE"] == "n2"
    assert off["env"]["AII_EVENT_SEVERITY"] == "warning"
    assert off["env"]["AII_EVENT_TEXT"].startswith("n2: offline")
    assert json.loads(off["env"]["AII_EVENT_JSON"]) == off["stdin"]
    hooks = [e for e in rx.events() if e["node"] == "n2"]
    assert [e["kind"] for e in hooks] == ["offline", "online"]
    assert all(t == "application/json" and p == "/hook" for p, t, _b in rx.bodies)
    # Only alert kinds reach the sinks; every event is a JSON line in --events and on stdout.
    assert {e["kind"] for e in rx.events()} <= {"offline", "online", "deadline_miss"}
    kinds = [e["kind"] for e in dash.events()]
    assert kinds[0] == "dashboard" and kinds[-1] == "dashboard", kinds
    assert "offline" in kinds and "online" in kinds
    printed = [json.loads(x) for x in out.splitlines() if x.strip()]
    assert [e["kind"] for e in printed] == kinds[1:]  # the first line was read at start
    for e in dash.events():
        assert set(e) == {"t", "kind", "node", "severity", "text", "data"}, e


def _lines(path):
    return [x for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def test_failing_sinks_are_retried_and_reported(tmp_path):
    flaky = Receiver(codes=[500, 503])  # the third try gets 200
    failed = []
    a = Alerts(
        command=f"{shlex.quote(sys.executable)} -c 'import sys; sys.stderr.write(\"no disk\\n\"); sys.exit(3)'",
        webhook=flaky.url,
        report=failed.append,
    ).start()
    a.send(event("isolated", "east", "east: isolated", reason="x"))
    a.close(wait=30)
    flaky.close()
    assert len(flaky.bodies) == 3 and a.sent["webhook"] == 1 and a.failed["webhook"] == 0
    assert a.failed["command"] == 1
    assert failed[0]["kind"] == "alert_failed" and failed[0]["data"]["sink"] == "command"
    assert "exited 3: no disk" in failed[0]["text"]

    failed.clear()
    dead = Receiver()
    url = dead.url
    dead.close()  # nobody serves that port now
    b = Alerts(command="/nonexistent/notify", webhook=url, report=failed.append).start()
    b.send(event("offline", "n1", "n1: offline"))
    b.close(wait=30)
    sinks = {e["data"]["sink"]: e["text"] for e in failed}
    assert "cannot run /nonexistent/notify" in sinks["command"]
    assert "(3 tries)" in sinks["webhook"]


@pytest.mark.parametrize(
    "command, webhook",
    [
        ("", None),
        ("'unclosed", None),
        (None, "ftp://x/y"),
        (None, "http://"),
        (None, "http://h:99999/"),
    ],
)
def test_bad_sinks_are_usage_errors(command, webhook):
    with pytest.raises(UsageError):
        Alerts(command=command, webhook=webhook)
