# SPDX-License-Identifier: MIT
"""Where running simulated boards are listed, safe on a machine shared with other users.

`aii deploy --port /dev/pts/N` finds the folder of the board behind a pty here, and writes the
node's config (with its key) into it: whoever can plant an entry could send that key anywhere.
So the registry lives in a folder only its user can reach: `$XDG_RUNTIME_DIR/aii-vboards`
(a 0700 folder of the user's, by the XDG spec: checked), else `aii-vboards-<uid>` in the temp
folder, created 0700 and checked (a folder, not a link, owned by this user; closed to others,
by a chmod when an older aii left it open) before every use. Entries are written to a new temporary file (O_EXCL | O_NOFOLLOW, 0600) and
renamed over the old one, so a planted symlink is replaced, never written through; they are
read with O_NOFOLLOW and must be regular files of this user naming a folder of this user.
Anything else is refused with a RegistryError that says what to remove.
"""

import json
import os
import stat
import tempfile
from pathlib import Path

from .._errors import AIIError
from ..files import write_private


class RegistryError(AIIError):
    """A registry folder or entry that is not this user's own: refused, never followed."""


def _private_dir(d, what, tighten=False):
    """Checks that `d` is a folder (not a link) of this user that others cannot enter;
    `tighten`: closes it to others when it is this user's (older aii made it 0755)."""
    try:
        st = os.lstat(d)
    except FileNotFoundError:
        raise RegistryError(f"{what} {d} does not exist") from None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise RegistryError(f"{what} {d} is not a folder (a link?): remove it")
    if st.st_uid != os.getuid():
        raise RegistryError(f"{what} {d} belongs to uid {st.st_uid}, not to you: remove it")
    if st.st_mode & 0o077 and tighten:
        os.chmod(d, 0o700)  # entries are checked one by one when read: none is trusted
    elif st.st_mode & 0o077:
        raise RegistryError(
            f"{what} {d} is open to others (mode {stat.S_IMODE(st.st_mode):o}): "
            f"chmod 700 it or remove it"
        )
    return Path(d)


def registry_dir():
    """The registry folder (created when missing), checked as the module says."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        _private_dir(xdg, "XDG_RUNTIME_DIR")
        d = Path(xdg) / "aii-vboards"
    else:
        d = Path(tempfile.gettempdir()) / f"aii-vboards-{os.getuid()}"
    try:
        os.mkdir(d, 0o700)
    except FileExistsError:
        pass
    return _private_dir(d, "simulated-board registry", tighten=True)


def entry_path(port):
    """The registry entry of the board behind pty `port`."""
    return registry_dir() / (os.path.basename(port) + ".json")


def write_json(path, obj):
    """Replaces `path` with `obj` as JSON, 0600, never through a planted link (files.py)."""
    write_private(path, json.dumps(obj))


def read_json(path):
    """The JSON object in `path`, a regular file of this user (not a link); None when there
    is none; RegistryError otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise RegistryError(f"{path}: {e.strerror} (a planted link?): remove it") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RegistryError(f"{path} is not a regular file: remove it")
        if st.st_uid != os.getuid():
            raise RegistryError(f"{path} belongs to uid {st.st_uid}, not to you: remove it")
        data = os.read(fd, 1 << 16)
    finally:
        os.close(fd)
    try:
        obj = json.loads(data)
    except ValueError:
        raise RegistryError(f"{path} is not a board entry (not JSON): remove it") from None
    if not isinstance(obj, dict):
        raise RegistryError(f"{path} is not a board entry: remove it")
    return obj


def board_folder(entry, path):
    """The folder an entry names, once checked to be this user's (a planted entry can name
    another user's folder: the config and its key would go there)."""
    d = entry.get("dir")
    if not isinstance(d, str) or not os.path.isabs(d):
        raise RegistryError(f"{path} names no board folder: remove it")
    try:
        st = os.lstat(d)
    except FileNotFoundError:
        return None  # a board that is gone
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise RegistryError(
            f"{path} names {d}, which is not a folder of yours: a planted entry? remove it"
        )
    return Path(d)


def alive(pid):
    """True when process `pid` runs and is this user's (a signal 0 reaches only those)."""
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError):
        return False
    return True


def remove(path):
    try:
        os.remove(path)
    except OSError:
        pass
