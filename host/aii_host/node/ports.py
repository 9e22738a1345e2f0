# SPDX-License-Identifier: MIT
"""Ports by name, wherever a port is taken (--port, a fleet file's `port`): "auto" (the only
USB serial device or running simulated board, devs.py) and "vboard:NAME" / "vboard:DIR" (a
simulated board's pty now: it changes when the board restarts, its name does not). core's
transports know only devices and TCP; this room knows the boards."""

from ..core._errors import AIIError
from ..core.transport import TransportError
from ..core.transport import open_transport as _open


def resolve_port(port):
    """The port to open now: "auto" and "vboard:..." looked up (TransportError naming the
    choices when there is none or more than one); any other as it is."""
    if port != "auto" and not port.startswith("vboard:"):
        return port
    from . import devs, vboard

    try:
        if port == "auto":
            port = devs.auto_port()
        if port.startswith("vboard:"):
            port = vboard.port_of(port)
    except AIIError as e:  # no such board, none or several devices, a planted registry entry
        raise TransportError(str(e)) from None
    return port


def open_transport(port, baudrate=115200):
    """aii_host.core.transport.open_transport after resolve_port: a Transport, not yet open."""
    return _open(resolve_port(port), baudrate)
