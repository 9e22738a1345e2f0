# SPDX-License-Identifier: MIT
"""`aii` for the node's unit tests on CPython: aii_host (the cffi build of the same C core).

Put this folder before firmware/ on sys.path; the firmware's own `aii` package needs `_aii`,
which only a device or a simulated board provides.
"""

from aii_host import *
