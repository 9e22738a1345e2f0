# SPDX-License-Identifier: MIT
"""A local Mosquitto for the demo, the tests and the bench (docs/fleet.md §10.4): started with
a generated config on a free loopback port (persistence on, in its own folder), never the
package's service.

    with Mosquitto(tmp_path / "broker") as mq:
        mq.url                    # "mqtt://127.0.0.1:PORT"
        mq.restart()              # same port, same persistence file
"""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from ..core._errors import AIIError

BINARY = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class MosquittoError(AIIError):
    """Mosquitto is missing, or did not start."""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    def __init__(self, folder, port=None):
        self.dir = Path(folder)
        self.dir.mkdir(parents=True, exist_ok=True)
        # Run as root, Mosquitto drops to `mosquitto` or else `nobody`: its folder and files
        # must be theirs to read and write.
        os.chmod(self.dir, 0o777)
        self.port = port or free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.conf = self.dir / "mosquitto.conf"
        self.log = self.dir / "mosquitto.log"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.dir}/\n"
            "autosave_interval 1\n"
            "max_queued_messages 0\n"
            "max_inflight_messages 100\n"
            # Requests and answers are small: without it, Nagle's algorithm and delayed ACKs
            # hold each one back up to 40 ms (a cross-site transfer makes four round trips).
            "set_tcp_nodelay true\n"
            "log_type error\nlog_type warning\n"
        )
        os.chmod(self.conf, 0o644)
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
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
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
