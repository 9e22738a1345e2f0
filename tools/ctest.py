# SPDX-License-Identifier: MIT
"""Builds and runs every tests/c/test_*.c against the C core, natively and bare-metal.

native: gcc with ASan and UBSan (any report aborts the test).
cm0:    Cortex-M0 (armv6-m, the RP2040's instruction set), qemu `microbit`.
cm3:    Cortex-M3, qemu `mps2-an385`.
cm4f:   Cortex-M4F with the hard-float ABI (as STM32F4 boards), qemu `mps2-an386`.
rv32:   RISC-V rv32imc (as ESP32-C3/C6), qemu `virt`.

The bare-metal targets print through semihosting and pass main()'s return value to qemu's exit
code (tests/c/baremetal/README.md). Tests run with the repository root as working directory
(semihosted file I/O opens host files relative to qemu's working directory), so a test can read
tests/vectors/*.json with fopen(). A test passes when it exits 0 and its last line reports 0
failed checks; besides, every target must print exactly what the native build prints (the
shared vectors give identical results everywhere). `make test-c` passes --results
build/results/c.json. A test whose first lines say `// aii-config: minimal` is built, with the
core, in the minimal configuration (every AII_HAS_* flag of aii_config.h at 0).
"""

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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
    minimal_flags,
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
SAN_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:halt_on_error=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}
SEMIHOSTING = ["-nographic", "-monitor", "none", "-semihosting-config", "enable=on,target=native"]
# Our own Reset_Handler (startup.c) with newlib's rdimon (semihosting) syscalls.
CORTEX_M_LINK = [
    "-DAII_TEST_BAREMETAL=1",
    "-ffunction-sections",
    "-fdata-sections",
    "-nostartfiles",
    "--specs=rdimon.specs",
    "-L",
    str(BAREMETAL_DIR),
    "-Wl,--gc-sections",
]
CORTEX_M_STARTUP = (BAREMETAL_DIR / "startup.c",)


@dataclass(frozen=True)
class Target:
    cc: str
    flags: list
    link: list  # also selects the C library, whose headers the compile needs
    qemu: list
    startup: tuple = ()  # sources linked into every test


# Debian's riscv64-unknown-elf-gcc ships no C library: picolibc (picolibc-riscv64-unknown-elf)
# gives printf and the semihosting calls, and its crt0-semihost passes exit() to qemu. Its
# linker script places code and data from the symbols below (qemu virt: RAM at 0x80000000,
# where -bios none starts the kernel).
RV32_LINK = [
    "-DAII_TEST_BAREMETAL=1",
    "-ffunction-sections",
    "-fdata-sections",
    "--specs=picolibc.specs",
    "--oslib=semihost",
    "--crt0=semihost",
    "-Wl,--defsym=__flash=0x80000000,--defsym=__flash_size=0x400000",
    "-Wl,--defsym=__ram=0x80400000,--defsym=__ram_size=0x400000",
    "-Wl,--gc-sections",
]

TARGETS = {
    "cm0": Target(
        "arm-none-eabi-gcc",
        ["-mcpu=cortex-m0", "-mthumb", "-mfloat-abi=soft", "-Os", "-std=c99"],
        [*CORTEX_M_LINK, "-T", "nrf51.ld"],
        # The nRF51's own 256 KB flash and 16 KB RAM are too small for the test data (nrf51.ld).
        [
            "qemu-system-arm",
            "-M",
            "microbit",
            "-global",
            "nrf51-soc.flash-size=1048576",
            "-global",
            "nrf51-soc.sram-size=1048576",
        ],
        CORTEX_M_STARTUP,
    ),
    "cm3": Target(
        CM3_CC,
        CM3_FLAGS,
        [*CORTEX_M_LINK, "-T", "mps2.ld"],
        ["qemu-system-arm", "-M", "mps2-an385"],
        CORTEX_M_STARTUP,
    ),
    "cm4f": Target(
        "arm-none-eabi-gcc",
        [
            "-mcpu=cortex-m4",
            "-mthumb",
            "-mfpu=fpv4-sp-d16",
            "-mfloat-abi=hard",
            "-Os",
            "-std=c99",
        ],
        [*CORTEX_M_LINK, "-T", "mps2.ld"],
        ["qemu-system-arm", "-M", "mps2-an386"],
        CORTEX_M_STARTUP,
    ),
    "rv32": Target(
        "riscv64-unknown-elf-gcc",
        ["-march=rv32imc", "-mabi=ilp32", "-Os", "-std=c99"],
        RV32_LINK,
        ["qemu-system-riscv32", "-M", "virt", "-bios", "none"],
    ),
}
CONFIGS = ["native", *TARGETS]


def compiler(config):
    """(cc, flags) that compile a source for `config` (objects and tests alike)."""
    if config == "native":
        return "gcc", NATIVE_FLAGS
    target = TARGETS[config]
    return target.cc, [*target.flags, *WARN_FLAGS, *target.link]


def variant_of(test):
    """ "minimal" for a test marked `// aii-config: minimal`, else "full"."""
    return "minimal" if "// aii-config: minimal" in test.read_text()[:300] else "full"


def variant_flags(variant):
    return minimal_flags() if variant == "minimal" else []


def compile_core(config, variant="full"):
    """Compiles the core once per configuration and variant; returns (objects, error output or
    None)."""
    cc, flags = compiler(config)
    flags = [*flags, *variant_flags(variant)]
    outdir = BUILD / "c" / config / ("core" if variant == "full" else f"core-{variant}")
    outdir.mkdir(parents=True, exist_ok=True)
    objs = []
    for src in core_sources():
        obj = outdir / (src.stem + ".o")
        cmd = [cc, *flags, "-I", str(CORE_DIR), "-c", str(src), "-o", str(obj)]
        try:
            res = run(cmd)
        except FileNotFoundError:
            return [], f"{cc} is not installed (make setup installs it)"
        if res.returncode != 0:
            return [], res.stdout or f"cannot compile {rel(src)}"
        objs.append(obj)
    return objs, None


def one(test, config, core, timeout):
    """Builds and runs one test in one configuration against the core objects `core` (the
    result of compile_core); returns (ok, summary, output)."""
    objs, error = core
    if error is not None:
        return False, "core build failed", error
    outdir = BUILD / "c" / config
    cc, flags = compiler(config)
    flags = [*flags, *variant_flags(variant_of(test))]
    build = [cc, *flags, "-I", str(CORE_DIR), "-I", str(TESTS_DIR), str(test), *map(str, objs)]
    build += [str(f) for f in (TARGETS[config].startup if config in TARGETS else ())]
    if config == "native":
        exe = outdir / test.stem
        cmd, env = [str(exe)], {**os.environ, **SAN_ENV}
    else:
        exe = outdir / (test.stem + ".elf")
        cmd, env = [*TARGETS[config].qemu, *SEMIHOSTING, "-kernel", str(exe)], None
    build += ["-o", str(exe)]
    try:
        res = run(build)
    except FileNotFoundError:
        return False, f"{build[0]} is not installed (make setup installs it)", ""
    if res.returncode != 0:
        return False, "build failed", res.stdout
    t0 = time.monotonic()
    try:
        res = run(cmd, cwd=ROOT, env=env, timeout=timeout, stdin=DEVNULL)
    except FileNotFoundError:
        return False, f"{cmd[0]} is not installed (make setup installs it)", ""
    except TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout
        return False, f"timed out after {timeout}s", out or ""
    dt = time.monotonic() - t0
    if res.returncode != 0:
        return False, f"exit code {res.returncode} ({dt:.1f}s)", res.stdout
    # A test that stopped early with status 0 (a libc whose exit() drops the code) must not
    # pass: check.h's report is the last line.
    lines = res.stdout.rstrip().splitlines()
    if not lines or not lines[-1].endswith(" 0 failed"):
        return False, f"no clean check report at the end ({dt:.1f}s)", res.stdout
    return True, f"{dt:.1f}s", res.stdout


def results_of(output):
    """The lines two targets must agree on: all but struct sizes, which are layout (they may
    differ between 32- and 64-bit targets), not results."""
    return [line for line in output.rstrip().splitlines() if not line.startswith("sizeof(")]


def same_everywhere(test, outputs):
    """Returns (ok, message): every configuration printed the same results for `test`."""
    ref_config, ref = next(iter(outputs.items()))
    for config, output in outputs.items():
        if results_of(output) != results_of(ref):
            diff = [
                f"{ref_config}: {a!r}\n    {config}: {b!r}"
                for a, b in zip(results_of(ref), results_of(output))
                if a != b
            ] or [
                f"{ref_config} printed {len(results_of(ref))} lines, {config} {len(results_of(output))}"
            ]
            return False, diff[0]
    return True, ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", default="", help="only tests whose name contains this")
    ap.add_argument(
        "--config",
        default="all",
        help=f"comma-separated configurations among {', '.join(CONFIGS)} (default: all)",
    )
    ap.add_argument(
        "--timeout", type=float, default=float(os.environ.get("AII_CTEST_TIMEOUT", "120"))
    )
    ap.add_argument("--results", type=Path, help="write pass/fail counts here as JSON")
    ap.add_argument("-v", "--verbose", action="store_true", help="show output of passing tests")
    args = ap.parse_args()

    configs = CONFIGS if args.config == "all" else args.config.split(",")
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        ap.error(f"unknown configuration {', '.join(unknown)} (known: {', '.join(CONFIGS)})")
    tests = [t for t in sorted(TESTS_DIR.glob("test_*.c")) if args.k in t.stem]
    jobs = [(t, c) for t in tests for c in configs]
    if not jobs:
        sys.exit("error: no tests/c/test_*.c found")

    passed = failed = 0
    outputs = {t: {} for t in tests}
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        variants = sorted({variant_of(t) for t in tests})
        keys = [(c, v) for c in configs for v in variants]
        cores = dict(zip(keys, pool.map(lambda k: compile_core(*k), keys)))
        futures = [
            (t, c, pool.submit(one, t, c, cores[c, variant_of(t)], args.timeout)) for t, c in jobs
        ]
        for test, config, fut in futures:
            ok, summary, output = fut.result()
            print(f"{'PASS' if ok else 'FAIL'} {config:6} {rel(test)} ({summary})", flush=True)
            if not ok or args.verbose:
                for line in output.rstrip().splitlines()[-60:]:
                    print(f"    {line}")
            if ok:
                outputs[test][config] = output
            passed += ok
            failed += not ok

    # Identical results on every target: one more check per test, once all of it passed.
    for test in tests:
        if len(configs) > 1 and len(outputs[test]) == len(configs):
            ok, why = same_everywhere(test, outputs[test])
            print(f"{'PASS' if ok else 'FAIL'} same   {rel(test)} on {', '.join(configs)}")
            if not ok:
                print(f"    {why}")
            passed += ok
            failed += not ok

    if args.results:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps({"passed": passed, "failed": failed, "skipped": 0}))
    print(f"c-tests: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
