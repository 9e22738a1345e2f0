# SPDX-License-Identifier: MIT
"""MQTT URLs and clients (paho-mqtt 2.x, MQTT 5): persistent sessions with an expiry, so a
gateway's QoS 1 messages wait in the broker (and, while the broker is away, in the gateway's
outbox on disk: outbox.py) and a verifier's subscriptions keep collecting while it restarts
(docs/fleet.md §10.4)."""

import contextlib
import os
import stat
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from ..core import files
from ..core._errors import AIIError

SESSION_S = 3600  # a session (its subscriptions and queued messages) outlives a client 1 h


class BrokerError(AIIError):
    """The broker's URL is wrong, or the broker cannot be reached."""


def parse_url(url):
    """(host, port) of `mqtt://HOST[:PORT]` (default port 1883) or `mqtts://HOST[:PORT]` (TLS,
    default port 8883)."""
    try:
        u = urlsplit(url)
        tls = u.scheme == "mqtts"
        port = u.port or (8883 if tls else 1883)
    except ValueError as e:
        raise BrokerError(f"--mqtt {url!r}: {e}") from None
    if u.scheme not in ("mqtt", "mqtts") or not u.hostname or u.path not in ("", "/") or u.query:
        raise BrokerError(
            f"--mqtt {url!r}: expected mqtts://HOST[:PORT] (TLS, e.g. mqtts://127.0.0.1:8883) "
            "or mqtt://HOST[:PORT] (plain, a local demo)"
        )
    if u.username or u.password:
        raise BrokerError(f"--mqtt {url!r}: no credentials in the URL; give --mqtt-cred FILE")
    return u.hostname, port


def load_cred(path):
    """A credential file of `aii broker-init` (brokerinit.load_cred), BrokerError if bad."""
    from .brokerinit import InitError
    from .brokerinit import load_cred as _load

    try:
        return _load(path)
    except InitError as e:
        raise BrokerError(str(e)) from None


def client(client_id, url, will=None, session_s=SESSION_S, cred=None):
    """A paho MQTT 5 client for `url`, not yet connected: `connect(c)` starts it. `will`:
    (topic, payload bytes), retained, QoS 1 (the gateway's death). `cred`: a credential file
    (or its loaded dict): its username and password, and for mqtts:// its CA, the only one
    whose server certificates it accepts (without one, the system's CAs)."""
    import ssl

    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    host, port = parse_url(url)
    tls = url.startswith("mqtts:")
    if cred is not None and not isinstance(cred, dict):
        cred = load_cred(cred)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if tls:
        ctx = ssl.create_default_context(cadata=cred["ca"] if cred else None)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        c.tls_set_context(ctx)
    if cred is not None and cred.get("username"):
        c.username_pw_set(cred["username"], cred.get("password"))
    # Unlimited queues: QoS 1 messages made while the broker is away are sent when it is back.
    c.max_queued_messages_set(0)
    c.max_inflight_messages_set(100)
    c.reconnect_delay_set(0.2, 5)
    # Small requests and answers: without TCP_NODELAY, Nagle's algorithm waits for the
    # broker's delayed ACK (up to 40 ms) before each one.
    c.on_socket_open = _nodelay
    if will is not None:
        c.will_set(will[0], will[1], qos=1, retain=True)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = int(session_s)
    c._aii_connect = (host, port, props, url)
    return c


def _nodelay(client, userdata, sock):
    import socket

    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def connect(c, timeout=10.0, wait=True):
    """Connects (clean_start False: the session is resumed) and starts paho's network thread;
    reconnects by itself after that. BrokerError when the first connect fails in `timeout`;
    with `wait` False, False then instead, paho still trying (True once connected). A broker
    that refuses the credential is a BrokerError at once (paho would retry for ever)."""
    host, port, props, url = c._aii_connect
    ok, refused, failed = threading.Event(), [], threading.Event()
    prev = c.on_connect

    def on_connect(client, userdata, flags, reason, properties):
        if not reason.is_failure:
            ok.set()
        elif reason.value in (0x86, 0x87, 0x8C):  # bad user name or password, not authorised
            refused.append(f"{reason} (check --mqtt-cred)")
        if prev is not None:
            prev(client, userdata, flags, reason, properties)

    c.on_connect = on_connect
    c.on_connect_fail = lambda client, userdata: failed.set()
    c.connect_async(host, port, keepalive=10, clean_start=False, properties=props)
    c.loop_start()
    end = time.monotonic() + timeout
    while not refused and time.monotonic() < end:
        if ok.wait(0.05):
            return True
        if failed.is_set() and url.startswith("mqtts:"):
            failed.clear()
            # A server certificate this client does not accept is not worth retrying for.
            why = _tls_refusal(c, host, port)
            if why:
                refused.append(why)
    if not refused and not wait:
        return False
    c.disconnect()
    c.loop_stop()
    if refused:
        raise BrokerError(f"the broker at {url} refused this client: {refused[0]}")
    raise BrokerError(f"no MQTT broker answered at {url} within {timeout:g} s")


def _tls_refusal(c, host, port):
    """Why the TLS handshake with host:port fails (a certificate not signed by our CA, a
    wrong host name), or None (nothing listening, or the handshake works)."""
    import socket
    import ssl

    try:
        with (
            socket.create_connection((host, port), 3) as raw,
            c._ssl_context.wrap_socket(raw, server_hostname=host),
        ):
            return None
    except ssl.SSLError as e:
        return f"TLS: {e.reason or e} (is the server's certificate signed by --mqtt-cred's CA?)"
    except OSError:
        return None


def response_props(topic, corr):
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    p = Properties(PacketTypes.PUBLISH)
    p.ResponseTopic = topic
    p.CorrelationData = corr
    return p


def correlation(props):
    return getattr(props, "CorrelationData", None) if props is not None else None


def reply_to(props):
    """(response topic, correlation data) of an MQTT 5 request, each None when missing."""
    return getattr(props, "ResponseTopic", None) if props is not None else None, correlation(props)


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
