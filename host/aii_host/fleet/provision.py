# SPDX-License-Identifier: MIT
"""Provisioning a fleet (docs/provisioning.md): `aii init` makes a fleet folder (per-node keys
and configs, the fleet file), `aii deploy --fleet` deploys every node, `aii keygen --rotate`
replaces one node's key by a signed request while the rest of the fleet runs on.

Every file holding a key is written whole and private (core/files.py: a temporary file, 0600,
renamed over the old one), so a crash leaves the old text or the new one, never half of each.
"""

import itertools
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from ..core import keys
from ..core._errors import AIIError, AIIValueError
from ..core.files import write_private

# The node config `aii init` starts from without --template: two quantities, a meter task and
# the heartbeat of tests/hil/node_config.json (docs/protocol.md §8 lists every field).
TEMPLATE = {
    "quantities": [{"name": "Wh", "digits": 3}, {"name": "l", "digits": 0}],
    "accounts": [
        {"name": "grid", "quantity": "Wh", "initial": "1000.000"},
        {"name": "load", "quantity": "Wh"},
        {"name": "tank", "quantity": "l", "initial": 1000},
        {"name": "sink", "quantity": "l"},
    ],
    "tasks": [
        {
            "name": "pump",
            "period_us": 200000,
            "budget_us": 100,
            "action": "meter",
            "src": "tank",
            "dst": "sink",
            "quantity": "l",
            "amount": 1,
        }
    ],
    "heartbeat_ms": 500,
    "offline_after": 3,
}

FLEET_FILE = "fleet.toml"
KEYS = "keys"  # the folder of the fleet folder holding NODE.key and NODE.json


class ProvisionError(AIIError):
    """A fleet folder that cannot be made, a node that cannot be deployed or rotated."""


def node_names(text):
    """["n1", "n2", ...] from "n1,n2,..." (each a name keys.check_name accepts, none twice)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise AIIValueError("--nodes needs at least one name, e.g. --nodes n1,n2,n3")
    for n in names:
        keys.check_name(n, "--nodes: a node name")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise AIIValueError(f"--nodes: {dup[0]} is named twice")
    return names


def _task_quantities(template):
    # The quantities the template's tasks move: the fleet's policy must allow them a task origin.
    out = []
    for t in template.get("tasks", []) if isinstance(template.get("tasks"), list) else []:
        q = t.get("quantity") if isinstance(t, dict) else None
        if isinstance(q, str) and q not in out:
            out.append(q)
    return out


def _fleet_text(names, ports, heartbeat_s, task_quantities=()):
    out = [
        "# Made by aii init (docs/provisioning.md). One [[node]] per node: its port (a serial",
        '# device, "tcp:HOST:PORT" or "vboard:NAME", a simulated board by name), its key and',
        "# its config (both in keys/, readable by you only).",
        "[fleet]",
        'db = "fleet.db"',
        f"heartbeat_s = {heartbeat_s}",
        "",
    ]
    for name, port in zip(names, ports):
        out += ["[[node]]", f'name = "{name}"', f"port = {json.dumps(port)}"]
        out += [f'key_file = "{KEYS}/{name}.key"', f'config = "{KEYS}/{name}.json"', ""]
    if task_quantities:
        out.append("# The nodes' tasks move these quantities: their records may come from a task.")
    for q in task_quantities:  # docs/fleet.md §8; anything else: signed requests and configs only
        out += [
            "[[policy.allow]]",
            f"quantity = {json.dumps(q)}",
            'origins = ["signed", "config", "task"]',
        ]
        out.append("")
    return "\n".join(out)


def init(folder, names, template=None, ports=None, heartbeat_s=None, operator="operator"):
    """Makes the fleet folder `folder`: keys/NODE.key and keys/NODE.json per node (a fresh key
    each, through keys.keygen as `aii keygen` makes them; the config from `template`), an
    operator token keys/OPERATOR.operator (as `aii keygen --operator` makes it: aii dashboard's
    action needs one, docs/dashboard.md) and the fleet file. Refuses to overwrite any file;
    nothing is written unless all can be. Returns {"fleet": path, "nodes": {name: {...}},
    "operator": name, "token_file": path}."""
    from ..dashboard import tokens

    folder = Path(folder)
    ports = list(ports) if ports else [f"vboard:{n}" for n in names]
    if len(ports) != len(names):
        raise AIIValueError(f"--ports gives {len(ports)} ports for {len(names)} nodes")
    tpl = dict(TEMPLATE if template is None else template)
    hb_ms = tpl.get("heartbeat_ms", 500)
    if isinstance(hb_ms, bool) or not isinstance(hb_ms, (int, float)) or not 10 <= hb_ms <= 60000:
        raise AIIValueError(f"the template's heartbeat_ms must be 10 .. 60000, got {hb_ms!r}")
    hb = heartbeat_s if heartbeat_s is not None else hb_ms / 1000
    fleet_file, kdir = folder / FLEET_FILE, folder / KEYS
    keys.check_name(operator, "--operator")
    targets = [fleet_file, kdir / (operator + tokens.SUFFIX)]
    targets += [kdir / f"{n}.{x}" for n in names for x in ("key", "json")]
    there = [str(p) for p in targets if os.path.lexists(p)]
    if there:
        raise ProvisionError(
            f"{there[0]} exists: aii init never overwrites a fleet (choose another folder; "
            "aii keygen --rotate replaces a key)"
        )
    if folder.exists() and not folder.is_dir():
        raise ProvisionError(f"{folder} exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    kdir.mkdir(mode=0o700, exist_ok=True)
    out = {"fleet": str(fleet_file), "nodes": {}}
    for name, port in zip(names, ports):
        tpl["heartbeat_ms"] = round(hb * 1000)
        key_file, cfg_file = keys.keygen(name, kdir, tpl)
        out["nodes"][name] = {"port": port, "key_file": str(key_file), "config": str(cfg_file)}
    text = _fleet_text(names, ports, hb, _task_quantities(tpl))
    write_private(fleet_file, text + "\n")
    out["operator"], out["token_file"] = operator, str(tokens.keygen(operator, kdir))
    return out


# ---- deploy every node -------------------------------------------------------------------------


@dataclass
class Deployed:
    """One node's deploy: `state` ok / failed / skipped, the seconds it took, what it says."""

    node: str
    port: str
    state: str
    seconds: float = 0.0
    detail: str = ""

    def as_json(self):
        return {
            "node": self.node,
            "port": self.port,
            "state": self.state,
            "seconds": round(self.seconds, 3),
            "detail": self.detail,
        }


def node_config(spec):
    """The config `aii deploy --fleet` installs on `spec`'s node: its `config` file, checked to
    hold the node id and the key the fleet file has for it (a mismatch would deploy a key the
    fleet cannot sign with)."""
    from ..node.deploy import read_config

    if spec.config is None:
        raise ProvisionError(
            f'{spec.name}: the fleet file names no config for it (config = "keys/'
            f'{spec.name}.json", as aii init writes)'
        )
    cfg = read_config(Path(spec.config))
    if cfg.get("node", "node") != spec.node_id:
        raise ProvisionError(
            f"{spec.name}: {spec.config} is the config of node {cfg.get('node')!r}, not of "
            f"{spec.node_id!r}"
        )
    if spec.key is not None and cfg.get("key", "").lower() != spec.key.hex():
        raise ProvisionError(
            f"{spec.name}: {spec.config} holds another key than the fleet file's: deploying "
            "it would lock the fleet out (aii keygen --rotate keeps both the same)"
        )
    return cfg


def deploy_fleet(fleet, keep_going=False, on_start=None, on_done=None, dry_run=False):
    """Deploys every node of `fleet` (config.Fleet) in turn with its config (node_config);
    stops at the first failure unless `keep_going` (the rest are then `skipped`). Calls
    `on_start(spec)` and `on_done(Deployed)` around each; returns the list of Deployed."""
    import contextlib
    import io

    from ..node.deploy import deploy
    from .failover import deploy_port

    results = []
    failed = False
    for spec in fleet.nodes:
        port = deploy_port(spec)
        if failed and not keep_going:
            results.append(Deployed(spec.name, port, "skipped", 0.0, "after a failure"))
            continue
        if on_start:
            on_start(spec)
        t0 = time.monotonic()
        said = io.StringIO()
        try:
            cfg = node_config(spec)
            with contextlib.redirect_stdout(said):
                deploy(port, cfg, dry_run=dry_run, quiet=True)
            r = Deployed(spec.name, port, "ok", time.monotonic() - t0, _last(said))
        except AIIError as e:
            failed = True
            r = Deployed(spec.name, port, "failed", time.monotonic() - t0, str(e))
        except OSError as e:
            failed = True
            where = f"{e.filename}: " if e.filename else ""
            msg = f"{where}{e.strerror or e}"
            r = Deployed(spec.name, port, "failed", time.monotonic() - t0, msg)
        results.append(r)
        if on_done:
            on_done(r)
    return results


def _last(buf):
    lines = [x for x in buf.getvalue().splitlines() if x.strip()]
    return lines[-1].removeprefix("deploy: ") if lines else ""


# ---- key rotation ------------------------------------------------------------------------------


def _fleet_node_table(text, name):
    import tomllib

    for t in tomllib.loads(text).get("node", []):
        if isinstance(t, dict) and t.get("name") == name:
            return t
    return None


def _replace_inline_key(text, name, new_hex):
    """The fleet file's text with node `name`'s `key = "..."` changed, nothing else touched
    (comments and layout kept)."""
    import tomllib

    lines = text.splitlines(keepends=True)
    starts = [i for i, x in enumerate(lines) if x.strip().startswith("[")] + [len(lines)]
    for a, b in itertools.pairwise(starts):
        if not lines[a].strip().startswith("[[node]]"):
            continue
        if tomllib.loads("".join(lines[a + 1 : b])).get("name") != name:
            continue
        for i in range(a + 1, b):
            head, eq, _ = lines[i].partition("=")
            if eq and head.strip() == "key":
                lines[i] = f'{head.rstrip()} = "{new_hex}"\n'
                return "".join(lines)
    raise ProvisionError(f"cannot find node {name}'s key line in the fleet file")


def _endpoint(fleet, spec, timeout):
    """A request endpoint for the node: through a running `aii aggregate` (it owns the ports;
    the other nodes stay connected), else the node's own port. (endpoint, via relay?)."""
    from .relay import RelayNode, running

    if running(fleet.db):
        return RelayNode(fleet.db, spec.name, timeout), True
    from .failover import open_client

    return open_client(spec, timeout), False


def _close(ep):
    t = getattr(ep, "t", None)
    if t is not None:
        t.close()
    else:
        ep.close()


def rotate(fleet_path, name, timeout=2.0):
    """Replaces node `name`'s key: a fresh key, kept first in a pending file beside the old one
    (so a crash after the node took it loses nothing: the next run finishes the rotation),
    sent in a signed `key_set`, confirmed by the node's `hello.key_id`; only then are the
    host's copies replaced (the key file or the fleet file's inline key, and the node's config
    file), each atomically; a running aggregator is told to read the keys again. Returns
    {"node", "key_id", "old_key_id", "via", "files", "resumed"}."""
    from ..core.client import NodeError, NodeTimeout
    from ..core.transport import TransportError
    from . import config as fconfig
    from . import relay

    fleet_path = Path(fleet_path)
    fleet = fconfig.load(fleet_path)
    spec = fleet.node(name)
    text = fleet_path.read_text()
    table = _fleet_node_table(text, name) or {}
    key_file = fleet_path.parent / table["key_file"] if "key_file" in table else None
    if spec.key is None:
        raise ProvisionError(f"{name}: the fleet file has no key for it (key or key_file)")
    pending = (key_file or fleet_path).parent / f".{name}.key.new"
    resumed = pending.exists()
    if resumed:
        new = keys.read_key(str(pending))
    else:
        new = secrets.token_bytes(keys.KEY_BYTES)
        write_private(pending, new.hex() + "\n")
    old_id, new_id = keys.key_id(spec.key), keys.key_id(new)
    ep, via_relay = _endpoint(fleet, spec, timeout)
    try:
        now = ep.request("hello").get("key_id")
        if now == old_id:
            try:
                ep.request("key_set", {"key": new.hex()}, auth=True)
            except NodeError as e:
                os.unlink(pending)  # refused: the node keeps its key, so does the host
                raise ProvisionError(f"{name} refused the new key: {e.msg}") from None
            except (NodeTimeout, TransportError):
                pass  # the answer is lost, not the outcome: hello tells it
            now = ep.request("hello").get("key_id")
        if now != new_id:
            if now == old_id:
                raise ProvisionError(
                    f"{name} still runs with its old key (nothing changed; the new one waits "
                    f"in {pending}): run aii keygen --rotate {name} again"
                )
            raise ProvisionError(
                f"{name} runs with a key that is neither the fleet file's nor the new one "
                f"(key id {now}): deploy it again (aii deploy --fleet) before rotating"
            )
    finally:
        _close(ep)
    files = []
    if key_file is not None:
        files.append(str(write_private(key_file, new.hex() + "\n")))
    else:
        new_text = _replace_inline_key(text, name, new.hex())
        files.append(str(write_private(fleet_path, new_text)))
    if spec.config is not None and Path(spec.config).exists():
        from ..node.deploy import read_config

        cfg = read_config(Path(spec.config))
        cfg["key"] = new.hex()
        files.append(str(write_private(spec.config, json.dumps(cfg, indent=2) + "\n")))
    os.unlink(pending)
    note = None
    if via_relay:
        try:
            relay.reload_keys(fleet.db, timeout)
        except relay.RelayError as e:
            # The rotation is done; an aggregator that stopped meanwhile reads the new key
            # from the files when it starts again.
            note = str(e)
    return {
        "aggregator_note": note,
        "node": name,
        "key_id": new_id,
        "old_key_id": old_id,
        "via": "aggregator" if via_relay else getattr(ep, "port", spec.port),
        "files": files,
        "resumed": resumed,
    }
