# SPDX-License-Identifier: MIT
"""Node keys on the host: one fresh key per node (`aii keygen`), kept in files only their user
can read, never shared between nodes (a MAC is bound to its node anyway: docs/protocol.md §3).

Key files hold 64 hex digits and a newline, mode 0600, written whole and never through a
planted link (files.write_private).
"""

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from . import files
from ._errors import AIIValueError

KEY_BYTES = 32
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


def keys_dir():
    """$AII_KEYS_DIR, else ~/.config/aii/keys."""
    return Path(os.environ.get("AII_KEYS_DIR") or Path.home() / ".config" / "aii" / "keys")


def check_name(node, where="node"):
    """A node name also names its key file: letters, digits, '_', '-', '.'; not '.'-first."""
    if not isinstance(node, str) or not node or node[0] == "." or set(node) - NAME_CHARS:
        raise AIIValueError(
            f"{where} must be a name of letters, digits, '_', '-' and '.', got {node!r}"
        )
    return node


def key_id(key):
    """16 hex digits naming `key` without revealing it, as the node's `hello` and `key_set`
    answer them (firmware/aii_node/auth.py: the MAC of a fixed text under the key)."""
    return hmac.new(key, b"aii key id", hashlib.sha256).hexdigest()[:16]


def read_key(text):
    """--key: 64 hex digits, or a file holding them."""
    p = Path(text)
    if p.is_file():
        text = p.read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise AIIValueError("--key must be hex digits or a file holding them") from None
    if len(key) < 16:
        raise AIIValueError("--key must be at least 16 bytes (32 hex digits)")
    return key


def write_private(path, text, replace=False):
    """Writes `text` to `path` readable by this user only; refuses to replace a file unless
    `replace` (a key in use would be lost)."""
    path = Path(path)
    if not replace and os.path.lexists(path):
        raise AIIValueError(f"{path} exists: --force replaces it (a node keeps its old key)")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return files.write_private(path, text)


def new_config(node, template=None):
    """A node config for `node` with a fresh key: the template's (a node config, JSON) with
    its `node` and `key` replaced, or just those two."""
    cfg = dict(template or {})
    cfg["node"] = check_name(node)
    cfg["key"] = secrets.token_bytes(KEY_BYTES).hex()
    return cfg


def keygen(node, out=None, template=None, replace=False):
    """Writes `<out>/<node>.key` and `<out>/<node>.json` (the node's config, with the key);
    returns (key file, config file). `out` defaults to keys_dir()."""
    cfg = new_config(node, template)
    d = Path(out) if out else keys_dir()
    key_file, cfg_file = d / f"{node}.key", d / f"{node}.json"
    for p in (key_file, cfg_file):
        if not replace and os.path.lexists(p):
            raise AIIValueError(f"{p} exists: --force replaces it (a node keeps its old key)")
    write_private(cfg_file, json.dumps(cfg, indent=2) + "\n", True)
    write_private(key_file, cfg["key"] + "\n", True)
    return key_file, cfg_file


def fleet_entry(node, key_file, port="PORT"):
    """The fleet file's [[node]] table for a node made by keygen (docs/fleet.md §2)."""
    return (
        f'[[node]]\nname = "{node}"\nport = "{port}"'
        "          # its serial port, a vboard pty or tcp:HOST:PORT\n"
        f'key_file = "{Path(key_file).resolve()}"\n'
    )
