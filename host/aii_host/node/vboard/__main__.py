# SPDX-License-Identifier: MIT
"""python -m aii_host.node.vboard [--id ID] [--tcp PORT] [--app MODULE|FILE.py]; see `aii vboard -h`."""

import argparse
import sys

from . import add_arguments, run


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m aii_host.node.vboard")
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
