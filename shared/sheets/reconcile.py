"""Reconciliation: bring the Invoice Tracker up to date with what ERPNext changed without a webhook.

Payments through db_set, the nightly Overdue job, Data Import and patches fire no webhook
(docs/SERVICES.md, ERPNext webhooks), so a scheduled run pages the invoices modified since a stored watermark, selected fields
only, large pages, and queues them through the same outbox and batch writer as the webhooks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from shared.core.envelope import document_envelope
from shared.platform.executions import RunCounts
from shared.platform.ports import DocumentLister
from shared.sheets.ports import SheetOutbox, Watermarks
from shared.sheets.sync import InvoiceSheetSync

JOB = "reconcile_invoices"
EVENT = "reconcile"
INVOICE_DOCTYPES = ("Sales Invoice", "Purchase Invoice")
COMMON_FIELDS = (
    "name",
    "project",
    "posting_date",
    "grand_total",
    "currency",
    "status",
    "outstanding_amount",
    "owner",
    "modified",
    "docstatus",
)
COUNTERPARTY = {"Sales Invoice": "customer", "Purchase Invoice": "supplier"}
PAGE_LENGTH = 500


@dataclass(frozen=True)
class InvoiceReconciliation:
    erp: DocumentLister
    outbox: SheetOutbox
    sync: InvoiceSheetSync
    watermarks: Watermarks
    site: str
    clock: Callable[[], datetime]

    def run(self, counts: RunCounts, progress: Callable[[int], None] | None = None) -> None:
        """One run's work (`Jobs.run` locks and records it): `counts` filled, `progress` hears
        each invoice seen."""
        for doctype in INVOICE_DOCTYPES:
            self._queue_changed(doctype, counts, progress)
        report = self.sync.flush_while_pending()
        counts.updated, counts.skipped = report.written, report.stale
        counts.failed = report.failed

    def _queue_changed(
        self, doctype: str, counts: RunCounts, progress: Callable[[int], None] | None
    ) -> None:
        key = f"{JOB}:{doctype}"
        since = self.watermarks.get(key)
        # `>=`, not `>`: several invoices can share the watermark's stamp; re-queuing the one
        # already written is harmless (equal versions rewrite the same row).
        filters: list[tuple[str, str, object]] = [("modified", ">=", since)] if since else []
        newest = since
        for doc in self.erp.iter_docs(
            doctype,
            fields=(*COMMON_FIELDS, COUNTERPARTY[doctype]),
            filters=filters,
            order_by="modified asc",
        ):
            envelope = document_envelope(
                doc, doctype=doctype, event=EVENT, site=self.site, received_at=self.clock()
            )
            self.outbox.put(envelope, now=self.clock())
            counts.seen += 1
            if envelope.modified:
                newest = envelope.modified
            if progress is not None:
                progress(1)
        if newest and newest != since:
            self.watermarks.advance(key, newest)
