# SPDX-License-Identifier: MIT
"""`_aii` on a simulated board: the cffi build of the same C core (aii_host) stands in for the
native module, so firmware/aii/__init__.py runs unchanged and re-exports it as `aii`."""

import types as _types

import aii_host as _h

for _n in dir(_h):
    if not _n.startswith("_") and not isinstance(getattr(_h, _n), _types.ModuleType):
        globals()[_n] = getattr(_h, _n)
del _n, _types


def __getattr__(name):
    # What aii_host imports on first use (Particles: numpy, the particles extra) is not among
    # its globals yet: `from _aii import Particles` asks here. Without numpy that is an
    # ImportError, which the firmware takes as a board without the kernel.
    if name.startswith("_"):
        raise AttributeError(name)
    return getattr(_h, name)
