"""The systemd notify protocol: a datagram of KEY=VALUE lines to $NOTIFY_SOCKET, when set."""

from __future__ import annotations

import os
import socket


def notify(*lines: str, watchdog: bool = False) -> bool:
    """Send `lines` (READY=1, STATUS=…, STOPPING=1) to systemd; with watchdog=True also WATCHDOG=1
    when systemd asked for it (WATCHDOG_USEC). Returns False when not run under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if watchdog and os.environ.get("WATCHDOG_USEC"):
        lines = (*lines, "WATCHDOG=1")
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto("\n".join(lines).encode(), address)
    except OSError:
        return False
    return True
