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

    out = BUILD / "size.json"
    out.write_text(
        json.dumps(
            {"target": "cortex-m3", "flags": CM3_FLAGS, "objects": rows, "total": total}, indent=2
        )
        + "\n"
    )
    print(f"wrote {rel(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
