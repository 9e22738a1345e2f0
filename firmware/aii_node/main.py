# SPDX-License-Identifier: MIT
# Entry point: `import aii_node.main` from the device's /main.py, or `micropython -m aii_node.main`.
# The console is locked before anything else runs (docs/protocol.md §9): a 0x03 sent while the
# node boots must not reach the REPL. The config may unlock it again (lock.at_boot).
from aii_node import lock

lock.early()

from aii_node.node import main  # after the lock, on purpose

main()
