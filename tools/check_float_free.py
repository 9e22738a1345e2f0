# SPDX-License-Identifier: MIT
"""Fails when a C core source needs floating point on a Cortex-M3 (no FPU).

Each c_modules/aii/core/*.c (or the files given) is compiled for Cortex-M3 at -Os with the
soft-float ABI, where every float/double operation becomes a call to a libgcc helper; the
object's undefined symbols (arm-none-eabi-nm -u) must name none of them, nor a libm function.
Integer helpers (__aeabi_uldivmod, __aeabi_ldivmod, __aeabi_lmul, ...) are allowed.
"""

import argparse
import json
import re
import sys
from pathlib import Path

from _cbuild import BUILD, CM3_CC, CM3_FLAGS, CORE_DIR, core_sources, rel, run

FLOAT_HELPER = re.compile(
    r"""^(
        __aeabi_[fd]\w*                          # __aeabi_fadd, __aeabi_dmul, __aeabi_d2iz, ...
      | __aeabi_\w*2[fdh]                        # __aeabi_i2f, __aeabi_ul2d, __aeabi_f2h, ...
      | __aeabi_h2f\w*
      | __gnu_[fh]2[fh]\w*                       # half-precision conversions
      | __\w*?(sf|df|tf|xf|hf)\d?                # __addsf3, __adddf3, __negdf2, __extendsfdf2
      | __(fix|fixuns)(sf|df|tf|xf|hf)\w+        # __fixdfsi, __fixunssfdi
      | __float(un)?\w+                          # __floatsisf, __floatundidf
      | __(eq|ne|lt|le|gt|ge|unord|cmp)(sf|df|tf)2
      | __(pow|mul|div)[sdtx]c3                  # complex
      | __powi[sdtx]f2
    )$""",
    re.VERBOSE,
)

# <math.h> functions: a call passes doubles in integer registers on soft-float, with no
# helper, so they are checked by name.
_LIBM_NAMES = """acos asin atan atan2 cos sin tan cosh sinh tanh exp exp2 expm1 frexp ldexp log log10
    log1p log2 logb modf pow sqrt cbrt hypot ceil floor fabs fmod round lround llround trunc
    rint lrint llrint nearbyint remainder remquo copysign nan fdim fmax fmin fma erf erfc
    lgamma tgamma scalbn scalbln ilogb nextafter"""
LIBM = set(_LIBM_NAMES.split())


def bad_symbols(obj):
    res = run(["arm-none-eabi-nm", "-u", str(obj)])
    if res.returncode != 0:
        sys.exit(f"error: arm-none-eabi-nm failed on {rel(obj)}: {res.stdout.strip()}")
    names = [line.split()[-1] for line in res.stdout.splitlines() if line.strip()]
    return [n for n in names if FLOAT_HELPER.match(n) or n in LIBM or n.rstrip("fl") in LIBM]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sources", nargs="*", type=Path, help="default: c_modules/aii/core/*.c")
    ap.add_argument("--results", type=Path, help="write pass/fail counts here as JSON")
    args = ap.parse_args()
    sources = args.sources or core_sources()
    if not sources:
        sys.exit(f"error: no C sources in {rel(CORE_DIR)}")

    outdir = BUILD / "float-check"
    outdir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for src in sources:
        obj = outdir / (src.stem + ".o")
        res = run([CM3_CC, *CM3_FLAGS, "-I", str(CORE_DIR), "-c", str(src), "-o", str(obj)])
        if res.returncode != 0:
            print(res.stdout, end="")
            print(f"FAIL float-free {rel(src)} (does not compile for cortex-m3)")
            failed += 1
            continue
        bad = bad_symbols(obj)
        if bad:
            print(f"FAIL float-free {rel(src)}: needs {', '.join(sorted(set(bad)))}")
            failed += 1
        else:
            print(f"PASS float-free {rel(src)}")

    passed = len(sources) - failed
    if args.results:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps({"passed": passed, "failed": failed, "skipped": 0}))
    print(f"float-free: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
