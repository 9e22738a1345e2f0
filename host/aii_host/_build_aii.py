# SPDX-License-Identifier: MIT
"""cffi builder (API mode, out-of-line) for aii_host._aii over the firmware's own C core."""

import glob
import os

from cffi import FFI

_HERE = os.path.dirname(os.path.abspath(__file__))
# The very same sources the firmware compiles, so host and device cannot disagree.
CORE_DIR = os.path.normpath(os.path.join(_HERE, "..", "..", "c_modules", "aii", "core"))

ffibuilder = FFI()
with open(os.path.join(_HERE, "_cdef_aii.h"), encoding="utf-8") as f:
    ffibuilder.cdef(f.read())

ffibuilder.set_source(
    "aii_host._aii",
    '#include "aii_sched.h"',
    # Relative paths: setuptools refuses absolute ones in an extension's sources.
    sources=sorted(os.path.relpath(f) for f in glob.glob(os.path.join(CORE_DIR, "*.c"))),
    include_dirs=[CORE_DIR],
    extra_compile_args=["-std=c99", "-O2"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
