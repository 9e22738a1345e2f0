# SPDX-License-Identifier: MIT
"""Every rule in one place (docs/architecture.md): a test that fails when an error text, a status
code, the journal record layout or the run loop's idle rule is defined in more than one source
file, or when a generated file differs from its regeneration.

Sources are read as code: Python through its syntax tree (docstrings and comments may describe
a rule), C with its comments removed. The pure-Python ports (firmware/aii/_sched.py,
_ledger.py) re-implement the core function by function on purpose, for MicroPython without
_aii; where they mirror a rule, the differential tests hold them equal to the core, and the
mirror is listed here by name. tools/ledger_ref.py and tools/gen_vectors.py are the independent
reference the tests check the core against, and stay independent.
"""

import ast
import importlib.util
import json
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "c_modules" / "aii" / "core"
GENERATED = {
    "firmware/aii/_texts.py",
    "firmware/aii_node/_record.py",
    "host/aii_host/core/_record.py",
}
# Hand-written files with a generated block of names (the pure-Python ports).
BLOCKS = {
    "firmware/aii/_core.py",
    "firmware/aii/_ledger.py",
    "firmware/aii/_rta.py",
    "firmware/aii/_sched.py",
}
# The independent test reference (docs/ledger.md section 11): deliberately a second copy.
REFERENCE = {"tools/ledger_ref.py", "tools/gen_vectors.py"}


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


gen_tables = _load("aii_gen_tables", ROOT / "tools" / "gen_tables.py")
headers = gen_tables._headers
H = headers.Headers(str(CORE), gen_tables.HEADERS)


def _sources():
    """(relative path, kind) of every source file a rule could be written into."""
    out = []
    for base, pattern in (
        ("c_modules", "*.[ch]"),
        ("firmware", "*.py"),
        ("host/aii_host", "*.py"),
        ("tools", "*.py"),
        ("bench", "*.py"),
    ):
        for p in sorted((ROOT / base).rglob(pattern)):
            rel = p.relative_to(ROOT).as_posix()
            if rel not in REFERENCE:
                out.append((rel, p.suffix))
    return out


SOURCES = _sources()


def _c_code(path):
    return headers._strip_comments((ROOT / path).read_text(encoding="utf-8"))


def _py_source(path):
    """A Python file without its generated block (checked against its regeneration instead)."""
    text = (ROOT / path).read_text(encoding="utf-8")
    if path in BLOCKS:
        head, rest = text.split(gen_tables.BEGIN + "\n")
        text = head + rest.split(gen_tables.END + "\n", 1)[1]
    return text


def _py_tree(path):
    return ast.parse(_py_source(path), path)


def _canon(text):
    """A message with its argument marks made alike: {}, {name}, %s, %d, %u, %q -> {}."""
    return re.sub(r"\{[^{}]*\}|%l*[sdquix]", "{}", text)


def _py_strings(tree):
    """Every str literal of a module, f-strings with their fields as {}, except docstrings."""
    docs = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            docs.add(id(body[0].value))
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = (v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            yield "".join(parts), node.lineno
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
        ):
            yield node.value, node.lineno


def _c_strings(code):
    for m in re.finditer(r'"((?:[^"\\\n]|\\.)*)"', code):
        yield m.group(1), code.count("\n", 0, m.start()) + 1


def _strings(path, kind):
    if kind == ".py":
        return list(_py_strings(_py_tree(path)))
    return list(_c_strings(_c_code(path)))


# ---- generated files ---------------------------------------------------------------------------


def test_generated_modules_match_their_regeneration():
    for rel, text in gen_tables.generated().items():
        path = ROOT / rel
        assert path.exists(), f"{rel} is missing: run tools/gen_tables.py"
        assert path.read_text(encoding="utf-8") == text, (
            f"{rel} differs from what tools/gen_tables.py makes of the headers: run it"
        )
    assert set(gen_tables.generated()) == GENERATED | BLOCKS


def test_cffi_declarations_come_from_the_headers_and_nothing_else(tmp_path):
    """The host's declarations are generated when it is built, from the core directory alone
    (a copy of it is enough): no hand-copied cdef is left to drift."""
    assert not list((ROOT / "host").rglob("_cdef_*")), "hand-written cffi declarations are back"
    build = (ROOT / "host/aii_host/core/_build_aii.py").read_text()
    assert "Headers(CORE_DIR" in build
    assert (ROOT / "host/aii_core").resolve() == CORE.resolve()
    copy = tmp_path / "core"
    shutil.copytree(CORE, copy)
    names = ("aii_sched.h", "ledger.h", "fixed.h", "wide.h", "crc32.h", "aii_text.h")
    cdef = headers.Headers(str(copy), names).cdef()
    assert cdef == headers.Headers(str(CORE), names).cdef()
    from aii_host.core._aii import ffi, lib

    # Every function and enum constant of the headers reached the extension.
    for fn in re.findall(r"\b(aii_\w+)\(", cdef):
        assert hasattr(lib, fn), fn
    assert lib.AII_ERR_EXISTS == -10 and lib.AII_T_COUNT == len(H.table("AII_TEXTS"))
    assert ffi.sizeof("aii_ledger_t") > 0


def test_headers_reader_refuses_what_it_does_not_know(tmp_path):
    (tmp_path / "x.h").write_text("#ifdef FOO\nint x;\n#endif\n")
    with pytest.raises(headers.HeaderError):
        headers.Headers(str(tmp_path), ["x.h"])
    (tmp_path / "y.h").write_text("static inline int f(void) { return 1; }\n")
    with pytest.raises(headers.HeaderError):
        headers.Headers(str(tmp_path), ["y.h"])


# ---- error texts -------------------------------------------------------------------------------

TEXTS = {_canon(t): name for name, t in H.table("AII_TEXTS") if t}
TEXT_HOME = {"c_modules/aii/core/aii_text.h", "firmware/aii/_texts.py"}
# The same words with another meaning, each with its reason.
TEXT_ELSEWHERE = {
    ("host/aii_host/core/frame.py", "bad number"): "the frame codec: a non-numeric version or seq",
}


def test_texts_are_usable_by_every_binding():
    texts = [t for _, t in H.table("AII_TEXTS")]
    assert len(set(texts)) == len(texts), "a text is in the table twice"
    for t in texts:
        assert _canon(t) == re.sub(r"\{\}", "{}", t), f"{t!r}: arguments are marked {{}} only"
        assert "%" not in t and "\\" not in t and '"' not in t, t


def test_each_error_text_is_defined_once():
    """A table text (or one with its argument marks differently spelled) written as a literal
    anywhere else; also a template's fixed part written beside a `+` (name + " out of range")."""
    fragments = {}
    for canon, name in TEXTS.items():
        for part in canon.split("{}"):
            if len(part.strip()) >= 6 and part != canon:
                fragments[part] = name
    found = []
    for rel, kind in SOURCES:
        if rel in TEXT_HOME:
            continue
        for s, line in _strings(rel, kind):
            c = _canon(s)
            if (rel, s) in TEXT_ELSEWHERE:
                continue
            if c in TEXTS:
                found.append(f"{rel}:{line}: {s!r} is AII_T_{TEXTS[c]}")
            elif s in fragments:
                found.append(f"{rel}:{line}: {s!r} is part of AII_T_{fragments[s]}")
    assert not found, "texts of c_modules/aii/core/aii_text.h written again:\n" + "\n".join(found)


# ---- status codes ------------------------------------------------------------------------------

STATUS_HOME = {"c_modules/aii/core/aii_status.h"}


def test_each_status_code_is_defined_once():
    names = {n for n, _ in H.enums["aii_status_t"]}
    short = {n[len("AII_") :] for n in names}
    found = []
    for rel, kind in SOURCES:
        if rel in STATUS_HOME:
            continue
        if kind == ".py":
            for node in ast.walk(_py_tree(rel)):
                if not isinstance(node, ast.Assign):
                    continue
                value = node.value
                if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "const":
                    value = value.args[0] if value.args else value
                if isinstance(value, ast.UnaryOp):
                    value = value.operand
                if not (isinstance(value, ast.Constant) and isinstance(value.value, int)):
                    continue
                for t in node.targets:
                    if isinstance(t, ast.Name) and t.id.lstrip("_") in short:
                        found.append(f"{rel}:{node.lineno}: {t.id} = a number")
        else:
            for m in re.finditer(r"\b(AII_(?:OK|IDLE|ERR_\w+))\s*=\s*-?\d", _c_code(rel)):
                found.append(f"{rel}: {m.group(1)} = a number")
    assert not found, "status codes of aii_status.h defined again:\n" + "\n".join(found)


# ---- the record layout -------------------------------------------------------------------------

LAYOUT_HOME = {"c_modules/aii/core/aii_record.h"} | GENERATED
# Whoever reads or writes records and checkpoints (the C core does it through aii_record.h).
READERS = {
    "firmware/aii/_ledger.py",
    "firmware/aii_node/store.py",
    "firmware/aii_node/proto.py",
    "host/aii_host/fleet/replica.py",
    "host/aii_host/core/ledger.py",
    "c_modules/aii/core/ledger.c",
}


def _layout_numbers():
    """The numbers that spell the layout out and mean nothing else here: the record's size and
    its CRC's offset, the checkpoint's head size and a quantity entry's (others, such as 16,
    22 or 32, are also digest sizes and SHA-256 constants)."""
    nums = {H.defines["AII_LEDGER_REC_SIZE"]}
    nums |= {at for name, at, _, _ in H.table("AII_REC_FIELDS") if name == "CRC"}
    for table in ("AII_CKPT_HEAD_FIELDS", "AII_CKPT_QTY_FIELDS"):
        _, at, width, _ = H.table(table)[-1]
        nums.add(at + width)
    return nums


def test_the_record_layout_is_declared_once():
    """The readers of records and checkpoints name their fields (aii_record.h, or a module
    generated from it) instead of spelling offsets, sizes or struct formats out; elsewhere no
    struct format of a record or checkpoint and no magic "AIL1" appear."""
    nums = _layout_numbers()
    tables = gen_tables.generated()["host/aii_host/core/_record.py"]
    formats = set(re.findall(r'_FORMAT = "<([^"]+)"', tables))
    found = []
    for rel, kind in SOURCES:
        if rel in LAYOUT_HOME:
            continue
        strings = [s for s, _ in _strings(rel, kind)]
        for s in strings:
            if s.lstrip("<") in formats or s in ("AIL1",):
                found.append(f"{rel}: {s!r} spells a layout out")
        if rel not in READERS:
            continue
        if kind == ".py":
            for node in ast.walk(_py_tree(rel)):
                v = node.value if isinstance(node, ast.Constant) else None
                if type(v) is int and v in nums:
                    found.append(f"{rel}:{node.lineno}: {v} (a layout number)")
                if type(v) is str and len(v) > 2 and re.fullmatch(r"<[BHIQqs0-9]+", v):
                    found.append(f"{rel}:{node.lineno}: {v!r} (a record format)")
        else:
            for m in re.finditer(r"\b(r|rec|buf|p)\s*\+\s*(\d+)|\[(\d+)\]", _c_code(rel)):
                n = int(m.group(2) or m.group(3))
                if n in nums:
                    found.append(f"{rel}: {m.group(0)} (a layout number)")
    assert not found, "the journal layout spelled out again:\n" + "\n".join(found)


def test_the_readers_use_the_generated_layout():
    for rel in ("firmware/aii_node/store.py", "firmware/aii_node/proto.py"):
        assert "from ._record import" in (ROOT / rel).read_text(), rel
    assert "from ..core import _record" in (ROOT / "host/aii_host/fleet/replica.py").read_text()
    for rel in sorted(BLOCKS):
        text = (ROOT / rel).read_text()
        assert gen_tables.BEGIN in text, rel
        # The ports that raise take their words from _texts.py (_rta.py only returns codes).
        if rel in ("firmware/aii/_ledger.py", "firmware/aii/_sched.py"):
            assert "import TEXT as _TEXT" in text, rel


# ---- the run loop's idle rule ------------------------------------------------------------------

# The rule: when to collect, how long to wait (until the next release or the end, capped by a
# quarter tick period and by the idle cap). The core has it; the pure-Python port mirrors it in
# _Core.step and _clock_max_wait (held equal below and by test_sched_differential.py).
IDLE_RULE = {
    "c_modules/aii/core/sched.c": "the rule",
    "c_modules/aii/core/aii_sched.h": "the idle cap",
    "firmware/aii/_core.py": "the mirror",
    "tools/gen_tables.py": "the generator",
}
IDLE_SIGNS = [
    r"gc_due\b",
    r"\b(?:wake_at|until)\s*-\s*now\b",
    r"(?:mask|period)\s*//?\s*4\b",
    r"IDLE_CAP",
]


def test_the_idle_rule_is_defined_once():
    found = []
    for rel, kind in SOURCES:
        if rel in IDLE_RULE:
            continue
        code = _c_code(rel) if kind != ".py" else ast.unparse(_py_tree(rel))
        for sign in IDLE_SIGNS:
            for m in re.finditer(sign, code):
                found.append(f"{rel}: {m.group(0)!r}")
    assert not found, "the run loop's idle rule written outside the core:\n" + "\n".join(found)
    # ... and every run loop asks the core (or, in the pure port, its mirror) for the step.
    assert "aii_sched_step(" in (ROOT / "c_modules/aii/mod_aii_sched.c").read_text()
    assert "lib.aii_sched_step(" in (ROOT / "host/aii_host/core/sched.py").read_text()
    assert "s.step(s.dispatch(now)" in (ROOT / "firmware/aii/_sched.py").read_text()


def _step_cases(n=3000):
    rng = random.Random(13)
    never = 2**64 - 1
    out = []
    for _ in range(n):
        now = rng.choice([0, 5, 10**6, 2**40, never - 10])
        wake = rng.choice([never, now, now + rng.randrange(0, 300000), max(0, now - 7)])
        end = rng.choice([never, never - 1, now + rng.randrange(0, 300000), now])
        out.append(
            {
                "dispatched": rng.choice([0, 1]),
                "now": now,
                "wake": min(wake, never),
                "end": min(end, never),
                "max_wait": rng.choice([1, 50, 2**28, 2**60]),
                "real": rng.random() < 0.5,
                "gc_idle_us": rng.choice([0, 1, 2000]),
                "gc_max_us": rng.choice([0, 0, 1500, 5000]),
                "isr": rng.choice([(0, 0), (10, 100), (99, 100), (100, 100), (300, 5000)]),
                "jobs_since_gc": rng.choice([0, 1]),
            }
        )
    return out


def _core_steps(cases):
    from aii_host.core._aii import ffi, lib

    s = ffi.new("aii_sched_t *")
    lib.aii_sched_init(s, 0)
    job = ffi.new("aii_job_t *")
    wait = ffi.new("uint64_t *")
    out = []
    for c in cases:
        s.gc_idle_us, s.jobs_since_gc, job.wake_at = c["gc_idle_us"], c["jobs_since_gc"], c["wake"]
        s.gc_max_us, (s.isr_budget_us, s.isr_min_gap_us) = c["gc_max_us"], c["isr"]
        st = lib.aii_sched_step(
            s, c["dispatched"], job, c["now"], c["end"], c["max_wait"], c["real"], wait
        )
        out.append([st, wait[0]])
    return out


MIRROR = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import _core
s = _core._Core(0)
out = []
for c in json.loads(sys.stdin.read()):
    s.gc_idle_us = c["gc_idle_us"]
    s.gc_max_us = c["gc_max_us"]
    s.isr_budget_us, s.isr_min_gap_us = c["isr"]
    s.jobs_since_gc = c["jobs_since_gc"]
    s.job_wake_at = c["wake"]
    st = s.step(c["dispatched"], c["now"], c["end"], c["max_wait"], c["real"])
    out.append([st, s.wait_us])
print(json.dumps(out))
"""


def test_the_pure_port_mirrors_the_step():
    """_Core.step (CPython and MicroPython) against aii_sched_step on the same inputs."""
    from mp_util import load_pure, need_micropython

    cases = _step_cases()
    want = _core_steps(cases)
    assert {w[0] for w in want} == {0, 1, 2} and any(w[1] for w in want)
    pure = load_pure("_core", "aii_pure_core_step")
    core = pure._Core(0)
    got = []
    for c in cases:
        core.gc_idle_us, core.jobs_since_gc, core.job_wake_at = (
            c["gc_idle_us"],
            c["jobs_since_gc"],
            c["wake"],
        )
        core.gc_max_us, (core.isr_budget_us, core.isr_min_gap_us) = c["gc_max_us"], c["isr"]
        st = core.step(c["dispatched"], c["now"], c["end"], c["max_wait"], c["real"])
        got.append([st, core.wait_us])
    assert got == want
    for mask in (1, 3, 2**30 - 1, 2**62 - 1, 2**64 - 1):
        from aii_host.core._aii import ffi, lib

        clk = ffi.new("aii_clock_t *")
        lib.aii_clock_init(clk, mask)
        assert pure._clock_max_wait(mask) == lib.aii_clock_max_wait(clk)
    exe = need_micropython()
    r = subprocess.run(
        [exe, "-c", MIRROR, str(ROOT / "firmware" / "aii")],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout) == want


def test_the_pure_port_mirrors_the_calibration():
    """calibrate()'s reduction of its samples: _sched._calibration against
    aii_sched_calibration on the same samples."""
    from aii_host.core._aii import ffi, lib
    from mp_util import load_pure

    pure = load_pure("_sched", "aii_pure_sched_calib")
    rng = random.Random(7)
    n = lib.AII_SCHED_CALIB_SAMPLES
    for _ in range(200):
        x = [rng.choice([0, 1, rng.randrange(0, 50), rng.randrange(0, 2**32)]) for _ in range(n)]
        buf = ffi.new("uint32_t[]", x)
        out = ffi.new("aii_calib_t *")
        lib.aii_sched_calibration(buf, n, out)
        want = (out.overhead_us, out.n, out.min_us, out.median_us, out.p99_us, out.max_us)
        assert pure._calibration(list(x)) == want
        assert list(buf) == sorted(x)


def test_the_binding_files_stay_thin():
    """mod_aii.c is split by area, each file under 500 lines, and only the port layer calls
    what a native .mpy lacks."""
    files = sorted((ROOT / "c_modules/aii").glob("mod_aii*.c"))
    names = {p.name for p in files}
    assert {"mod_aii.c", "mod_aii_sched.c", "mod_aii_ledger.c", "mod_aii_fixed.c"} <= names
    for p in files:
        n = len(p.read_text().splitlines())
        assert n < 500, f"{p.name}: {n} lines"
    port_only = (
        r"\b(gc_collect|mp_hal_ticks_us|mp_event_wait_ms|mp_raise_msg_varg|vstr_\w+|"
        r"mp_obj_int_to_bytes_impl|mp_obj_new_int_from_ull|qstr_str|mp_obj_is_callable)\("
    )
    for p in files:
        if p.name != "mod_aii_port.c":
            hits = re.findall(port_only, headers._strip_comments(p.read_text()))
            assert not hits, f"{p.name} calls {sorted(set(hits))}: only mod_aii_port.c may"


def test_sources_list_is_not_empty():
    kinds = {k for _, k in SOURCES}
    assert {".py", ".c", ".h"} <= kinds and len(SOURCES) > 50
    assert sys.version_info >= (3, 9)


# ---- one percentile ----------------------------------------------------------------------------


def test_one_percentile_definition():
    """aii_host.core.stats.percentile (nearest rank) is the host's only one: reports, benchmarks and
    the soak test call it; nothing else turns a p into a rank."""
    from aii_host.core.stats import percentile

    assert percentile([], 50) is None
    assert percentile([7], 99) == 7
    assert percentile([4, 1, 3, 2], 50) == 2  # nearest rank, not an interpolation (2.5)
    assert percentile(range(1, 101), 99) == 99
    assert percentile([3, 1, 2], 0) == 1 and percentile([3, 1, 2], 100) == 3
    rank = re.compile(r"\bp\s*/\s*100\b|\bp\s*\*\s*len\(|np\.percentile|\bquantile\(")
    found = []
    for base in ("host/aii_host", "bench", "tests", "tools"):
        for p in sorted((ROOT / base).rglob("*.py")):
            rel = p.relative_to(ROOT).as_posix()
            if rel in ("host/aii_host/core/stats.py", "tests/host/test_rules_once.py"):
                continue
            found += [f"{rel}: {m.group(0)}" for m in rank.finditer(p.read_text())]
    assert not found, "a percentile computed outside aii_host.core.stats:\n" + "\n".join(found)
