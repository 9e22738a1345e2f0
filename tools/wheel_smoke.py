# SPDX-License-Identifier: MIT
"""The wheel outside the checkout: installs build/dist's wheel into a fresh venv in a temporary
folder (pip's cache serves the dependencies; nothing beyond PyPI) and runs the CLI there, from a
folder that is not the checkout, with a cache of its own.

    python tools/wheel_smoke.py [--dist build/dist] [--results build/results/wheel.json]

Checks: the version, `aii --help`, the public import paths, a missing extra said in one line,
`aii deploy --dry-run` staging the firmware the wheel carries, `aii demo` (three simulated
boards from that firmware, a two-phase transfer, a violation found), `aii vboard` given a
config by `aii deploy` answering `aii node-status`, and `aii dashboard --demo` serving its page
and /metrics (package data). Exits 1 when one fails.
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd, cwd, env, timeout):
    t0 = time.monotonic()
    try:
        r = subprocess.run(
            cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        return r.returncode, r.stdout, r.stderr, time.monotonic() - t0
    except subprocess.TimeoutExpired as e:
        return "timeout", e.stdout or "", e.stderr or "", time.monotonic() - t0


def _record(results, name, cmd, run, want_rc, want_text):
    rc, out, err, dt = run
    ok = rc == want_rc and want_text in out + err and "Traceback" not in err
    results["passed" if ok else "failed"] += 1
    results["checks"].append({"name": name, "ok": ok, "exit": rc, "seconds": round(dt, 1)})
    print(f"wheel_smoke: {'ok  ' if ok else 'FAIL'} {name} ({dt:.1f} s)")
    if not ok:
        print(f"  {' '.join(cmd)}: exit {rc} (want {want_rc}, and {want_text!r})")
        print("  " + (out[-1500:] + err[-1500:]).replace("\n", "\n  "))


def _vboard_check(results, aii, work, env, config):
    """`aii vboard` runs the shipped node app (its files in the user cache, not in `work`);
    `aii deploy` gives it a config; then it answers `aii node-status` over its pty."""
    name = "vboard + deploy: the shipped node app answers node-status"
    t0 = time.monotonic()
    board = subprocess.Popen(
        [aii, "vboard", "--id", "smoke"],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    cmd = [aii, "vboard", "--id", "smoke"]
    try:
        # Its first line names the pty; a board that dies first ends stdout (readline: "").
        line = board.stdout.readline()
        try:
            port = json.loads(line)["port"]
        except (ValueError, KeyError, TypeError):
            board.kill()
            out, err = board.communicate(timeout=10)
            run = (board.returncode, line + out, err, time.monotonic() - t0)
            return _record(results, name, cmd, run, 0, '"port"')
        cmd = [aii, "deploy", "--port", port, "--config", str(config)]
        rc, out, err, _ = _run(cmd, work, env, 60)
        if rc != 0:
            return _record(results, name, cmd, (rc, out, err, time.monotonic() - t0), 0, "")
        cmd = [aii, "node-status", "--port", port, "--timeout", "10"]
        rc, out, err, _ = _run(cmd, work, env, 60)
        _record(results, name, cmd, (rc, out, err, time.monotonic() - t0), 0, "hil1")
    finally:
        if board.poll() is None:
            board.terminate()
            try:
                board.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                board.kill()
                board.communicate()


def _dashboard_check(results, aii, work, env):
    """`aii dashboard --demo` serves its page and /metrics from the files the wheel carries."""
    import urllib.request

    name = "dashboard: the page and /metrics from the installed package"
    cmd = [aii, "dashboard", "--demo", "--seconds", "20", "--http", "127.0.0.1:0", "--json"]
    t0 = time.monotonic()
    dash = subprocess.Popen(
        cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    got, out = [], ""
    try:
        out = dash.stdout.readline()  # its first event names the address it serves
        try:
            url = json.loads(out)["data"]["url"]
            for path, want in (("", b"</html>"), ("metrics", b"aii_")):
                with urllib.request.urlopen(url + path, timeout=20) as r:
                    got.append(r.status == 200 and want in r.read())
        except (ValueError, KeyError, TypeError, OSError) as e:
            out += f"\n{type(e).__name__}: {e}"
    finally:
        dash.terminate()
        try:
            rest, err = dash.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            dash.kill()
            rest, err = dash.communicate()
    ok = got == [True, True]
    run = (0 if ok else dash.returncode, out + rest[-1500:], err, time.monotonic() - t0)
    _record(results, name, cmd, run, 0, "")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dist", default=str(ROOT / "build" / "dist"))
    p.add_argument("--results", default=None)
    a = p.parse_args(argv)
    wheels = sorted(glob.glob(os.path.join(a.dist, "aii_host-*.whl")))
    if not wheels:
        print(f"wheel_smoke: no wheel in {a.dist} (make dist builds it)", file=sys.stderr)
        return 1
    wheel = wheels[-1]
    top = Path(tempfile.mkdtemp(prefix="aii-wheel-"))
    results = {"passed": 0, "failed": 0, "skipped": 0, "checks": []}
    try:
        venv, work = top / "venv", top / "work"
        work.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AII_", "PYTHON"))}
        env.pop("VIRTUAL_ENV", None)
        env["XDG_CACHE_HOME"] = str(top / "cache")  # boards and models: not this user's cache
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        r = subprocess.run(
            [*pip, "--disable-pip-version-check", wheel],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if r.returncode != 0:
            print(r.stdout[-3000:] + r.stderr[-3000:], file=sys.stderr)
            print(f"wheel_smoke: pip install {wheel} failed", file=sys.stderr)
            results["failed"] += 1
            return 1
        print(
            f"wheel_smoke: {os.path.basename(wheel)} installed in {top} "
            f"({time.monotonic() - t0:.1f} s)"
        )
        py, aii = str(venv / "bin" / "python"), str(venv / "bin" / "aii")
        version = json.loads(
            subprocess.run(
                [py, "-c", "import json, aii_host; print(json.dumps(aii_host.__version__))"],
                capture_output=True,
                text=True,
                env=env,
                cwd=work,
                check=False,
            ).stdout
            or "null"
        )
        plugin = (
            "from importlib.metadata import entry_points as e\n"
            "print([x.value for x in e(group='pytest11') if x.name == 'aii'])"
        )
        public = (
            "import aii_host, sys\n"
            "from aii_host import Ledger, Scheduler, AIIError\n"
            "from aii_host.client import NodeClient\n"
            "from aii_host.transport import open_transport\n"
            "import aii_host.core.paths as p\n"
            "assert p.checkout() is None, p.checkout()\n"
            "assert (p.firmware_dir() / 'aii_node' / 'main.py').is_file(), p.firmware_dir()\n"
            "assert 'site-packages' in str(p.firmware_dir()), p.firmware_dir()\n"
            # The compiled core, not only its wrapper: a transfer moves exact units.
            "L = Ledger(); wh = L.add_quantity('Wh', digits=3)\n"
            "a = L.open('a', wh, initial=5000); b = L.open('b', wh)\n"
            "L.transfer(a, b, wh, 1250)\n"
            "assert (L.balance(a), L.balance(b)) == (3750, 1250)\n"
            "print('ok')\n"
        )
        checks = [
            ("version", [aii, "--version"], 0, f"aii {version}", 30),
            ("help", [aii, "--help"], 0, "fetch-model", 30),
            ("public import paths", [py, "-c", public], 0, "ok", 30),
            # The pytest plugin (docs/testing.md) is registered for whoever installs pytest.
            (
                "pytest11 entry point",
                [py, "-c", plugin],
                0,
                "['aii_host.testing.plugin']",
                30,
            ),
            # numpy is the edge extra: without it, one line with the pip command, no traceback.
            ("missing extra", [aii, "detect", "photo.png"], 1, "pip install 'aii-host[edge]'", 30),
            (
                "deploy --dry-run stages the shipped firmware",
                [aii, "deploy", "--port", "/dev/null", "--dry-run"],
                0,
                "mpremote connect /dev/null cp -r",
                30,
            ),
            (
                "demo: boards, a transfer, a violation",
                [aii, "demo", "--seconds", "0.5"],
                0,
                "isolated",
                180,
            ),
        ]
        for name, cmd, want_rc, want_text, timeout in checks:
            rc, out, err, dt = _run(cmd, work, env, timeout)
            _record(results, name, cmd, (rc, out, err, dt), want_rc, want_text)
        config = top / "node.json"  # the HIL tier's node, from outside the working folder
        shutil.copy(ROOT / "tests" / "hil" / "node_config.json", config)
        _vboard_check(results, aii, work, env, config)
        _dashboard_check(results, aii, work, env)
        leftover = list(work.iterdir())
        if leftover:  # the CLI made files in a folder it was only run in
            results["failed"] += 1
            print(f"wheel_smoke: FAIL files left in the working folder: {leftover}")
    finally:
        shutil.rmtree(top, ignore_errors=True)
        if a.results:
            Path(a.results).parent.mkdir(parents=True, exist_ok=True)
            Path(a.results).write_text(json.dumps(results, indent=1))
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
