"""Keeps the Invoice Tracker equal to ERPNext: queue each change, write the queue in batches.

Each delivery only queues its invoice's newest version (an outbox in Firestore) and then tries
to become the one flusher (a lease). The flusher gathers for a moment, reads the sheet's row
index once, writes every queued invoice in one batch request, and repeats while changes wait.
Release-then-recheck means a change queued while another instance flushes is never stranded.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from shared.core.envelope import Envelope
from shared.core.routing import OPERATIONS
from shared.errors import ConfigurationError, MappingError
from shared.platform import logs
from shared.platform.backoff import Backoff
from shared.platform.ports import ErrorLog, Lease
from shared.platform.runtime import failure_report
from shared.sheets.layout import layout_requests
from shared.sheets.ports import InvoiceDirectory, InvoiceSheet, SheetLayout, SheetOutbox
from shared.sheets.rows import (
    TRASH_EVENT,
    InvoiceFacts,
    RowPlan,
    TrackerConfig,
    coalesce,
    invoice_facts,
    paid_date_for,
    plan_upsert,
)

log = logging.getLogger(__name__)
CONSUMER = "sheets_sync"


@dataclass(frozen=True, slots=True)
class FlushReport:
    rounds: int = 0
    queued: int = 0
    written: int = 0
    stale: int = 0
    failed: int = 0


@dataclass(frozen=True)
class InvoiceSheetSync:
    """The sheets_sync service; `enqueue` is the consumer's side effect."""

    outbox: SheetOutbox
    lease: Lease
    sheet: InvoiceSheet
    directory: InvoiceDirectory
    errors: ErrorLog
    config: TrackerConfig
    owner: str
    clock: Callable[[], datetime]
    lease_ttl: timedelta = timedelta(seconds=300)
    """Outlasts a batch's retries (backoff.budget_s) plus its last calls: one flusher at a time."""
    gather_s: float = 1.0
    round_interval_s: float = 4.0
    round_interval_max_s: float = 16.0
    batch_limit: int = 1500  # about 1.1 KB a row in a batchUpdate: stays under Sheets' 2 MB advice
    sleep: Callable[[float], None] = time.sleep
    backoff: Backoff = field(default_factory=Backoff)

    def enqueue(self, envelope: Envelope) -> str:
        self.outbox.put(envelope, now=self.clock())
        report = self.flush_while_pending()
        if report.rounds == 0:
            return f"queued {envelope.name}; the delivery holding the flush lease writes it"
        return f"queued {envelope.name}; wrote {report.written} rows in {report.rounds} batches"

    def flush_while_pending(self) -> FlushReport:
        """Flush as the lease holder until nothing waits; return at once if another holds it."""
        report, pause = FlushReport(), self.gather_s
        # One holder per call, not per instance: an instance serves many deliveries at once.
        holder = f"{self.owner}:{uuid.uuid4().hex[:8]}"
        while self.lease.acquire(holder, now=self.clock(), ttl=self.lease_ttl):
            try:
                if pause > 0:
                    self.sleep(pause)  # let the rest of a burst queue, so it shares the batch
                one = self.flush_once()
                report = _add(report, one)
                # Sheets allows 60 writes a minute: each later round of a long burst waits
                # twice as long (up to round_interval_max_s) and so writes more at a time,
                # unless a full batch is already waiting.
                longer = min(max(pause * 2, self.round_interval_s), self.round_interval_max_s)
                pause = 0 if one.queued >= self.batch_limit else longer
            finally:
                self.lease.release(holder)
            # Checked after releasing: a change queued meanwhile either sees the lease free
            # (and flushes itself) or is seen here.
            if not self.outbox.pending(1):
                break
        return report

    def flush_once(self) -> FlushReport:
        """One batch: read the outbox and the sheet's index, write one plan, clear what it wrote."""
        entries = list(self.outbox.pending(self.batch_limit))
        if not entries:
            return FlushReport()
        newest = coalesce(entry.envelope for entry in entries)
        plan, unmappable = self.backoff.run(
            lambda: self._write(newest.values()), what="write the invoice sheet"
        )
        for envelope, exc in unmappable:
            self._record(envelope, exc)
        self.outbox.remove(entries)
        written = len(plan.updates) + len(plan.appends) + len(plan.deletes) + len(plan.clears)
        failed = len(unmappable)
        logs.log_event(
            log,
            logging.INFO,
            "invoice sheet batch written",
            invoices=len(newest),
            written=written,
            stale=len(plan.stale),
            failed=failed,
        )
        return FlushReport(
            rounds=1, queued=len(entries), written=written, stale=len(plan.stale), failed=failed
        )

    def _write(
        self, envelopes: Iterable[Envelope]
    ) -> tuple[RowPlan, list[tuple[Envelope, MappingError]]]:
        """Read where rows are now and write the batch there. Retried whole after a transient
        failure: a write whose answer was lost may have landed, and only a fresh index says so.
        """
        index = self.sheet.read_index()
        batch: list[InvoiceFacts] = []
        unmappable: list[tuple[Envelope, MappingError]] = []
        for envelope in envelopes:
            row = index.get(envelope.name)
            try:
                batch.append(self._facts(envelope, row.paid_date if row else None))
            except MappingError as exc:
                unmappable.append((envelope, exc))
        plan = plan_upsert(index, batch, self.config)
        self.sheet.apply(plan)
        return plan, unmappable

    def _facts(self, envelope: Envelope, paid_on_sheet: date | None) -> InvoiceFacts:
        doc = envelope.doc
        owner = doc.get("owner")
        project = doc.get("project")
        return invoice_facts(
            doc,
            doctype=envelope.doctype,
            user_full_name=self.directory.user_full_name(owner) if isinstance(owner, str) else None,
            project_manager=(
                self.directory.project_manager(project)
                if isinstance(project, str) and project
                else None
            ),
            paid_date=paid_date_for(paid_on_sheet, doc, envelope.modified),
            deleted=envelope.event == TRASH_EVENT,
        )

    def _record(self, envelope: Envelope, exc: MappingError) -> None:
        report = failure_report(CONSUMER, OPERATIONS[CONSUMER], exc, envelope=envelope)
        self.errors.record_failure(report, now=self.clock())


def set_up_sheet(layout: SheetLayout, config: TrackerConfig) -> int:
    """Bring the spreadsheet's layout up to `config`; the number of requests sent (0: it was).

    Tabs come first, since the other requests need their ids; so it takes at most two rounds.
    """
    sent = 0
    for _ in range(3):
        requests = layout_requests(layout.read_state(config), config)
        if not requests:
            return sent
        layout.apply(requests)
        sent += len(requests)
    raise ConfigurationError("the sheet layout did not settle after three rounds of setup")


def _add(total: FlushReport, one: FlushReport) -> FlushReport:
    return FlushReport(
        rounds=total.rounds + one.rounds,
        queued=total.queued + one.queued,
        written=total.written + one.written,
        stale=total.stale + one.stale,
        failed=total.failed + one.failed,
    )
