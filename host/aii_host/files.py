# SPDX-License-Identifier: MIT
"""Files that must be whole, private and where they were asked for: node keys (keys.py), the
simulated-board registry (vboard/registry.py), the audit head (fleet/audit.py).

`write_private(path, text)` writes a fresh temporary file beside `path` (O_CREAT | O_EXCL |
O_NOFOLLOW, mode 0600: never a file someone planted, never through a link), syncs it, renames
it over `path` (a link planted at `path` is replaced, not followed) and syncs the folder, so
after a crash `path` holds the old text or the new one, whole.
"""

import os
from pathlib import Path


def write_private(path, text, mode=0o600):
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    try:
        fd = os.open(tmp, flags, mode)
    except FileExistsError:
        os.unlink(tmp)  # left by a process that had this pid and died mid-write
        fd = os.open(tmp, flags, mode)
    try:
        os.write(fd, text.encode() if isinstance(text, str) else text)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except OSError:
        os.unlink(tmp)
        raise
    d = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(d)
    finally:
        os.close(d)
    return path
