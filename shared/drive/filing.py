"""Every ERPNext attachment in Drive, once, linked back; trashed in Drive when deleted in ERPNext.

A File's `after_insert` streams the file from ERPNext into the folder its template names
(default `<root>/<project or doctype>/<document>`), checks the MD5 Drive computed against the
one of the bytes sent, and writes the Drive id and link back into the File (optimistic locking).
The Drive file carries `appProperties.erp_file = <site>:<File name>`: before uploading we look
for it, so a redelivery, or a retry after a crash between upload and link-back, never makes a
second copy. A File's `on_trash` moves its Drive copy to the trash (recoverable for 30 days).
"""

from __future__ import annotations

import itertools
import mimetypes
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.core.documents import field_text, is_plain_file_path, is_site_file
from shared.core.envelope import Envelope, Json, document_envelope
from shared.core.routing import OPERATIONS
from shared.drive.ports import DriveFiles, DriveItem, FolderRegistry, PersonsErp
from shared.drive.settings import DriveConfig
from shared.errors import (
    AccessDenied,
    BridgeError,
    ConfigurationError,
    DocumentChanged,
    InvalidPayload,
    NotFound,
    UpstreamRejected,
    UpstreamUnavailable,
)
from shared.platform.executions import RunCounts
from shared.platform.ports import DocumentLister, DocumentReader, ErpDocuments, ErrorLog
from shared.platform.runtime import failure_report

APP_KEY = "erp_file"
OFFLOADED_FROM = "erp_offloaded_from"
TRASH_EVENT = "on_trash"


@dataclass(frozen=True)
class DriveUploader:
    """The drive_upload service; `apply` is the consumer's side effect."""

    drive: DriveFiles
    erp: ErpDocuments
    folders: FolderRegistry
    config: DriveConfig
    site: str
    owner: str
    clock: Callable[[], datetime]
    folder_wait_s: float = 30.0
    sleep: Callable[[float], None] = time.sleep

    def apply(self, envelope: Envelope) -> str:
        if envelope.doctype != "File":
            raise InvalidPayload(f"drive_upload handles File events, not {envelope.doctype}")
        handle = f"{self.site}:{envelope.name}"
        if envelope.event == TRASH_EVENT:
            copies = self.drive.find(app_property=(APP_KEY, handle))
            for item in copies:
                self.drive.trash(item.id)
            return f"trashed {len(copies)} Drive copies of {envelope.name}"
        doc = envelope.doc
        file_url = str(doc.get("file_url") or "")
        if not is_site_file(file_url):
            return f"{envelope.name} points outside ERPNext (a link, or an offloaded copy): nothing to copy"
        if not is_plain_file_path(file_url):
            raise InvalidPayload(
                f"{envelope.name}'s file_url {file_url[:120]!r} has dot or empty segments: "
                "it would be read from another address than ERPNext's file, so it is not copied"
            )
        existing = self.drive.find(app_property=(APP_KEY, handle))
        if not existing:
            moved = self.drive.find(app_property=(OFFLOADED_FROM, handle))
            if moved:  # an offload got as far as handing the copy over: finish it
                return f"offloaded {envelope.name}: {self._remove_original(envelope.name)}"
        if existing:
            item, verb = existing[0], "found in Drive (uploaded before)"
        else:
            item, verb = self._upload(doc, handle), "uploaded"
        outcome = f"{verb}: {envelope.name} as {item.id}; {self._link_back(envelope.name, item)}"
        if self.config.offload:
            outcome += f"; {self._offload(envelope.name, doc, item)}"
        return outcome

    # -- uploading -----------------------------------------------------------------------------
    def _upload(self, doc: Mapping[str, Json], handle: str) -> DriveItem:
        file_url = str(doc["file_url"])  # `apply` lets only ERPNext's own files through
        file_name = field_text(doc, "file_name") or file_url.rsplit("/", 1)[-1]
        folder = self._folder_for(doc)
        size = doc.get("file_size")
        mimetype = mimetypes.guess_type(file_name)[0] or "application/octet-stream"
        with self.erp.stream_file(file_url, 1024 * 1024) as chunks:
            done = self.drive.upload(
                file_name,
                folder,
                mimetype,
                chunks,
                size=int(size) if isinstance(size, int | float) and size > 0 else None,
                app_properties={APP_KEY: handle},
            )
        if done.item.md5 != done.sent_md5:
            self.drive.trash(done.item.id)
            raise UpstreamUnavailable(
                f"drive upload of {file_name}: checksum {done.item.md5} is not {done.sent_md5} "
                "(the copy was trashed; a retry uploads again)",
                service="drive",
            )
        return done.item

    def _folder_for(self, doc: Mapping[str, Json]) -> str:
        """The template's folders, made once each: `{project_or_doctype}/{document}` by default."""
        attached_doctype = field_text(doc, "attached_to_doctype")
        attached_name = field_text(doc, "attached_to_name")
        project = self._project_of(attached_doctype, attached_name)
        values = {
            "project": project or "No project",
            "doctype": attached_doctype or "Unattached",
            "project_or_doctype": project or attached_doctype or "Unattached",
            "document": attached_name or "Unattached",
        }
        # Only the template's own `/` makes folders: a name with one (`INV/24-25/001`) is one
        # folder, as Drive allows, never a path into another client's folder.
        parent = self.config.root_folder
        for level in self.config.folder_template.split("/"):
            name = level.format(**values).strip()
            if name:
                parent = self._folder(parent, name)
        return parent

    def _project_of(self, doctype: str | None, name: str | None) -> str | None:
        if not doctype or not name:
            return None
        if doctype == "Project":
            return name
        try:
            attached = self.erp.get_doc(doctype, name)
        except UpstreamRejected:  # gone, or not ours to read: file it under its doctype
            return None
        return field_text(attached, "project")

    def _folder(self, parent: str, name: str) -> str:
        """One Drive folder per (parent, name), even when many uploads need it at once."""
        holder = f"{self.owner}:{uuid.uuid4().hex[:8]}"
        deadline = time.monotonic() + self.folder_wait_s
        while True:
            claim = self.folders.claim(
                parent, name, owner=holder, now=self.clock(), ttl=timedelta(seconds=60)
            )
            if claim.state == "known" and claim.folder_id:
                return claim.folder_id
            if claim.state == "mine":
                try:
                    found = self.drive.find(name=name, parent=parent, folder=True)
                    item = found[0] if found else self.drive.create_folder(name, parent, {})
                except Exception:
                    self.folders.release(parent, name, owner=holder)
                    raise
                self.folders.record(parent, name, item.id, now=self.clock())
                return item.id
            if time.monotonic() > deadline:
                raise UpstreamUnavailable(
                    f"Drive folder {name!r} is still being made by another instance",
                    service="drive",
                )
            self.sleep(0.2)

    # -- offloading ----------------------------------------------------------------------------
    def _offload(self, file_name: str, doc: Mapping[str, Json], item: DriveItem) -> str:
        """Hand the attachment over to Drive, then delete ERPNext's File (Frappe drops the bytes).

        Only when Drive's MD5 equals ERPNext's own content hash (Frappe's MD5 of the bytes). A
        remote File (its URL the Drive link) takes the original's place on the document, and the
        Drive copy's handle moves to it first, so the original's on_trash leaves the copy alone.
        Every step can be repeated: a redelivery after a crash finishes what is left.
        """
        content_hash = field_text(doc, "content_hash")
        if not content_hash or item.md5 != content_hash:
            return f"ERPNext's copy kept: Drive's MD5 {item.md5} is not ERPNext's {content_hash}"
        remote = self._remote_file(doc, item)
        self.drive.set_app_properties(
            item.id,
            {APP_KEY: f"{self.site}:{remote}", OFFLOADED_FROM: f"{self.site}:{file_name}"},
        )
        return f"File {remote} now points at Drive; {self._remove_original(file_name)}"

    def _remote_file(self, doc: Mapping[str, Json], item: DriveItem) -> str:
        """The File that points at the Drive copy: found if an earlier try made it, else made."""
        attached = field_text(doc, "attached_to_name")
        for found in self.erp.iter_docs(
            "File",
            fields=("name",),
            filters=[("file_url", "=", item.web_link), ("attached_to_name", "=", attached)],
        ):
            return str(found["name"])
        created = self.erp.insert(
            "File",
            {
                "file_name": field_text(doc, "file_name") or item.name,
                "file_url": item.web_link,
                "attached_to_doctype": doc.get("attached_to_doctype"),
                "attached_to_name": attached,
                "is_private": doc.get("is_private"),
                self.config.file_id_field: item.id,
                self.config.link_field: item.web_link,
            },
        )
        return str(created["name"])

    def _remove_original(self, file_name: str) -> str:
        try:
            self.erp.delete("File", file_name)
        except NotFound:
            return "ERPNext's copy already removed"
        return "ERPNext's copy removed"

    # -- linking back --------------------------------------------------------------------------
    def _link_back(self, file_name: str, item: DriveItem) -> str:
        values: dict[str, Json] = {
            self.config.file_id_field: item.id,
            self.config.link_field: item.web_link,
        }
        for _ in range(3):
            try:
                current = self.erp.get_doc("File", file_name)
            except NotFound:
                return "the File is gone from ERPNext; its on_trash trashes the copy"
            if all(current.get(key) == value for key, value in values.items()):
                return "link already in ERPNext"
            try:
                self.erp.update("File", file_name, values, modified=field_text(current, "modified"))
                return "linked back in ERPNext"
            except DocumentChanged:
                continue  # someone saved the File meanwhile: read it again
        raise UpstreamUnavailable(
            f"File {file_name} kept changing while linking it back", service="erpnext"
        )


# ---- backfill -----------------------------------------------------------------------------------

BACKFILL_JOB = "backfill_attachments"
FILE_FIELDS = (
    "name",
    "file_name",
    "file_url",
    "file_size",
    "is_private",
    "attached_to_doctype",
    "attached_to_name",
    "modified",
)


@dataclass(frozen=True)
class DriveBackfill:
    """Finds ERPNext Files without a Drive copy and uploads them (a Cloud Scheduler job)."""

    uploader: DriveUploader
    erp: DocumentLister
    errors: ErrorLog
    clock: Callable[[], datetime]

    def run(self, counts: RunCounts, progress: Callable[[int], None] | None = None) -> None:
        """One run's work (`Jobs.run` locks and records it): `counts` filled, `progress` hears
        each File seen."""
        missing = [
            (self.uploader.config.file_id_field, "is", "not set"),
            ("file_url", "is", "set"),  # folders have none
        ]
        for doc in self.erp.iter_docs("File", fields=FILE_FIELDS, filters=missing):
            counts.seen += 1
            envelope = document_envelope(
                doc,
                doctype="File",
                event="after_insert",
                site=self.uploader.site,
                received_at=self.clock(),
            )
            try:
                self.uploader.apply(envelope)
                counts.updated += 1
            except BridgeError as exc:  # one file's failure is recorded; the rest go on
                counts.failed += 1
                report = failure_report(
                    "drive_upload", OPERATIONS["drive_upload"], exc, envelope=envelope
                )
                self.errors.record_failure(report, now=self.clock())
            if progress is not None:
                progress(1)


# ---- the download proxy -------------------------------------------------------------------------


@dataclass(frozen=True)
class Download:
    file_name: str
    mimetype: str
    chunks: Iterator[bytes]


NOT_SERVED = "no such attachment, or not one you may read"
"""Every refusal after the token is checked says this, so none tells what exists."""


@dataclass(frozen=True)
class AttachmentProxy:
    """Serves an attachment from Drive to a person whom ERPNext lets read its document.

    The person's own ERPNext API token comes with the request, and ERPNext checks it before
    anything else is read. ERPNext then answers, as that person, whether they may read the
    document the File is attached to. The bytes are those of the Drive copy the bridge itself
    made for that File (found by its `appProperties`), never whatever a File's fields name: a
    File's owner may write those. The bridge's Drive credentials fetch them, so no Drive link is
    ever made public.
    """

    drive: DriveFiles
    erp: DocumentReader
    site: str
    as_user: Callable[[str], PersonsErp]
    """ERPNext with the person's token ("key:secret")."""

    def open(self, file_name: str, user_token: str | None) -> Download:
        found = self._served(file_name, self._person(user_token))
        if found is None:
            raise InvalidPayload(NOT_SERVED, status=404)
        file_doc, copy = found
        shown = field_text(file_doc, "file_name") or file_name
        mimetype = mimetypes.guess_type(shown)[0] or "application/octet-stream"
        chunks = self.drive.download(copy.id)
        first = next(chunks, b"")  # a Drive failure is an answer, not a cut-off stream
        return Download(shown, mimetype, itertools.chain([first], chunks))

    def _served(
        self, file_name: str, person: PersonsErp
    ) -> tuple[Mapping[str, Json], DriveItem] | None:
        """The File and the bridge's Drive copy of it, when `person` may read its document;
        None for every refusal alike."""
        if file_name.strip(". ") == "" or "/" in file_name:
            return None  # not a name ERPNext could hold
        try:
            file_doc = self.erp.get_doc("File", file_name)
        except NotFound:
            return None
        doctype = field_text(file_doc, "attached_to_doctype")
        name = field_text(file_doc, "attached_to_name")
        if not doctype or not name:
            return None
        try:
            person.get_doc(doctype, name)
        except (UpstreamRejected, ConfigurationError):
            return None
        copies = self.drive.find(app_property=(APP_KEY, f"{self.site}:{file_name}"))
        return (file_doc, copies[0]) if copies else None

    def _person(self, user_token: str | None) -> PersonsErp:
        """ERPNext as the caller, once ERPNext has accepted their token."""
        refused = AccessDenied("an ERPNext API token that ERPNext accepts is required")
        if not user_token or ":" not in user_token:
            raise refused
        person = self.as_user(user_token)
        try:
            person.logged_user()
        except (UpstreamRejected, ConfigurationError):
            raise refused from None
        return person
