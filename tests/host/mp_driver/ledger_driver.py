# SPDX-License-Identifier: MIT
# micropython ledger_driver.py <impl> <cases.jsonl> <logs.jsonl>
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

# One case per line in, one log per line out: the heap holds one case at a time.
with open(sys.argv[2]) as cases, open(sys.argv[3], "w") as out:
    for line in cases:
        try:
            log = ledger_runner.play(impl, json.loads(line))
        except Exception as e:  # noqa: BLE001 - a crash of the runner is a result: the diff shows it
            log = [["crash", type(e).__name__, str(e)]]
        out.write(json.dumps(log))
        out.write("\n")
