# SPDX-License-Identifier: MIT
# micropython ledger_driver.py <impl> <cases.json> <logs.json>
# Plays every case on a ledger module inside MicroPython, one log per case. <impl> is the folder
# of the pure-Python _ledger.py (firmware/aii), or "_aii" for the native module of an AII build.
import json
import sys

sys.path.insert(0, __file__.rpartition("/")[0] or ".")
if sys.argv[1] == "_aii":
    import _aii as impl
else:
    sys.path.insert(0, sys.argv[1])
    import _ledger as impl
import ledger_runner

with open(sys.argv[2]) as f:
    cases = json.load(f)
logs = []
for case in cases:
    try:
        logs.append(ledger_runner.play(impl, case))
    except Exception as e:  # noqa: BLE001 - a crash of the runner is a result: the diff shows it
        logs.append([["crash", type(e).__name__, str(e)]])
with open(sys.argv[3], "w") as f:
    json.dump(logs, f)
