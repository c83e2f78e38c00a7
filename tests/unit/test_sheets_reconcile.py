"""Reconciliation against an in-memory ERPNext: watermark, large pages, one run record per run."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from shared.core.envelope import Json
from shared.errors import UpstreamUnavailable
from shared.platform.backoff import Backoff
from shared.platform.executions import RunCounts, RunStatus
from shared.platform.jobs import Jobs
from shared.sheets.reconcile import JOB, InvoiceReconciliation
from shared.sheets.rows import TrackerConfig
from shared.sheets.sync import InvoiceSheetSync
from tests.helpers.fakes import (
    InMemoryErrorLog,
    InMemoryInvoiceDirectory,
    InMemoryInvoices,
    InMemoryInvoiceSheet,
    InMemoryLease,
    InMemorySheetOutbox,
    InMemorySyncExecutionLog,
    InMemoryWatermarks,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CONFIG = TrackerConfig(site_url="https://erp.example.com")


def sales_invoice(n: int, second: int = 0, status: str = "Unpaid") -> dict[str, Json]:
    return {
        "name": f"ACC-SINV-2026-{n:05d}",
        "customer": "Acme",
        "project": "PROJ-0001",
        "posting_date": "2026-11-01",
        "grand_total": 10.0 * n,
        "currency": "USD",
        "status": status,
        "outstanding_amount": 10.0 * n,
        "owner": "ana@example.com",
        "modified": f"2026-11-{1 + n // 5000:02d} 10:{(n // 60) % 60:02d}:{n % 60:02d}.{second:06d}",
        "docstatus": 1,
    }


def reconciliation(
    erp: InMemoryInvoices, sheet: InMemoryInvoiceSheet, **parts
) -> InvoiceReconciliation:
    outbox = parts.get("outbox") or InMemorySheetOutbox()
    sync = InvoiceSheetSync(
        outbox=outbox,
        lease=InMemoryLease(),
        sheet=sheet,
        directory=InMemoryInvoiceDirectory(),
        errors=InMemoryErrorLog(),
        config=CONFIG,
        owner="scheduler",
        clock=lambda: NOW,
        gather_s=0,
        round_interval_s=0,
        backoff=Backoff(budget_s=0),
    )
    return InvoiceReconciliation(
        erp=erp,
        outbox=outbox,
        sync=sync,
        watermarks=parts.get("watermarks") or InMemoryWatermarks(),
        site="erp.example.com",
        clock=lambda: NOW,
    )


def run_job(
    reconciliation: InvoiceReconciliation,
    executions: InMemorySyncExecutionLog | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[str, RunCounts]:
    """One run as the scheduled job and `bridge reconcile` make it: locked and recorded."""
    jobs = Jobs(
        lease=lambda name: InMemoryLease(),
        executions=executions or InMemorySyncExecutionLog(),
        owner="scheduler",
        clock=lambda: NOW,
    )
    return jobs.run(JOB, lambda counts: reconciliation.run(counts, progress))


def test_10000_invoices_take_at_most_25_list_calls_and_batches_of_the_batch_limit() -> None:
    erp = InMemoryInvoices({"Sales Invoice": [sales_invoice(n) for n in range(10_000)]})
    sheet, executions = InMemoryInvoiceSheet(), InMemorySyncExecutionLog()
    seen: list[int] = []
    run_id, counts = run_job(reconciliation(erp, sheet), executions, seen.append)
    assert erp.list_calls <= 25
    assert (counts.seen, counts.updated, len(sheet.rows), len(seen)) == (
        10_000,
        10_000,
        10_000,
        10_000,
    )
    batches = -(-10_000 // InvoiceSheetSync.batch_limit)
    assert (sheet.reads, sheet.writes) == (batches, batches)
    assert executions.runs[run_id].status is RunStatus.SUCCEEDED


def test_run_with_nothing_changed_makes_one_list_call_per_invoice_doctype() -> None:
    erp = InMemoryInvoices({"Sales Invoice": [sales_invoice(n) for n in range(50)]})
    sheet, marks = InMemoryInvoiceSheet(), InMemoryWatermarks()
    run_job(reconciliation(erp, sheet, watermarks=marks))
    erp.list_calls = 0
    _, counts = run_job(reconciliation(erp, sheet, watermarks=marks))
    assert erp.list_calls == 2  # Sales and Purchase Invoice: ERPNext lists one doctype per call
    assert counts.updated <= 1  # only the invoice(s) at the watermark's own stamp come back


def test_change_with_no_webhook_reaches_the_sheet_on_the_next_run() -> None:
    docs = [sales_invoice(n) for n in range(5)]
    erp, sheet, marks = (
        InMemoryInvoices({"Sales Invoice": docs}),
        InMemoryInvoiceSheet(),
        InMemoryWatermarks(),
    )
    run_job(reconciliation(erp, sheet, watermarks=marks))
    docs[2] = {**docs[2], "status": "Overdue", "modified": "2026-11-23 23:00:00"}  # the nightly job
    run_job(reconciliation(erp, sheet, watermarks=marks))
    status = CONFIG.index_of("status")
    assert sheet.by_name()["ACC-SINV-2026-00002"][status] == "Overdue"


def test_failed_run_is_recorded_with_its_error() -> None:
    erp = InMemoryInvoices({"Sales Invoice": [sales_invoice(1)]}, down=True)
    executions = InMemorySyncExecutionLog()
    with pytest.raises(UpstreamUnavailable):
        run_job(reconciliation(erp, InMemoryInvoiceSheet()), executions)
    (run,) = executions.runs.values()
    assert run.status is RunStatus.FAILED and "erpnext down" in str(run.error)
