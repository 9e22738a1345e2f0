# SPDX-License-Identifier: MIT
"""Entry point of `aii` and `python -m aii_host`."""

import sys

from .main import main

if __name__ == "__main__":
    sys.exit(main())
