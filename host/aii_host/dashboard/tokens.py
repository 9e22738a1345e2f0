# SPDX-License-Identifier: MIT
"""Operator tokens: the dashboard's one action (clear an isolation) needs one, sent as
`Authorization: Bearer <token>`; the page itself is read-only without.

`aii keygen --operator [NAME]` writes `NAME.operator` (64 hex digits, 0600) into the keys folder
($AII_KEYS_DIR, or --out). `aii dashboard` accepts every `*.operator` file of its --operators
folder (default: the keys folder) and names the operator in the audit record of each action."""

import hmac
import secrets
from pathlib import Path

from ..core import keys

SUFFIX = ".operator"
TOKEN_BYTES = 32


def keygen(name, out=None, replace=False):
    """Writes `<out>/<name>.operator` with a fresh token; returns its path."""
    keys.check_name(name, "the operator's name")
    path = Path(out or keys.keys_dir()) / (name + SUFFIX)
    keys.write_private(path, secrets.token_bytes(TOKEN_BYTES).hex() + "\n", replace)
    return path


def load(folder):
    """{token text: operator name} of the `*.operator` files in `folder` ({} when none)."""
    out = {}
    d = Path(folder)
    if not d.is_dir():
        return out
    for p in sorted(d.glob("*" + SUFFIX)):
        try:
            text = p.read_text().strip()
        except (OSError, UnicodeDecodeError):
            continue  # unreadable: not a token this dashboard can accept
        if len(text) >= 32 and all(c in "0123456789abcdef" for c in text):
            out[text] = p.name[: -len(SUFFIX)]
    return out


def check(tokens, header):
    """The operator named by an `Authorization` header's bearer token, or None. Every token is
    compared in constant time, so the answer's timing tells nothing about a near miss."""
    if not header or not header.startswith("Bearer "):
        return None
    given = header[len("Bearer ") :].strip().encode()
    who = None
    for text, name in tokens.items():
        if hmac.compare_digest(given, text.encode()):
            who = name
    return who
