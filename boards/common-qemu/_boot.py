# SPDX-License-Identifier: MIT
# Frozen boot script of the AII qemu boards (run by board.c): a littlefs in RAM mounted at "/",
# so the node and mip have somewhere to write. Kept across soft resets, lost when qemu exits.
# It runs in the REPL's globals, so everything lives inside _mount and is deleted after.
from micropython import const

_BLOCK = const(512)


def _mount(buf):
    import os

    import vfs

    class RamBlockDev:
        """Block device over a buffer (MicroPython docs, "Custom block devices")."""

        def __init__(self, buf):
            self.buf = buf
            self.blocks = len(buf) // _BLOCK

        def readblocks(self, n, buf, off=0):
            a = n * _BLOCK + off
            buf[:] = self.buf[a : a + len(buf)]

        def writeblocks(self, n, buf, off=0):
            a = n * _BLOCK + off  # RAM needs no erase, so partial writes are plain copies
            self.buf[a : a + len(buf)] = buf

        def ioctl(self, op, arg):
            if op == 4:  # block count
                return self.blocks
            if op == 5:  # block size
                return _BLOCK
            if op == 6:  # erase: nothing to do in RAM
                return 0
            return None

    bdev = RamBlockDev(buf)
    try:
        fs = vfs.VfsLfs2(bdev)  # after a soft reset: the filesystem is still there
    except OSError:
        vfs.VfsLfs2.mkfs(bdev)
        fs = vfs.VfsLfs2(bdev)
    vfs.mount(fs, "/")
    os.chdir("/")


_mount(globals().pop("_aii_ramdisk"))
del _mount, const
