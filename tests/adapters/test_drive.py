"""The Drive adapter through google-api-python-client, over HTTPS, against the Drive stand-in."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.oauth2.credentials import Credentials

from devstack.drive import DriveStandIn
from shared.adapters.drive import GoogleDrive, drive_client, drive_credentials
from shared.drive.settings import DriveConfig
from shared.errors import ConfigurationError, StorageQuotaRefused
from shared.platform.backoff import Backoff

KIB = 1024


@pytest.fixture
def standin() -> Iterator[DriveStandIn]:
    with DriveStandIn() as running:
        running.faults.timeout_s = 1.5
        running.add_principal("sa-token", "bridge@p.iam.gserviceaccount.com", service_account=True)
        running.add_principal("user-token", "ana@example.com")
        yield running


def drive(standin: DriveStandIn, token: str = "sa-token", **options: int) -> GoogleDrive:  # noqa: S107
    service = drive_client(
        Credentials(token=token),
        endpoint=standin.endpoint,
        ca_certs=standin.ca_file,
        timeout_s=1,
    )
    backoff = Backoff(first_s=0.05, cap_s=0.2, budget_s=20)
    return GoogleDrive(service, backoff=backoff, **options)


def pieces(data: bytes, size: int = 100 * KIB) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture
def shared_drive(standin: DriveStandIn) -> str:
    return standin.create_shared_drive("Bridge", {"bridge@p.iam.gserviceaccount.com"})


def test_folders_and_small_and_resumable_uploads_keep_bytes_and_checksums(
    standin: DriveStandIn, shared_drive: str
) -> None:
    client = drive(standin, chunk=256 * KIB, simple_limit=512 * KIB)
    assert client.check_shared_drive(shared_drive) == "Bridge"
    folder = client.create_folder("ACME", shared_drive, {"erp_folder": "ACME"})
    assert [f.id for f in client.find(name="ACME", parent=shared_drive, folder=True)] == [folder.id]
    for size in (300 * KIB, 3 * 1024 * KIB + 17):  # one multipart request; a resumable session
        data = os.urandom(size)
        done = client.upload(
            f"scan-{size}.pdf",
            folder.id,
            "application/pdf",
            pieces(data),
            size=size,
            app_properties={"erp_file": f"site:{size}"},
        )
        assert done.sent_bytes == size and done.item.md5 == done.sent_md5
        assert done.sent_md5 == hashlib.md5(data, usedforsecurity=False).hexdigest()
        assert standin.content(done.item.id) == data
        assert done.item.web_link.startswith("https://drive.google.com/file/d/")
        (found,) = client.find(app_property=("erp_file", f"site:{size}"))
        assert found.id == done.item.id
    assert standin.calls["POST upload"] == 2 and standin.calls["PUT upload"] >= 12


def test_a_resumable_upload_survives_failed_and_lost_chunk_answers(
    standin: DriveStandIn, shared_drive: str
) -> None:
    client = drive(standin, chunk=256 * KIB, simple_limit=0)
    data = os.urandom(2 * 1024 * KIB + 5)
    chunks = pieces(data)

    def source() -> Iterator[bytes]:
        yield next(chunks)
        # The session is open by now: its chunks fail, and one lands but its answer is lost.
        standin.faults.fail_next("500", "timeout_after_apply", "503")
        yield from chunks

    done = client.upload(
        "big.bin",
        shared_drive,
        "application/octet-stream",
        source(),
        size=len(data),
        app_properties={},
    )
    assert standin.content(done.item.id) == data and done.item.md5 == done.sent_md5
    assert len(standin.files()) == 1


def test_a_service_account_outside_a_shared_drive_gets_a_clear_refusal(
    standin: DriveStandIn,
) -> None:
    client = drive(standin)
    folder = client.create_folder("Mine", "root", {})  # folders hold no bytes: allowed
    with pytest.raises(StorageQuotaRefused, match="shared drive"):
        client.upload("a.txt", folder.id, "text/plain", iter([b"x"]), size=1, app_properties={})
    user = drive(standin, token="user-token")
    done = user.upload("a.txt", "root", "text/plain", iter([b"x"]), size=1, app_properties={})
    assert standin.content(done.item.id) == b"x"


def test_trash_hides_the_file_from_searches_but_keeps_it(
    standin: DriveStandIn, shared_drive: str
) -> None:
    client = drive(standin)
    done = client.upload(
        "a.txt",
        shared_drive,
        "text/plain",
        iter([b"abc"]),
        size=3,
        app_properties={"erp_file": "f1"},
    )
    client.trash(done.item.id)
    assert client.find(app_property=("erp_file", "f1")) == []
    (kept,) = standin.files()
    assert kept.trashed and standin.content(kept.id) == b"abc"


def test_a_missing_shared_drive_or_a_bad_token_is_a_configuration_error(
    standin: DriveStandIn,
) -> None:
    with pytest.raises(ConfigurationError, match="not a member"):
        drive(standin).check_shared_drive("0ANOSUCHDRIVE")
    with pytest.raises(ConfigurationError, match="401"):
        drive(standin, token="stolen").find(name="x")


def test_a_users_oauth_refresh_token_uploads_into_their_my_drive(standin: DriveStandIn) -> None:
    refresh = standin.oauth_grant("owner@gmail.com", "client-1", "client-secret-1")
    config = DriveConfig(
        auth="oauth_user",
        root_folder="root",
        oauth_client_id="client-1",
        oauth_client_secret="client-secret-1",
        oauth_refresh_token=refresh,
        token_uri=standin.token_uri,
    )
    user = GoogleDrive(
        drive_client(drive_credentials(config), endpoint=standin.endpoint, ca_certs=standin.ca_file)
    )
    done = user.upload("a.txt", "root", "text/plain", iter([b"mine"]), size=4, app_properties={})
    (stored,) = standin.files()
    assert stored.owner == "owner@gmail.com" and standin.content(done.item.id) == b"mine"


def test_a_refused_refresh_token_is_a_configuration_error(standin: DriveStandIn) -> None:
    standin.oauth_grant("owner@gmail.com", "client-1", "client-secret-1")
    config = DriveConfig(
        auth="oauth_user",
        root_folder="root",
        oauth_client_id="client-1",
        oauth_client_secret="client-secret-1",
        oauth_refresh_token="1//revoked",
        token_uri=standin.token_uri,
    )
    drive = GoogleDrive(
        drive_client(drive_credentials(config), endpoint=standin.endpoint, ca_certs=standin.ca_file)
    )
    with pytest.raises(ConfigurationError, match="cannot be refreshed"):
        drive.find(name="anything")


@pytest.mark.parametrize("granted", [True, False])
def test_domain_wide_delegation_acts_as_the_user_only_when_granted(
    standin: DriveStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, granted: bool
) -> None:
    key = standin.service_account_key("delegate@p.iam.gserviceaccount.com", delegation=granted)
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(key))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    config = DriveConfig(auth="delegation", root_folder="root", impersonate="ana@example.com")
    drive = GoogleDrive(
        drive_client(drive_credentials(config), endpoint=standin.endpoint, ca_certs=standin.ca_file)
    )
    if not granted:
        with pytest.raises(ConfigurationError, match="cannot be refreshed"):
            drive.find(name="anything")
        return
    drive.upload("memo.txt", "root", "text/plain", iter([b"as Ana"]), size=6, app_properties={})
    (stored,) = standin.files()
    assert stored.owner == "ana@example.com"  # the user's storage, not the service account's


def test_download_reads_a_file_in_ranged_chunks(standin: DriveStandIn, shared_drive: str) -> None:
    client = drive(standin, chunk=256 * KIB)
    data = os.urandom(700 * KIB)
    done = client.upload(
        "big.bin",
        shared_drive,
        "application/octet-stream",
        pieces(data),
        size=len(data),
        app_properties={},
    )
    before = standin.calls["GET /files/ID"]
    parts = list(client.download(done.item.id))
    assert b"".join(parts) == data and max(len(part) for part in parts) <= 256 * KIB
    assert standin.calls["GET /files/ID"] - before == 3  # three ranges of 256 KiB
