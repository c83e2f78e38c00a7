"""Free loopback ports (TCP ports: the word means nothing else here), and waiting for a server
to listen on one.

A port we hand to a server stays unbound for the seconds a JVM or a Python process takes to
start. Any socket the kernel numbers itself in that time (an outgoing connection, a server that
binds port 0, as both emulators do inside) is given a port from the ephemeral range, and could
be given ours: the server then fails to bind while someone else answers on its port. So ports
are picked outside that range, where only a process naming the port itself can take it, never
twice in one run, and never one another run on this machine holds (two `make test` side by
side): each port handed out is locked, in a file, for the life of the process that chose it.
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import tempfile
import time
from pathlib import Path
from typing import IO

LOWEST = 20000
"""Well clear of the ports services are known by."""
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")

RESERVATIONS = Path(tempfile.gettempdir()) / "erpnext-bridge-ports"
"""One lock file per port some process on this machine handed out (the lock ends with it)."""

_handed_out: dict[int, IO[bytes]] = {}
_choose = random.SystemRandom().choice  # not the seedable global one: runs must not agree


def free_port() -> int:
    """A port nobody listens on now, outside the kernel's ephemeral range when there is room,
    and not handed out before, by this process or by another one still running (we never use
    fixed ports)."""
    candidates = _outside_ephemeral()
    for _ in range(200):
        port = _choose(candidates) if candidates else _any_free()
        if port not in _handed_out and _bindable(port) and (lock := _reserve(port)):
            _handed_out[port] = lock
            return port
    raise RuntimeError("found no free loopback port")


def _reserve(port: int) -> IO[bytes] | None:
    """The port's lock, held until this process ends; None when another process holds it."""
    RESERVATIONS.mkdir(exist_ok=True)
    lock = (RESERVATIONS / str(port)).open("ab")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return None
    return lock


def wait_for_port(port: int, *, timeout: float, host: str = "127.0.0.1") -> bool:
    """True once something accepts connections on `port`, False after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def listener_pids(port: int) -> set[int]:
    """The processes listening on loopback `port` (Linux's /proc; empty where there is none)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{inode}]")
    pids = set()
    for fd_dir in Path("/proc").glob("[0-9]*/fd") if inodes else ():
        try:
            if any(os.readlink(fd) in inodes for fd in fd_dir.iterdir()):
                pids.add(int(fd_dir.parent.name))
        except OSError:  # the process ended meanwhile, or is not ours to look at
            continue
    return pids


def _outside_ephemeral() -> list[int]:
    try:
        low, high = map(int, EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        return []
    return [*range(LOWEST, max(LOWEST, low)), *range(high + 1, 65536)]


def _any_free() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
