# SPDX-License-Identifier: MIT
"""The C core's headers, read once for everything generated from them (docs/architecture.md).

- `Headers(core_dir, names).cdef()`: the cffi declarations of those headers and what they
  include: typedefs, structs (every field, sizes left to the compiler: `[...]`, `...;`), enums
  (values left to the compiler), functions, and each integer macro as `#define NAME ...`.
  _build_aii.py calls it when the extension is built, so nothing is copied by hand.
- `.tables`, `.enums`, `.defines`: the X-macro tables (texts, record layout), the enums and the
  integer macros as Python data, from which tools/gen_tables.py writes the committed modules of
  the pure-Python ports and readers.

Only files in core_dir are read, so the package builds from any tree that ships the core beside
it (the repository, or an sdist that copies c_modules/aii/core in). The headers' own style is
the grammar: one declaration per statement, `typedef struct { ... } name;`, macros that are
either integer expressions or X-macro tables; anything else is an error, never a silent skip.
"""

import os
import re

_IDENT = re.compile(r"[A-Za-z_]\w*")
_INCLUDE = re.compile(r'#\s*include\s+"([^"]+)"')


class HeaderError(Exception):
    """A header uses a construct this reader does not know."""


def _literal_end(s, i):
    """Index just past the string or character literal that starts at s[i]."""
    j = i + 1
    while j < len(s) and s[j] != s[i]:
        j += 2 if s[j] == "\\" else 1
    return j + 1


def _strip_comments(text):
    # Comments go, string and character literals stay (texts contain '//'-free prose, but a
    # reader that trusts that would break on the first URL).
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            j = _literal_end(text, i)
            out.append(text[i:j])
            i = j
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif text.startswith("/*", i):
            j = text.index("*/", i + 2)
            out.append(" ")
            i = j + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _scan(s, start=0):
    """(index, char, parenthesis depth after it) of s's characters outside literals."""
    depth, i = 0, start
    while i < len(s):
        c = s[i]
        if c in "\"'":
            i = _literal_end(s, i)
            continue
        depth += (c == "(") - (c == ")")
        yield i, c, depth
        i += 1


def _split_args(s):
    """Top-level comma-separated arguments of a macro call's inside."""
    args, start = [], 0
    for i, c, depth in _scan(s):
        if c == "," and depth == 0:
            args.append(s[start:i].strip())
            start = i + 1
    args.append(s[start:].strip())
    return args


def _call_end(s, start):
    """Index just past the ')' that closes the '(' at s[start]."""
    for i, c, depth in _scan(s, start):
        if c == ")" and depth == 0:
            return i + 1
    raise HeaderError(f"unbalanced parentheses in {s[start : start + 60]!r}")


def _table_rows(body, x):
    """The argument lists of an X-macro table's body `X(...) X(...) ...`, else None."""
    rows, i = [], 0
    while True:
        while i < len(body) and body[i].isspace():
            i += 1
        if i == len(body):
            return rows or None
        if not body.startswith(x, i):
            return None
        j = i + len(x)
        while j < len(body) and body[j].isspace():
            j += 1
        if j == len(body) or body[j] != "(":
            return None
        end = _call_end(body, j)
        rows.append(_split_args(body[j + 1 : end - 1]))
        i = end


def _literal(v):
    """A table argument as Python data: an int, a string, or the token itself."""
    v = v.strip()
    if v.startswith('"'):
        return v[1:-1].encode().decode("unicode_escape")
    try:
        return int(v, 0)
    except ValueError:
        return v


def _int_expr(body, defines):
    """The value of a simple integer macro body: (n), (-n), a known macro, or None."""
    v = body.strip()
    while v.startswith("(") and v.endswith(")") and _call_end(v, 0) == len(v):
        v = v[1:-1].strip()
    m = re.fullmatch(r"(-?)\s*(0[xX][0-9a-fA-F]+|\d+)[uUlL]*", v)
    if m:
        return int(m.group(1) + m.group(2), 0)
    return defines.get(v)


class Headers:
    """Declarations and tables of the headers `names` (and what they include) in core_dir."""

    def __init__(self, core_dir, names):
        self.core_dir = core_dir
        self.macros = {}  # name -> (params or None, body)
        self.defines = {}  # integer macros: name -> value (None when not a plain number)
        self.strings = {}  # string macros: name -> value
        self.tables = {}  # X-macro table name -> [tuple of arguments]
        self.enums = {}  # enum type (or "" for anonymous) -> [(name, value)]
        self._decls = []  # cdef lines
        self._done = set()
        for name in names:
            self._read(name)

    # -- reading --

    def _read(self, name):
        if name in self._done:
            return
        self._done.add(name)
        path = os.path.join(self.core_dir, name)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for inc in _INCLUDE.findall(text):
            self._read(inc)  # declarations of an include come first
        text = _strip_comments(text.replace("\\\n", " "))
        guard = None
        skip = 0  # inside #if ... #error ... #endif
        chunk = []
        for line in text.split("\n"):
            s = line.strip()
            if not s.startswith("#"):
                if not skip:
                    chunk.append(line)
                continue
            # Declarations so far are read with the macros as they are here.
            self._declare("\n".join(chunk), name)
            chunk = []
            word = s[1:].split(None, 1)
            key, rest = word[0], (word[1] if len(word) > 1 else "")
            if key == "if":
                skip += 1
            elif key == "endif":
                skip = max(0, skip - 1)
            elif skip or key == "include":
                pass
            elif key == "ifndef":
                guard = guard or rest.strip()
            elif key == "undef":
                self.macros.pop(rest.strip(), None)
            elif key == "define":
                self._define(rest, guard)
            elif key == "error":
                pass
            else:
                raise HeaderError(f"{name}: unexpected #{key}")
        self._declare("\n".join(chunk), name)

    def _define(self, rest, guard):
        m = re.match(r"([A-Za-z_]\w*)(\(([^)]*)\))?\s*(.*)", rest, re.DOTALL)
        name, params, body = m.group(1), m.group(3), m.group(4).strip()
        if name == guard and not body:
            return  # include guard
        if params is not None:
            params = [p.strip() for p in params.split(",")]
            self.macros[name] = (params, body)
            rows = _table_rows(body, params[0]) if len(params) == 1 else None
            if rows:
                self.tables[name] = [tuple(_literal(a) for a in row) for row in rows]
            return
        self.macros[name] = (None, body)
        if body.startswith('"'):
            self.strings[name] = _literal(body)
            return
        self.defines[name] = _int_expr(body, self.defines)
        self._decls.append(f"#define {name} ...")

    # -- macro expansion (function-like only: the X-macro tables) --

    def _expand(self, s, depth=0):
        if depth > 20:
            raise HeaderError("macro expansion too deep")
        out, i = [], 0
        for m in _IDENT.finditer(s):
            macro = self.macros.get(m.group())
            if not macro or macro[0] is None:
                continue
            j = m.end()
            while j < len(s) and s[j] in " \t\n":
                j += 1
            if j >= len(s) or s[j] != "(" or m.start() < i:
                continue
            end = _call_end(s, j)
            params, body = macro
            args = _split_args(s[j + 1 : end - 1])
            if len(args) != len(params):
                raise HeaderError(
                    f"{m.group()} takes {len(params)} arguments: {s[m.start() : end]}"
                )
            sub = dict(zip(params, args))
            body = _IDENT.sub(lambda t, sub=sub: sub.get(t.group(), t.group()), body)
            body = re.sub(r"\s*##\s*", "", body)
            out.append(s[i : m.start()])
            out.append(self._expand(body, depth + 1))
            i = end
        out.append(s[i:])
        return "".join(out)

    # -- declarations --

    def _declare(self, text, header):
        text = self._expand(text)
        for stmt in self._statements(text):
            self._statement(stmt, header)

    @staticmethod
    def _statements(text):
        depth, cur = 0, []
        for c in text:
            cur.append(c)
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            elif c == ";" and depth == 0:
                stmt = " ".join("".join(cur).split())
                cur = []
                if stmt != ";":
                    yield stmt[:-1].strip()
        if "".join(cur).strip():
            raise HeaderError(f"unterminated declaration: {''.join(cur).strip()[:80]}")

    def _statement(self, stmt, header):
        m = re.fullmatch(r"(typedef\s+)?enum\s*(\w+\s*)?\{(.*)\}\s*(\w*)", stmt)
        if m:
            self._enum(m.group(3), m.group(4) if m.group(1) else "")
            return
        m = re.fullmatch(r"typedef\s+struct\s*(\w+\s*)?\{(.*)\}\s*(\w+)", stmt)
        if m:
            fields = [self._field(f) for f in m.group(2).split(";") if f.strip()]
            body = " ".join(f + ";" for f in fields)
            self._decls.append(f"typedef struct {{ {body} ...; }} {m.group(3)};")
            return
        if stmt.startswith("typedef ") and "(" not in stmt:
            self._decls.append(stmt + ";")
            return
        m = re.fullmatch(r"([\w\s\*]+?)\s*\b(\w+)\s*\((.*)\)", stmt)
        if m and not stmt.startswith(("static", "typedef")):
            params = re.sub(r"\[[^\]]*\]", "[]", m.group(3))
            self._decls.append(f"{m.group(1).strip()} {m.group(2)}({params});")
            return
        raise HeaderError(f"{header}: unknown declaration: {stmt[:100]}")

    def _enum(self, body, name):
        items, value = [], -1
        for item in (x.strip() for x in body.split(",")):
            if not item:
                continue
            m = re.fullmatch(r"(\w+)\s*(?:=\s*(.+))?", item)
            if not m:
                raise HeaderError(f"enum {name}: {item}")
            value = value + 1 if m.group(2) is None else _int_expr(m.group(2), self.defines)
            items.append((m.group(1), value))
            self.defines[m.group(1)] = value
        self.enums[name] = items
        if name:
            names = ", ".join(n for n, _ in items)
            self._decls.append(f"typedef enum {{ {names}, ... }} {name};")
        else:
            self._decls.extend(f"#define {n} ..." for n, _ in items)

    @staticmethod
    def _field(f):
        # Array sizes are macros of the core's configuration: the compiler knows them.
        return re.sub(r"\[[^\]]+\]", "[...]", " ".join(f.split()))

    # -- results --

    def cdef(self):
        return "\n".join(self._decls) + "\n"

    def table(self, name):
        if name not in self.tables:
            raise HeaderError(f"no table {name} in {sorted(self.tables)}")
        return self.tables[name]
