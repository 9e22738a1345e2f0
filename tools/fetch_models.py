# SPDX-License-Identifier: MIT
"""Setup step: the face models into build/models/ with the code `aii fetch-model` runs
(aii_host.edge.models), so setup and users fetch them one way.

    python tools/fetch_models.py [--out DIR] [--cache DIR]
"""

import argparse
import os
import sys

from aii_host.edge.errors import ModelError
from aii_host.edge.models import fetch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(ROOT, "build", "models"))
    p.add_argument("--cache", default=os.path.join(ROOT, "build", "cache"))
    a = p.parse_args(argv)
    try:
        fetch(a.out, a.cache, log=lambda m: print(m.replace(ROOT + os.sep, "")))
    except ModelError as e:
        raise SystemExit(f"fetch_models: {e}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
