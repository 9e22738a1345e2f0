# SPDX-License-Identifier: MIT
"""The particle kernel's shared vectors (docs/particles.md §9), written by tools/gen_vectors.py:

- tests/vectors/particles_lj.tbl, particles_lj_small.tbl: the default and the small integer
  Lennard-Jones tables (aii_host.particles.table, exact rationals), byte for byte;
- tests/vectors/particles.json: systems run with the independent reference
  (tools/particles_ref.py): per step the potential energy, virial, pair count and 8 x the
  kinetic energy, the totals and digests, the round trip's digest, and refusals;
- tests/c/vectors_particles.h: the same for the C tests (bare-metal has no JSON reader);
- tests/device/particles_vectors.py: a tiny table (51 entries) and a small system inside one
  MicroPython test (the qemu board has no files of the repository), whose output must be the
  same on the device and on the host.

Run: python tools/gen_vectors.py (deterministic; commit its output).
"""

import importlib.util
import json
import random
from pathlib import Path

import particles_ref as ref

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors"
STEPS = 25


def _table_module():
    # The generator is the host package's (it ships with it); loaded by path so that writing
    # the vectors needs neither the package installed nor its C extension built.
    path = ROOT / "host" / "aii_host" / "particles" / "table.py"
    spec = importlib.util.spec_from_file_location("aii_particle_table", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _positions(rnd, n, box, planar, min_d):
    """n positions at least min_d apart (nearest image), in position units."""
    out = []
    while len(out) < n:
        p = [rnd.randrange(box[a]) for a in range(3)]
        if planar:
            p[2] = 0
        if all(
            sum(ref.nearest(p[a] - q[a], box[a]) ** 2 for a in range(3)) >= min_d * min_d
            for q in out
        ):
            out.append(p)
    return out


def _scenario(rnd, table, per_sigma, name, n, side, planar, masses):
    box = [side * per_sigma // 10] * 3
    x = _positions(rnd, n, box, planar, per_sigma * 95 // 100)
    m = [rnd.choice(masses) for _ in range(n)]
    quantum = 1
    for k in masses:
        a, b = quantum, k
        while b:
            a, b = b, a % b
        quantum = quantum * k // a
    # Velocities of about one sigma per tau (S dt units per step, dt = 1/200), slower for
    # heavier particles; integers only, so that any machine draws the same.
    unit = per_sigma // 200
    v = [
        [0 if (planar and a == 2) else rnd.randint(-2 * unit, 2 * unit) // m[i] for a in range(3)]
        for i in range(n)
    ]
    ids = list(range(100, 100 + 3 * n, 3))  # not 0..n-1: ids are labels, not indices
    s = ref.System(table, box, x, v, m, ids, quantum)
    first = {"box": box, "quantum": quantum, "x": x, "v": v, "m": m, "id": ids}
    d0 = s.digest()
    t0 = s.totals()
    steps = []
    for _ in range(STEPS):
        pe, virial, pairs, ke8 = s.step()
        steps.append({"pe": pe, "virial": virial, "pairs": pairs, "ke8": ke8})
        assert s.totals() == t0, "the reference lost momentum"
    d1 = s.digest()
    end = {"x": [list(p) for p in s.x], "v": [list(p) for p in s.v]}
    s.reverse()
    for _ in range(STEPS):
        s.step()
    s.reverse()
    assert s.digest() == d0, "the reference is not reversible"
    return {
        "name": name,
        "planar": planar,
        "initial": first,
        "digest_before": d0.hex(),
        "steps": steps,
        "totals": t0,
        "digest_after": d1.hex(),
        "final": end,
    }


def _refusals(table, per_sigma):
    """Systems the kernel must refuse, and how (the reference agrees)."""
    S = per_sigma
    box = [9 * S] * 3
    out = []
    # Two particles 0.5 sigma apart: closer than r_min.
    s = ref.System(table, box, [[S, S, S], [S + S // 2, S, S]], [[0] * 3] * 2, [1, 1], [7, 9], 1)
    try:
        s.forces()
    except ref.RefError as e:
        out.append({"kind": e.kind, "ids": list(e.ids), "x": s.x, "v": s.v, "m": s.m})
    # A velocity past v_max after one kick: a particle at v_max pushed further.
    vmax = table.v_max
    s = ref.System(
        table,
        box,
        [[S, S, S], [S + S * 95 // 100, S, S]],
        [[-vmax, 0, 0], [0, 0, 0]],
        [1, 1],
        [1, 2],
        1,
    )
    try:
        s.step()
    except ref.RefError as e:
        out.append({"kind": e.kind, "ids": list(e.ids), "x": s.x, "v": s.v, "m": s.m})
    return out


def vectors():
    tm = _table_module()
    small = tm.build(tm.SMALL)
    default = tm.build(tm.DEFAULT)
    table = ref.Table(small)
    S = tm.SMALL.per_sigma
    rnd = random.Random(24)
    systems = [
        _scenario(rnd, table, S, "3d-mixed", 40, 90, False, [1, 2, 3]),
        _scenario(rnd, table, S, "planar", 36, 90, True, [1]),
    ]
    return (
        {
            "generator": "tools/gen_vectors.py (tools/gen_particle_vectors.py, particles_ref.py)",
            "table": "particles_lj_small.tbl",
            "skin": S * 3 // 10,
            "systems": systems,
            "refusals": _refusals(table, S),
        },
        small,
        default,
    )


def _c(v):
    return f"{v}LL" if -(2**63) < v < 2**63 else f"(int64_t){v}ULL"


def header(doc, small):
    lines = [
        "// SPDX-License-Identifier: MIT",
        "// GENERATED by tools/gen_vectors.py (tools/gen_particle_vectors.py, reference:",
        "// tools/particles_ref.py) from the same data as tests/vectors/particles.json and",
        "// particles_lj_small.tbl; do not edit, re-run the generator.",
        "#ifndef VECTORS_PARTICLES_H",
        "#define VECTORS_PARTICLES_H",
        "",
        "#include <stdint.h>",
        "",
        f"#define VP_STEPS ({STEPS})",
        f"#define VP_SKIN ({doc['skin']})",
        "static const uint8_t vp_table[] = {",
    ]
    for i in range(0, len(small), 24):
        lines.append("    " + ", ".join(f"0x{b:02x}" for b in small[i : i + 24]) + ",")
    lines += [
        "};",
        "",
        "typedef struct { int64_t pe, virial, ke8; uint32_t pairs; } vp_step_t;",
        "typedef struct {",
        "    const char *name;",
        "    uint32_t n, quantum;",
        "    int32_t box[3];",
        "    const int32_t (*x)[3], (*v)[3], (*x_end)[3], (*v_end)[3];",
        "    const uint32_t *m, *id;",
        "    const vp_step_t *steps;",
        "    int64_t totals[5];",
        "    uint8_t before[16], after[16];",
        "} vp_system_t;",
        "",
    ]
    for k, s in enumerate(doc["systems"]):
        ini, fin = s["initial"], s["final"]
        for name, rows in (("x", ini["x"]), ("v", ini["v"]), ("xe", fin["x"]), ("ve", fin["v"])):
            lines.append(f"static const int32_t vp{k}_{name}[][3] = {{")
            lines += [f"    {{{r[0]}, {r[1]}, {r[2]}}}," for r in rows]
            lines.append("};")
        lines.append(f"static const uint32_t vp{k}_m[] = {{{', '.join(map(str, ini['m']))}}};")
        lines.append(f"static const uint32_t vp{k}_id[] = {{{', '.join(map(str, ini['id']))}}};")
        lines.append(f"static const vp_step_t vp{k}_steps[] = {{")
        for st in s["steps"]:
            lines.append(
                f"    {{{_c(st['pe'])}, {_c(st['virial'])}, {_c(st['ke8'])}, {st['pairs']}}},"
            )
        lines.append("};")
    lines.append("static const vp_system_t vp_systems[] = {")
    for k, s in enumerate(doc["systems"]):
        ini = s["initial"]
        box = ", ".join(map(str, ini["box"]))
        tot = ", ".join(_c(t) for t in s["totals"])
        before = ", ".join(f"0x{b:02x}" for b in bytes.fromhex(s["digest_before"]))
        after = ", ".join(f"0x{b:02x}" for b in bytes.fromhex(s["digest_after"]))
        lines += [
            f'    {{"{s["name"]}", {len(ini["m"])}, {ini["quantum"]}, {{{box}}},',
            f"     vp{k}_x, vp{k}_v, vp{k}_xe, vp{k}_ve, vp{k}_m, vp{k}_id, vp{k}_steps,",
            f"     {{{tot}}},",
            f"     {{{before}}},",
            f"     {{{after}}}}},",
        ]
    lines += ["};", "", "#endif // VECTORS_PARTICLES_H", ""]
    return "\n".join(lines)


DEVICE = """\
# SPDX-License-Identifier: MIT
# GENERATED by tools/gen_vectors.py (tools/gen_particle_vectors.py, reference:
# tools/particles_ref.py); do not edit. The particle kernel through the binding (_aii.Particles
# on the device, aii_host.Particles on the host): a small system against the reference's
# energies, totals and digests, the round trip, and refusals (category and message).
try:
    import aii as a
except ImportError:  # CPython, whose output run-tests.py compares with: the host's
    import aii_host as a
if not hasattr(a, "Particles"):
    print("SKIP")
    raise SystemExit

TABLE = bytes.fromhex(
{table}
)
BOX = {box}
QUANTUM = {quantum}
SKIN = {skin}
X = {x}
V = {v}
M = {m}
IDS = {ids}
BEFORE = "{before}"
AFTER = "{after}"
STEPS = {steps}


def err(fn, *args):
    try:
        fn(*args)
    except ValueError as e:
        print("ValueError:", e)
    except TypeError:
        print("TypeError")  # worded differently by the two interpreters
    except RuntimeError as e:
        print("RuntimeError:", e)
    else:
        print("no error")


def load(list_cap):
    p = a.Particles(TABLE, BOX, 16, QUANTUM, SKIN, list_cap)
    x, v, m, ids = p.arrays()[:4]
    for i in range(len(M)):
        for k in range(3):
            x[3 * i + k] = X[i][k]
            v[3 * i + k] = V[i][k]
        m[i] = M[i]
        ids[i] = IDS[i]
    p.set_count(len(M))
    p.check()
    return p


for list_cap in (0, 64):
    p = load(list_cap)
    print(p.digest().hex() == BEFORE, p.count(), p.info()["ncell"])
    t0 = p.totals()
    good = 0
    for want in STEPS:
        if p.moved():
            p.build()
        e = p.forces(True)
        ke8 = p.advance()
        good += (e[0], e[1], e[2], ke8) == tuple(want) and p.totals() == t0
    print("steps", good, len(STEPS), "after", p.digest().hex() == AFTER)
    p.build()
    p.forces()
    p.reverse()
    p.run(len(STEPS))
    p.build()
    p.forces()
    p.reverse()
    print("round trip", p.digest().hex() == BEFORE, p.totals() == t0)

p = load(0)
err(p.set_count, 17)
err(p.set_count, -1)
x = p.arrays()[0]
x[0], x[1], x[2] = X[1][0] + 1, X[1][1], X[1][2]
d = p.digest()
err(p.forces)
print("unchanged", p.digest() == d)
err(a.Particles, TABLE[:-1] + b"\\x00", BOX, 4)
err(a.Particles, TABLE, (BOX[0], BOX[1] // 4, BOX[2]), 4)
err(a.Particles, 12, BOX, 4)
err(a.Particles, TABLE, BOX, 4, 0, -1)
err(a.Particles, TABLE, BOX, 4, 1, 0, -5)
"""


def _rows(rows):
    """A list of lists as ruff formats it: one row per line."""
    return "[\n" + "".join(f"    {r},\n" for r in rows) + "]"


def _device(tm):
    tiny = tm.build(tm.Params(entries_log2=3))
    table = ref.Table(tiny)
    S = tm.DEFAULT.per_sigma
    rnd = random.Random(77)
    box = [9 * S, 9 * S, 9 * S]
    x = _positions(rnd, 8, box, False, S)
    v = [[rnd.randint(-S // 100, S // 100) for _ in range(3)] for _ in range(8)]
    m = [1, 2, 1, 2, 1, 2, 1, 2]
    ids = [3, 5, 8, 13, 21, 34, 55, 89]
    s = ref.System(table, box, x, v, m, ids, 2)
    d0 = s.digest()
    steps = [list(s.step()) for _ in range(12)]
    hexed = tiny.hex()
    return DEVICE.format(
        table="\n".join(f'    "{hexed[i : i + 88]}"' for i in range(0, len(hexed), 88)),
        box=tuple(box),
        quantum=2,
        skin=S * 3 // 10,
        x=_rows(x),
        v=_rows(v),
        m=m,
        ids=ids,
        before=d0.hex(),
        after=s.digest().hex(),
        steps=_rows(steps),
    )


def outputs():
    """({path relative to the repository: bytes} of every file written, a summary line)."""
    doc, small, default = vectors()
    out = {
        "tests/vectors/particles_lj_small.tbl": small,
        "tests/vectors/particles_lj.tbl": default,
        "tests/vectors/particles.json": (json.dumps(doc, indent=1) + "\n").encode(),
        "tests/c/vectors_particles.h": header(doc, small).encode(),
        "tests/device/particles_vectors.py": _device(_table_module()).encode(),
    }
    n = sum(len(s["steps"]) for s in doc["systems"])
    return (
        out,
        f"particles: {len(doc['systems'])} systems, {n} steps, {len(doc['refusals'])} refusals",
    )
