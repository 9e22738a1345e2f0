# SPDX-License-Identifier: MIT
"""Builds and runs every tests/c/test_*.c against the C core, in two configurations.

native: gcc with ASan and UBSan (any report aborts the test).
cm3:    arm-none-eabi-gcc for Cortex-M3, run under qemu mps2-an385 with semihosting; the
        test's return value from main() becomes qemu's exit code.

Tests run with the repository root as working directory in both configurations (semihosted
file I/O opens host files relative to qemu's working directory), so a test can read
tests/vectors/*.json with fopen(). `make test-c` passes --results build/results/c.json.
"""

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from subprocess import DEVNULL, TimeoutExpired

from _cbuild import (
    BAREMETAL_DIR,
    BUILD,
    CM3_CC,
    CM3_FLAGS,
    CORE_DIR,
    ROOT,
    TESTS_DIR,
    WARN_FLAGS,
    core_sources,
    rel,
    run,
)

NATIVE_FLAGS = [
    "-std=c99",
    *WARN_FLAGS,
    "-O1",
    "-g",
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
]
CM3_LINK = [
    "-DAII_TEST_BAREMETAL=1",
    "-ffunction-sections",
    "-fdata-sections",
    "-nostartfiles",
    "--specs=rdimon.specs",
    "-T",
    str(BAREMETAL_DIR / "mps2_an385.ld"),
    "-Wl,--gc-sections",
]
QEMU = [
    "qemu-system-arm",
    "-M",
    "mps2-an385",
    "-nographic",
    "-monitor",
    "none",
    "-semihosting-config",
    "enable=on,target=native",
    "-kernel",
]
SAN_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:halt_on_error=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}


def build_native(test, out):
    return [
        "gcc",
        *NATIVE_FLAGS,
        "-I",
        str(CORE_DIR),
        "-I",
        str(TESTS_DIR),
        str(test),
        *map(str, core_sources()),
        "-o",
        str(out),
    ]


def build_cm3(test, out):
    return [
        CM3_CC,
        *CM3_FLAGS,
        *WARN_FLAGS,
        *CM3_LINK,
        "-I",
        str(CORE_DIR),
        "-I",
        str(TESTS_DIR),
        str(BAREMETAL_DIR / "startup.c"),
        str(test),
        *map(str, core_sources()),
        "-o",
        str(out),
    ]


def one(test, config, timeout):
    """Builds and runs one test in one configuration; returns (ok, summary, output)."""
    outdir = BUILD / "c" / config
    outdir.mkdir(parents=True, exist_ok=True)
    if config == "native":
        exe = outdir / test.stem
        build, cmd, env = build_native(test, exe), [str(exe)], {**os.environ, **SAN_ENV}
    else:
        exe = outdir / (test.stem + ".elf")
        build, cmd, env = build_cm3(test, exe), [*QEMU, str(exe)], None
    res = run(build)
    if res.returncode != 0:
        return False, "build failed", res.stdout
    t0 = time.monotonic()
    try:
        res = run(cmd, cwd=ROOT, env=env, timeout=timeout, stdin=DEVNULL)
    except TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout
        return False, f"timed out after {timeout}s", out or ""
    dt = time.monotonic() - t0
    if res.returncode != 0:
        return False, f"exit code {res.returncode} ({dt:.1f}s)", res.stdout
    return True, f"{dt:.1f}s", res.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", default="", help="only tests whose name contains this")
    ap.add_argument("--config", choices=["native", "cm3", "all"], default="all")
    ap.add_argument(
        "--timeout", type=float, default=float(os.environ.get("AII_CTEST_TIMEOUT", "120"))
    )
    ap.add_argument("--results", type=Path, help="write pass/fail counts here as JSON")
    ap.add_argument("-v", "--verbose", action="store_true", help="show output of passing tests")
    args = ap.parse_args()

    tests = [t for t in sorted(TESTS_DIR.glob("test_*.c")) if args.k in t.stem]
    configs = ["native", "cm3"] if args.config == "all" else [args.config]
    jobs = [(t, c) for t in tests for c in configs]
    if not jobs:
        sys.exit("error: no tests/c/test_*.c found")

    passed = failed = 0
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = [(t, c, pool.submit(one, t, c, args.timeout)) for t, c in jobs]
        for test, config, fut in futures:
            ok, summary, output = fut.result()
            print(f"{'PASS' if ok else 'FAIL'} {config:6} {rel(test)} ({summary})", flush=True)
            if not ok or args.verbose:
                for line in output.rstrip().splitlines()[-60:]:
                    print(f"    {line}")
            passed += ok
            failed += not ok

    if args.results:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps({"passed": passed, "failed": failed, "skipped": 0}))
    print(f"c-tests: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
