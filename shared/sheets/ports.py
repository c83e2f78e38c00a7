"""The Invoice Tracker's ports: the sheet, its layout, the outbox of queued rows, the
invoices' directory and the reconciliation's watermarks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # annotations only: importing ports stays cheap for erp_webhook's cold start
    from shared.core.envelope import Envelope
    from shared.sheets.layout import LayoutState
    from shared.sheets.rows import RowPlan, SheetIndex, TrackerConfig


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


class InvoiceSheet(Protocol):
    def read_index(self) -> SheetIndex:
        """Where each invoice's row is now (people sort and insert) and its `modified`: one read."""
        ...

    def apply(self, plan: RowPlan) -> None:
        """Write a plan in one batch request (updates and clears, appends, then deletes
        bottom-up)."""
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


class Watermarks(Protocol):
    def get(self, key: str) -> str | None: ...

    def advance(self, key: str, value: str) -> None:
        """Store `value` unless an equal or later one is stored (Frappe `modified` order)."""
        ...
