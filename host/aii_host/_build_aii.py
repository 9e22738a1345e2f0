# SPDX-License-Identifier: MIT
"""cffi builder (API mode, out-of-line) for aii_host._aii over the firmware's own C core.

The declarations are read from the core's headers when the extension is built (_headers.py,
which travels with this package): nothing is copied by hand, so a header cannot drift from
the host. Only CORE_DIR is read; a source distribution that ships the core there builds the
same way (docs/architecture.md).
"""

import glob
import importlib.util
import os

from cffi import FFI

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)  # host/, where setup.py is
# The very same sources the firmware compiles, so host and device cannot disagree: host/aii_core
# is a link to c_modules/aii/core, so everything the build reads is inside host/ (a source
# distribution can ship the folder itself in its place).
CORE_DIR = os.path.join(_ROOT, "aii_core")
# What the host calls (and, through their includes, what they need).
HEADERS = ("aii_sched.h", "ledger.h", "fixed.h", "wide.h", "crc32.h", "aii_text.h", "particles.h")

# Executed by cffi's setuptools hook as a file, not imported: the sibling is loaded by path.
_spec = importlib.util.spec_from_file_location(
    "aii_host_headers", os.path.join(_HERE, "_headers.py")
)
_headers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_headers)

ffibuilder = FFI()
ffibuilder.cdef(_headers.Headers(CORE_DIR, HEADERS).cdef())
ffibuilder.set_source(
    "aii_host._aii",
    "\n".join(f'#include "{h}"' for h in HEADERS),
    # Relative to host/ (setuptools refuses absolute paths) and without "..": the objects then
    # go inside the build's own temporary folder ("../c_modules/..." put them beside it, shared
    # by every build on the machine at once).
    sources=sorted(os.path.relpath(f, _ROOT) for f in glob.glob(os.path.join(CORE_DIR, "*.c"))),
    include_dirs=[CORE_DIR],
    # A longer timeline than a board keeps: aii sched-demo --trace drains it between slices.
    extra_compile_args=["-std=c99", "-O2", "-DAII_SCHED_TRACE_RING=4096"],
)

if __name__ == "__main__":
    os.chdir(_ROOT)  # the sources are relative to host/
    ffibuilder.compile(verbose=True)
