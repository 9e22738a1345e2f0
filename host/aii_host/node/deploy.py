# SPDX-License-Identifier: MIT
"""`aii deploy`: firmware, configuration and key onto a board with mpremote, or a simulated
board's configuration; a locked console is first unlocked with a signed request."""

import time

from ..core import keys
from .console import open_port


def args_deploy(p):
    p.add_argument(
        "--port",
        help="one board: serial device, a simulated board (vboard:NAME or its pty), "
        "tcp:HOST:PORT, or auto (the only device; aii devs lists them)",
    )
    p.add_argument(
        "--fleet",
        help="deploy every node of this fleet file (made by aii init), each with its port, "
        "config and key",
    )
    p.add_argument(
        "--keep-going",
        action="store_true",
        help="with --fleet: deploy the other nodes after a failure (default: stop at the first)",
    )
    p.add_argument("--json", action="store_true", help="with --fleet: the summary as JSON")
    p.add_argument("--config", help="node configuration (JSON) to install as aii_node.json")
    p.add_argument("--key", help="node key: hex digits or a file (default: the config's, or new)")
    p.add_argument(
        "--unlock-key",
        help="key the running node checks, for the maintenance request a locked console needs "
        "before Ctrl-C (default: the key being deployed)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the mpremote command only")
    p.add_argument("--no-main", action="store_true", help="do not write main.py")
    p.add_argument("--no-restart", action="store_true", help="do not restart the board")


NODE_CONFIG = "aii_node.json"  # the node's configuration file on the device (firmware/aii_node)


def read_config(path):
    """The node configuration in `path`: a JSON object (docs/protocol.md §8), or one line that
    says what is wrong with the file."""
    import json

    from ..core._errors import AIIValueError

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AIIValueError(f"--config {path}: no such file") from None
    except IsADirectoryError:
        raise AIIValueError(f"--config {path}: a folder, not a JSON file") from None
    except UnicodeDecodeError:
        raise AIIValueError(f"--config {path}: not text (a JSON object is expected)") from None
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as e:
        raise AIIValueError(
            f"--config {path}: not JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None
    if not isinstance(cfg, dict):
        raise AIIValueError(
            f"--config {path}: the configuration must be a JSON object "
            f'{{"node": ..., "quantities": [...], ...}}, not a {type(cfg).__name__}'
        )
    # The name also names the host's key file (keys.py).
    keys.check_name(cfg.get("node", "node"), f"--config {path}: 'node'")
    return cfg


def _deploy_config(args):
    """(the config to install with its key, whether the key is new: saved once deployed)."""
    from pathlib import Path

    from ..core._errors import AIIValueError

    if not args.config:
        if args.key:
            raise AIIValueError("--key needs --config (the key lives in the node's config file)")
        return None, False
    cfg = read_config(Path(args.config))
    if args.key:
        cfg["key"] = keys.read_key(args.key).hex()
    elif not cfg.get("key"):
        cfg["key"] = keys.new_config(cfg.get("node", "node"))["key"]
        return cfg, True
    return cfg, False


def _save_new_key(cfg):
    # The host's copy of a key made for this deploy, once the node has it.
    path = keys.keys_dir() / (cfg.get("node", "node") + ".key")
    keys.write_private(path, cfg["key"] + "\n", replace=True)
    print(f"deploy: new node key saved in {path} (use it with --key)")


def _stage_firmware(stage):
    """Copies the firmware's .py files (no manifests, no caches) to stage/; returns the folders."""
    import shutil

    from ..core.paths import FIRMWARE_PACKAGES
    from .vboard import firmware_dir

    fw = firmware_dir()
    out = []
    for pkg in FIRMWARE_PACKAGES:
        dst = stage / pkg
        dst.mkdir()
        for src in sorted((fw / pkg).glob("*.py")):
            if src.name != "manifest.py":
                shutil.copy(src, dst / src.name)
        out.append(dst)
    return out


def _unlock(port, unlock_key, cfg):
    """A node whose console is locked (docs/protocol.md §9) takes Ctrl-C only after a signed
    `maintenance` request, until its next boot: sent first, signed with the key the node runs
    with (--unlock-key, else the key being deployed). Nothing to do when no node app answers
    (a board at its REPL) or its console is not locked."""
    from ..core import frame as fr
    from ..core._errors import AIIError
    from ..core.client import NodeClient, NodeError, NodeTimeout

    t = open_port(port)
    try:
        c = NodeClient(t, timeout=1.0, retries=1)
        try:
            st = c.request("status")
        except (NodeTimeout, NodeError):
            return None  # no node app answering: at the REPL, or not an AII node
        if st.get("lock") != "on":
            return st.get("lock")
        key = keys.read_key(unlock_key) if unlock_key else None
        if key is None and cfg is not None:
            key = bytes.fromhex(cfg["key"])
        if key is None:
            raise AIIError(
                f"{port}: the node's console is locked: give the key it runs with "
                "(--unlock-key), or hold its unlock pin at boot (docs/protocol.md §9)"
            )
        c.key = key
        try:
            return c.request("maintenance")["lock"]
        except NodeError as e:
            if e.code != fr.E_AUTH:
                raise
            raise AIIError(
                f"{port}: the node's console is locked and refused the maintenance "
                f"request ({e.msg}): give the key it runs with (--unlock-key), or hold its "
                "unlock pin at boot (docs/protocol.md §9)"
            ) from None
    finally:
        t.close()


def do_deploy(args):
    """`aii deploy --port PORT [--config FILE]`, or `aii deploy --fleet FILE`: every node of a
    fleet (fleet/cli_provision.py)."""
    from .. import clikit

    if args.fleet:
        if args.port or args.config or args.key or args.unlock_key or args.no_main:
            raise clikit.UsageError(
                "--fleet deploys each node with its own port, config and key: give no --port, "
                "--config, --key, --unlock-key or --no-main with it"
            )
        from ..fleet.cli_provision import deploy_fleet_cli

        return deploy_fleet_cli(args)
    if not args.port:
        raise clikit.UsageError("give --port PORT (one board) or --fleet FILE (every node)")
    if args.keep_going or args.json:
        raise clikit.UsageError("--keep-going and --json go with --fleet")
    cfg, new_key = _deploy_config(args)
    deploy(args.port, cfg, new_key, args.unlock_key, args.dry_run, args.no_main, args.no_restart)
    return 0


def deploy(
    port,
    cfg=None,
    new_key=False,
    unlock_key=None,
    dry_run=False,
    no_main=False,
    no_restart=False,
    quiet=False,
):
    """Copies firmware/aii, firmware/aii_node, the config `cfg` (a dict, with its key) and a
    main.py to the board at `port` with mpremote; on a simulated board (a pty, tcp:... or
    vboard:NAME), writes the config into the board's folder (its firmware is the source tree's
    firmware/, as frozen modules on a board) and restarts the app. `quiet`: mpremote's output
    is kept and shown only when it fails. AIIError when anything fails."""
    import json
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from ..core._errors import AIIError
    from . import vboard
    from .vboard import registry

    if port == "auto":
        from .ports import resolve_port

        port = resolve_port(port)
    folder = vboard.find_by_port(port)
    if folder is not None:
        if cfg is None:
            print(f"deploy: {port} is a simulated board; it runs firmware/ as is")
            return
        if dry_run:
            print(f"deploy: would write {folder / NODE_CONFIG} (simulated board) and restart it")
            return
        if not no_restart:
            _unlock(port, unlock_key, cfg)  # before the new config (and its key) is in place
        # The key goes into a fresh file of this user's, never through a planted link.
        registry.write_json(folder / NODE_CONFIG, cfg)
        print(f"deploy: config written to {folder / NODE_CONFIG} (simulated board)")
        if new_key:
            _save_new_key(cfg)
        if not no_restart:
            t = open_port(port)
            try:
                t.write(b"\x03")  # stop the app (it persists), wait for the REPL, soft reboot
                seen, end = b"", time.monotonic() + 15
                while b">>> " not in seen and time.monotonic() < end:
                    seen = seen[-16:] + t.read(0.2)
                if b">>> " not in seen:
                    raise AIIError(f"{port}: the app did not stop on Ctrl-C")
                t.write(b"\x04")
            finally:
                t.close()
            print("deploy: app restarted")
        return
    with tempfile.TemporaryDirectory() as td:
        stage = Path(td)
        pkgs = _stage_firmware(stage)
        cmd = [sys.executable, "-m", "mpremote", "connect", port, "cp", "-r"]
        cmd += [str(p) for p in pkgs] + [":"]
        if cfg is not None:
            (stage / NODE_CONFIG).write_text(json.dumps(cfg))
            cmd += ["+", "cp", str(stage / NODE_CONFIG), ":" + NODE_CONFIG]
        if not no_main:
            (stage / "main.py").write_text("import aii_node.main\n")
            cmd += ["+", "cp", str(stage / "main.py"), ":main.py"]
        if not no_restart:
            cmd += ["+", "reset"]
        if dry_run:
            print(" ".join(cmd))
            return
        _unlock(port, unlock_key, cfg)  # mpremote's Ctrl-C must reach the REPL
        out = subprocess.PIPE if quiet else None
        r = subprocess.run(cmd, check=False, stdout=out, stderr=out, text=True)
        if r.returncode != 0:
            said = ((r.stderr or "") + (r.stdout or "")).strip().splitlines()
            tail = f": {said[-1]}" if said else ""
            raise AIIError(f"mpremote failed (exit {r.returncode}){tail}; is {port} an AII board?")
    print(f"deploy: firmware{' and config' if cfg else ''} copied to {port}")
    if new_key:
        _save_new_key(cfg)
