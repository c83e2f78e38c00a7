"""Operations: the error log people triage and replay (the replay and the retry run as jobs).

Replay publishes a failed event again to the topics its consumer reads, either as it was (the
stored envelope) or as the document is now in ERPNext, with a fresh receive time so that the
consumer's age limit does not refuse it. The consumer's claim decides the rest: a replay of an
event that since succeeded is a duplicate, and the replay's success resolves the record.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from shared.core.envelope import Envelope, document_envelope
from shared.core.routing import SUBSCRIPTIONS, RouteTable, topics_for
from shared.errors import InvalidPayload, UpstreamRejected
from shared.operations.error_query import SETTABLE, ErrorFilter
from shared.operations.ports import ErrorRecords
from shared.platform import logs
from shared.platform.executions import RunCounts
from shared.platform.failures import ErrorRecord, ErrorStatus
from shared.platform.jobs import Jobs
from shared.platform.ports import DocumentReader, Publisher

log = logging.getLogger(__name__)

REPLAY_JOB = "replay_errors"
RETRY_JOB = "retry_pending_errors"
Source = Literal["original", "current"]


@dataclass(frozen=True, slots=True)
class ReplayReport:
    replayed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    """record id -> why it was not replayed."""


@dataclass(frozen=True)
class ErrorTriage:
    errors: ErrorRecords
    publisher: Publisher
    routes: RouteTable
    erp: Callable[[], DocumentReader]
    """Built only when a replay from ERPNext's current document needs it."""
    site: str
    jobs: Jobs
    clock: Callable[[], datetime]
    retry_after: timedelta = timedelta(minutes=10)
    """The retry job leaves a record alone this long after its last failure."""

    def find(self, wanted: ErrorFilter) -> list[ErrorRecord]:
        return self.errors.search(wanted)

    def set_status(
        self, record_ids: Sequence[str], status: str, note: str | None = None
    ) -> list[str]:
        if status not in SETTABLE:
            raise InvalidPayload(f"status must be one of {', '.join(SETTABLE)}")
        if not record_ids:
            raise InvalidPayload("name at least one record id")
        return self.errors.set_status(list(record_ids), status, now=self.clock(), note=note)

    def replay(
        self, record_ids: Sequence[str], source: Source = "original"
    ) -> tuple[str, ReplayReport]:
        """Publish each record's event again; one sync-execution record for the whole replay."""
        if source not in ("original", "current"):
            raise InvalidPayload("source must be original or current")
        if not record_ids:
            raise InvalidPayload("name at least one record id")
        report = ReplayReport()

        def work(counts: RunCounts) -> str | None:
            for record_id in record_ids:
                counts.seen += 1
                why = self._replay_one(record_id, source)
                if why is None:
                    report.replayed.append(record_id)
                    counts.updated += 1
                else:
                    report.skipped[record_id] = why
                    counts.skipped += 1
            return None

        execution, _ = self.jobs.run(REPLAY_JOB, work)
        return execution, report

    def retry_pending(self, limit: int = 200) -> tuple[str, RunCounts]:
        """The scheduled retry: replay pending records whose last failure is old enough."""

        def work(counts: RunCounts) -> str | None:
            quiet_since = self.clock() - self.retry_after
            pending = self.errors.search(
                ErrorFilter(status=ErrorStatus.PENDING.value, until=quiet_since, limit=limit)
            )
            for record in pending:
                counts.seen += 1
                if not record.replayable:
                    counts.skipped += 1  # nothing to publish (e.g. a failed alert send)
                    continue
                if self._replay_one(record.id, "original", record) is None:
                    counts.updated += 1
                else:
                    counts.skipped += 1
            return None

        return self.jobs.run(RETRY_JOB, work)

    def _replay_one(
        self, record_id: str, source: Source, record: ErrorRecord | None = None
    ) -> str | None:
        record = record or self.errors.get(record_id)
        if record is None:
            return "no such record"
        if not record.envelope:
            return "the record holds no event to replay"
        try:
            original = Envelope.from_json(record.envelope.encode())
        except InvalidPayload:
            return "the stored event is not an envelope (an undecodable message)"
        integration = record.integration
        routed = topics_for(self.routes, original.doctype, original.event)
        topics = sorted({s.topic for s in SUBSCRIPTIONS if s.consumer == integration} & set(routed))
        if not topics:
            return f"no topic of {integration} carries {original.doctype} {original.event}"
        now = self.clock()
        if source == "original":
            envelope = dataclasses.replace(original, received_at=now)
        else:
            try:
                envelope = self._current(original, now)
            except UpstreamRejected as exc:
                return f"ERPNext refused: {exc}"
        self.publisher.publish_all(topics, envelope.to_json(), envelope.attributes())
        if envelope.event_id != original.event_id:
            self.errors.mark_replayed(record_id, envelope.event_id, now=now)
        logs.log_event(
            log,
            logging.INFO,
            "error record replayed",
            record_id=record_id,
            event_id=envelope.event_id,
        )
        return None

    def _current(self, original: Envelope, now: datetime) -> Envelope:
        return document_envelope(
            self.erp().get_doc(original.doctype, original.name),
            doctype=original.doctype,
            event=original.event,
            site=self.site,
            received_at=now,
        )
