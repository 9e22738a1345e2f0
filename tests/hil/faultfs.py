# SPDX-License-Identifier: MIT
"""A storage layer that fails on purpose, for tests (docs/faults.md §7): runs on CPython and on
MicroPython (the simulated board, the unix port, the qemu image), in front of the node's Store.

`FaultFS(fs, fs_open, plan)` wraps an os-like module and an open() (the real ones, or MemFS
below) and numbers every *write point*: opening a file for writing, write, flush, sync (the
`fsync` it offers), close, rename, remove, mkdir. `plan` is None (count only) or a dict:

- {"at": k, "do": "error", "errno": 5, "count": 1}: points k .. k+count-1 raise
  OSError(errno) (count -1: until heal()); a failing write lands nothing, a failing sync or
  close lands what was written before raising (the nastier case: the caller cannot tell);
- {"at": k, "do": "short", "n": n}: the write at point k (or the next write after it) lands
  its first n bytes and returns n;
- {"at": k, "do": "cut", "tear": t}: power is lost at point k: bytes written since their
  file's last sync are dropped, except that the first t of them reach storage (a torn write),
  the call does not happen, and every later call raises PowerCut.

Durability model: a file's bytes are on storage once synced or closed; a rename or a remove
is on storage when it returns (littlefs commits metadata atomically). PowerCut is a
BaseException, so no `except Exception` in the node can catch it and write on.
"""

try:
    import os
except ImportError:  # pragma: no cover
    os = None

POINTS = ("open", "write", "flush", "sync", "close", "rename", "remove", "mkdir")


class PowerCut(BaseException):
    pass


class FaultFS:
    def __init__(self, fs=None, fs_open=None, plan=None, trace=False):
        self.fs = fs or os
        self._open = fs_open or open
        self.plan = plan
        self.n = 0  # write points so far
        self.trace = []  # (kind, path, bytes not yet synced) per point, with trace=True
        self.tracing = trace
        self.dead = False
        self.failing = 0  # points left to fail ("error")
        self.injected = 0
        self.files = {}
        self.next_id = 3
        self.current = None  # the file written last: the one a cut tears

    # ---- points ----
    def _alive(self):
        if self.dead:
            raise PowerCut("storage is gone (power cut)")

    def _point(self, kind, path, f=None):
        """What to do at this point: None, ("error", errno), ("short", n) or ("cut", t)."""
        self._alive()
        k = self.n
        self.n += 1
        if self.tracing:
            self.trace.append((kind, path, len(f.pending) if f is not None else 0))
        p = self.plan
        if p is None:
            return None
        if p["do"] == "error":
            if k == p["at"]:
                self.failing = p.get("count", 1)
            if self.failing:
                self.failing -= 1 if self.failing > 0 else 0
                self.injected += 1
                return ("error", p.get("errno", 5))
            return None
        if p["do"] == "short":
            if k >= p["at"] and kind == "write" and not self.injected:
                self.injected += 1
                return ("short", p.get("n", 0))
            return None
        if p["do"] == "cut" and k == p["at"]:
            self.injected += 1
            return ("cut", p.get("tear", 0))
        return None

    def heal(self):
        self.failing = 0
        self.plan = None

    def _cut(self, tear, data=b""):
        f = self.current
        if f is not None and tear:
            part = (f.pending + data)[:tear]
            if part:
                f._land(part)
        self.dead = True
        raise PowerCut(f"power cut at write point {self.n - 1}")

    def _act(self, act, kind):
        if act is None:
            return
        if act[0] == "error":
            raise OSError(act[1], f"injected {kind} error at write point {self.n - 1}")
        if act[0] == "cut":
            self._cut(act[1])

    # ---- os-like ----
    def stat(self, path):
        self._alive()
        return self.fs.stat(path)

    def listdir(self, path):
        self._alive()
        return self.fs.listdir(path)

    def mkdir(self, path):
        self._act(self._point("mkdir", path), "mkdir")
        self.fs.mkdir(path)

    def remove(self, path):
        self._act(self._point("remove", path), "remove")
        self.fs.remove(path)

    def rename(self, a, b):
        self._act(self._point("rename", a), "rename")
        self.fs.rename(a, b)

    def fsync(self, fd):
        f = self.files[fd]
        act = self._point("sync", f.path, f)
        if act is not None and act[0] == "cut":
            self._cut(act[1])
        f._land(f.pending)
        f.pending = b""
        self._act(act, "sync")

    # ---- open-like ----
    def open(self, path, mode="r"):
        if "w" not in mode and "a" not in mode:
            self._alive()
            return _Reader(self, self._open(path, mode))
        self._act(self._point("open", path), "open")
        return _Writer(self, path, mode)


class _Reader:
    def __init__(self, ffs, f):
        self.ffs, self.f = ffs, f

    def read(self, *a):
        self.ffs._alive()
        return self.f.read(*a)

    def readinto(self, buf):
        self.ffs._alive()
        return self.f.readinto(buf)

    def seek(self, *a):
        self.ffs._alive()
        return self.f.seek(*a)

    def close(self):
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


class _Writer:
    def __init__(self, ffs, path, mode):
        self.ffs, self.path = ffs, path
        self.pending = b""
        self.closed = False
        if "w" in mode:
            with ffs._open(path, "wb"):
                pass  # created (and emptied) now, as littlefs does at open
        else:
            with ffs._open(path, "ab"):
                pass
        self.id = ffs.next_id
        ffs.next_id += 1
        ffs.files[self.id] = self

    def _land(self, data):
        if data:
            with self.ffs._open(self.path, "ab") as f:
                f.write(data)

    def fileno(self):
        return self.id

    def write(self, data):
        ffs = self.ffs
        ffs.current = self
        data = bytes(data)
        act = ffs._point("write", self.path, self)
        if act is not None:
            if act[0] == "short":
                self.pending += data[: act[1]]
                return min(act[1], len(data))
            if act[0] == "cut":
                ffs._cut(act[1], data)
            ffs._act(act, "write")
        self.pending += data
        return len(data)

    def flush(self):
        self.ffs._act(self.ffs._point("flush", self.path, self), "flush")

    def close(self):
        if self.closed:
            return
        self.closed = True
        ffs = self.ffs
        act = ffs._point("close", self.path, self)
        if act is not None and act[0] == "cut":
            ffs._cut(act[1])
        self._land(self.pending)
        self.pending = b""
        ffs.files.pop(self.id, None)
        ffs._act(act, "close")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc and exc[0] is not None and issubclass(exc[0], PowerCut):
            return False  # storage is gone: nothing more happens
        self.close()


class MemFS:
    """An in-memory file system with the os/open calls Store uses: fast enough to try every
    write point in-process. `files` maps paths to bytes; copy() snapshots it."""

    def __init__(self, files=None):
        self.files = dict(files or {})
        self.dirs = set()

    def copy(self):
        m = MemFS(self.files)
        m.dirs = set(self.dirs)
        return m

    def mkdir(self, path):
        if path in self.dirs:
            raise OSError(17, "exists")
        self.dirs.add(path)

    def stat(self, path):
        if path not in self.files and path not in self.dirs:
            raise OSError(2, "no such file")
        return (0, 0, 0, 0, 0, 0, len(self.files.get(path, b"")))

    def listdir(self, path):
        pre = path + "/"
        return [p[len(pre) :] for p in self.files if p.startswith(pre)]

    def remove(self, path):
        if path not in self.files:
            raise OSError(2, "no such file")
        del self.files[path]

    def rename(self, a, b):
        if a not in self.files:
            raise OSError(2, "no such file")
        self.files[b] = self.files.pop(a)

    def open(self, path, mode="r"):
        if "w" in mode:
            self.files[path] = b""
        elif "a" in mode:
            self.files.setdefault(path, b"")
        elif path not in self.files:
            raise OSError(2, "no such file")
        return _MemFile(self, path)


class _MemFile:
    def __init__(self, fs, path):
        self.fs, self.path = fs, path
        self.pos = 0

    def read(self, n=-1):
        return self.fs.files[self.path]

    def seek(self, off, whence=0):
        self.pos = off + (len(self.fs.files[self.path]) if whence == 2 else 0)
        return self.pos

    def readinto(self, buf):
        data = self.fs.files[self.path][self.pos : self.pos + len(buf)]
        buf[: len(data)] = data
        self.pos += len(data)
        return len(data)

    def write(self, data):
        self.fs.files[self.path] += bytes(data)
        return len(data)

    def flush(self):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass
