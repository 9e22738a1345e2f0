# SPDX-License-Identifier: MIT
"""`aii` on a simulated board: aii_host, the cffi build of the same C core (Scheduler, Ledger,
fixed point). Shadows firmware/aii, whose __init__ re-exports only part of `_aii` today; `_aii`
is here too, so the firmware package runs unchanged once it re-exports the whole module."""

from aii_host import *
from aii_host import __all__  # noqa: F401
