# SPDX-License-Identifier: MIT
"""Stand-ins for MicroPython modules; a directory on a simulated board's sys.path (see README.md)."""
