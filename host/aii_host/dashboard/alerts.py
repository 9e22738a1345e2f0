# SPDX-License-Identifier: MIT
"""Alert sinks: a command run per alert and a webhook POSTed per alert, on a thread of their own
so a slow receiver never holds up the page or the metrics.

The command (`--alert-command CMD`) is split like a shell line (shlex) but run without a shell,
so nothing a node reports can become part of a command line: the event comes as one JSON line
on its stdin and in the environment (AII_EVENT_KIND, AII_EVENT_NODE, AII_EVENT_SEVERITY,
AII_EVENT_TEXT, AII_EVENT_JSON). The webhook (`--alert-webhook URL`) gets the same JSON as a
POST body (Content-Type application/json); a failure is tried again twice (1 s, then 2 s later).
A sink that fails is reported as an `alert_failed` event, never as an alert of its own."""

import json
import os
import queue
import shlex
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from ..clikit import UsageError
from .events import event

COMMAND_TIMEOUT_S = 10.0
WEBHOOK_TIMEOUT_S = 5.0
WEBHOOK_TRIES = 3


def check_command(text):
    """The argument list of --alert-command; UsageError when it is not one."""
    try:
        argv = shlex.split(text)
    except ValueError as e:
        raise UsageError(f"--alert-command {text!r}: {e}") from None
    if not argv:
        raise UsageError(
            "--alert-command is empty: give a program, e.g. --alert-command 'logger -t aii'"
        )
    return argv


def check_webhook(url):
    """--alert-webhook: an http:// or https:// URL with a host; UsageError otherwise."""
    try:
        u = urllib.parse.urlsplit(url)
        u.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as e:
        raise UsageError(f"--alert-webhook {url!r}: {e}") from None
    if u.scheme not in ("http", "https") or not u.hostname:
        raise UsageError(
            f"--alert-webhook {url!r}: expected http://HOST[:PORT]/PATH or https://..."
        )
    return url


class Alerts:
    """`Alerts(command=None, webhook=None, report=print)`: `send(event)` queues an alert for each
    sink; `report(event)` receives `alert_failed` events (on the sinks' thread). `close(wait)`
    delivers what is queued (for at most `wait` seconds), then stops."""

    def __init__(self, command=None, webhook=None, report=None):
        self.argv = check_command(command) if command is not None else None
        self.webhook = check_webhook(webhook) if webhook is not None else None
        self.report = report or (lambda ev: None)
        self.sent = {"command": 0, "webhook": 0}
        self.failed = {"command": 0, "webhook": 0}
        self._q = queue.Queue()
        self._thread = None

    @property
    def active(self):
        return bool(self.argv or self.webhook)

    def start(self):
        if self.active and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="aii-alerts", daemon=True)
            self._thread.start()
        return self

    def send(self, ev):
        if self._thread is not None:
            self._q.put(ev)

    def close(self, wait=10.0):
        if self._thread is None:
            return
        self._q.put(None)
        self._thread.join(wait)
        self._thread = None

    def _run(self):
        while True:
            ev = self._q.get()
            if ev is None:
                return
            body = json.dumps(ev, sort_keys=True, default=str)
            if self.argv:
                self._done("command", self._command(ev, body), ev)
            if self.webhook:
                self._done("webhook", self._post(body), ev)

    def _done(self, sink, error, ev):
        if error is None:
            self.sent[sink] += 1
            return
        self.failed[sink] += 1
        self.report(
            event(
                "alert_failed",
                ev.get("node"),
                f"alert {sink} failed for {ev['kind']}: {error}",
                sink=sink,
                alert=ev["kind"],
                error=error,
            )
        )

    def _command(self, ev, body):
        env = dict(
            os.environ,
            AII_EVENT_KIND=ev["kind"],
            AII_EVENT_NODE=ev.get("node") or "",
            AII_EVENT_SEVERITY=ev["severity"],
            AII_EVENT_TEXT=ev["text"],
            AII_EVENT_JSON=body,
        )
        try:
            p = subprocess.run(
                self.argv,
                input=(body + "\n").encode(),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=COMMAND_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return f"{self.argv[0]} still running after {COMMAND_TIMEOUT_S:g} s (killed)"
        except OSError as e:
            return f"cannot run {self.argv[0]}: {e.strerror or e}"
        if p.returncode != 0:
            tail = p.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
            return f"{self.argv[0]} exited {p.returncode}" + (
                f": {tail[0][:200]}" if tail[0] else ""
            )
        return None

    def _post(self, body):
        error = None
        for attempt in range(WEBHOOK_TRIES):
            if attempt:
                time.sleep(2 ** (attempt - 1))
            req = urllib.request.Request(
                self.webhook,
                data=body.encode(),
                headers={"Content-Type": "application/json", "User-Agent": "aii-dashboard"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(req, timeout=WEBHOOK_TIMEOUT_S) as r:
                    r.read()
                return None
            except urllib.error.HTTPError as e:
                error = f"{self.webhook} answered {e.code} {e.reason}"
            except (urllib.error.URLError, OSError, ValueError) as e:
                error = f"{self.webhook}: {getattr(e, 'reason', e)}"
        return f"{error} ({WEBHOOK_TRIES} tries)"
