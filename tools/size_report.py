# SPDX-License-Identifier: MIT
"""Code size of the C core on Cortex-M3 at -Os: text/data/bss per object and in total.

Prints a table and writes build/size.json (numbers in bytes).
"""

import json
import sys

from _cbuild import BUILD, CM3_FLAGS, compile_core_cm3, core_sources, rel, run


def main():
    if not core_sources():
        sys.exit("error: no C sources in c_modules/aii/core")
    objs = compile_core_cm3(BUILD / "size")
    source_of = {str(o): rel(src) for o, src in zip(objs, core_sources())}
    res = run(["arm-none-eabi-size", "-B", "-d", *map(str, objs)])
    if res.returncode != 0:
        sys.exit(f"error: arm-none-eabi-size failed: {res.stdout.strip()}")

    rows = []
    for line in res.stdout.splitlines()[1:]:
        text, data, bss, _dec, _hex, name = line.split(maxsplit=5)
        rows.append(
            {"source": source_of[name], "text": int(text), "data": int(data), "bss": int(bss)}
        )
    total = {k: sum(r[k] for r in rows) for k in ("text", "data", "bss")}

    print(f"{'text':>8} {'data':>8} {'bss':>8}  source (cortex-m3: {' '.join(CM3_FLAGS)})")
    for r in rows:
        print(f"{r['text']:8} {r['data']:8} {r['bss']:8}  {r['source']}")
    print(f"{total['text']:8} {total['data']:8} {total['bss']:8}  total")

    # The scheduler with its optional parts compiled out (AII_HAS_* flags, aii_sched.h).
    minimal = {}
    for flags in (["-DAII_HAS_TRACE=0"], ["-DAII_HAS_TRACE=0", "-DAII_HAS_OPA=0"]):
        obj = BUILD / "size" / "sched_minimal.o"
        src = next(s for s in core_sources() if s.name == "sched.c")
        res = run(["arm-none-eabi-gcc", *CM3_FLAGS, *flags, "-c", str(src), "-o", str(obj)])
        if res.returncode != 0:
            sys.exit(f"error: cannot compile sched.c with {flags}: {res.stdout.strip()}")
        text = int(
            run(["arm-none-eabi-size", "-B", "-d", str(obj)]).stdout.splitlines()[1].split()[0]
        )
        minimal[" ".join(flags)] = text
        print(f"{text:8} {'':8} {'':8}  c_modules/aii/core/sched.c with {' '.join(flags)}")

    out = BUILD / "size.json"
    out.write_text(
        json.dumps(
            {
                "target": "cortex-m3",
                "flags": CM3_FLAGS,
                "objects": rows,
                "total": total,
                "sched_minimal_text": minimal,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {rel(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
