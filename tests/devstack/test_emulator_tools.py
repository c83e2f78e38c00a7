"""`make test` and `make demo` stop with an install hint when Java or the gcloud emulators are missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from google.cloud import firestore

from devstack.emulators import (
    START_TIMEOUT_S,
    MissingTool,
    check_tools,
    export_firestore,
    launch_emulator,
)


def test_missing_java_and_gcloud_are_named_with_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingTool) as caught:
        check_tools()
    message = str(caught.value)
    assert "Java" in message and "openjdk" in message
    assert "gcloud" in message and "pubsub-emulator" in message


def test_check_command_exits_nonzero_with_the_hint_when_tools_are_missing(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devstack.emulators", "--check"],
        env={"PATH": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 1
    assert "missing:" in result.stderr and "Java" in result.stderr


def test_check_passes_on_this_machine_when_everything_is_installed() -> None:
    check_tools()  # the suite itself runs on the emulators, so they are here


def test_firestore_restarted_with_its_export_keeps_its_documents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = launch_emulator("firestore", tmp_path)
    try:
        first.wait_listening(START_TIMEOUT_S)
        monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", first.host)
        firestore.Client(project="restart-check").document("claims/a").set({"state": "done"})
        saved = export_firestore(first, "restart-check", tmp_path / "export")
    finally:
        first.stop()
    again = launch_emulator("firestore", tmp_path, port=first.port, import_data=saved)
    try:
        again.wait_listening(START_TIMEOUT_S)
        document = firestore.Client(project="restart-check").document("claims/a").get()
        assert document.to_dict() == {"state": "done"}
    finally:
        again.stop()
