# SPDX-License-Identifier: MIT
"""The bound on add(): time on the host and instructions on Cortex-M3 (qemu -icount) for 32
tasks at utilisation 0.999, added one by one (bench/admission_cost.c).

Sets: seed 0 is built so that 30 of its adds reach the analysis' cap (the bound itself); seeds
1.. are random periods of 1-100 ms with random shares of utilisation 0.999. For each set: how
many adds were admitted, refused by the analysis, refused at the cap; the worst single add()
and the whole set, in ns on the host and in instructions under qemu (the CMSDK timer counts
the virtual clock, one tick per 40 instructions at -icount shift=0, checked against a loop of a
known length). Writes build/bench/admission.json.

    python bench/sched_admission_bench.py [--quick]
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import OUT_DIR, ROOT, git_info, goal, machine_info, write_json

CORE = os.path.join(ROOT, "c_modules", "aii", "core")
HARNESS = os.path.join(ROOT, "bench", "admission_cost.c")
BAREMETAL = os.path.join(ROOT, "tests", "c", "baremetal")
QEMU = [
    "qemu-system-arm",
    "-M",
    "mps2-an385",
    "-nographic",
    "-monitor",
    "none",
    "-semihosting-config",
    "enable=on,target=native",
    "-icount",
    "shift=0",
    "-kernel",
]
CM3 = ["-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft", "-Os", "-std=c99"]
# Goal: the worst add() of 32 tasks, cap included, within 5 ms on this host and within 20 M
# instructions on Cortex-M3 (0.2 s at 100 MHz).
GOAL_HOST_MS = 5.0
GOAL_CM3_INSTR = 20_000_000


def _lines(out):
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def host(seeds):
    os.makedirs(OUT_DIR, exist_ok=True)
    exe = os.path.join(OUT_DIR, "admission_cost")
    src = sorted(glob.glob(os.path.join(CORE, "*.c")))
    cmd = ["gcc", "-O2", "-std=c99", "-D_POSIX_C_SOURCE=200809L", "-I", CORE, *src, HARNESS]
    subprocess.run([*cmd, "-o", exe], check=True)
    # Best of 5: the host's own scheduling only ever adds time.
    best = {}
    for _ in range(5):
        out = subprocess.run([exe, *map(str, seeds)], capture_output=True, text=True, check=True)
        for r in _lines(out.stdout):
            b = best.get(r["seed"])
            if b is None or r["worst_add"] < b["worst_add"]:
                best[r["seed"]] = r
    return [best[s] for s in seeds], " ".join(
        os.path.relpath(c, ROOT) for c in cmd[:-2] + [HARNESS]
    )


def cm3():
    if not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")):
        return None, "arm-none-eabi-gcc or qemu-system-arm missing (make setup)"
    elf = os.path.join(OUT_DIR, "admission_cost.elf")
    cmd = [
        "arm-none-eabi-gcc",
        *CM3,
        "-DAII_BENCH_BAREMETAL=1",
        "-ffunction-sections",
        "-fdata-sections",
        "-nostartfiles",
        "--specs=rdimon.specs",
        "-T",
        os.path.join(BAREMETAL, "mps2_an385.ld"),
        "-Wl,--gc-sections",
        "-I",
        CORE,
        os.path.join(BAREMETAL, "startup.c"),
        HARNESS,
        *sorted(glob.glob(os.path.join(CORE, "*.c"))),
        "-o",
        elf,
    ]
    subprocess.run(cmd, check=True)
    out = subprocess.run([*QEMU, elf], capture_output=True, text=True, timeout=600, check=True)
    rows = _lines(out.stdout)
    cal = rows[0]
    per_tick = cal["instructions"] / cal["timer_ticks"]
    for r in rows[1:]:
        for k in ("total", "worst_add"):
            r[k + "_instructions"] = round(r[k] * per_tick)
    return {"instructions_per_tick": per_tick, "sets": rows[1:], "qemu": " ".join(QEMU)}, None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer random sets")
    args = ap.parse_args(argv)
    seeds = [0, 1, 2, 3] if args.quick else list(range(9))
    host_sets, build = host(seeds)
    board, why_not = cm3()
    worst_ns = max(r["worst_add"] for r in host_sets)
    capped = next(r for r in host_sets if r["seed"] == 0)
    goals = [
        goal(
            worst_ns / 1e6 <= GOAL_HOST_MS,
            f"worst add() of 32 tasks at U 0.999, cap included, <= {GOAL_HOST_MS} ms (host)",
            f"{worst_ns / 1e6:.3f} ms",
        ),
        goal(
            capped["worst_iterations"] == capped["cap"] and capped["capped"] > 0,
            "an add() that reaches the cap is refused after exactly the cap's iterations",
            f"{capped['capped']} refused at {capped['worst_iterations']} of {capped['cap']}",
        ),
    ]
    if board:
        worst_i = max(r["worst_add_instructions"] for r in board["sets"])
        goals.append(
            goal(
                worst_i <= GOAL_CM3_INSTR,
                f"worst add() <= {GOAL_CM3_INSTR / 1e6:g} M instructions on Cortex-M3 (qemu -icount)",
                f"{worst_i / 1e6:.2f} M",
            )
        )
    data = {
        "bench": "sched_admission",
        "what": "add() of 32 periodic tasks at utilisation 0.999, one by one: the worst single "
        "add() and the whole set; seed 0 reaches the analysis' cap",
        "machine": machine_info(),
        "git": git_info(),
        "build": build,
        "host_ns": host_sets,
        "cortex_m3_qemu": board,
        "cortex_m3_skipped": why_not,
        "goals": goals,
    }
    path = write_json("admission.json", data)
    for r in host_sets:
        line = (
            f"  seed {r['seed']}: {r['admitted']} admitted, {r['refused']} refused, "
            f"{r['capped']} at the cap; worst add {r['worst_add'] / 1000:.1f} us host"
        )
        if board:
            b = next(x for x in board["sets"] if x["seed"] == r["seed"])
            line += f", {b['worst_add_instructions'] / 1e6:.2f} M instr Cortex-M3"
        line += f" ({r['worst_iterations']} iterations)"
        print(line + f"; longest busy period of the admitted set {r['busy_us'] / 1000:.1f} ms")
    for g in goals:
        print(f"  goal {g['goal']}: {'met' if g['met'] else 'NOT met'} ({g['measured']})")
    print(f"wrote {os.path.relpath(path, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
