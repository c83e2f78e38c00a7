"""In-memory implementations of the ports, for unit tests of the services (no network)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from shared.core.claims import Claim, ClaimOutcome, ClaimState, can_take_over, claim_key, new_claim
from shared.core.envelope import Envelope
from shared.core.versions import parse_modified
from shared.errors import ClaimHeld, UpstreamUnavailable
from shared.platform.executions import RunCounts, RunStatus, SyncExecution
from shared.platform.failures import ErrorStatus, FailureReport
from shared.sheets.rows import CellValue, IndexedRow, RowPlan, coalesce


@dataclass
class InMemoryPublisher:
    published: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)
    down: bool = False

    def publish_all(
        self, topics: Sequence[str], data: bytes, attributes: Mapping[str, str]
    ) -> list[str]:
        if self.down:
            raise UpstreamUnavailable("publish not confirmed", service="pubsub")
        ids = []
        for topic in topics:
            self.published.append((topic, data, dict(attributes)))
            ids.append(str(len(self.published)))
        return ids


@dataclass
class InMemoryIdempotencyStore:
    claims: dict[str, Claim] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def claim(
        self, consumer: str, event_id: str, *, owner: str, now: datetime, lease: timedelta
    ) -> ClaimOutcome:
        key = claim_key(consumer, event_id)
        with self.lock:
            existing = self.claims.get(key)
            if existing is None:
                self.claims[key] = new_claim(consumer, event_id, owner, now, lease)
                return ClaimOutcome.ACQUIRED
            if existing.state is ClaimState.DONE:
                return ClaimOutcome.ALREADY_DONE
            if can_take_over(existing, now):
                self.claims[key] = new_claim(consumer, event_id, owner, now, lease)
                return ClaimOutcome.TAKEN_OVER
            raise ClaimHeld("claim held", event_id=event_id)

    def complete(self, consumer: str, event_id: str, *, outcome: str, now: datetime) -> None:
        key = claim_key(consumer, event_id)
        self.claims[key] = replace(self.claims[key], state=ClaimState.DONE, outcome=outcome)

    def release(self, consumer: str, event_id: str, *, owner: str) -> None:
        key = claim_key(consumer, event_id)
        if key in self.claims and self.claims[key].owner == owner:
            del self.claims[key]


@dataclass
class InMemoryVersionStore:
    applied: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def last_applied(self, consumer: str, doctype: str, name: str) -> str | None:
        return self.applied.get((consumer, doctype, name))

    def record_applied(self, consumer: str, doctype: str, name: str, modified: str) -> None:
        current = self.applied.get((consumer, doctype, name))
        if current is None or parse_modified(modified) > parse_modified(current):
            self.applied[(consumer, doctype, name)] = modified


@dataclass
class InMemoryErrorLog:
    records: dict[str, dict[str, object]] = field(default_factory=dict)

    def record_failure(self, report: FailureReport, *, now: datetime) -> str:
        record_id = report.record_id()
        previous = self.records.get(record_id, {"attempts": 0, "first_seen": now})
        self.records[record_id] = {
            **previous,
            "report": report,
            "status": ErrorStatus.PENDING,
            "attempts": int(str(previous["attempts"])) + 1,
            "last_seen": now,
        }
        return record_id

    def resolve_event(self, integration: str, event_id: str, *, now: datetime) -> bool:
        found = False
        for record in self.records.values():
            report = record["report"]
            assert isinstance(report, FailureReport)
            if (report.integration, report.event_id, record["status"]) == (
                integration,
                event_id,
                ErrorStatus.PENDING,
            ):
                record["status"] = ErrorStatus.RESOLVED
                found = True
        return found


@dataclass
class RecordingEffect:
    """A side effect that remembers every envelope it was applied to, and can be made to fail."""

    applied: list[Envelope] = field(default_factory=list)
    fail_with: Exception | None = None

    def __call__(self, envelope: Envelope) -> str:
        if self.fail_with is not None:
            raise self.fail_with
        self.applied.append(envelope)
        return f"recorded {envelope.name}"


@dataclass(frozen=True)
class QueuedEnvelope:
    envelope: Envelope
    version: int


@dataclass
class InMemorySheetOutbox:
    entries: dict[tuple[str, str], QueuedEnvelope] = field(default_factory=dict)
    writes: int = 0

    def put(self, envelope: Envelope, *, now: datetime) -> None:
        key = (envelope.doctype, envelope.name)
        queued = self.entries.get(key)
        if queued is not None:
            newest = coalesce([queued.envelope, envelope])[envelope.name]
            if newest.event_id == queued.envelope.event_id:
                return
        self.writes += 1
        self.entries[key] = QueuedEnvelope(envelope, self.writes)

    def pending(self, limit: int) -> list[QueuedEnvelope]:
        return list(self.entries.values())[:limit]

    def remove(self, entries: Sequence[QueuedEnvelope]) -> int:
        removed = 0
        for entry in entries:
            key = (entry.envelope.doctype, entry.envelope.name)
            if self.entries.get(key) == entry:
                del self.entries[key]
                removed += 1
        return removed


@dataclass
class InMemoryLease:
    holder: str | None = None
    until: datetime | None = None

    def acquire(self, owner: str, *, now: datetime, ttl: timedelta) -> bool:
        if self.holder not in (None, owner) and self.until is not None and self.until > now:
            return False
        self.holder, self.until = owner, now + ttl
        return True

    def release(self, owner: str) -> None:
        if self.holder == owner:
            self.holder = self.until = None


@dataclass
class InMemoryInvoiceSheet:
    """Rows in sheet order (row 2 is the first data row); counts reads and writes like Sheets."""

    rows: list[tuple[str, tuple[CellValue, ...], str | None]] = field(default_factory=list)
    reads: int = 0
    writes: int = 0
    fail_with: Exception | None = None

    def read_index(self) -> dict[str, IndexedRow]:
        self.reads += 1
        return {
            name: IndexedRow(number + 2, modified)
            for number, (name, _, modified) in enumerate(self.rows)
        }

    def apply(self, plan: RowPlan) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.writes += 1
        for write in plan.updates:
            assert write.row_number is not None
            self.rows[write.row_number - 2] = (write.name, write.cells, write.modified)
        for write in plan.appends:
            self.rows.append((write.name, write.cells, write.modified))
        for delete in plan.deletes:
            del self.rows[delete.row_number - 2]

    def by_name(self) -> dict[str, tuple[CellValue, ...]]:
        return {name: cells for name, cells, _ in self.rows}


@dataclass
class InMemoryInvoiceDirectory:
    full_names: dict[str, str] = field(default_factory=dict)
    managers: dict[str, str] = field(default_factory=dict)

    def user_full_name(self, user_id: str) -> str | None:
        return self.full_names.get(user_id)

    def project_manager(self, project: str) -> str | None:
        return self.managers.get(project)


@dataclass
class InMemoryWatermarks:
    values: dict[str, str] = field(default_factory=dict)

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def advance(self, key: str, value: str) -> None:
        current = self.values.get(key)
        if current is None or parse_modified(value) > parse_modified(current):
            self.values[key] = value


@dataclass
class InMemorySyncExecutionLog:
    runs: dict[str, SyncExecution] = field(default_factory=dict)

    def start(self, job: str, *, now: datetime) -> str:
        execution_id = f"run-{len(self.runs) + 1}"
        self.runs[execution_id] = SyncExecution(execution_id, job, RunStatus.RUNNING, now)
        return execution_id

    def finish(
        self, execution_id: str, counts: RunCounts, *, error: str | None, now: datetime
    ) -> None:
        status = RunStatus.FAILED if error else RunStatus.SUCCEEDED
        self.runs[execution_id] = replace(
            self.runs[execution_id], status=status, finished_at=now, counts=counts, error=error
        )

    def recent(self, job: str | None = None, limit: int = 50) -> list[SyncExecution]:
        found = [run for run in self.runs.values() if job in (None, run.job)]
        return list(reversed(found))[:limit]
