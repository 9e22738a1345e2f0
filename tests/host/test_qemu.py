# SPDX-License-Identifier: MIT
"""aii_host.node.qemu refuses what it cannot boot with an error that says what to do; booting the
MPS2_AN385 image itself is exercised by the qemu HIL target and test_mip (MICROPY_DIR)."""

import pytest
from aii_host.node import qemu


def test_missing_image_says_how_to_build_it(tmp_path):
    with pytest.raises(qemu.QemuError, match=r"no image at .*make firmware BOARD=MPS2_AN385"):
        qemu.start(tmp_path / "nope.elf", tmp_path / "qemu.log")
