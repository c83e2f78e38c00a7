"""Stopping a devstack server means it is gone: no process of its group is left and nothing
listens on its port, so a restart on that port never meets its predecessor; and each process
has its own log, so an error quotes the one that failed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from devstack.processes import ServerProcess, launch, session_members
from devstack.sockets import free_port, listener_pids

# A wrapper that ends at once on SIGTERM and a child holding the port that ends only later, or
# never: what `gcloud` and the emulator's JVM are.
WRAPPER = """
import subprocess, sys, time
subprocess.Popen([sys.executable, sys.argv[1], sys.argv[2], sys.argv[3]])
print("wrapper started", flush=True)
time.sleep(600)
"""
CHILD = """
import signal, socket, sys, time
on_term = sys.argv[2]
if on_term == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *_: (time.sleep(float(on_term)), sys.exit(0)))
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen()
print("child listening", flush=True)
while True:
    time.sleep(1)
"""


def wrapped_server(tmp_path: Path, port: int, on_term: str) -> ServerProcess:
    wrapper, child = tmp_path / "wrapper.py", tmp_path / "child.py"
    wrapper.write_text(WRAPPER)
    child.write_text(CHILD)
    server = launch(
        "wrapped server",
        [sys.executable, str(wrapper), str(child), str(port), on_term],
        port=port,
        log_path=tmp_path / "server.log",
    )
    server.wait_listening(30)
    return server


def test_stop_returns_only_once_a_child_outliving_its_wrapper_freed_the_port(
    tmp_path: Path,
) -> None:
    port = free_port()
    first = wrapped_server(tmp_path, port, on_term="1.0")  # the child ends a second after SIGTERM
    first.stop()
    assert session_members(first.process.pid) == set()
    assert listener_pids(port) == set()
    again = wrapped_server(tmp_path, port, on_term="0")  # a restart on the same port starts
    try:
        assert again.log_path != first.log_path
        assert "child listening" in again.log_path.read_text()
    finally:
        again.stop()


def test_a_child_that_ignores_sigterm_is_killed_and_the_port_freed(tmp_path: Path) -> None:
    port = free_port()
    server = wrapped_server(tmp_path, port, on_term="ignore")
    server.stop(timeout=1.0)
    assert session_members(server.process.pid) == set()
    assert listener_pids(port) == set()


def test_kill_returns_once_the_whole_group_is_gone(tmp_path: Path) -> None:
    port = free_port()
    server = wrapped_server(tmp_path, port, on_term="ignore")
    server.kill()
    assert session_members(server.process.pid) == set()
    assert listener_pids(port) == set()


def test_a_server_that_fails_after_a_restart_is_reported_with_its_own_log(tmp_path: Path) -> None:
    port = free_port()
    first = wrapped_server(tmp_path, port, on_term="0")
    first.stop()
    failing = launch(
        "restarted server",
        [sys.executable, "-c", "print('second process: cannot bind', flush=True)"],
        port=port,
        log_path=tmp_path / "server.log",  # the same name the first one was given
    )
    with pytest.raises(RuntimeError) as caught:
        failing.wait_listening(5)
    message = str(caught.value)
    assert "second process: cannot bind" in message
    assert "wrapper started" not in message and "child listening" not in message
    assert str(failing.log_path) in message
