"""Ports for the servers the devstack starts: never one the kernel may hand to a socket of its
own choosing, never one twice; and a server whose port someone else holds is not taken for up."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from devstack import sockets
from devstack.processes import launch
from devstack.sockets import EPHEMERAL_RANGE, free_port, listener_pids


def test_free_ports_are_distinct_outside_the_ephemeral_range_and_free() -> None:
    low, high = map(int, EPHEMERAL_RANGE.read_text().split())
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(not low <= port <= high for port in ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[-1]))  # free when handed out


def test_the_process_listening_on_a_port_is_found() -> None:
    port = free_port()
    assert listener_pids(port) == set()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        assert listener_pids(port) == {os.getpid()}


def test_a_server_whose_port_another_process_holds_is_reported_not_started(
    tmp_path: Path,
) -> None:
    port = free_port()
    listen = "import socket,time; s=socket.socket(); s.bind(('127.0.0.1', %d)); s.listen(); "
    holder = subprocess.Popen([sys.executable, "-c", listen % port + "time.sleep(60)"])
    late = None
    try:
        # The late server never binds (as one that met "Address already in use" before exiting).
        late = launch(
            "late server",
            [sys.executable, "-c", "import time; time.sleep(60)"],
            port=port,
            log_path=tmp_path / "late.log",
        )
        with pytest.raises(RuntimeError, match="another process listens on its port"):
            late.wait_listening(10)
        assert late.process.poll() is not None  # stopped, not left behind
    finally:
        if late is not None:
            late.stop()
        holder.kill()
        holder.wait()


def test_a_port_another_running_process_handed_out_is_not_handed_out_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Another `make test` beside this one: it chose a port and has not bound it yet.
    chooser = "import sys; from devstack.sockets import free_port; print(free_port(), flush=True)"
    other = subprocess.Popen(
        [sys.executable, "-c", chooser + "; sys.stdin.read()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout is not None
        theirs = int(other.stdout.readline())
        offered = [theirs, theirs]  # what the random choice comes up with first, then its own
        real_choose = sockets._choose
        monkeypatch.setattr(
            sockets,
            "_choose",
            lambda candidates: offered.pop() if offered else real_choose(candidates),
        )
        mine = free_port()
        assert offered == [] and mine != theirs
    finally:
        other.kill()
        other.wait()
