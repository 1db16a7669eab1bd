"""sd_notify(3) with the standard library: what a Type=notify unit tells
systemd (READY=1, RELOADING=1, STOPPING=1, STATUS=...).

A datagram to the AF_UNIX socket $NOTIFY_SOCKET names ("@" for an abstract
one).  Without the variable (not under systemd) it does nothing; a failure
to send is dropped: systemd's notification is advice about the daemon, never
a reason to stop it.  A socket, not a file: nothing here goes through the
filesystem layer.
"""

from __future__ import annotations

import os
import socket
import time


def notify(*assignments: str) -> bool:
    """Send ASSIGNMENTS ("READY=1", "STATUS=...") to systemd in one
    message; whether it was sent."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket (Linux)
    elif not address.startswith("/"):
        return False  # unset, or a kind of address (vsock) that the daemon has no use for
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sender:
            sender.sendto("\n".join(assignments).encode("utf-8", "replace"), address)
    except OSError:
        return False
    return True


def reloading() -> bool:
    """RELOADING=1, with the CLOCK_MONOTONIC time systemd 253+ asks for to
    tell this reload from an earlier one."""
    return notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")
