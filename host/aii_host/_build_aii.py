# SPDX-License-Identifier: MIT
"""cffi builder (API mode, out-of-line) for aii_host._aii over the firmware's own C core."""

import glob
import os

from cffi import FFI

_HERE = os.path.dirname(os.path.abspath(__file__))
# The very same sources the firmware compiles, so host and device cannot disagree.
CORE_DIR = os.path.normpath(os.path.join(_HERE, "..", "..", "c_modules", "aii", "core"))

ffibuilder = FFI()
# The scheduler's declarations first: the ledger's use its aii_status_t.
_CDEFS = ("_cdef_aii.h", "_cdef_ledger.h")
_cdef = []
for _name in _CDEFS:
    with open(os.path.join(_HERE, _name), encoding="utf-8") as f:
        _cdef.append(f.read())
ffibuilder.cdef("\n".join(_cdef))

ffibuilder.set_source(
    "aii_host._aii",
    '#include "aii_sched.h"\n#include "ledger.h"\n#include "fixed.h"\n#include "wide.h"',
    # Relative paths: setuptools refuses absolute ones in an extension's sources.
    sources=sorted(os.path.relpath(f) for f in glob.glob(os.path.join(CORE_DIR, "*.c"))),
    include_dirs=[CORE_DIR],
    extra_compile_args=["-std=c99", "-O2"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
