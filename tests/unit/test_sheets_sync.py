"""The Invoice Tracker service: queue per invoice, one read and one write per batch, newest wins."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.core.envelope import Envelope, document_envelope
from shared.errors import UpstreamUnavailable
from shared.platform.backoff import Backoff
from shared.sheets.rows import RowPlan, SheetIndex, TrackerConfig
from shared.sheets.sync import InvoiceSheetSync
from tests.helpers.clocks import Ticker
from tests.helpers.fakes import (
    InMemoryErrorLog,
    InMemoryInvoiceDirectory,
    InMemoryInvoiceSheet,
    InMemoryLease,
    InMemorySheetOutbox,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CONFIG = TrackerConfig(site_url="https://erp.example.com")
STATUS = CONFIG.index_of("status")
AMOUNT = CONFIG.index_of("amount")


def invoice(
    name: str, version: int, *, status: str = "Unpaid", event: str = "on_change", **extra
) -> Envelope:
    doc = {
        "doctype": "Sales Invoice",
        "name": name,
        "customer": "Acme Builders",
        "project": "PROJ-0001",
        "posting_date": "2026-11-20",
        "grand_total": 100.0 + version,
        "currency": "USD",
        "status": status,
        "owner": "ana@example.com",
        "modified": f"2026-11-23 10:{version // 60:02d}:{version % 60:02d}.000000",
        **extra,
    }
    return document_envelope(
        doc, doctype="Sales Invoice", event=event, site="erp.example.com", received_at=NOW
    )


def make_sync(sheet: InMemoryInvoiceSheet | None = None, **parts) -> InvoiceSheetSync:
    return InvoiceSheetSync(
        outbox=parts.get("outbox") or InMemorySheetOutbox(),
        lease=parts.get("lease") or InMemoryLease(),
        sheet=sheet or InMemoryInvoiceSheet(),
        directory=InMemoryInvoiceDirectory(
            full_names={"ana@example.com": "Ana Lopez"}, managers={"PROJ-0001": "Ben Okafor"}
        ),
        errors=parts.get("errors") or InMemoryErrorLog(),
        config=CONFIG,
        owner=parts.get("owner", "instance-a"),
        clock=lambda: NOW,
        gather_s=0,
        round_interval_s=0,
        backoff=parts.get("backoff") or Backoff(budget_s=0),
    )


def backoff(clock: Ticker, budget_s: float) -> Backoff:
    """Retries that sleep on `clock`, without jitter."""
    return Backoff(budget_s=budget_s, sleep=clock.sleep, clock=clock, jitter=lambda: 0)


def test_lone_event_is_written_at_once_with_looked_up_names() -> None:
    sheet = InMemoryInvoiceSheet()
    make_sync(sheet).enqueue(invoice("SINV-1", 1))
    cells = sheet.by_name()["SINV-1"]
    assert cells[CONFIG.index_of("entered_by")] == "Ana Lopez"
    assert cells[CONFIG.index_of("project_manager")] == "Ben Okafor"
    assert (sheet.reads, sheet.writes) == (1, 1)


def test_burst_of_1000_shuffled_events_with_duplicates_and_stale_versions_is_one_read_one_write() -> (
    None
):
    rng = random.Random(7)
    events = [invoice(f"SINV-{n:04d}", version) for n in range(1000) for version in (1, 2, 3)]
    events += events[:500]  # duplicate deliveries
    rng.shuffle(events)
    outbox, lease, sheet = InMemorySheetOutbox(), InMemoryLease(), InMemoryInvoiceSheet()
    lease.acquire("busy-flusher", now=NOW, ttl=timedelta(minutes=1))  # another instance flushes
    queued_by_others = make_sync(sheet, outbox=outbox, lease=lease)
    for event in events:
        queued_by_others.enqueue(event)
    assert sheet.writes == 0 and len(outbox.entries) == 1000
    lease.release("busy-flusher")
    report = make_sync(sheet, outbox=outbox, lease=lease, owner="b").flush_while_pending()
    assert (report.rounds, sheet.reads, sheet.writes) == (1, 1, 1)
    rows = sheet.by_name()
    assert len(rows) == 1000
    assert {cells[AMOUNT] for cells in rows.values()} == {103.0}  # version 3, the newest
    assert outbox.entries == {}


def test_older_version_arriving_after_a_newer_one_leaves_the_row_alone() -> None:
    sheet = InMemoryInvoiceSheet()
    sync = make_sync(sheet)
    sync.enqueue(invoice("SINV-1", 5, status="Paid"))
    sync.enqueue(invoice("SINV-1", 4, status="Unpaid"))
    assert sheet.by_name()["SINV-1"][STATUS] == "Paid"


def test_cancelled_invoice_keeps_its_row_marked_and_deleted_one_is_removed() -> None:
    sheet = InMemoryInvoiceSheet()
    sync = make_sync(sheet)
    sync.enqueue(invoice("SINV-1", 1))
    sync.enqueue(invoice("SINV-2", 1))
    sync.enqueue(invoice("SINV-1", 2, status="Cancelled", docstatus=2, event="on_cancel"))
    sync.enqueue(invoice("SINV-2", 2, event="on_trash"))
    rows = sheet.by_name()
    assert rows["SINV-1"][STATUS] == CONFIG.cancelled_label
    assert "SINV-2" not in rows


def test_unmappable_invoice_becomes_an_error_record_and_the_rest_are_written() -> None:
    errors, sheet = InMemoryErrorLog(), InMemoryInvoiceSheet()
    outbox, lease = InMemorySheetOutbox(), InMemoryLease()
    lease.acquire("busy-flusher", now=NOW, ttl=timedelta(minutes=1))
    sync = make_sync(sheet, outbox=outbox, lease=lease, errors=errors)
    sync.enqueue(invoice("SINV-1", 1))
    sync.enqueue(invoice("SINV-2", 1, grand_total="lots"))
    lease.release("busy-flusher")
    sync.flush_while_pending()
    assert set(sheet.by_name()) == {"SINV-1"}
    (record,) = errors.records.values()
    assert record["report"].entity_id == "SINV-2"  # type: ignore[union-attr]
    assert outbox.entries == {}


def test_sheet_throttling_backs_off_then_keeps_the_queue_and_raises_for_a_retry() -> None:
    sheet = InMemoryInvoiceSheet(fail_with=UpstreamUnavailable("429", service="sheets"))
    outbox, lease, clock = InMemorySheetOutbox(), InMemoryLease(), Ticker(0.0)
    sync = make_sync(sheet, outbox=outbox, lease=lease, backoff=backoff(clock, budget_s=180))
    with pytest.raises(UpstreamUnavailable):
        sync.enqueue(invoice("SINV-1", 1))
    # Google's advice for 429: 1, 2, 4, ... s, capped at 64 s, until the budget is spent.
    assert clock.sleeps == [1, 2, 4, 8, 16, 32, 64]
    assert sheet.reads == 8  # every attempt re-reads where the rows are
    assert len(outbox.entries) == 1 and lease.holder is None
    sheet.fail_with = None
    sync.enqueue(invoice("SINV-1", 1))
    assert "SINV-1" in sheet.by_name() and outbox.entries == {}


def test_a_transient_failure_is_retried_within_the_invocation() -> None:
    class FailsOnce(InMemoryInvoiceSheet):
        def apply(self, plan: RowPlan) -> None:
            self.fail_with, failure = None, self.fail_with
            if failure is not None:
                raise failure
            super().apply(plan)

    sheet = FailsOnce(fail_with=UpstreamUnavailable("503", service="sheets"))
    clock = Ticker(0.0)
    sync = make_sync(sheet, backoff=backoff(clock, budget_s=180))
    sync.enqueue(invoice("SINV-1", 1))
    assert clock.sleeps == [1] and list(sheet.by_name()) == ["SINV-1"]


def test_change_queued_while_another_instance_flushes_is_written_by_that_flusher() -> None:
    sheet, outbox, lease = InMemoryInvoiceSheet(), InMemorySheetOutbox(), InMemoryLease()
    late = make_sync(sheet, outbox=outbox, lease=lease, owner="late")

    class QueueDuringApply(InMemoryInvoiceSheet):
        def read_index(self) -> SheetIndex:
            return sheet.read_index()

        def apply(self, plan) -> None:  # type: ignore[no-untyped-def]
            sheet.apply(plan)
            if len(sheet.rows) == 1:
                late.enqueue(invoice("SINV-2", 1))  # finds the lease held and returns

    flusher = make_sync(QueueDuringApply(), outbox=outbox, lease=lease, owner="flusher")
    flusher.enqueue(invoice("SINV-1", 1))
    assert set(sheet.by_name()) == {"SINV-1", "SINV-2"}


def test_a_long_burst_pauses_between_rounds_so_each_write_carries_more() -> None:
    clock, outbox = Ticker(0.0), InMemorySheetOutbox()

    class MoreArriveDuringTheWrite(InMemoryInvoiceSheet):
        def apply(self, plan: RowPlan) -> None:
            super().apply(plan)
            if self.writes == 1:
                outbox.put(invoice("SINV-2", 1), now=NOW)

    sheet = MoreArriveDuringTheWrite()
    sync = replace(
        make_sync(sheet, outbox=outbox), gather_s=1, round_interval_s=4, sleep=clock.sleep
    )
    sync.enqueue(invoice("SINV-1", 1))
    assert clock.sleeps == [1, 4]  # gather for a lone event, then the quota-friendly pause
    assert sheet.writes == 2 and sorted(sheet.by_name()) == ["SINV-1", "SINV-2"]


def test_deliveries_served_at_once_by_one_instance_still_have_one_flusher() -> None:
    outbox, lease = InMemorySheetOutbox(), InMemoryLease()
    inner_reports: list[str] = []

    class AnotherDeliveryMeanwhile(InMemoryInvoiceSheet):
        def apply(self, plan: RowPlan) -> None:
            super().apply(plan)
            if self.writes == 1:  # the same instance takes another delivery in another thread
                inner_reports.append(sync.enqueue(invoice("SINV-2", 1)))

    sheet = AnotherDeliveryMeanwhile()
    sync = make_sync(sheet, outbox=outbox, lease=lease)
    sync.enqueue(invoice("SINV-1", 1))
    assert inner_reports == ["queued SINV-2; the delivery holding the flush lease writes it"]
    assert sheet.writes == 2 and sorted(sheet.by_name()) == ["SINV-1", "SINV-2"]
