"""Servers the devstack starts: each in its own process group, logged to a file of its own,
stopped by us, and stopped means gone: no process of its group left, nothing on its ports."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devstack.sockets import listener_pids, wait_for_port

STOP_TIMEOUT_S = 15.0
"""How long a group has to end after SIGTERM before it is killed, and after SIGKILL before
stopping it is an error."""


class StopFailed(RuntimeError):
    """A stopped server left something running: a process it started, or a listener on its port."""


@dataclass
class ServerProcess:
    """A started server listening on `port`; its own process group, so its children stop with it."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    _served: bool = field(default=False, init=False)
    """Whether it was seen listening on its port; then stopping it frees that port."""

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ports(self) -> tuple[int, ...]:
        """Every port it listens on; all of them are free once it is stopped."""
        return (self.port,)

    def wait_listening(self, timeout: float) -> None:
        """Return once it accepts connections; stop it and raise with its log's tail otherwise,
        also when what listens on its port is another process (it could not bind)."""
        listening = wait_for_port(self.port, timeout=timeout)
        ours = listening and self._owns_port()
        if ours and self.process.poll() is None:
            self._served = True
            return
        self.stop()
        why = "another process listens on its port" if listening and not ours else "see its log"
        raise RuntimeError(f"{self.name} did not start on {self.host} ({why}):\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        """The end of this process's own log (never a predecessor's: each launch has its file)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"(no log at {self.log_path})"
        return f"{self.log_path}:\n{text[-chars:]}"

    def _owns_port(self) -> bool:
        """Whether a process of its group listens on its port (True where /proc cannot say)."""
        groups = set()
        for pid in listener_pids(self.port):
            try:
                groups.add(os.getpgid(pid))
            except ProcessLookupError:
                continue
        return not groups or self.process.pid in groups

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM every process it started, SIGKILL them if any lingers past `timeout`; return
        once none is left and, if it ever served, nothing listens on its ports (else
        `StopFailed`). (The gcloud wrapper ends at once on SIGTERM; the emulator's JVM, its
        child, may take longer, and holds the port until it has.)"""
        self._signal(signal.SIGTERM)
        if not self._all_ended(timeout):
            self.kill(timeout)
            return
        self._ports_freed(timeout)

    def kill(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """kill -9 of every process it started, as a crash would; returns once all are gone
        and its ports are free."""
        self._signal(signal.SIGKILL)
        if not self._all_ended(timeout):
            raise StopFailed(
                f"{self.name}: processes {sorted(session_members(self.process.pid))} it "
                f"started outlived SIGKILL by {timeout:.0f} s"
            )
        self._ports_freed(timeout)

    def _signal(self, signum: int) -> None:
        """To its process group, and to any process of its session that left the group."""
        for pid in session_members(self.process.pid):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                continue
        with contextlib.suppress(ProcessLookupError):  # the whole group has ended already
            os.killpg(self.process.pid, signum)

    def _all_ended(self, timeout: float) -> bool:
        """Whether, within `timeout`, the leader is reaped and no live process of its session
        is left (zombies hold no sockets; init reaps them once orphaned)."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=0.05)
            if self.process.poll() is not None and not session_members(self.process.pid):
                return True
            if time.monotonic() >= deadline:
                return False

    def _ports_freed(self, timeout: float) -> None:
        """Once it has ended, nothing may listen on the ports it served (a server that never
        got its port, because another process held it, leaves that process alone)."""
        if not self._served:
            return
        deadline = time.monotonic() + timeout
        while held := {port: pids for port in self.ports if (pids := listener_pids(port))}:
            if time.monotonic() >= deadline:
                raise StopFailed(
                    f"{self.name} has ended, but its ports are still listened on: "
                    + ", ".join(
                        f"{port} by processes {sorted(pids)}" for port, pids in held.items()
                    )
                )
            time.sleep(0.05)


def session_members(sid: int) -> set[int]:
    """The live (not zombie) processes of session `sid`, read from /proc: a server launched
    here leads a session of its own, and everything it starts stays in it."""
    members = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # ended meanwhile
            continue
        state, _ppid, _group, session = text.rsplit(")", 1)[1].split()[:4]
        if int(session) == sid and state not in ("Z", "X"):
            members.add(int(stat.parent.name))
    return members


def fresh_log(path: Path) -> Path:
    """`path`, or, when an earlier process wrote there, the first free `stem.N.suffix`: each
    process has its own log, and an error quotes the log of the process that failed."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}.{n}{path.suffix}")
    return candidate


def launch(
    name: str,
    command: Sequence[str],
    *,
    port: int,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ServerProcess:
    """Start `command` in a new process group, its output in a log of its own: `log_path`, or
    a numbered one beside it when that is taken (`ServerProcess.log_path` says which)."""
    log_path = fresh_log(log_path)
    with log_path.open("xb") as log:
        process = subprocess.Popen(
            list(command),
            env={**os.environ, **env} if env is not None else None,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=cwd,
        )
    return ServerProcess(name, port, process, log_path)
