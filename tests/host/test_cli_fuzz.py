# SPDX-License-Identifier: MIT
"""Every `aii` command, taken from the CLI's own parser (so a command added later is covered at
once), run with hypothesis-generated argument lists in an empty temporary folder, stdin closed,
under a timeout: a traceback, or an exit status outside the documented set (aii --help), fails;
a timeout does not (servers and long runs are allowed to run).

Each run is a forked child of this process (cli_util.run_aii: the imports already done, so
hundreds of runs fit in a minute) in its own process group, killed with its children at the
timeout (AII_CLI_FUZZ_TIMEOUT, 2 s). Budget: AII_CLI_FUZZ_SECONDS in all (default 45, spread
over the commands, at least 5 runs each: about a minute with the runs that time out) and at
most AII_CLI_FUZZ_EXAMPLES per command (default 60); `make soak` raises both. Exit 70 (an
internal error: a bug) fails like a traceback; run counts and exit statuses per command go to
build/cli_fuzz/.
"""

import argparse
import atexit
import json
import os
import shutil
import string
import tempfile
import time
from pathlib import Path

import pytest
from aii_host import clikit
from aii_host.main import _parser, commands_of
from cli_util import run_aii
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SECONDS = float(os.environ.get("AII_CLI_FUZZ_SECONDS", "45"))
EXAMPLES = int(os.environ.get("AII_CLI_FUZZ_EXAMPLES", "60"))
TIMEOUT = float(os.environ.get("AII_CLI_FUZZ_TIMEOUT", "2"))
COMMANDS = commands_of(_parser())
ALLOWED = set(clikit.DOCUMENTED)
HIL_CONFIG = Path(__file__).resolve().parents[1] / "hil" / "node_config.json"


def _fixtures():
    """Files outside the runs' empty folders, named by absolute path in the generated values
    so that the commands reach past "no such file": fleet files (nodes that cannot answer:
    a refused TCP port, a missing device), configs good and bad, a file that is no database."""
    d = Path(tempfile.mkdtemp(prefix="aii-cli-fuzz-fixtures-"))
    pid = os.getpid()
    atexit.register(lambda: os.getpid() == pid and shutil.rmtree(d, ignore_errors=True))
    (d / "fleet.toml").write_text(
        '[fleet]\ndb = "fleet.db"\nheartbeat_s = 0.1\n'
        '[[node]]\nname = "n1"\nport = "tcp:127.0.0.1:1"\n'
        '[[node]]\nname = "n2"\nport = "/dev/ttyNOPE"\nkey = "' + "ab" * 32 + '"\n'
    )
    (d / "bad.toml").write_text("[[node]]\nname = 1\n")
    (d / "cfg.json").write_text(HIL_CONFIG.read_text())
    (d / "bad.json").write_text("{bad")
    (d / "list.json").write_text("[1, 2]")
    (d / "binary").write_bytes(bytes(range(256)))
    (d / "text.db").write_text("not a database\n")
    return d


FIX = _fixtures()

# Values for options and positionals: edge values of every kind the commands take, names that
# exist (the fixtures) and names that do not. No number that could be a fixed TCP port in use
# on this machine (only 0 and 1 bind: a free port, and one nobody serves).
VALUES = [
    *["0", "1", "-1", "2", "0.5", "1.0005", "1e9", "1e400", "nan", "inf", "-inf", "65536"],
    *["99999999999999999999", "0x10", "", " ", "-", "--", "abc", "é", "x" * 300, "a\nb"],
    *["/dev/null", "/dev/ttyNOPE", "/", ".", "..", "tcp:nohost", "tcp:127.0.0.1:1", "tcp:"],
    *["tcp:127.0.0.1:0", "127.0.0.1:1", ":1", "vboard:nope", "vboard:/nonexistent", "vboard:."],
    *["n1=/dev/null", "n1=tcp:127.0.0.1:1", "n1", "=", "n1=", "n1:grid", "n2:load", "n2:"],
    *["Wh", "l", "kg", "tx", "verify", "n9", "grid", "load", "--", "-x", "--nope"],
    *["skimage:download_all", "skimage:data_dir", "skimage:", "skimage:nosuch"],
    *["camera:nope", "camera:-1", "camera:", "clip.mp4"],
    *["mobilenet:abc", "mobilenet:0", "mobilenet:-5", "mobilenet:", "face", "model.tflite"],
    *["fleet.toml", "cfg.json", "fleet.db", "missing.json"],
    *[str(FIX / n) for n in ("fleet.toml", "bad.toml", "cfg.json", "bad.json", "list.json")],
    *[str(FIX / n) for n in ("binary", "text.db", "nothere")],
    str(FIX),
]
# Free text without digits: never a port number, never a size that takes minutes.
TEXT = st.text(
    alphabet=string.ascii_letters + string.punctuation + " éß\t", min_size=0, max_size=12
)
VALUE = st.one_of(st.sampled_from(VALUES), TEXT)


# Numbers for options argparse converts (counts, seconds, sizes): small ones, so that a
# well-formed command line also runs, and the edges its checks must refuse.
NUMBERS = st.sampled_from(["0", "1", "2", "0.2", "0.05", "-1", "nan", "inf", "1e9", "abc", ""])


def _spec(sp):
    """([(option strings, takes a value, value strategy, required)], [positional strategies])
    of a subparser, from its argparse actions."""
    opts, pos = [], []
    for a in sp._actions:
        if isinstance(a, argparse._HelpAction):
            continue  # --help prints and exits 0: checked once per command below
        values = VALUE
        if a.choices:
            values = st.one_of(st.sampled_from(list(a.choices)), VALUE)
        elif a.type is not None and a.type is not str:
            values = st.one_of(NUMBERS, NUMBERS, VALUE)  # int, float and the clikit types
        if a.option_strings:
            opts.append((a.option_strings, a.nargs != 0, values, a.required))
        else:
            pos.append(values)
    return opts, pos


def _documented(name):
    """The command lines of `name`'s own examples (its --help epilog), as argument lists."""
    import shlex

    out = []
    for line in (COMMANDS[name].epilog or "").splitlines():
        line = line.strip()
        if line.startswith(f"aii {name} ") or line == f"aii {name}":
            words = line.split("  ")[0]  # examples are followed by two spaces and a comment
            try:
                argv = shlex.split(words)[1:]
            except ValueError:
                continue
            out.append([_safe(w, p) for w, p in zip(argv, [None, *argv])])
    return out


# In documented examples, the files they name become the fixtures (they exist, with content);
# TCP ports become ones nobody serves (another test on this machine may use 7001) and serial
# devices ones that do not exist (a real board could be attached).
_SUBST = {
    "fleet.toml": str(FIX / "fleet.toml"),
    "tests/hil/node_config.json": str(FIX / "cfg.json"),
    "keys/n1.json": str(FIX / "cfg.json"),
    "n1.key": "ab" * 32,
}


def _safe(word, prev):
    import re

    if prev == "--tcp":
        return "0"
    word = re.sub(r"/dev/tty(ACM|USB)\d+", "/dev/ttyNOPE", word)
    return _SUBST.get(word, re.sub(r"(tcp:[^:]*):\d+$", r"\1:1", word))


def _contained(words):
    """Folders a command writes files into (`keygen --out`) stay inside the run's folder or the
    fixtures: this test runs as any user, root included, and must not write keys into `/`."""
    out = list(words)
    for i in range(1, len(out)):
        if out[i - 1] == "--out" and not out[i].endswith(".png"):
            w = out[i]
            if w.startswith("/") and not w.startswith(str(FIX)) or ".." in w:
                out[i] = "out"
    return out


@st.composite
def argv_of(draw, name):
    return _contained(draw(_argv_of(name)))


@st.composite
def _argv_of(draw, name):
    """A documented example with a few words changed (the command runs and meets bad values
    deeper in), a well-formed line (its required options and positionals, other options), or
    any mix of options, values and junk."""
    opts, pos = _spec(COMMANDS[name])
    out = name.split()
    examples = _documented(name)
    kind = draw(st.sampled_from(["example", "formed", "mix"] if examples else ["formed", "mix"]))
    if kind == "example":
        words = list(draw(st.sampled_from(examples)))
        for _ in range(draw(st.integers(0, 2))):
            at = draw(st.integers(0, len(words)))
            what = draw(st.sampled_from(["replace", "insert", "drop"]))
            if what == "replace" and at < len(words):
                words[at] = draw(VALUE)
            elif what == "drop" and at < len(words):
                del words[at]
            elif opts:
                o = draw(st.sampled_from(opts))
                words[at:at] = [draw(st.sampled_from(o[0]))] + ([draw(o[2])] if o[1] else [])
        return words

    def option(o):
        strings, takes, values, _req = o
        out.append(draw(st.sampled_from(strings)))
        if takes:
            out.append(draw(values))

    if kind == "formed":
        for o in opts:
            if o[3]:
                option(o)
        for values in pos[: draw(st.integers(0, len(pos)))] if pos else []:
            out.append(draw(values))
        for _ in range(draw(st.integers(0, 3))):
            if opts:
                option(draw(st.sampled_from(opts)))
        return out
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["opt", "opt", "opt", "pos", "pos", "junk"]))
        if kind == "opt" and opts:
            option(draw(st.sampled_from(opts)))
        elif kind in ("opt", "pos"):
            out.append(draw(VALUE))
        else:
            out.append(draw(st.sampled_from(["--nope", "-x", "--", "-", "--=", "---"])))
    return out


def check(argv, status, out, err):
    if status == "timeout":
        return
    assert "Traceback" not in err, f"aii {argv}: traceback\n{err[-3000:]}"
    assert status in ALLOWED, f"aii {argv}: exit {status} (allowed {sorted(ALLOWED)})\n{err}"
    if status not in (0, clikit.EXIT_INTERRUPTED):
        # A refusal says why (stderr), a verdict shows what it found (stdout): never silence.
        assert (err + out).strip(), f"aii {argv}: exit {status} and no word said"


def test_the_command_table_is_what_the_parser_has():
    # The fuzz below covers these; a command registered anywhere shows up here by itself.
    names = set(COMMANDS)
    assert {"status", "aggregate", "transfer", "audit verify", "audit show", "deploy"} <= names
    assert {"detect", "edge-bench", "node-status", "console", "vboard", "demo"} <= names
    assert all(not n.startswith("-") for n in names)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_of_every_command(name):
    status, out, err = run_aii([*name.split(), "--help"], timeout=30)
    assert status == 0 and out.startswith("usage: aii " + name), (status, out, err)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_fuzz_cli(name):
    """Generated argument lists for one command; the stats go to build/cli_fuzz/<name>.json."""
    budget = SECONDS / len(COMMANDS)
    t0 = time.monotonic()
    stats = {"runs": 0, "timeouts": 0, "exits": {}}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
    @given(argv=argv_of(name))
    def one(argv):
        if time.monotonic() - t0 > budget and stats["runs"] >= 5 and not stats.get("failing"):
            return  # this command's share of the time is spent (but a failure is replayed)
        status, out, err = run_aii(argv, timeout=TIMEOUT)
        stats["runs"] += 1
        if status == "timeout":
            stats["timeouts"] += 1
        else:
            stats["exits"][str(status)] = stats["exits"].get(str(status), 0) + 1
        try:
            check(argv, status, out, err)
        except AssertionError:
            stats["failing"] = True
            raise

    one()
    results = Path(__file__).resolve().parents[2] / "build" / "cli_fuzz"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{name.replace(' ', '_')}.json").write_text(json.dumps(stats, sort_keys=True))
    # Not a test that cannot fail: every command really ran (a server may run into the timeout
    # each time: that is its normal life).
    assert stats["runs"] >= 5, stats
