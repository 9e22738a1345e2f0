# SPDX-License-Identifier: MIT
"""Shared paths and compiler flags for the C tools (ctest, check_float_free, size_report)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE_DIR = ROOT / "c_modules" / "aii" / "core"
TESTS_DIR = ROOT / "tests" / "c"
BAREMETAL_DIR = TESTS_DIR / "baremetal"
BUILD = ROOT / "build"

# The target the core must fit: Cortex-M3, no FPU, optimised for size.
CM3_CC = "arm-none-eabi-gcc"
CM3_FLAGS = ["-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft", "-Os", "-std=c99"]
WARN_FLAGS = ["-Wall", "-Wextra", "-Werror"]


def core_sources():
    return sorted(CORE_DIR.glob("*.c"))


def minimal_flags():
    """The minimal configuration: every AII_HAS_* flag of aii_config.h (the one list) at 0."""
    text = (CORE_DIR / "aii_config.h").read_text()
    return [f"-D{n}=0" for n in re.findall(r"^#define (AII_HAS_\w+) ", text, re.MULTILINE)]


def rel(path):
    try:
        return str(Path(path).relative_to(ROOT))
    except ValueError:
        return str(path)


def run(cmd, **kw):
    """Runs a tool, returning the CompletedProcess with stdout and stderr merged."""
    return subprocess.run(
        cmd, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw
    )


def compile_core_cm3(outdir):
    """Compiles each core .c to its own Cortex-M3 object; exits on a compile error."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    objs = []
    for src in core_sources():
        obj = outdir / (src.stem + ".o")
        cmd = [CM3_CC, *CM3_FLAGS, *WARN_FLAGS, "-I", str(CORE_DIR), "-c", str(src), "-o", str(obj)]
        res = run(cmd)
        if res.returncode != 0:
            sys.stdout.write(res.stdout)
            sys.exit(f"error: cannot compile {rel(src)} for cortex-m3")
        objs.append(obj)
    return objs
