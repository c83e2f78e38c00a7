"""The ports more than one feature needs (claims, versions, error records, leases, job records,
ERPNext documents); each feature keeps its own in its package. Adapters and fakes implement them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # annotations only: importing ports stays cheap for erp_webhook's cold start
    from shared.core.claims import ClaimOutcome
    from shared.core.envelope import Json
    from shared.platform.executions import RunCounts, SyncExecution
    from shared.platform.failures import FailureReport


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


class Lease(Protocol):
    def acquire(self, owner: str, *, now: datetime, ttl: timedelta) -> bool: ...

    def release(self, owner: str) -> None: ...


# ---- ERPNext lists and scheduled jobs -------------------------------------------------------------


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


# ---- ERPNext documents, as the services read and write them ----------------------------------


class DocumentReader(Protocol):
    """One ERPNext document by doctype and name (NotFound when there is none)."""

    def get_doc(self, doctype: str, name: str) -> Mapping[str, Json]: ...


class ErpDocuments(DocumentReader, Protocol):
    """ERPNext's document API (the adapter is `ErpNextClient`): read, save and list documents,
    and stream a File's bytes."""

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
