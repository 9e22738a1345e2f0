# SPDX-License-Identifier: MIT
# A RAM filesystem in MicroPython for images without a writable one (the qemu MPS2_AN385 image
# until its board definition mounts littlefs in RAM): enough of the VFS protocol for the node.
# Sent to the board as code, so it carries no imports beyond vfs.
import vfs


class RamFile:
    def __init__(self, fs, path, mode):
        if "r" in mode:
            if path not in fs.files:
                raise OSError(2)
            self.buf = fs.files[path]
        elif "a" in mode:
            self.buf = fs.files.setdefault(path, bytearray())
        else:
            self.buf = fs.files[path] = bytearray()
        self.pos = 0

    def read(self, n=-1):
        end = len(self.buf) if n < 0 else min(len(self.buf), self.pos + n)
        data = bytes(self.buf[self.pos : end])
        self.pos = end
        return data

    def readinto(self, b):
        n = min(len(b), len(self.buf) - self.pos)
        b[:n] = self.buf[self.pos : self.pos + n]
        self.pos += n
        return n

    def seek(self, off, whence=0):
        self.pos = off + (len(self.buf) if whence == 2 else self.pos if whence == 1 else 0)
        return self.pos

    def write(self, data):
        self.buf.extend(data)
        return len(data)

    def flush(self):
        pass  # in RAM: written when write() returns

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


class RamFS:
    def __init__(self):
        self.files = {}
        self.dirs = {""}

    def _p(self, path):
        return path.strip("/")

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def chdir(self, path):
        pass

    def getcwd(self):
        return ""

    def ilistdir(self, path):
        d = self._p(path)
        pre = d + "/" if d else ""
        for name in list(self.files) + list(self.dirs):
            if name and name.startswith(pre) and "/" not in name[len(pre) :]:
                yield (name[len(pre) :], 0x4000 if name in self.dirs else 0x8000, 0)

    def mkdir(self, path):
        p = self._p(path)
        if p in self.dirs or p in self.files:
            raise OSError(17)
        self.dirs.add(p)

    def remove(self, path):
        if self._p(path) not in self.files:
            raise OSError(2)
        del self.files[self._p(path)]

    def rename(self, a, b):
        if self._p(a) not in self.files:
            raise OSError(2)
        self.files[self._p(b)] = self.files.pop(self._p(a))

    def rmdir(self, path):
        self.dirs.discard(self._p(path))

    def stat(self, path):
        p = self._p(path)
        if p in self.files:
            return (0x8000, 0, 0, 0, 0, 0, len(self.files[p]), 0, 0, 0)
        if p in self.dirs:
            return (0x4000, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        raise OSError(2)

    def statvfs(self, path):
        return (512, 512, 256, 256, 256, 0, 0, 0, 0, 255)

    def open(self, path, mode):
        return RamFile(self, self._p(path), mode)


vfs.mount(RamFS(), "/ram")
