"""Offload end to end (`DRIVE_OFFLOAD=true`): its own devstack, since the setting is read at start."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from devstack.emulators import Emulators
from devstack.stack import Devstack, running_devstack
from devstack.waiting import wait_until

SECRET = "e2e-offload-secret"


@pytest.fixture(scope="module")
def stack(emulators: Emulators) -> Iterator[Devstack]:
    with running_devstack(
        webhook_secret=SECRET,
        extra_env={"DRIVE_OFFLOAD": "true"},
        project="e2e-offload",
        emulators=emulators,
    ) as running:
        for event in ("after_insert", "on_trash"):
            running.erpnext.add_bridge_webhook("File", event, running.webhook_url, SECRET)
        yield running


def test_an_attachment_is_handed_to_drive_and_erpnexts_bytes_removed(stack: Devstack) -> None:
    erp = stack.erpnext
    erp.import_docs("Sales Invoice", [{"name": "INV-OFF-1", "project": "PROJ-0001"}])
    original = erp.add_file(
        "survey.pdf",
        b"%PDF site survey",
        is_private=True,
        attached_to_doctype="Sales Invoice",
        attached_to_name="INV-OFF-1",
    )

    def remote_files() -> list[dict[str, object]]:
        return [f for f in erp.all("File") if str(f.get("file_url", "")).startswith("https://")]

    assert wait_until(lambda: len(remote_files()) == 1 and len(erp.all("File")) == 1, timeout=40)
    (remote,) = remote_files()
    copy_id = str(remote["drive_file_id"])
    assert stack.drive.content(copy_id) == b"%PDF site survey"
    assert not [
        f for f in stack.drive.files() if f.trashed
    ]  # the original's on_trash kept the copy
    assert not any(f["name"] == original["name"] for f in erp.all("File"))
    gone = requests.get(erp.url + str(original["file_url"]), headers=erp.auth_header, timeout=10)
    assert gone.status_code == 404  # ERPNext's copy of the bytes is removed
