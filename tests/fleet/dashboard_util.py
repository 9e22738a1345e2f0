# SPDX-License-Identifier: MIT
"""`aii dashboard` run as a real process for the dashboard tests: started with --json, its first
stdout line (the `dashboard` event) tells its URL; its events are read back from --events."""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

AII = [sys.executable, "-m", "aii_host"]


class Dashboard:
    """`Dashboard(tmp_path, *args)`: `aii dashboard --http 127.0.0.1:0 --json --events ...
    *args` running; `.url`, `.events()`, `.stop()` (returns exit status, stdout, stderr)."""

    def __init__(self, tmp_path, *args, timeout=60.0):
        self.events_file = Path(tmp_path) / "events.jsonl"
        self.err_file = Path(tmp_path) / "dashboard.err"
        cmd = [*AII, "dashboard", "--http", "127.0.0.1:0", "--json"]
        cmd += ["--events", str(self.events_file), *args]
        self._err = open(self.err_file, "wb")  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=self._err, stdin=subprocess.DEVNULL, text=True
        )
        self.rest = []
        line = self.proc.stdout.readline()
        if not line:
            out = self.stop()
            raise AssertionError(f"aii dashboard did not start: {out}")
        first = json.loads(line)
        assert first["kind"] == "dashboard", first
        self.url = first["data"]["url"]
        self.db = first["data"]["db"]

    def events(self, kind=None):
        if not self.events_file.exists():
            return []
        evs = [json.loads(x) for x in self.events_file.read_text().splitlines() if x.strip()]
        return [e for e in evs if kind is None or e["kind"] == kind]

    def wait_event(self, kind, timeout=60.0, pred=lambda e: True):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            found = [e for e in self.events(kind) if pred(e)]
            if found:
                return found[0]
            assert self.proc.poll() is None, f"aii dashboard exited: {self.stderr()}"
            time.sleep(0.1)
        raise AssertionError(
            f"no {kind} event in {timeout:.0f} s; events: "
            f"{[e['text'] for e in self.events()][-20:]}; stderr: {self.stderr()}"
        )

    def get(self, path, headers=None):
        """(status, headers, body bytes) of GET url+path."""
        return self.request("GET", path, None, headers)

    def request(self, method, path, body=None, headers=None):
        req = urllib.request.Request(
            self.url.rstrip("/") + path, data=body, headers=headers or {}, method=method
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def stderr(self):
        return self.err_file.read_text(errors="replace") if self.err_file.exists() else ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(2)  # Ctrl-C: it stops cleanly, boards and all
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        out = self.proc.stdout.read()
        self.proc.stdout.close()
        self._err.close()
        return self.proc.returncode, out, self.stderr()


def write_fleet(path, nodes, heartbeat_s=0.2, db="fleet.db"):
    """A fleet file of `nodes` [(name, port)] without keys (reads need none)."""
    from aii_host.fleet import config as fconfig

    Path(path).write_text(fconfig.dumps(db, heartbeat_s, [(n, p, None) for n, p in nodes]))
    return Path(path)


def env_with(**changes):
    env = dict(os.environ)
    env.update({k: str(v) for k, v in changes.items()})
    return env
