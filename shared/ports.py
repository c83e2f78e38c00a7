"""Ports: the small roles the services need from the outside world; adapters and fakes implement them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:  # annotations only: importing ports stays cheap for erp_webhook's cold start
    from shared.core.alerts import Alert
    from shared.core.claims import ClaimOutcome
    from shared.core.envelope import Envelope, Json
    from shared.core.executions import RunCounts, SyncExecution
    from shared.core.failures import FailureReport
    from shared.core.invoice_rows import RowPlan, SheetIndex, TrackerConfig
    from shared.core.sheet_layout import LayoutState


class Publisher(Protocol):
    def publish_all(
        self, topics: Sequence[str], data: bytes, attributes: Mapping[str, str]
    ) -> list[str]:
        """Publish one message to every topic and return the message ids once all are confirmed.

        Raises UpstreamUnavailable when any publish is not confirmed.
        """
        ...


class IdempotencyStore(Protocol):
    def claim(
        self, consumer: str, event_id: str, *, owner: str, now: datetime, lease: timedelta
    ) -> ClaimOutcome:
        """Create the claim if absent, or take over an unfinished one whose lease expired.

        Raises ClaimHeld while another owner's lease runs.
        """
        ...

    def complete(self, consumer: str, event_id: str, *, outcome: str, now: datetime) -> None:
        """Mark the claim done after the side effect; later deliveries are duplicates."""
        ...

    def release(self, consumer: str, event_id: str, *, owner: str) -> None:
        """Drop an unfinished claim this owner holds, so a redelivery can run at once."""
        ...


class VersionStore(Protocol):
    def last_applied(self, consumer: str, doctype: str, name: str) -> str | None: ...

    def record_applied(self, consumer: str, doctype: str, name: str, modified: str) -> None:
        """Remember `modified` as applied; never moves an already newer stamp back."""
        ...


class ErrorLog(Protocol):
    def record_failure(self, report: FailureReport, *, now: datetime) -> str:
        """Create or update (attempts + 1) the pending error record of this failure; return its id."""
        ...

    def resolve_event(self, integration: str, event_id: str, *, now: datetime) -> bool:
        """Resolve the pending record of an event that later succeeded; True if there was one."""
        ...


class QueuedChange(Protocol):
    """An outbox entry: the queued envelope (and the adapter's own version of it)."""

    @property
    def envelope(self) -> Envelope: ...


class SheetOutbox(Protocol):
    def put(self, envelope: Envelope, *, now: datetime) -> None:
        """Queue the change unless a newer one of the same invoice is already queued."""
        ...

    def pending(self, limit: int) -> Sequence[QueuedChange]: ...

    def remove(self, entries: Sequence[QueuedChange]) -> int:
        """Drop written entries, sparing any rewritten since they were read."""
        ...


class Lease(Protocol):
    def acquire(self, owner: str, *, now: datetime, ttl: timedelta) -> bool: ...

    def release(self, owner: str) -> None: ...


class InvoiceSheet(Protocol):
    def read_index(self) -> SheetIndex:
        """Where each invoice's row is now (people sort and insert) and its `modified`: one read."""
        ...

    def apply(self, plan: RowPlan) -> None:
        """Write a plan in one batch request (updates, appends, then deletes bottom-up)."""
        ...


class SheetLayout(Protocol):
    def read_state(self, config: TrackerConfig) -> LayoutState: ...

    def apply(self, requests: list[dict[str, object]]) -> None:
        """Send layout requests in one batch."""
        ...


class InvoiceDirectory(Protocol):
    """Names the sheet shows that the invoice does not carry, looked up in ERPNext (cached)."""

    def user_full_name(self, user_id: str) -> str | None: ...

    def project_manager(self, project: str) -> str | None: ...


# ---- Drive (drive_upload) ---------------------------------------------------------------------


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


# ---- scheduled jobs -----------------------------------------------------------------------------


class DocumentLister(Protocol):
    """Pages of one doctype's documents, selected fields only (ERPNext's REST list)."""

    def iter_docs(
        self,
        doctype: str,
        *,
        fields: Sequence[str],
        filters: Sequence[tuple[str, str, object]] = (),
        order_by: str = "modified asc",
        page_length: int = 500,
    ) -> Iterator[Mapping[str, Json]]: ...


class SyncExecutionLog(Protocol):
    def start(self, job: str, *, now: datetime) -> str:
        """Write a running record and return its id."""
        ...

    def finish(
        self, execution_id: str, counts: RunCounts, *, error: str | None, now: datetime
    ) -> None: ...

    def recent(self, job: str | None = None, limit: int = 50) -> list[SyncExecution]: ...


class Watermarks(Protocol):
    def get(self, key: str) -> str | None: ...

    def advance(self, key: str, value: str) -> None:
        """Store `value` unless an equal or later one is stored (Frappe `modified` order)."""
        ...


# -- notifier: the service desk the bots talk to, and the chats they talk in -----------------------


@dataclass(frozen=True, slots=True)
class ServiceRequest:
    """A service request (ERPNext `Issue` by default) as the bots show it."""

    id: str
    subject: str
    status: str
    priority: str
    customer: str | None = None
    project: str | None = None
    assigned_to: tuple[str, ...] = ()
    """ERPNext users (emails) the request is assigned to (the `_assign` field)."""
    opened: datetime | None = None
    resolved: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeskFigures:
    """What /analytics and the daily digest report."""

    open_requests: int
    average_hours_to_close: float | None
    """Over requests resolved in the last 30 days; None when none was."""
    invoiced_this_month: float
    currency: str


class ServiceDesk(Protocol):
    """ERPNext as the Telegram and WhatsApp bots use it. Errors come as the error tree
    (NotFound / PermissionDenied from shared.adapters.erpnext, UpstreamUnavailable)."""

    def request(self, request_id: str) -> ServiceRequest: ...

    def open_requests_for(self, user: str) -> list[ServiceRequest]:
        """Requests not Resolved/Closed assigned to `user`, newest first."""
        ...

    def set_status(self, request_id: str, status: str) -> ServiceRequest: ...

    def create_request(
        self, *, subject: str, description: str, priority: str, raised_by: str
    ) -> ServiceRequest: ...

    def attach_file(self, request_id: str, filename: str, content: bytes) -> str:
        """Upload a file attached to the request (a File whose after_insert feeds drive_upload)."""
        ...

    def roles_of(self, user: str) -> frozenset[str]: ...

    def full_name(self, user: str) -> str: ...

    def customer_of_phone(self, phone_e164: str) -> str | None:
        """The customer whose Contact carries this phone number (E.164), if any."""
        ...

    def client_phone(self, request: ServiceRequest) -> str | None:
        """The E.164 mobile number of the request's contact (else its customer's primary one)."""
        ...

    def figures(self, now: datetime) -> DeskFigures: ...


class ChatLinks(Protocol):
    """Which Telegram chat belongs to which ERPNext user (account linking), in Firestore."""

    def chat_of(self, user: str) -> int | None: ...

    def user_of(self, chat_id: int) -> str | None: ...


@dataclass(frozen=True, slots=True)
class QueuedAlert:
    """An alert waiting in the outbox: `not_before` (epoch seconds) after a throttle or failure;
    `in_doubt_since` when a send of it began whose outcome nobody learnt (an answer lost, a
    sender crashed), so it may have arrived."""

    alert: Alert
    not_before: float = 0.0
    attempts: int = 0
    in_doubt_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class SentMessage:
    """A message a channel says it has from us: its id and text as the channel keeps them."""

    sid: str
    body: str


class AlertOutbox(Protocol):
    """Every alert once (its key), queued until sent; the record stays to refuse a second one."""

    def put(self, alerts: Sequence[Alert], *, now: datetime) -> int:
        """Queue the alerts not seen before; how many were new."""
        ...

    def pending(self, limit: int) -> list[QueuedAlert]:
        """Oldest first."""
        ...

    def mark_sending(self, key: str, *, now: datetime) -> bool:
        """Written before each send, so that were the sender to die before `mark_sent` the alert
        is known to be in doubt. False when it is no longer queued (settled meanwhile)."""
        ...

    def mark_sent(self, key: str, message_id: str, *, now: datetime) -> None: ...

    def mark_failed(self, key: str, reason: str, *, now: datetime) -> None: ...

    def defer(
        self, key: str, *, not_before: float, attempts: int, in_doubt_since: datetime | None
    ) -> None: ...

    def recent_sent(self, since: datetime) -> list[tuple[str, str, float]]:
        """(channel, destination, epoch seconds) of alerts sent since `since`, by any instance."""
        ...

    def by_message(self, message_id: str) -> Alert | None:
        """The alert a sent message carried (Twilio reports failures by message sid)."""
        ...


class WhatsAppSessions(Protocol):
    """When each number last wrote to us: WhatsApp's 24-hour window for free-form messages."""

    def last_inbound(self, phone: str) -> datetime | None: ...

    def record_inbound(self, phone: str, *, now: datetime) -> None: ...


# -- ERPNext documents, Drive and Telegram, as the services use them --------------------------


class ErpDocuments(Protocol):
    """ERPNext's document API (the adapter is `ErpNextClient`): read, save and list documents,
    and stream a File's bytes."""

    def get_doc(self, doctype: str, name: str) -> Mapping[str, Json]: ...

    def update(
        self, doctype: str, name: str, values: Mapping[str, Json], *, modified: str | None
    ) -> Mapping[str, Json]: ...

    def insert(self, doctype: str, values: Mapping[str, Json]) -> Mapping[str, Json]: ...

    def delete(self, doctype: str, name: str) -> None: ...

    def iter_docs(
        self,
        doctype: str,
        *,
        fields: Sequence[str],
        filters: Sequence[tuple[str, str, object]] = (),
        order_by: str = "modified asc",
        page_length: int = ...,
    ) -> Iterator[Mapping[str, Json]]: ...

    def stream_file(
        self, file_url: str, chunk_size: int = ...
    ) -> AbstractContextManager[Iterator[bytes]]: ...


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


class TelegramSession(Protocol):
    async def send(self, chat: int, text: str, topic: int | None = None) -> int:
        """Send HTML text; the message id. Raises UpstreamUnavailable (retry_after_s on a 429),
        ChatMoved or UpstreamRejected."""
        ...


class TelegramSender(Protocol):
    """The Bot API for the alerts (the adapter is `TelegramApi`): one session per drain."""

    def session(self) -> AbstractAsyncContextManager[TelegramSession]: ...
