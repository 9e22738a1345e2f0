# SPDX-License-Identifier: MIT
"""The fleet file (TOML, docs/fleet.md §2): where the database is, the heartbeat period, each
node's name, port and key, and the origin policy.

    [fleet]
    db = "fleet.db"            # relative to the fleet file
    heartbeat_s = 0.5
    [[node]]
    name = "n1"
    port = "/dev/ttyACM0"      # or "tcp:127.0.0.1:7001", or "vboard:ID" / "vboard:DIR"
    # ports = ["/dev/ttyACM0", "tcp:10.0.0.7:7001"]   # instead of port: links in order of
    #                          # preference; the aggregator fails over and back (§3.1)
    key = "<64 hex>"           # or key_file = "n1.key"
    node = "n1"                # the node id in its config (default: name); signatures bind it
    config = "keys/n1.json"    # the node's config, for aii deploy --fleet (aii init writes it)
    [policy]                   # who may change what (docs/fleet.md §8); optional
    default = ["signed", "config", "none"]
    [[policy.allow]]
    node = "n1"                # or "*" (default)
    quantity = "l"             # or "*" (default)
    origins = ["signed", "task"]

Errors name the file, the line of the `[[node]]` table (tomllib gives no positions for values,
so the line of the table's header stands for them) and the field.
"""

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..core import _record as R
from ..core._errors import AIIError


class FleetConfigError(AIIError):
    """The fleet file is missing, is not TOML, or a field is wrong."""


MAX_LINKS = 8  # links of one node: a longer list is a mistake, not a network


@dataclass(frozen=True)
class NodeSpec:
    """One node of the fleet. `port` is its preferred link; `ports` every link in order of
    preference (port first). `NodeSpec(name, [p1, p2], ...)` gives both from a list."""

    name: str
    port: str
    key: bytes = field(repr=False, default=None)
    node: str = None  # the id in the node's config, when it is not `name`
    config: Path = None  # the node's config file (aii deploy --fleet), relative paths resolved
    ports: tuple = ()

    def __post_init__(self):
        # One shape inside: `ports` always lists every link, `port` is always its first.
        if isinstance(self.port, (list, tuple)):
            if self.ports:
                raise FleetConfigError(f"node {self.name}: give port or ports, not both")
            object.__setattr__(self, "ports", tuple(self.port))
        elif not self.ports:
            object.__setattr__(self, "ports", (self.port,))
        elif self.port != self.ports[0]:
            raise FleetConfigError(f"node {self.name}: port must be the first of ports")
        if not self.ports:
            raise FleetConfigError(f"node {self.name}: no port")
        object.__setattr__(self, "ports", tuple(self.ports))
        object.__setattr__(self, "port", self.ports[0])

    @property
    def node_id(self):
        """The id the node's signed requests are bound to (docs/protocol.md §3)."""
        return self.node or self.name


# Journal record origins (aii_record.h, aii_origin_t) by the names a fleet file uses.
ORIGINS = {"none": R.ORIGIN_NONE, "signed": R.ORIGIN_SIGNED, "task": R.ORIGIN_TASK}
ORIGINS |= {"console": R.ORIGIN_CONSOLE, "config": R.ORIGIN_CONFIG}
ORIGIN_NAMES = {v: k for k, v in ORIGINS.items()}
# What needs the node key: signed requests and the deployed config (aii deploy), and what was
# journalled before records carried their origin ("none": firmware of format 2 and older).
DEFAULT_ORIGINS = ("signed", "config", "none")


def origin_name(code):
    return ORIGIN_NAMES.get(code, f"origin {code}")


class Policy:
    """Which record origins each node may have, per quantity (docs/fleet.md §8). The most
    specific rule wins: node and quantity, then node, then quantity, then `default`."""

    def __init__(self, default=DEFAULT_ORIGINS, rules=()):
        self.default = frozenset(ORIGINS[o] for o in default)
        # {(node or "*", quantity or "*"): frozenset of origin codes}
        self.rules = {(n, q): frozenset(ORIGINS[o] for o in os) for n, q, os in rules}

    def allowed(self, node, quantity):
        for k in ((node, quantity), (node, "*"), ("*", quantity)):
            if k in self.rules:
                return self.rules[k]
        return self.rules.get(("*", "*"), self.default)

    def allows(self, node, quantity, origin):
        return origin in self.allowed(node, quantity)

    def always(self, node):
        """Origins allowed for every quantity of `node`: records of these need no lookup."""
        out = self.allowed(node, "\0")  # a name no quantity has: the node-wide rule
        for (n, q), codes in self.rules.items():
            if q != "*" and n in (node, "*"):
                out &= codes
        return out

    def describe(self, node, quantity):
        return ", ".join(sorted(ORIGIN_NAMES[c] for c in self.allowed(node, quantity)))


@dataclass
class Fleet:
    db: Path
    heartbeat_s: float = 0.5
    nodes: list = field(default_factory=list)
    path: Path = None
    policy: Policy = field(default_factory=Policy)

    def node(self, name):
        for n in self.nodes:
            if n.name == name:
                return n
        raise FleetConfigError(f"no node {name!r} in the fleet (have: {self.names()})")

    def names(self):
        return [n.name for n in self.nodes]


def _node_lines(text):
    # Line numbers (1-based) of each `[[node]]` header, in order.
    return [
        i + 1 for i, line in enumerate(text.splitlines()) if line.strip().startswith("[[node]]")
    ]


def _field_line(text, header, name):
    # The line assigning `name` inside the table whose header is on line `header`.
    lines = text.splitlines()
    for i in range(header, len(lines)):
        t = lines[i].strip()
        if t.startswith("["):
            break
        if t.split("=", 1)[0].strip() == name:
            return i + 1
    return header


def _key(raw, where):
    try:
        key = bytes.fromhex(raw.strip())
    except (ValueError, AttributeError):
        raise FleetConfigError(f"{where}: key must be hex digits") from None
    if len(key) != 32:
        raise FleetConfigError(f"{where}: key must be 64 hex digits (32 bytes), got {len(key)}")
    return key


def _spec(i, t, base, line, path, text):
    def at(field=None):
        n = line if field is None or not line else _field_line(text, line, field)
        head = f"{path}, line {n}" if n else str(path)
        name = t.get("name") if isinstance(t.get("name"), str) else None
        who = f"[[node]] #{i + 1}" + (f" ({name})" if name else "")
        return f"{head}: {who}" + (f", field {field!r}" if field else "")

    if not isinstance(t, dict):
        raise FleetConfigError(f"{path}: [[node]] #{i + 1} must be a table")
    unknown = set(t) - {"name", "port", "ports", "key", "key_file", "node", "config"}
    if unknown:
        f = min(unknown)
        raise FleetConfigError(
            f"{at(f)}: unknown field (name, port, ports, key, key_file, node, config)"
        )
    for f in ("node", "config"):
        if f in t and (not isinstance(t[f], str) or not t[f]):
            raise FleetConfigError(f"{at(f)}: field {f!r} must be a non-empty string")
    if not isinstance(t.get("name"), str) or not t["name"]:
        raise FleetConfigError(
            f"{at('name' if 'name' in t else None)}: field 'name' must be a non-empty string"
        )
    ports = _ports(t, at)
    key = None
    if "key" in t and "key_file" in t:
        raise FleetConfigError(f"{at('key_file')}: give key or key_file, not both")
    if "key" in t:
        key = _key(t["key"], at("key"))
    elif "key_file" in t:
        kf = base / t["key_file"]
        try:
            key = _key(kf.read_text(), f"{at('key_file')} ({kf})")
        except OSError as e:
            raise FleetConfigError(
                f"{at('key_file')}: cannot read {kf}: {e.strerror or e}"
            ) from None
        except UnicodeDecodeError:
            raise FleetConfigError(f"{at('key_file')}: {kf} is not text (64 hex digits)") from None
    ports = [_board_path(p, base) for p in ports]
    seen = set()
    for p in ports:
        if p in seen:
            raise FleetConfigError(f"{at('ports')}: {p!r} is listed twice")
        seen.add(p)
    cfg = base / t["config"] if "config" in t else None
    return NodeSpec(t["name"], ports[0], key, t.get("node"), cfg, tuple(ports))


def _ports(t, at):
    # `port = "..."` (one link) or `ports = ["...", ...]` (several, preferred first).
    if "port" in t and "ports" in t:
        raise FleetConfigError(f"{at('ports')}: give port (one link) or ports (a list), not both")
    if "ports" not in t:
        if not isinstance(t.get("port"), str) or not t["port"]:
            raise FleetConfigError(
                f"{at('port' if 'port' in t else None)}: field 'port' must be a non-empty string"
                " (or ports = [...], several links in order of preference)"
            )
        return [t["port"]]
    ps = t["ports"]
    if not isinstance(ps, list) or not all(isinstance(p, str) and p for p in ps):
        raise FleetConfigError(
            f'{at("ports")}: must be a list of non-empty strings, e.g. ["/dev/ttyACM0", '
            '"tcp:10.0.0.7:7001"]'
        )
    if not 1 <= len(ps) <= MAX_LINKS:
        raise FleetConfigError(f"{at('ports')}: must list 1 .. {MAX_LINKS} links, got {len(ps)}")
    return ps


def _board_path(port, base):
    if port.startswith("vboard:") and "/" in port and not Path(port[7:]).is_absolute():
        return "vboard:" + str(base / port[7:])  # a board folder relative to the fleet file
    return port


def loads(text, path="<fleet>", base=None):
    """A Fleet from TOML text; `base` is the folder relative paths start from."""
    base = Path(base) if base is not None else Path.cwd()
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise FleetConfigError(f"{path}: not valid TOML: {e}") from None
    unknown = set(doc) - {"fleet", "node", "policy"}
    if unknown:
        raise FleetConfigError(f"{path}: unknown table {min(unknown)!r} (fleet, node, policy)")
    head = doc.get("fleet", {})
    if not isinstance(head, dict):
        raise FleetConfigError(f"{path}: [fleet] must be a table")
    bad = set(head) - {"db", "heartbeat_s"}
    if bad:
        raise FleetConfigError(f"{path}: [fleet]: unknown field {min(bad)!r}")
    db = head.get("db", "fleet.db")
    if not isinstance(db, str) or not db:
        raise FleetConfigError(f"{path}: [fleet] field 'db' must be a non-empty string")
    hb = head.get("heartbeat_s", 0.5)
    if isinstance(hb, bool) or not isinstance(hb, (int, float)) or not 0.01 <= hb <= 60:
        raise FleetConfigError(f"{path}: [fleet] field 'heartbeat_s' must be 0.01 .. 60 seconds")
    nodes = doc.get("node", [])
    if not isinstance(nodes, list) or not nodes:
        raise FleetConfigError(f"{path}: no [[node]] tables: a fleet needs at least one node")
    lines = _node_lines(text)
    specs = []
    for i, t in enumerate(nodes):
        specs.append(_spec(i, t, base, lines[i] if i < len(lines) else None, path, text))
    seen = set()
    for i, s in enumerate(specs):
        if s.name in seen:
            line = lines[i] if i < len(lines) else "?"
            raise FleetConfigError(f"{path}, line {line}: node name {s.name!r} used twice")
        seen.add(s.name)
    policy = _policy(doc.get("policy", {}), seen, path)
    return Fleet(base / db, float(hb), specs, Path(path), policy)


def _origins(v, where):
    if not isinstance(v, list) or not all(isinstance(o, str) for o in v):
        raise FleetConfigError(f"{where} must be a list of origin names ({', '.join(ORIGINS)})")
    bad = [o for o in v if o not in ORIGINS]
    if bad:
        raise FleetConfigError(f"{where}: unknown origin {bad[0]!r} ({', '.join(ORIGINS)})")
    return v


def _policy(t, names, path):
    if not isinstance(t, dict):
        raise FleetConfigError(f"{path}: [policy] must be a table")
    bad = set(t) - {"default", "allow"}
    if bad:
        raise FleetConfigError(f"{path}: [policy]: unknown field {min(bad)!r} (default, allow)")
    default = _origins(t.get("default", list(DEFAULT_ORIGINS)), f"{path}: [policy] default")
    allow = t.get("allow", [])
    if not isinstance(allow, list):
        raise FleetConfigError(f"{path}: [policy] allow must be [[policy.allow]] tables")
    rules = []
    for i, r in enumerate(allow):
        where = f"{path}: [[policy.allow]] #{i + 1}"
        if not isinstance(r, dict):
            raise FleetConfigError(f"{where} must be a table")
        bad = set(r) - {"node", "quantity", "origins"}
        if bad:
            raise FleetConfigError(f"{where}: unknown field {min(bad)!r} (node, quantity, origins)")
        node, qty = r.get("node", "*"), r.get("quantity", "*")
        if not isinstance(node, str) or (node != "*" and node not in names):
            raise FleetConfigError(f'{where}: node {node!r} is not in the fleet (or "*")')
        if not isinstance(qty, str) or not qty:
            raise FleetConfigError(f'{where}: quantity must be a quantity name (or "*")')
        if "origins" not in r:
            raise FleetConfigError(f"{where}: needs origins = [...] ({', '.join(ORIGINS)})")
        if any((node, qty) == (n, q) for n, q, _ in rules):
            raise FleetConfigError(f"{where}: node {node!r}, quantity {qty!r} given twice")
        rules.append((node, qty, _origins(r["origins"], f"{where}: origins")))
    return Policy(default, rules)


def load(path):
    """`load(path) -> Fleet(db, heartbeat_s, nodes=[NodeSpec(name, port, key, ..., ports)])`."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise FleetConfigError(f"cannot read fleet file {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise FleetConfigError(f"fleet file {path}: not text (TOML, docs/fleet.md §2)") from None
    return loads(text, str(path), path.parent)


def dumps(fleet_db, heartbeat_s, nodes, allow=()):
    """TOML text for a fleet: `nodes` is [(name, port, key bytes or None)] (port a list: several
    links, `ports = [...]`), `allow` [(node, quantity, [origin names])] rules of its [policy]
    (tests, demos)."""
    out = ["[fleet]", f'db = "{fleet_db}"', f"heartbeat_s = {heartbeat_s}", ""]
    for name, port, key in nodes:
        out += ["[[node]]", f'name = "{name}"']
        if isinstance(port, (list, tuple)):
            out.append("ports = [" + ", ".join(f'"{p}"' for p in port) + "]")
        else:
            out.append(f'port = "{port}"')
        if key is not None:
            out.append(f'key = "{key.hex()}"')
        out.append("")
    for node, qty, origins in allow:
        quoted = ", ".join(f'"{o}"' for o in origins)
        out += ["[[policy.allow]]", f'node = "{node}"', f'quantity = "{qty}"']
        out += [f"origins = [{quoted}]", ""]
    return "\n".join(out)
