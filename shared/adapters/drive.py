"""Google Drive (v3, through google-api-python-client): folders, streamed uploads, trash.

Every call says `supportsAllDrives` (docs/SERVICES.md, Google Drive: a service account can only store files in a shared
drive). Uploads stream: up to 5 MB of known size in one multipart request, anything else through
a resumable session in chunks of a multiple of 256 KiB, read from the source as they are sent,
so memory holds one chunk whatever the file's size. The MD5 of what was sent is computed on the
way and returned beside Drive's own `md5Checksum`.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httplib2
from google.auth.exceptions import RefreshError
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaUpload

from shared.adapters.clients import discovery_client, per_thread
from shared.drive.ports import DriveItem, Uploaded
from shared.drive.settings import DriveConfig
from shared.errors import (
    ConfigurationError,
    StorageQuotaRefused,
    UpstreamRejected,
    UpstreamUnavailable,
)
from shared.platform import resilience
from shared.platform.backoff import Backoff

SERVICE = "drive"
FOLDER = "application/vnd.google-apps.folder"
SIMPLE_LIMIT = 5 * 1024 * 1024
CHUNK = 8 * 1024 * 1024  # a multiple of 256 KiB
FILE_FIELDS = "id,name,md5Checksum,webViewLink,size,parents,trashed,appProperties"
SCOPES = ["https://www.googleapis.com/auth/drive"]


def drive_client(
    credentials: Any,
    *,
    endpoint: str | None = None,
    ca_certs: str | None = None,
    timeout_s: float = 60.0,
) -> Callable[[], Any]:
    """A Drive client for each thread; `endpoint` and `ca_certs` point it at a local stand-in."""
    return per_thread(
        lambda: discovery_client(
            "drive", "v3", credentials, endpoint=endpoint, ca_certs=ca_certs, timeout_s=timeout_s
        )
    )


@contextmanager
def translated(operation: str) -> Iterator[None]:
    """One attempt through the Drive circuit breaker, its failures into the error tree."""
    with resilience.guarded(SERVICE, operation), _tree(operation):
        yield


@contextmanager
def _tree(operation: str) -> Iterator[None]:
    """Drive failures into the error tree: 429, 5xx, timeouts and rate limits retry."""
    try:
        yield
    except HttpError as exc:
        status = int(exc.resp.status)
        reasons = {
            str(detail.get("reason"))
            for detail in (exc.error_details or [])
            if isinstance(detail, dict)
        }
        message = (
            f"drive {operation}: HTTP {status} {exc.reason if isinstance(exc.reason, str) else ''}"[
                :300
            ]
        )
        if "storageQuotaExceeded" in reasons:
            raise StorageQuotaRefused(
                f"drive {operation}: a service account has no storage of its own; use a shared "
                "drive, domain-wide delegation or a user's OAuth token (DRIVE_AUTH)"
            ) from None
        if status in (429, 500, 502, 503, 504) or reasons & {
            "rateLimitExceeded",
            "userRateLimitExceeded",
        }:
            raise UpstreamUnavailable(message, service=SERVICE) from None
        if status in (401, 403) and not reasons & {"cannotAddParent", "invalidParent"}:
            raise ConfigurationError(
                f"{message}: check the Drive credentials and sharing"
            ) from None
        raise UpstreamRejected(message, service=SERVICE) from None
    except RefreshError:
        raise ConfigurationError(
            f"drive {operation}: HTTP 401 and the credentials cannot be refreshed; check DRIVE_AUTH"
        ) from None
    except (TimeoutError, ConnectionError, httplib2.HttpLib2Error, OSError) as exc:
        raise UpstreamUnavailable(
            f"drive {operation}: {type(exc).__name__}", service=SERVICE
        ) from None


class ForwardUpload(MediaUpload):  # type: ignore[misc]
    """A resumable media body read once, forward, from an iterator of byte chunks.

    The client asks for `getbytes(progress, chunk)`; progress only moves forward, and after a
    failure it restarts from what Drive acknowledged, which is still in the buffer. So the buffer
    never holds more than a chunk and a source block.
    """

    def __init__(
        self, source: Iterator[bytes], mimetype: str, size: int | None, chunk: int = CHUNK
    ) -> None:
        self._source = source
        self._mimetype = mimetype
        self._size = size
        self._chunk = chunk
        self._buffer = bytearray()
        self._buffer_start = 0
        self._md5 = hashlib.md5(usedforsecurity=False)
        self.sent_bytes = 0

    @property
    def md5(self) -> str:
        return self._md5.hexdigest()

    def chunksize(self) -> int:
        return self._chunk

    def mimetype(self) -> str:
        return self._mimetype

    def size(self) -> int | None:
        return self._size

    def resumable(self) -> bool:
        return True

    def has_stream(self) -> bool:
        return False

    def getbytes(self, begin: int, length: int) -> bytes:
        if begin < self._buffer_start:
            raise UpstreamUnavailable(
                f"drive upload: asked to resend byte {begin}, already released", service=SERVICE
            )
        del self._buffer[: begin - self._buffer_start]
        self._buffer_start = begin
        while len(self._buffer) < length:
            block = next(self._source, None)
            if block is None:
                break
            self._md5.update(block)
            self.sent_bytes += len(block)
            self._buffer += block
        return bytes(self._buffer[:length])


class GoogleDrive:
    """The Drive port: every call on every drive (`supportsAllDrives`)."""

    def __init__(
        self,
        service: Callable[[], Any],
        *,
        backoff: Backoff | None = None,
        chunk: int = CHUNK,
        simple_limit: int = SIMPLE_LIMIT,
    ) -> None:
        if chunk % (256 * 1024):
            raise ConfigurationError(f"a Drive upload chunk is a multiple of 256 KiB, not {chunk}")
        self._service = service
        self._backoff = backoff or Backoff(budget_s=120)
        self._chunk = chunk
        self._simple_limit = simple_limit

    def check_shared_drive(self, drive_id: str) -> str:
        """The shared drive's name; a clear error when it is missing or not shared with us."""
        try:
            with translated("open the shared drive"):
                drive = self._service().drives().get(driveId=drive_id).execute()
        except UpstreamRejected as exc:
            raise ConfigurationError(
                f"shared drive {drive_id} is missing or the service account is not a member ({exc})"
            ) from None
        return str(drive.get("name", drive_id))

    def find(
        self,
        *,
        app_property: tuple[str, str] | None = None,
        name: str | None = None,
        parent: str | None = None,
        folder: bool = False,
    ) -> list[DriveItem]:
        """Items not in the trash that match every given term, oldest first."""
        terms = ["trashed = false"]
        if app_property:
            key, value = app_property
            terms.append(
                f"appProperties has {{ key='{_quoted(key)}' and value='{_quoted(value)}' }}"
            )
        if name is not None:
            terms.append(f"name = '{_quoted(name)}'")
        if parent is not None:
            terms.append(f"'{_quoted(parent)}' in parents")
        if folder:
            terms.append(f"mimeType = '{FOLDER}'")
        found = self._retried(
            "search",
            lambda: (
                self._service()
                .files()
                .list(
                    q=" and ".join(terms),
                    fields=f"files({FILE_FIELDS},createdTime)",
                    supportsAllDrives=True,
                    includeItemsFromAllDrives=True,
                    pageSize=100,
                    orderBy="createdTime",
                )
                .execute()
            ),
        )
        return [_item(entry) for entry in found.get("files", [])]

    def create_folder(self, name: str, parent: str, app_properties: Mapping[str, str]) -> DriveItem:
        """Not retried here: a create whose answer was lost may have happened (search first)."""
        body = {
            "name": name,
            "mimeType": FOLDER,
            "parents": [parent],
            "appProperties": dict(app_properties),
        }
        with translated("create a folder"):
            created = (
                self._service()
                .files()
                .create(body=body, fields=FILE_FIELDS, supportsAllDrives=True)
                .execute()
            )
        return _item(created)

    def upload(
        self,
        name: str,
        parent: str,
        mimetype: str,
        chunks: Iterator[bytes],
        *,
        size: int | None,
        app_properties: Mapping[str, str],
    ) -> Uploaded:
        """Stream `chunks` into a new file. A resumable session's chunks are retried (they resume
        the session); starting the upload is not, since a lost answer may hide a created file:
        callers look for it by its app property first."""
        body = {"name": name, "parents": [parent], "appProperties": dict(app_properties)}
        media = ForwardUpload(chunks, mimetype, size, self._chunk)
        if size is not None and size <= self._simple_limit:
            from googleapiclient.http import MediaInMemoryUpload

            simple = MediaInMemoryUpload(
                media.getbytes(0, size + 1), mimetype=mimetype, resumable=False
            )
            with translated("upload"):
                created = (
                    self._service()
                    .files()
                    .create(
                        body=body, media_body=simple, fields=FILE_FIELDS, supportsAllDrives=True
                    )
                    .execute()
                )
            return Uploaded(_item(created), media.md5, media.sent_bytes)
        request = (
            self._service()
            .files()
            .create(body=body, media_body=media, fields=FILE_FIELDS, supportsAllDrives=True)
        )
        try:
            response = _next_chunk(request)  # opens the session, then sends the first chunk
        except UpstreamUnavailable:
            if request.resumable_uri is None:
                raise  # the session may or may not exist: the caller looks before trying again
            response = None
        while response is None:
            response = self._backoff.run(lambda: _next_chunk(request), what="drive upload chunk")
        return Uploaded(_item(response), media.md5, media.sent_bytes)

    def download(self, file_id: str) -> Iterator[bytes]:
        """The file's bytes, a chunk at a time (ranged requests): never the whole file in memory."""
        from googleapiclient.http import MediaIoBaseDownload

        request = self._service().files().get_media(fileId=file_id, supportsAllDrives=True)
        buffer = io.BytesIO()
        downloader = MediaIoBaseDownload(buffer, request, chunksize=self._chunk)
        done = False
        while not done:

            def next_chunk() -> bool:
                with translated("download"):
                    _, finished = downloader.next_chunk()
                return bool(finished)

            done = self._backoff.run(next_chunk, what="drive download chunk")
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()

    def set_app_properties(self, file_id: str, values: Mapping[str, str | None]) -> None:
        """Set (or, with None, remove) private properties of a file."""
        self._retried(
            "set app properties",
            lambda: (
                self._service()
                .files()
                .update(
                    fileId=file_id,
                    body={"appProperties": dict(values)},
                    fields="id",
                    supportsAllDrives=True,
                )
                .execute()
            ),
        )

    def trash(self, file_id: str) -> None:
        """Recoverable for 30 days (files.delete is not)."""
        self._retried(
            "trash",
            lambda: (
                self._service()
                .files()
                .update(
                    fileId=file_id,
                    body={"trashed": True},
                    fields="id,trashed",
                    supportsAllDrives=True,
                )
                .execute()
            ),
        )

    def _retried(self, operation: str, call: Callable[[], Any]) -> Any:
        """A call that is safe to repeat, retried on transient failures."""

        def once() -> Any:
            with translated(operation):
                return call()

        return self._backoff.run(once, what=f"drive {operation}")


def _next_chunk(request: Any) -> Any:
    with translated("upload"):
        _, response = request.next_chunk()
    return response


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _item(entry: Mapping[str, Any]) -> DriveItem:
    size = entry.get("size")
    return DriveItem(
        id=str(entry["id"]),
        name=str(entry.get("name", "")),
        web_link=str(entry.get("webViewLink", "")),
        md5=entry.get("md5Checksum"),
        size=int(size) if size is not None else None,
    )


def drive_credentials(config: DriveConfig) -> Any:
    """The credentials DRIVE_AUTH names; a ConfigurationError when that choice cannot work here."""
    if config.static_token:  # a local stand-in: a fixed bearer token
        from google.oauth2.credentials import Credentials

        return Credentials(token=config.static_token)  # type: ignore[no-untyped-call]
    if config.auth == "oauth_user":
        from google.oauth2.credentials import Credentials

        return Credentials(  # type: ignore[no-untyped-call]
            None,
            refresh_token=config.oauth_refresh_token,
            token_uri=config.token_uri,
            client_id=config.oauth_client_id,
            client_secret=config.oauth_client_secret,
            scopes=SCOPES,
        )
    import google.auth

    credentials, _ = google.auth.default(scopes=SCOPES)
    if config.auth == "delegation":
        if not hasattr(credentials, "with_subject"):
            raise ConfigurationError(
                "DRIVE_AUTH=delegation needs service-account key credentials "
                "(GOOGLE_APPLICATION_CREDENTIALS) with domain-wide delegation; the runtime's "
                f"default credentials ({type(credentials).__name__}) cannot act as a user"
            )
        return credentials.with_subject(config.impersonate)
    return credentials
