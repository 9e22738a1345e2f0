# SPDX-License-Identifier: MIT
"""A local Mosquitto for the demo, the tests and the bench (docs/fleet.md §10.4, §10.11):
started with a generated config on a free loopback port (persistence on, in its own folder),
never the package's service. Anonymous and plain by default; with `tls`, `passwd` and `acl`
the secured listener `aii broker-init` recommends, with `bridge` a bridge to another broker.

    with Mosquitto(tmp_path / "broker") as mq:
        mq.url                    # "mqtt://127.0.0.1:PORT" ("mqtts://..." with tls)
        mq.restart()              # same port, same persistence file
"""

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from ..core import files
from ..core._errors import AIIError
from .topics import ROOT

BINARY = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
USER = getpass.getuser()


class MosquittoError(AIIError):
    """Mosquitto is missing, or did not start."""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def conf_text(port, host, data, tls=None, passwd=None, acl=None, bridge=None, run_as=None):
    """Mosquitto 2's config for one broker: a listener on host:port (TLS when `tls` =
    (cafile, certfile, keyfile)), users from `passwd` and their rights from `acl` (with both,
    no anonymous client), persistence in `data`, and `bridge` ({name, host, port, cafile,
    username, password}): a bridge carrying the whole tree both ways to that broker."""
    secured = passwd is not None
    out = [
        "# Mosquitto 2 for AII sites (docs/fleet.md §10.4, §10.11)",
        f"listener {port} {host}",
    ]
    if tls is not None:
        out += [
            f"cafile {tls[0]}",
            f"certfile {tls[1]}",
            f"keyfile {tls[2]}",
            "tls_version tlsv1.2",
        ]
    out.append(f"allow_anonymous {'false' if secured else 'true'}")
    if passwd is not None:
        out.append(f"password_file {passwd}")
    if acl is not None:
        out.append(f"acl_file {acl}")
    if run_as is not None:
        # The tests' broker stays the user that started it: pytest's folders are 0700.
        out.append(f"user {run_as}")
    out += [
        "persistence true",
        f"persistence_location {data}/",
        "autosave_interval 1",
        "max_queued_messages 0",
        "max_inflight_messages 100",
        # Requests and answers are small: without it, Nagle's algorithm and delayed ACKs hold
        # each one back up to 40 ms (a cross-site transfer makes four round trips).
        "set_tcp_nodelay true",
        "log_type error",
        "log_type warning",
        "log_type notice",
    ]
    if bridge is not None:
        out += [
            "",
            f"# the bridge to {bridge['host']}:{bridge['port']}: this broker is its client, over",
            "# TLS with a credential of its own, and carries the tree both ways",
            f"connection {bridge['name']}",
            f"address {bridge['host']}:{bridge['port']}",
            "bridge_protocol_version mqttv50",
            f"bridge_cafile {bridge['cafile']}",
            "bridge_tls_version tlsv1.2",
            "bridge_insecure false",
            f"remote_username {bridge['username']}",
            f"remote_password {bridge['password']}",
            f"remote_clientid {bridge['name']}",
            "cleansession false",
            "try_private true",
            "notifications false",
            "keepalive_interval 10",
            "restart_timeout 1 10",
            f"topic {ROOT}/# both 1",
        ]
    return "\n".join(out) + "\n"


class Mosquitto:
    """`Mosquitto(folder, port=None, host="127.0.0.1", tls=None, passwd=None, acl=None,
    bridge=None, run_as=USER)`: the options as conf_text's; `run_as` the `user` line (by
    default the user running the tests, so it never drops to one that cannot reach a 0700
    folder; None: Mosquitto's own choice, `mosquitto` or `nobody`)."""

    def __init__(
        self,
        folder,
        port=None,
        host="127.0.0.1",
        tls=None,
        passwd=None,
        acl=None,
        bridge=None,
        run_as=USER,
    ):
        self.dir = Path(folder)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port or free_port()
        self.url = f"{'mqtts' if tls else 'mqtt'}://{host}:{self.port}"
        self.conf = self.dir / "mosquitto.conf"
        self.log = self.dir / "mosquitto.log"
        data = self.dir / "data"
        data.mkdir(exist_ok=True)
        text = conf_text(self.port, host, data, tls, passwd, acl, bridge, run_as)
        files.write_private(self.conf, text)
        self.proc = None

    def start(self, timeout=10.0):
        if not os.path.exists(BINARY):
            raise MosquittoError(
                "mosquitto is not installed (Debian: apt-get install mosquitto; make setup does it)"
            )
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(
                [BINARY, "-c", str(self.conf)], stdout=logf, stderr=subprocess.STDOUT
            )
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise MosquittoError(
                    f"mosquitto exited {self.proc.returncode}: {self.log.read_text()}"
                )
            try:
                socket.create_connection((self.host, self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise MosquittoError(f"mosquitto did not listen on {self.port}: {self.log.read_text()}")

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()  # SIGTERM: Mosquitto saves its persistence file first
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def restart(self):
        self.stop()
        for _ in range(50):
            try:
                return self.start()
            except MosquittoError:
                time.sleep(0.2)  # the old listening socket may linger a moment
        return self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
