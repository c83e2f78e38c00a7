"""drive_upload below Pub/Sub: the ERPNext stand-in's files, the Drive stand-in over HTTPS, the
folder registry on the Firestore emulator."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from google.oauth2.credentials import Credentials

from devstack.drive import FOLDER, DriveStandIn
from devstack.erpnext import ErpNextStandIn
from shared.adapters.drive import GoogleDrive, drive_client
from shared.adapters.erpnext import ErpNextClient
from shared.adapters.firestore import FirestoreStores
from shared.core.envelope import Envelope, document_envelope
from shared.drive.filing import BACKFILL_JOB, DriveBackfill, DriveUploader
from shared.drive.settings import DriveConfig
from shared.errors import InvalidPayload, UpstreamRejected, UpstreamUnavailable
from shared.platform.backoff import Backoff
from shared.platform.executions import RunStatus
from shared.platform.jobs import Jobs
from shared.platform.resilience import BREAKERS, BreakerSettings

SA = "bridge@p.iam.gserviceaccount.com"
KIB = 1024


@pytest.fixture
def drive() -> Iterator[DriveStandIn]:
    with DriveStandIn() as running:
        running.faults.timeout_s = 1.5
        running.add_principal("sa-token", SA, service_account=True)
        yield running


@pytest.fixture
def erp() -> Iterator[ErpNextStandIn]:
    with ErpNextStandIn(api_key="bridge", api_secret="erp-secret") as running:
        running.import_docs("Project", [{"name": "ACME Tower", "status": "Open"}])
        yield running


def uploader(
    drive: DriveStandIn,
    erp: ErpNextStandIn,
    project_id: str,
    owner: str = "i1",
    timeout_s: float = 1,
) -> DriveUploader:
    shared_drive = next(iter(drive.drives), None) or drive.create_shared_drive("Bridge", {SA})
    service = drive_client(
        Credentials(token="sa-token"),
        endpoint=drive.endpoint,
        ca_certs=drive.ca_file,
        timeout_s=timeout_s,
    )
    return DriveUploader(
        drive=GoogleDrive(
            service,
            backoff=Backoff(first_s=0.05, cap_s=0.2, budget_s=20),
            chunk=256 * KIB,
            simple_limit=256 * KIB,
        ),
        erp=ErpNextClient(erp.url, "bridge", "erp-secret", timeout_s=2),
        folders=FirestoreStores(project_id, timeout_s=10).drive_folders,
        config=DriveConfig(
            auth="shared_drive", root_folder=shared_drive, shared_drive=shared_drive
        ),
        site="erp.example.com",
        owner=owner,
        clock=lambda: datetime.now(UTC),
    )


def event(doc: dict[str, Any], name: str = "after_insert") -> Envelope:
    return document_envelope(
        json.loads(json.dumps(doc, default=str)),
        doctype="File",
        event=name,
        site="erp.example.com",
        received_at=datetime.now(UTC),
    )


def attach(
    erp: ErpNextStandIn, name: str, content: bytes, document: str = "INV-1"
) -> dict[str, Any]:
    invoice = {"name": document, "customer": "Acme Builders", "project": "ACME Tower"}
    if not any(doc["name"] == document for doc in erp.all("Sales Invoice")):
        erp.import_docs("Sales Invoice", [invoice])
    return erp.add_file(
        name,
        content,
        is_private=True,
        attached_to_doctype="Sales Invoice",
        attached_to_name=document,
    )


def live(drive: DriveStandIn, *, folders: bool = False) -> list[Any]:
    return [f for f in drive.files(include_trashed=False) if (f.mime_type == FOLDER) == folders]


def test_upload_files_it_by_project_and_document_and_links_it_back(
    drive: DriveStandIn, erp: ErpNextStandIn, project_id: str
) -> None:
    content = os.urandom(700 * KIB)  # three resumable chunks
    file_doc = attach(erp, "site photo.jpg", content)
    outcome = uploader(drive, erp, project_id).apply(event(file_doc))
    (copy,) = live(drive)
    assert outcome.startswith("uploaded") and drive.content(copy.id) == content
    assert drive.path_of(copy.id) == "ACME Tower/INV-1/site photo.jpg"
    assert copy.app_properties == {"erp_file": f"erp.example.com:{file_doc['name']}"}
    linked = erp.get("File", file_doc["name"])
    assert linked["drive_file_id"] == copy.id
    assert linked["drive_link"] == f"https://drive.google.com/file/d/{copy.id}/view?usp=drivesdk"


def test_three_deliveries_and_a_crash_before_link_back_make_one_drive_file(
    drive: DriveStandIn, erp: ErpNextStandIn, project_id: str
) -> None:
    file_doc = attach(erp, "scan.pdf", b"%PDF scan")
    service = uploader(drive, erp, project_id)
    # the link-back fails: its read, every attempt of it
    erp.faults.fail_next(3, status=503, path_prefix="/api/resource/File/")
    with pytest.raises(UpstreamUnavailable):
        service.apply(event(file_doc))
    assert len(live(drive)) == 1 and "drive_file_id" not in erp.get("File", file_doc["name"])
    outcomes = [service.apply(event(file_doc)) for _ in range(3)]
    assert outcomes[0].startswith("found in Drive") and "linked back" in outcomes[0]
    assert "link already in ERPNext" in outcomes[2]
    assert len(live(drive)) == 1


def test_twenty_concurrent_uploads_into_a_new_project_make_one_folder_each_level(
    drive: DriveStandIn, erp: ErpNextStandIn, project_id: str
) -> None:
    files = [attach(erp, f"photo-{n}.jpg", f"photo {n}".encode()) for n in range(20)]
    errors: list[BaseException] = []

    def upload(doc: dict[str, Any], owner: str) -> None:
        try:
            # 1 s (the fault tests' timeout) is too tight for 20 TLS handshakes on a busy machine.
            uploader(drive, erp, project_id, owner=owner, timeout_s=10).apply(event(doc))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(doc, f"i{n}")) for n, doc in enumerate(files)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(f.name for f in live(drive, folders=True)) == ["ACME Tower", "INV-1"]
    assert len(live(drive)) == 20
    assert {drive.path_of(f.id).rsplit("/", 1)[0] for f in live(drive)} == {"ACME Tower/INV-1"}


def test_a_slash_in_a_project_or_document_name_is_part_of_one_folders_name(
    drive: DriveStandIn, erp: ErpNextStandIn, project_id: str
) -> None:
    erp.import_docs("Project", [{"name": "ACME Tower/Board", "status": "Open"}])
    erp.import_docs("Sales Invoice", [{"name": "INV/24-25/001", "project": "ACME Tower/Board"}])
    file_doc = erp.add_file(
        "minutes.pdf",
        b"%PDF minutes",
        attached_to_doctype="Sales Invoice",
        attached_to_name="INV/24-25/001",
    )

    uploader(drive, erp, project_id).apply(event(file_doc))

    (copy,) = live(drive)
    folders = {folder.id: folder for folder in live(drive, folders=True)}
    document = folders[copy.parents[0]]
    project = folders[document.parents[0]]
    assert (project.name, document.name) == ("ACME Tower/Board", "INV/24-25/001")
    assert project.parents == [next(iter(drive.drives))] and len(folders) == 2


@pytest.mark.parametrize(
    "file_url",
    [
        "/files/../api/resource/User",
        "/private/files/./../../api/method/frappe.auth.get_logged_user",
        "/files//etc/passwd",
        "/files/a/..",
    ],
)
def test_a_file_url_with_dot_or_empty_segments_is_refused_and_nothing_is_fetched(
    drive: DriveStandIn, erp: ErpNextStandIn, project_id: str, file_url: str
) -> None:
    attach(erp, "real.pdf", b"%PDF real")  # the invoice it claims to belong to exists
    doc = {
        "name": "evil-file",
        "file_name": "users.json",
        "file_url": file_url,
        "attached_to_doctype": "Sales Invoice",
        "attached_to_name": "INV-1",
    }
    with pytest.raises(InvalidPayload, match="dot or empty segments"):
        uploader(drive, erp, project_id).apply(event(doc))
    assert [f.name for f in live(drive)] == []
    client = ErpNextClient(erp.url, "bridge", "erp-secret", timeout_s=2)
    with (
        pytest.raises(UpstreamRejected, match="not an ERPNext file path"),
        client.stream_file(file_url),
    ):
        pass


def test_deleting_trashes_the_copy_and_a_replacement_is_a_new_file(
    drive: DriveStandIn, erp: ErpNextStandIn, project_id: str
) -> None:
    service = uploader(drive, erp, project_id)
    old = attach(erp, "contract.pdf", b"version 1")
    service.apply(event(old))
    new = attach(erp, "contract-v2.pdf", b"version 2")
    service.apply(event(new))
    assert service.apply(event(old, "on_trash")) == f"trashed 1 Drive copies of {old['name']}"
    (kept,) = live(drive)
    assert drive.content(kept.id) == b"version 2"
    (trashed,) = [f for f in drive.files() if f.trashed]
    assert drive.content(trashed.id) == b"version 1"  # recoverable from the trash


def test_faults_on_drive_and_erpnext_end_with_every_file_in_drive_once(
    drive: DriveStandIn, erp: ErpNextStandIn, project_id: str
) -> None:
    files = [
        attach(erp, f"doc-{n}.pdf", os.urandom(300 * KIB + n), document=f"INV-{n % 3}")
        for n in range(8)
    ]
    service = uploader(drive, erp, project_id, timeout_s=0.3)
    drive.faults.timeout_s = 0.5
    drive.faults.kinds = ("429", "500", "503", "timeout", "timeout_after_apply")
    drive.faults.set_rate(0.3, seed=5)
    erp.faults.set_rate(0.3, seed=6)
    # Timeouts in a row open Drive's circuit (a call slower than 0.3 s on a busy machine counts
    # as one too): a short pause here, and rounds that wait it out as Pub/Sub's backoff would.
    BREAKERS.reset(BreakerSettings(pause_s=0.5, max_pause_s=2.0))
    pending = list(files)
    for _ in range(40):  # each round is Pub/Sub redelivering what failed
        failed, wait = [], 0.0
        for doc in pending:
            try:
                service.apply(event(doc))
            except UpstreamUnavailable as exc:
                failed.append(doc)
                wait = max(wait, exc.retry_after_s or 0.0)
        pending = failed
        time.sleep(min(wait, 2.0))
        if not pending:
            break
    drive.faults.set_rate(0)
    erp.faults.set_rate(0)
    assert pending == []
    copies = live(drive)
    assert sorted(f.name for f in copies) == sorted(str(doc["file_name"]) for doc in files)
    assert all(erp.get("File", doc["name"]).get("drive_file_id") for doc in files)
    assert sum(n for key, n in drive.calls.items() if key.startswith("fault:")) >= 5


def test_backfill_uploads_each_file_without_a_copy_once_and_records_the_run(
    drive: DriveStandIn, erp: ErpNextStandIn, project_id: str
) -> None:
    stores = FirestoreStores(project_id, timeout_s=10)
    service = uploader(drive, erp, project_id)
    done = attach(erp, "already.pdf", b"in Drive already")
    service.apply(event(done))
    waiting = [attach(erp, f"old-{n}.pdf", f"old {n}".encode(), document="INV-7") for n in range(5)]
    backfill = DriveBackfill(
        uploader=service,
        erp=ErpNextClient(erp.url, "bridge", "erp-secret", timeout_s=2),
        errors=stores.errors,
        clock=lambda: datetime.now(UTC),
    )
    jobs = Jobs(
        lease=stores.lease,
        executions=stores.executions,
        owner="scheduler",
        clock=lambda: datetime.now(UTC),
    )
    ticks: list[int] = []
    execution, counts = jobs.run(BACKFILL_JOB, lambda counts: backfill.run(counts, ticks.append))
    assert (counts.seen, counts.updated, counts.failed) == (5, 5, 0) and sum(ticks) == 5
    assert sorted(f.name for f in live(drive)) == [
        "already.pdf",
        *(f"old-{n}.pdf" for n in range(5)),
    ]
    assert all(erp.get("File", doc["name"]).get("drive_file_id") for doc in waiting)
    _, again = jobs.run(BACKFILL_JOB, backfill.run)
    assert again.seen == 0  # nothing left without a copy
    (record,) = [r for r in stores.executions.recent(BACKFILL_JOB) if r.id == execution]
    assert record.status == RunStatus.SUCCEEDED and record.counts.updated == 5


class CrashBeforeDelete(ErpNextClient):
    """The instance dies after handing the copy over, before deleting ERPNext's File."""

    crashed = False

    def delete(self, doctype: str, name: str) -> None:
        if not self.crashed:
            self.crashed = True
            raise UpstreamUnavailable("instance crashed", service="erpnext")
        super().delete(doctype, name)


def test_offload_hands_the_file_to_drive_only_after_the_checksums_match(
    drive: DriveStandIn, erp: ErpNextStandIn, project_id: str
) -> None:
    base = uploader(drive, erp, project_id)
    service = replace(
        base,
        erp=CrashBeforeDelete(erp.url, "bridge", "erp-secret", timeout_s=2),
        config=replace(base.config, offload=True),
    )
    content = b"%PDF signed contract"
    original = attach(erp, "contract.pdf", content)
    with pytest.raises(UpstreamUnavailable, match="crashed"):
        service.apply(event(original))
    outcome = service.apply(event(original))  # the redelivery finishes the handover
    assert outcome == f"offloaded {original['name']}: ERPNext's copy removed"
    (copy,) = live(drive)
    (remote,) = erp.all("File")
    assert (
        remote["file_url"] == copy.resource()["webViewLink"] and remote["drive_file_id"] == copy.id
    )
    assert remote["attached_to_name"] == "INV-1" and drive.content(copy.id) == content
    reader = ErpNextClient(erp.url, "bridge", "erp-secret")
    with pytest.raises(UpstreamRejected), reader.stream_file(str(original["file_url"])) as chunks:
        list(chunks)  # ERPNext's bytes are gone
    # The original's on_trash leaves the copy; the remote File's after_insert copies nothing.
    assert service.apply(event(original, "on_trash")).startswith("trashed 0")
    assert "nothing to copy" in service.apply(event(remote))
    assert service.apply(event(remote, "on_trash")).startswith("trashed 1")


def test_offload_keeps_erpnexts_copy_when_the_checksums_differ(
    drive: DriveStandIn, erp: ErpNextStandIn, project_id: str
) -> None:
    base = uploader(drive, erp, project_id)
    service = replace(base, config=replace(base.config, offload=True))
    doc = attach(erp, "scan.pdf", b"scan bytes")
    outcome = service.apply(event({**doc, "content_hash": "0" * 32}))
    assert "ERPNext's copy kept" in outcome
    assert [f["name"] for f in erp.all("File")] == [doc["name"]]
