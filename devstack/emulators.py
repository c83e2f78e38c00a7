"""Start Google's Pub/Sub and Firestore emulators on free ports, and stop exactly what we started."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from devstack.processes import ServerProcess, launch
from devstack.sockets import free_port

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


def launch_emulator(
    kind: str, log_dir: Path, port: int | None = None, *, import_data: Path | None = None
) -> ServerProcess:
    """Start `pubsub` or `firestore` on `port` (a free one by default), Firestore with the data
    of `export_firestore` if given; `wait_listening` waits until it serves."""
    port = port or free_port()
    host = f"127.0.0.1:{port}"
    command = {
        "pubsub": ["gcloud", "beta", "emulators", "pubsub", "start", f"--host-port={host}"],
        "firestore": ["gcloud", "emulators", "firestore", "start", f"--host-port={host}"],
    }[kind]
    if import_data is not None:
        command.append(f"--import-data={import_data}")
    return launch(
        f"the {kind} emulator", command, port=port, log_path=log_dir / f"{kind}-emulator.log"
    )


def export_firestore(emulator: ServerProcess, project: str, directory: Path) -> Path:
    """The Firestore emulator's data written to `directory` through its export endpoint; the
    file `launch_emulator(import_data=)` reads. (Its `--export-on-exit` wrote nothing here when
    the emulator was stopped with SIGTERM or SIGINT.)"""
    directory.mkdir(parents=True, exist_ok=True)
    answer = requests.post(
        f"http://{emulator.host}/emulator/v1/projects/{project}:export",
        json={
            "database": f"projects/{project}/databases/(default)",
            "export_directory": str(directory),
        },
        timeout=120,
    )
    answer.raise_for_status()
    return max(directory.glob("*/*.overall_export_metadata"), key=lambda path: path.stat().st_mtime)


@dataclass(frozen=True)
class Emulators:
    """Both emulators; `env()` gives the variables that point Google's clients at them."""

    pubsub: ServerProcess
    firestore: ServerProcess
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
    started: list[ServerProcess] = []
    try:
        # Each JVM takes seconds to start: launch both, then wait for both.
        pubsub = launch_emulator("pubsub", log_dir)
        started.append(pubsub)
        firestore = launch_emulator("firestore", log_dir)
        started.append(firestore)
        pubsub.wait_listening(START_TIMEOUT_S)
        firestore.wait_listening(START_TIMEOUT_S)
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
