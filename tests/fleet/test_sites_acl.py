# SPDX-License-Identifier: MIT
"""Who may publish what (docs/fleet.md §10.11), on a real Mosquitto with the configuration
`aii broker-init` writes (TLS with its own CA, a password per party, the ACL): a gateway that
publishes as another site, a verifier as another verifier or a site, a coordinator as another
coordinator, are refused by the broker (PUBACK 0x87, nothing delivered) while their own topics
pass; no credential, a wrong password or another CA gets no connection; and a report under a
site's own topic signed with a key that is not the site's fails its signature at the verifier
anyway."""

import subprocess
import sys
import threading
import time

import pytest
from aii_host.sites import broker, payload, topics
from aii_host.sites.brokerinit import Region, broker_init, load_cred
from aii_host.sites.chain import root
from aii_host.sites.mosquitto import Mosquitto, free_port
from aii_host.sites.verifier import GlobalVerifier
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@pytest.fixture
def secured(tmp_path):
    plan = broker_init(
        tmp_path / "mq", {"main": Region(["a", "b"], "127.0.0.1", free_port())}, ["v1"], ["c1"]
    )
    mq = Mosquitto(plan.dirs["main"], **plan.broker["main"]).start()
    yield plan, mq
    mq.stop()


def test_the_tests_run_the_configuration_broker_init_writes(tmp_path):
    """One broker and two bridged regions: the config a test's Mosquitto writes is the tool's,
    but for its `user` line."""
    regions = {
        "eu": Region(["a"], "127.0.0.1", free_port()),
        "us": Region(["b"], "127.0.0.1", free_port()),
    }
    for name, rs in (("one", {"main": regions["eu"]}), ("two", regions)):
        plan = broker_init(tmp_path / name, rs, ["v1"], ["c1"])
        for r in rs:
            tool = plan.conf[r].read_text()
            mq = Mosquitto(plan.dirs[r], **plan.broker[r])  # rewrites the same file
            mine = [x for x in mq.conf.read_text().splitlines() if not x.startswith("user ")]
            assert mine == tool.splitlines() and "allow_anonymous false" in mine
            assert ("connection aii-us-to-eu" in tool) == (r == "us")


class Party:
    """A paho client with one party's credential, recording PUBACK reason codes and what it
    receives."""

    def __init__(self, plan, url, user):
        self.acks, self.got, self.lock = {}, [], threading.Lock()
        self.c = broker.client(f"t-{user}", url, cred=plan.creds[user])
        self.c.on_publish = self._on_publish
        self.c.on_message = lambda c, u, m: self.got.append((m.topic, bytes(m.payload)))
        broker.connect(self.c)

    def _on_publish(self, client, userdata, mid, reason, properties):
        with self.lock:
            self.acks[mid] = reason.value

    def publish(self, topic, data=b"{}", timeout=10):
        """The PUBACK's reason code of a QoS 1 publish (0 accepted, 0x87 not authorized)."""
        mid = self.c.publish(topic, data, qos=1).mid
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if mid in self.acks:
                    return self.acks[mid]
            time.sleep(0.01)
        raise AssertionError(f"no PUBACK for {topic} in {timeout} s")

    def stop(self):
        self.c.disconnect()
        self.c.loop_stop()


def test_each_party_writes_only_its_own_topics(secured):
    plan, mq = secured
    watcher = Party(plan, mq.url, "verifier-v1")  # reads every site's subtree
    watcher.c.subscribe([("aii/v1/site/#", 1), ("aii/v1/coord/#", 1)])
    spy = Party(plan, mq.url, "gw-a")  # subscribes to everything, may read only its requests
    spy.c.subscribe("aii/v1/#", 1)
    time.sleep(0.3)
    try:
        cases = [
            ("gw-a", topics.site_epoch("a"), 0),
            ("gw-a", topics.site_epoch("b"), 0x87),  # a gateway publishing as another site
            ("gw-a", topics.node_records("b", "b1"), 0x87),
            ("gw-a", topics.verdict("v1"), 0x87),
            ("gw-a", topics.responses("v1"), 0),  # answers to a verifier's requests
            ("verifier-v1", topics.request("v1", "b"), 0),
            ("verifier-v1", topics.site_state("a"), 0x87),
            ("verifier-v1", topics.request("v2", "b"), 0x87),  # as another verifier
            ("coord-c1", "aii/v1/coord/c1/decision", 0),
            ("coord-c1", "aii/v1/coord/c2/decision", 0x87),
            ("coord-c1", topics.site_state("b"), 0x87),
        ]
        for user, topic, want in cases:
            # Mosquitto 2 closes the connection of a client after a refused publish: each
            # publish on a connection of its own.
            p = Party(plan, mq.url, user)
            try:
                assert p.publish(topic, b'{"who": "%s"}' % user.encode()) == want, (user, topic)
            finally:
                p.stop()
        time.sleep(0.5)
        seen = {t for t, _ in watcher.got}
        assert topics.site_epoch("a") in seen and "aii/v1/coord/c1/decision" in seen
        for bad in (topics.site_epoch("b"), topics.node_records("b", "b1"), topics.site_state("a")):
            assert bad not in seen  # refused: delivered to no one
        # A request to site b is not delivered to site a's gateway; one to a would be.
        spied = {t for t, _ in spy.got}
        assert topics.request("v1", "b") not in spied and topics.site_epoch("a") not in spied
    finally:
        watcher.stop()
        spy.stop()


def test_no_connection_without_the_credential_or_with_another_ca(secured, tmp_path):
    plan, mq = secured
    ca = load_cred(plan.creds["gw-a"])["ca"]
    with pytest.raises(broker.BrokerError, match="Not authorized"):
        broker.connect(broker.client("anon", mq.url, cred={"ca": ca}), 5)
    wrong = {"ca": ca, "username": "gw-a", "password": "not-its-password"}
    with pytest.raises(broker.BrokerError, match="Bad user name or password|Not authorized"):
        broker.connect(broker.client("wrong", mq.url, cred=wrong), 5)
    other = broker_init(tmp_path / "other", {"x": Region(["a"], "127.0.0.1", 1)})
    with pytest.raises(broker.BrokerError, match="CERTIFICATE_VERIFY_FAILED"):
        broker.connect(broker.client("other-ca", mq.url, cred=other.creds["gw-a"]), 5)
    plain = mq.url.replace("mqtts://", "mqtt://")  # no TLS on a TLS listener: no answer
    with pytest.raises(broker.BrokerError, match="no MQTT broker answered"):
        broker.connect(broker.client("plain", plain), 2)
    # The credential that belongs there connects (the refusals above are not the broker's
    # being away).
    ok = broker.client("v1", mq.url, cred=plan.creds["verifier-v1"])
    assert broker.connect(ok, 5)
    ok.disconnect()
    ok.loop_stop()

    # The command line: one line and the UNKNOWN exit status (3), or a usage error (64).
    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "aii_host", "verify-global", "--trust", "a=" + "0" * 64]
            + list(args),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    out = run("--mqtt", mq.url, "--mqtt-cred", str(other.creds["gw-a"]), "--seconds", "1")
    assert out.returncode == 3 and "CERTIFICATE_VERIFY_FAILED" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    out = run("--mqtt", plain, "--mqtt-cred", str(plan.creds["verifier-v1"]))
    assert out.returncode == 64 and "mqtts://" in out.stderr, out.stderr
    # Another party's credential: refused before the broker has to refuse each publish.
    out = run("--mqtt", mq.url, "--mqtt-cred", str(plan.creds["verifier-v1"]), "--id", "v2")
    assert out.returncode == 64 and "verifier-v1's, not verifier-v2's" in out.stderr, out.stderr
    gw = subprocess.run(
        [sys.executable, "-m", "aii_host", "aggregate", "--node", "n1=tcp:127.0.0.1:1"]
        + ["--db", str(tmp_path / "f.db"), "--mqtt", mq.url, "--site", "a"]
        + ["--mqtt-cred", str(plan.creds["gw-b"]), "--seconds", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert gw.returncode == 64 and "gw-b's, not gw-a's" in gw.stderr, gw.stderr
    loose = tmp_path / "loose.toml"
    loose.write_text(plan.creds["verifier-v1"].read_text())
    loose.chmod(0o644)
    out = run("--mqtt", mq.url, "--mqtt-cred", str(loose))
    assert out.returncode == 3 and "chmod 600" in out.stderr, out.stderr


def _report(key, n):
    return payload.dumps(
        payload.sign(
            key,
            {
                "v": 1,
                "site": "a",
                "bdSeq": 1,
                "mseq": n,
                "n": n,
                "epoch": n,
                "t": int(time.time() * 1000),
                "nodes": {},
                "totals": {},
                "root": root({}),
            },
        )
    )


def test_a_report_signed_with_another_key_fails_at_the_verifier(secured):
    """The broker lets site a's credential publish on site a's topics; whoever holds it
    without the site's key still cannot make a report the verifier takes."""
    plan, mq = secured
    site_key, thief_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    gv = GlobalVerifier(
        mq.url,
        {"a": payload.public_hex(site_key)},
        vid="v1",
        cred=plan.creds["verifier-v1"],
    ).start()
    gw = Party(plan, mq.url, "gw-a")
    try:
        time.sleep(0.3)
        assert gw.publish(topics.site_epoch("a"), _report(thief_key, 1)) == 0  # the broker: fine
        assert gw.publish(topics.site_epoch("a"), _report(site_key, 2)) == 0
        end = time.monotonic() + 10
        while gv.reports < 1 and time.monotonic() < end:
            time.sleep(0.05)
        v = gv.verdict()
        # In order on one topic: the forged one was handled before the genuine one.
        assert gv.reports == 1 and v["sites"]["a"]["epoch"] == 2, v
        assert v["refused"] == {"epoch report": 1}, v["refused"]
    finally:
        gw.stop()
        gv.stop()
