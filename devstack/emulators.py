"""Start Google's Pub/Sub and Firestore emulators on free ports, and stop exactly what we started."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devstack.ports import free_port, wait_for_port

START_TIMEOUT_S = 90.0


class MissingTool(RuntimeError):
    """A program the devstack needs is not installed; the message says what to install."""


def check_tools() -> None:
    """Fail with an install hint when gcloud, its emulators or Java are missing."""
    problems = []
    if shutil.which("java") is None:
        problems.append("Java 17+ (Debian: apt-get install openjdk-17-jre-headless)")
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        problems.append(
            "the Google Cloud CLI with its emulators (gcloud, and "
            "`gcloud components install pubsub-emulator cloud-firestore-emulator`, or Debian's "
            "google-cloud-cli-pubsub-emulator and google-cloud-cli-firestore-emulator)"
        )
    else:
        sdk = Path(gcloud).resolve().parent.parent
        for component, folder in (
            ("pubsub-emulator", "pubsub-emulator"),
            ("cloud-firestore-emulator", "cloud-firestore-emulator"),
        ):
            if not (sdk / "platform" / folder).exists():
                problems.append(f"the gcloud component {component}")
    if problems:
        raise MissingTool("missing: " + "; ".join(problems))


@dataclass
class Emulator:
    """One running emulator process (its own process group, so stopping it stops its JVM)."""

    name: str
    host: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)


def launch_emulator(kind: str, log_dir: Path) -> Emulator:
    """Start `pubsub` or `firestore` on a free port; `wait_ready` waits until it listens."""
    port = free_port()
    host = f"127.0.0.1:{port}"
    command = {
        "pubsub": ["gcloud", "beta", "emulators", "pubsub", "start", f"--host-port={host}"],
        "firestore": ["gcloud", "emulators", "firestore", "start", f"--host-port={host}"],
    }[kind]
    log_path = log_dir / f"{kind}-emulator.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Emulator(kind, host, process, log_path)


def wait_ready(emulator: Emulator) -> None:
    port = int(emulator.host.rsplit(":", 1)[1])
    if not wait_for_port(port, timeout=START_TIMEOUT_S) or emulator.process.poll() is not None:
        emulator.stop()
        tail = emulator.log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(
            f"the {emulator.name} emulator did not start on {emulator.host}:\n{tail}"
        )


@dataclass(frozen=True)
class Emulators:
    """Both emulators; `env()` gives the variables that point Google's clients at them."""

    pubsub: Emulator
    firestore: Emulator
    project: str

    def env(self) -> dict[str, str]:
        return {
            "PUBSUB_EMULATOR_HOST": self.pubsub.host,
            "FIRESTORE_EMULATOR_HOST": self.firestore.host,
            "GCP_PROJECT": self.project,
            "GOOGLE_CLOUD_PROJECT": self.project,
        }


@contextmanager
def running_emulators(
    project: str = "bridge-local", log_dir: Path | None = None
) -> Iterator[Emulators]:
    """Start both emulators (in parallel: each takes seconds of JVM start) and stop them after."""
    check_tools()
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="bridge-emulators-"))
    started: list[Emulator] = []
    try:
        # Each JVM takes seconds to start: launch both, then wait for both.
        pubsub = launch_emulator("pubsub", log_dir)
        started.append(pubsub)
        firestore = launch_emulator("firestore", log_dir)
        started.append(firestore)
        wait_ready(pubsub)
        wait_ready(firestore)
        yield Emulators(pubsub, firestore, project)
    finally:
        for emulator in reversed(started):
            emulator.stop()


def main() -> int:
    """`python -m devstack.emulators --check`: say what is missing, in words a person can act on."""
    import sys

    if "--check" not in sys.argv[1:]:
        print("usage: python -m devstack.emulators --check")
        return 2
    try:
        check_tools()
    except MissingTool as exc:
        print(f"ERPNext Bridge needs tools that are not installed. {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
