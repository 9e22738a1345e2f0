# SPDX-License-Identifier: MIT
"""`aii devs` and `--port auto`: the devices a node may be behind, as mpremote's `devs` lists
them: serial ports (pyserial's list_ports, with their USB ids) and this user's running simulated
boards (the board registry, by name: `vboard:NAME`)."""

import json

from ..core._errors import AIIError


class NoDevice(AIIError):
    """`--port auto` found no device, or more than one."""


def devices():
    """[{"port", "kind": "usb" | "serial" | "vboard", "vid", "pid", "serial", "description"}]:
    USB serial ports first, then other serial ports, then simulated boards (as vboard:NAME, or
    vboard:DIR when two running boards have that name)."""
    from serial.tools import list_ports

    from . import vboard

    out = []
    for p in sorted(list_ports.comports(), key=lambda p: p.device):
        usb = p.vid is not None
        desc = " ".join(x for x in (p.manufacturer, p.product) if x) or p.description
        out.append(
            {
                "port": p.device,
                "kind": "usb" if usb else "serial",
                "vid": p.vid,
                "pid": p.pid,
                "serial": p.serial_number,
                "description": "" if desc in (None, "n/a") else desc,
            }
        )
    out.sort(key=lambda d: d["kind"] != "usb")
    boards = vboard.running()
    for b in boards:
        # By name when it is the only board of that name, else by its folder (vboard:DIR).
        twin = sum(x["id"] == b["id"] for x in boards) > 1
        where = f"simulated board, pty {b['port']}" + (f", tcp {b['tcp']}" if b["tcp"] else "")
        out.append(
            {
                "port": f"vboard:{b['dir'] if twin else b['id']}",
                "kind": "vboard",
                "vid": None,
                "pid": None,
                "serial": None,
                "description": f"{where}, files in {b['dir']}",
            }
        )
    return out


def auto_port():
    """The one device `--port auto` means: the only USB serial port or running simulated board
    (ports without a USB id, such as a PC's built-in ttyS0, are never guessed). NoDevice says
    which to choose from otherwise."""
    cands = [d["port"] for d in devices() if d["kind"] in ("usb", "vboard")]
    if len(cands) == 1:
        return cands[0]
    if not cands:
        raise NoDevice(
            "--port auto: no USB serial device and no simulated board found (plug a board in, "
            "or start one: aii vboard --id n1)"
        )
    raise NoDevice(f"--port auto: {len(cands)} devices, choose one: --port " + " | ".join(cands))


def _usb(d):
    return f"{d['vid']:04x}:{d['pid']:04x}" if d["vid"] is not None else "-"


def args_devs(p):
    p.add_argument("--json", action="store_true", help="one JSON list of the devices")


def do_devs(args):
    devs = devices()
    if args.json:
        print(json.dumps(devs))
        return 0
    if not devs:
        print("no serial devices and no simulated boards (aii vboard --id n1 starts one)")
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title="devices (use the port with --port; auto picks the only usb/vboard one)")
    for col in ("port", "kind", "usb id", "serial", "description"):
        t.add_column(col)
    for d in devs:
        t.add_row(d["port"], d["kind"], _usb(d), d["serial"] or "-", d["description"] or "-")
    console = Console()
    (console if console.is_terminal else Console(width=140)).print(t)
    return 0
