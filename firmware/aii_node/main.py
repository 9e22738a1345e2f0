# SPDX-License-Identifier: MIT
# Entry point: `import aii_node.main` from the device's /main.py, or `micropython -m aii_node.main`.
from aii_node.node import main

main()
