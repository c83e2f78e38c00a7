"""The service desk's ports: requests and their figures, and the links between people and
their Telegram chats."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # annotations only: importing ports stays cheap for erp_webhook's cold start
    pass


READ_ALL_ROLES = frozenset({"Support Team", "System Manager"})
"""ERPNext roles that read and change every request: stock ERPNext gives Support Team all rights
on Issue. Others reach only requests provably theirs (the bot's rule, docs/OPERATIONS.md)."""


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
    raised_by: str | None = None
    """Who reported it (an email address: the bot's requests carry their user's)."""
    owner: str | None = None
    """The ERPNext user who created the document."""
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

    def attach_file(self, request_id: str, filename: str, content: bytes, *, sent_by: str) -> str:
        """Upload a file attached to the request (a File whose after_insert feeds drive_upload),
        and say on the request who sent it: the File itself is the bridge's. The caller has
        checked that the request exists and that `sent_by` may change it."""
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
