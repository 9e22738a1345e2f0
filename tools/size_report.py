# SPDX-License-Identifier: MIT
"""Code size of the C core per configuration and architecture, at -Os.

Configurations: "full" (every optional part, the default) and "minimal" (every AII_HAS_* flag of
c_modules/aii/core/aii_config.h at 0: the flags are read from there, so a flag added there is
left out of the minimal build too). Architectures: the bare-metal targets of tools/ctest.py.
For each: text, data and bss of the core's objects, and the RAM one scheduler and one ledger
take (sizeof aii_sched_t and aii_ledger_t, what a binding allocates per object).

Prints a table and writes build/size.json; with --results, a test result (tools/test_summary.py)
that fails when a configuration does not compile with -Werror. The 8 KB goal for the minimal
configuration on Cortex-M3 is reported (goal_met), not enforced: goals live in JSON.
"""

import argparse
import json
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor

from _cbuild import BUILD, CORE_DIR, WARN_FLAGS, core_sources, minimal_flags, rel, run

ARCHS = {
    "cortex-m0": ("arm-none-eabi-", ["-mcpu=cortex-m0", "-mthumb", "-mfloat-abi=soft"]),
    "cortex-m3": ("arm-none-eabi-", ["-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft"]),
    "cortex-m4f": (
        "arm-none-eabi-",
        ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"],
    ),
    # Debian's bare-metal RISC-V gcc has no C library of its own: picolibc's headers.
    "rv32imc": (
        "riscv64-unknown-elf-",
        ["-march=rv32imc", "-mabi=ilp32", "--specs=picolibc.specs"],
    ),
}
COMMON = ["-Os", "-std=c99"]
GOAL = {"config": "minimal", "arch": "cortex-m3", "text_max": 8192}

# One scheduler and one ledger in static storage: their bss is the RAM each object needs.
OBJECTS_C = """#include "aii_sched.h"
#include "ledger.h"
aii_sched_t aii_size_sched;
aii_ledger_t aii_size_ledger;
"""


def flags_of_config():
    return {"full": [], "minimal": minimal_flags()}


def size_of(cross, obj):
    res = run([cross + "size", "-A", "-d", str(obj)])
    if res.returncode != 0:
        sys.exit(f"error: {cross}size failed: {res.stdout.strip()}")
    sizes = {"text": 0, "data": 0, "bss": 0}
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            name, n = parts[0], int(parts[1])
            if name.startswith((".text", ".rodata")):
                sizes["text"] += n
            elif name.startswith((".data", ".sdata")):
                sizes["data"] += n
            elif name.startswith((".bss", ".sbss")):
                sizes["bss"] += n
    return sizes


def symbol_sizes(cross, obj):
    res = run([cross + "nm", "-S", "-t", "d", str(obj)])
    out = {}
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4:
            out[parts[3]] = int(parts[1])
    return out


def measure(arch, config, flags, errors):
    cross, arch_flags = ARCHS[arch]
    outdir = BUILD / "size" / arch / config
    outdir.mkdir(parents=True, exist_ok=True)
    base = [cross + "gcc", *arch_flags, *COMMON, *WARN_FLAGS, *flags, "-I", str(CORE_DIR)]
    total = {"text": 0, "data": 0, "bss": 0}
    objects = []
    for src in core_sources():
        obj = outdir / (src.stem + ".o")
        res = run([*base, "-c", str(src), "-o", str(obj)])
        if res.returncode != 0:
            errors.append(f"{arch} {config}: {rel(src)}\n{res.stdout.strip()}")
            continue
        s = size_of(cross, obj)
        objects.append({"source": rel(src), **s})
        for k in total:
            total[k] += s[k]
    src = outdir / "objects.c"
    src.write_text(OBJECTS_C)
    res = run([*base, "-c", str(src), "-o", str(outdir / "objects.o")])
    ram = {}
    if res.returncode == 0:
        syms = symbol_sizes(cross, outdir / "objects.o")
        ram = {"scheduler": syms.get("aii_size_sched"), "ledger": syms.get("aii_size_ledger")}
    else:
        errors.append(f"{arch} {config}: the objects' sizes\n{res.stdout.strip()}")
    return {"arch": arch, "config": config, "flags": flags, **total, "ram": ram, "objects": objects}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", help="also write a test result here (JSON)")
    args = ap.parse_args()
    if not core_sources():
        sys.exit("error: no C sources in c_modules/aii/core")
    configs = flags_of_config()
    errors, missing, jobs = [], [], []
    for arch, (cross, _) in ARCHS.items():
        if shutil.which(cross + "gcc") is None:
            missing.append(f"{arch} ({cross}gcc; make setup installs it)")
            continue
        jobs += [(arch, config, flags) for config, flags in configs.items()]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        rows = list(pool.map(lambda j: measure(*j, errors), jobs))

    print(f"{'arch':11} {'config':8} {'text':>7} {'data':>5} {'bss':>5}  RAM per object")
    for r in rows:
        ram = r["ram"]
        print(
            f"{r['arch']:11} {r['config']:8} {r['text']:7} {r['data']:5} {r['bss']:5}  "
            f"Scheduler {ram.get('scheduler')} B, Ledger {ram.get('ledger')} B"
        )
    print("minimal: " + " ".join(configs["minimal"]))
    goal = next(
        (r for r in rows if r["config"] == GOAL["config"] and r["arch"] == GOAL["arch"]), None
    )
    met = goal is not None and goal["text"] <= GOAL["text_max"]
    if goal is not None:
        by = {o["source"].rsplit("/", 1)[-1]: o["text"] for o in goal["objects"]}
        print(
            f"goal: minimal on cortex-m3 <= {GOAL['text_max']} B text: {goal['text']} B "
            f"({'met' if met else 'missed'}; scheduler {by.get('sched.c')}, ledger "
            f"{by.get('ledger.c')}, message table {by.get('aii_text.c')})"
        )
    for m in missing:
        print(f"not measured: {m}", file=sys.stderr)  # make test-c shows it, stdout hidden
    for e in errors:
        print(f"error: {e}")

    out = BUILD / "size.json"
    out.write_text(
        json.dumps(
            {"flags": COMMON, "configs": configs, "rows": rows, "goal": dict(GOAL, met=met)},
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {rel(out)}")
    # As a test (make test-c), a missing cross compiler fails: make setup installs them all.
    failed = bool(errors or (args.results and missing))
    if args.results:
        res = {"passed": 0 if failed else 1, "failed": 1 if failed else 0, "skipped": 0}
        (BUILD / "results").mkdir(parents=True, exist_ok=True)
        with open(args.results, "w") as f:
            json.dump(res, f)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
