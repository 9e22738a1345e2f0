# SPDX-License-Identifier: MIT
"""`aii broker-init` (docs/fleet.md §10.11): the recommended broker setup, made in one folder.

A CA of its own (ECDSA P-256, 10 years) signs each broker's server certificate (its host names
and addresses); every party gets a username and a random password (Mosquitto's password file,
hashed by `mosquitto_passwd`) and an ACL section that lets it write only its own part of the
topic tree (topics.py); each party's credential file (TOML, mode 0600, with the CA inline) is
what `--mqtt-cred FILE` reads. With regions, every region has a broker of its own; each region
but the first bridges to the first (a Mosquitto `connection` section, over TLS, with a
credential of its own).

    plan = broker_init(folder, {"eu": Region(["a", "b"], "127.0.0.1", 8883)}, ["v1"], ["c1"])
    plan.conf["eu"]          # folder/eu/mosquitto.conf   (one region: folder/mosquitto.conf)
    plan.creds["gw-a"]       # folder/creds/gw-a.toml
    Mosquitto(plan.dirs["eu"], **plan.broker["eu"])   # the same config, run by the tests
"""

import datetime
import ipaddress
import os
import pwd
import secrets
import shutil
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..core import files
from ..core._errors import AIIError
from . import topics
from .mosquitto import conf_text

PASSWD_BINARY = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
CA_DAYS, CERT_DAYS = 3650, 825
R = topics.ROOT


class InitError(AIIError):
    """The setup cannot be made (a bad name, a folder in the way, no mosquitto_passwd)."""


@dataclass
class Region:
    sites: list
    host: str = "127.0.0.1"
    port: int = 8883


@dataclass
class Plan:
    """What broker_init wrote: per region its folder, config and URL; per user its
    credential file (user names: gw-SITE, verifier-VID, coord-ID, bridge-REGION)."""

    folder: Path
    hub: str
    dirs: dict = field(default_factory=dict)
    conf: dict = field(default_factory=dict)
    urls: dict = field(default_factory=dict)
    creds: dict = field(default_factory=dict)
    broker: dict = field(default_factory=dict)  # region -> Mosquitto(dir, **these)
    region_of: dict = field(default_factory=dict)  # site -> region


def user_of(role, name):
    return {"site": "gw-", "verifier": "verifier-", "coord": "coord-", "bridge": "bridge-"}[
        role
    ] + name


def acl_text(sites, verifiers, coordinators, bridges):
    """The ACL: a section per user. Mosquitto refuses what no line allows; a refused QoS 1
    publish gets PUBACK 0x87 (not authorized) and reaches no one."""
    out = [
        "# who may publish what (aii broker-init; docs/fleet.md §10.11). Anything not allowed",
        "# here is refused; anonymous clients are not let in at all.",
    ]
    for s in sites:
        out += [
            "",
            f"# the gateway of site {s}: its own subtree; requests to it; answers to any asker",
            f"user {user_of('site', s)}",
            f"topic write {R}/site/{s}/#",
            f"topic read {R}/verifier/+/req/{s}",
            f"topic write {R}/verifier/+/resp",
            f"topic read {R}/coord/+/req/{s}",
            f"topic write {R}/coord/+/resp",
        ]
    for v in verifiers:
        out += [
            "",
            f"# verifier {v}: writes only under its id; reads every site, verdicts, decisions",
            f"user {user_of('verifier', v)}",
            f"topic readwrite {R}/verifier/{v}/#",
            f"topic read {R}/site/#",
            f"topic read {R}/verifier/+/verdict",
            f"topic read {R}/coord/#",
        ]
    for c in coordinators:
        out += [
            "",
            f"# coordinator {c}: writes only under its id (requests, decisions); reads sites",
            f"user {user_of('coord', c)}",
            f"topic readwrite {R}/coord/{c}/#",
            f"topic read {R}/site/#",
        ]
    for b in bridges:
        out += [
            "",
            f"# the bridge from region {b}: carries the whole tree both ways (its broker's own",
            "# ACL already checked who published what there)",
            f"user {user_of('bridge', b)}",
            f"topic readwrite {R}/#",
        ]
    return "\n".join(out) + "\n"


def _drop_user():
    """(uid, gid) Mosquitto runs as once it drops root: `mosquitto`, else `nobody`."""
    for name in ("mosquitto", "nobody"):
        try:
            p = pwd.getpwnam(name)
            return p.pw_uid, p.pw_gid
        except KeyError:
            continue
    return None


def broker_private(path, text, mode=0o600):
    """A file only the broker reads (its key, the password file, the ACL): mode 0600, and
    owned by the user Mosquitto drops to when we are root (it opens them after the drop)."""
    files.write_private(path, text, mode)
    if os.geteuid() == 0 and (ids := _drop_user()) is not None:
        os.chown(path, *ids)


def _ca(folder, now):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"aii broker CA {folder.name}")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _server_cert(ca_key, ca_cert, hosts, now):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    alt = []
    for h in hosts:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            alt.append(x509.DNSName(h))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _pem(obj):
    from cryptography.hazmat.primitives import serialization

    if hasattr(obj, "public_bytes") and hasattr(obj, "subject"):
        return obj.public_bytes(serialization.Encoding.PEM).decode()
    return obj.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _passwd(path, users):
    """Mosquitto's password file, hashed by its own tool (PBKDF2-SHA512 in Mosquitto 2)."""
    if not os.path.exists(PASSWD_BINARY):
        raise InitError(
            "mosquitto_passwd is not installed (Debian: apt-get install mosquitto; make setup)"
        )
    files.write_private(path, "".join(f"{u}:{p}\n" for u, p in users.items()))
    r = subprocess.run(
        [PASSWD_BINARY, "-U", str(path)], capture_output=True, text=True, check=False
    )
    if r.returncode != 0:
        raise InitError(f"mosquitto_passwd -U {path}: {(r.stderr or r.stdout).strip()}")
    broker_private(path, Path(path).read_text())


def cred_text(user, password, ca_pem, url, what):
    return (
        f"# the MQTT credential of {what} (aii broker-init; docs/fleet.md §10.11).\n"
        f"# Keep it private (mode 0600); give it with --mqtt-cred FILE. Its broker: {url}\n"
        f'username = "{user}"\n'
        f'password = "{password}"\n'
        f'ca = """\n{ca_pem}"""\n'
    )


def load_cred(path):
    """{username, password, ca (PEM text)} of a credential file; InitError naming the
    problem (a missing field, a file others may read)."""
    path = Path(path)
    try:
        st = os.stat(path)
        doc = tomllib.loads(path.read_text())
    except OSError as e:
        raise InitError(f"--mqtt-cred {path}: {e.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InitError(f"--mqtt-cred {path}: not a credential file: {e}") from None
    if st.st_mode & 0o077:
        raise InitError(f"--mqtt-cred {path}: others may read it (chmod 600 {path})")
    for k in ("username", "password", "ca"):
        if not isinstance(doc.get(k), str) or not doc[k]:
            raise InitError(f"--mqtt-cred {path}: field {k!r} missing (made by aii broker-init)")
    return doc


def _checked(what, names):
    out = []
    for n in names:
        topics.check_name(what, n)
        if n in out:
            raise InitError(f"{what} {n!r} given twice")
        out.append(n)
    return out


def broker_init(folder, regions, verifiers=(), coordinators=(), hosts=(), run_as=None):
    """Writes the setup for `regions` ({name: Region}; the first is the hub every other one
    bridges to) into `folder` (made; must not hold a setup already) and returns the Plan.
    One region: its broker's files in `folder` itself. `hosts`: more names or addresses for
    every server certificate. `run_as`: a `user` line in each config (the test broker)."""
    folder = Path(folder).resolve()
    if not regions:
        raise InitError("no region: give --sites or --region")
    try:
        names = _checked("region", list(regions))
        sites = _checked("site", [s for r in regions.values() for s in r.sites])
        verifiers = _checked("verifier id", verifiers)
        coordinators = _checked("coordinator id", coordinators)
    except ValueError as e:
        raise InitError(str(e)) from None
    if (folder / "ca.crt").exists():
        raise InitError(f"{folder}: holds a broker setup already (ca.crt); choose a new folder")
    folder.mkdir(parents=True, exist_ok=True)
    # The broker runs as another user once it drops root: it must reach its files.
    os.chmod(folder, 0o755)
    now = datetime.datetime.now(datetime.UTC)
    ca_key, ca_cert = _ca(folder, now)
    ca_pem = _pem(ca_cert)
    files.write_private(folder / "ca.key", _pem(ca_key))
    (folder / "ca.crt").write_text(ca_pem)
    os.chmod(folder / "ca.crt", 0o644)

    hub = names[0]
    plan = Plan(folder, hub)
    bridges = names[1:]
    users = {}
    for s in sites:
        users[user_of("site", s)] = secrets.token_urlsafe(24)
    for v in verifiers:
        users[user_of("verifier", v)] = secrets.token_urlsafe(24)
    for c in coordinators:
        users[user_of("coord", c)] = secrets.token_urlsafe(24)
    for b in bridges:
        users[user_of("bridge", b)] = secrets.token_urlsafe(24)
    # One policy for the fleet: every broker has every user and the same ACL, so a party
    # may use the broker of any region.
    _passwd(folder / "passwd", users)
    broker_private(folder / "acl", acl_text(sites, verifiers, coordinators, bridges))

    for name, r in regions.items():
        d = folder if len(regions) == 1 else folder / name
        d.mkdir(exist_ok=True)
        os.chmod(d, 0o755)
        key, cert = _server_cert(
            ca_key, ca_cert, list(dict.fromkeys([r.host, "localhost", *hosts])), now
        )
        (d / "server.crt").write_text(_pem(cert))
        os.chmod(d / "server.crt", 0o644)
        broker_private(d / "server.key", _pem(key))
        data = d / "data"
        data.mkdir(exist_ok=True)
        if os.geteuid() == 0 and run_as is None and (ids := _drop_user()) is not None:
            os.chown(data, *ids)
        plan.dirs[name] = d
        plan.urls[name] = f"mqtts://{r.host}:{r.port}"
        for s in r.sites:
            plan.region_of[s] = name
    for name, r in regions.items():
        d = plan.dirs[name]
        bridge = None
        if name != hub:
            h = regions[hub]
            bridge = {
                "name": f"aii-{name}-to-{hub}",
                "host": h.host,
                "port": h.port,
                "cafile": str(folder / "ca.crt"),
                "username": user_of("bridge", name),
                "password": users[user_of("bridge", name)],
            }
        plan.broker[name] = args = {
            "port": r.port,
            "host": r.host,
            "tls": (folder / "ca.crt", d / "server.crt", d / "server.key"),
            "passwd": folder / "passwd",
            "acl": folder / "acl",
            "bridge": bridge,
        }
        text = conf_text(data=d / "data", run_as=run_as, **args)
        # The bridge's password is in it: the config is the broker's own, as its key is.
        broker_private(d / "mosquitto.conf", text, 0o600 if bridge else 0o644)
        plan.conf[name] = d / "mosquitto.conf"

    creds = folder / "creds"
    creds.mkdir(exist_ok=True, mode=0o700)
    whats = (
        [(user_of("site", s), f"the gateway of site {s}", plan.region_of[s]) for s in sites]
        + [(user_of("verifier", v), f"verifier {v}", hub) for v in verifiers]
        + [(user_of("coord", c), f"coordinator {c}", hub) for c in coordinators]
    )
    for user, what, region in whats:
        p = creds / f"{user}.toml"
        files.write_private(p, cred_text(user, users[user], ca_pem, plan.urls[region], what))
        plan.creds[user] = p
    return plan
