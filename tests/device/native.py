# SPDX-License-Identifier: MIT
# The image under test carries the native module: `aii` re-exports `_aii`. An image built without
# it must fail here rather than pass every other test on the pure-Python fallback. The expected
# output is native.py.exp (CPython has no `aii` package: the other tests run there on aii_host).
import _aii
import aii

print("NATIVE", aii.NATIVE)
print("re-exported", aii.Ledger is _aii.Ledger, aii.Scheduler is _aii.Scheduler)
