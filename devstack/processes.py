"""Servers the devstack starts: each in its own process group, logged to a file, stopped by us."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from devstack.ports import listener_pids, wait_for_port

STOP_TIMEOUT_S = 15.0


@dataclass
class ServerProcess:
    """A started server listening on `port`; its own process group, so its children stop with it."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_listening(self, timeout: float) -> None:
        """Return once it accepts connections; stop it and raise with its log's tail otherwise,
        also when what listens on its port is another process (it could not bind)."""
        listening = wait_for_port(self.port, timeout=timeout)
        ours = listening and self._owns_port()
        if ours and self.process.poll() is None:
            return
        self.stop()
        tail = self.log_path.read_text(errors="replace")[-3000:]
        why = "another process listens on its port" if listening and not ours else "see its log"
        raise RuntimeError(f"{self.name} did not start on {self.host} ({why}):\n{tail}")

    def _owns_port(self) -> bool:
        """Whether a process of its group listens on its port (True where /proc cannot say)."""
        groups = set()
        for pid in listener_pids(self.port):
            try:
                groups.add(os.getpgid(pid))
            except ProcessLookupError:
                continue
        return not groups or self.process.pid in groups

    def stop(self) -> None:
        """SIGTERM the group, SIGKILL if it lingers."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """kill -9 of the whole group, as a crash would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT_S)


def launch(
    name: str,
    command: Sequence[str],
    *,
    port: int,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ServerProcess:
    """Start `command` in a new process group with output to `log_path` (appended)."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            list(command),
            env={**os.environ, **env} if env is not None else None,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=cwd,
        )
    return ServerProcess(name, port, process, log_path)
