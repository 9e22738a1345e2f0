# SPDX-License-Identifier: MIT
"""MQTT URLs and clients (paho-mqtt 2.x, MQTT 5): persistent sessions with an expiry, so a
gateway's QoS 1 messages wait in the broker (and, while the broker is away, in the gateway's
outbox on disk: outbox.py) and a verifier's subscriptions keep collecting while it restarts
(docs/fleet.md §10.4)."""

import os
import stat
import threading
from pathlib import Path
from urllib.parse import urlsplit

from ..core import files
from ..core._errors import AIIError

SESSION_S = 3600  # a session (its subscriptions and queued messages) outlives a client 1 h


class BrokerError(AIIError):
    """The broker's URL is wrong, or the broker cannot be reached."""


def parse_url(url):
    """(host, port) of `mqtt://HOST[:PORT]` (default port 1883)."""
    try:
        u = urlsplit(url)
        port = u.port or 1883
    except ValueError as e:
        raise BrokerError(f"--mqtt {url!r}: {e}") from None
    if u.scheme != "mqtt" or not u.hostname or u.path not in ("", "/") or u.query:
        raise BrokerError(
            f"--mqtt {url!r}: expected mqtt://HOST[:PORT], e.g. mqtt://127.0.0.1:1883"
        )
    if u.username or u.password:
        raise BrokerError(f"--mqtt {url!r}: credentials in the URL are not supported")
    return u.hostname, port


def client(client_id, url, will=None, session_s=SESSION_S):
    """A paho MQTT 5 client for `url`, not yet connected: `connect(c)` starts it. `will`:
    (topic, payload bytes), retained, QoS 1 (the gateway's death)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    host, port = parse_url(url)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    # Unlimited queues: QoS 1 messages made while the broker is away are sent when it is back.
    c.max_queued_messages_set(0)
    c.max_inflight_messages_set(100)
    c.reconnect_delay_set(0.2, 5)
    if will is not None:
        c.will_set(will[0], will[1], qos=1, retain=True)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = int(session_s)
    c._aii_connect = (host, port, props)
    return c


def connect(c, timeout=10.0, wait=True):
    """Connects (clean_start False: the session is resumed) and starts paho's network thread;
    reconnects by itself after that. BrokerError when the first connect fails in `timeout`;
    with `wait` False, False then instead, paho still trying (True once connected)."""
    host, port, props = c._aii_connect
    up = threading.Event()
    prev = c.on_connect

    def on_connect(client, userdata, flags, reason, properties):
        if not reason.is_failure:
            up.set()
        if prev is not None:
            prev(client, userdata, flags, reason, properties)

    c.on_connect = on_connect
    c.connect_async(host, port, keepalive=10, clean_start=False, properties=props)
    c.loop_start()
    if not up.wait(timeout):
        if not wait:
            return False
        c.loop_stop()
        raise BrokerError(f"no MQTT broker answered at mqtt://{host}:{port} within {timeout:g} s")
    return True


def response_props(topic, corr):
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    p = Properties(PacketTypes.PUBLISH)
    p.ResponseTopic = topic
    p.CorrelationData = corr
    return p


def correlation(props):
    return getattr(props, "CorrelationData", None) if props is not None else None


# -- the gateway's own key -------------------------------------------------------------------


def load_key(path, create=True):
    """The Ed25519 private key in `path` (64 hex digits, readable by this user only); made
    when missing and `create`. Returns (key, created)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path)
    if not os.path.lexists(path):
        if not create:
            raise BrokerError(f"{path}: no site key")
        k = Ed25519PrivateKey.generate()
        raw = k.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        files.write_private(path, raw.hex() + "\n")
        return k, True
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise BrokerError(
            f"{path}: a site key must be a regular file of yours, mode 0600 (chmod 600 {path})"
        )
    try:
        raw = bytes.fromhex(path.read_text().strip())
        if len(raw) != 32:
            raise ValueError
    except ValueError:
        raise BrokerError(f"{path}: not a site key (64 hex digits)") from None
    return Ed25519PrivateKey.from_private_bytes(raw), False
