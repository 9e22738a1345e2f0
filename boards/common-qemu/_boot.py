# SPDX-License-Identifier: MIT
# Frozen boot script of the AII qemu boards (run by board.c): a littlefs in RAM mounted at "/",
# so the node and mip have somewhere to write. Kept across soft resets, lost when qemu exits.
# It runs in the REPL's globals, so everything lives inside _mount and is deleted after.


def _mount(bdev):
    # bdev: the RAM's block device (board.c), outside the heap.
    import os

    import vfs

    try:
        fs = vfs.VfsLfs2(bdev)  # after a soft reset: the filesystem is still there
    except OSError:
        vfs.VfsLfs2.mkfs(bdev)
        fs = vfs.VfsLfs2(bdev)
    vfs.mount(fs, "/")
    os.chdir("/")


_mount(globals().pop("_aii_ramdisk"))
del _mount
