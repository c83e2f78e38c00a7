"""Drive filing's ports: Drive's files as the filing uses them, and the registry of folders
it made."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal, Protocol

from shared.core.envelope import Json

if TYPE_CHECKING:  # annotations only: importing ports stays cheap for erp_webhook's cold start
    pass


@dataclass(frozen=True, slots=True)
class FolderClaim:
    """`known` (its id), `mine` (create it, then record it) or `wait` (another instance is)."""

    state: Literal["known", "mine", "wait"]
    folder_id: str | None = None


class FolderRegistry(Protocol):
    def claim(
        self, parent: str, name: str, *, owner: str, now: datetime, ttl: timedelta
    ) -> FolderClaim: ...

    def release(self, parent: str, name: str, *, owner: str) -> None:
        """Give up a claim whose folder could not be made, so others need not wait it out."""
        ...

    def record(self, parent: str, name: str, folder_id: str, *, now: datetime) -> None: ...


@dataclass(frozen=True)
class DriveItem:
    id: str
    name: str
    web_link: str
    md5: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Uploaded:
    item: DriveItem
    sent_md5: str
    sent_bytes: int


class DriveFiles(Protocol):
    """Google Drive's files, as the Drive filing needs them (the adapter is `GoogleDrive`)."""

    def find(
        self,
        *,
        app_property: tuple[str, str] | None = None,
        name: str | None = None,
        parent: str | None = None,
        folder: bool = False,
    ) -> list[DriveItem]: ...

    def create_folder(
        self, name: str, parent: str, app_properties: Mapping[str, str]
    ) -> DriveItem: ...

    def upload(
        self,
        name: str,
        parent: str,
        mimetype: str,
        chunks: Iterator[bytes],
        *,
        size: int | None,
        app_properties: Mapping[str, str],
    ) -> Uploaded: ...

    def download(self, file_id: str) -> Iterator[bytes]: ...

    def set_app_properties(self, file_id: str, values: Mapping[str, str | None]) -> None: ...

    def trash(self, file_id: str) -> None: ...


class PersonsErp(Protocol):
    """ERPNext as one person sees it, with their own API token."""

    def logged_user(self) -> str:
        """Who the token belongs to; ConfigurationError or UpstreamRejected when ERPNext does
        not accept it."""
        ...

    def get_doc(self, doctype: str, name: str) -> Mapping[str, Json]: ...
