"""Sync-execution records and watermarks on the real Firestore emulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.firestore import FirestoreStores
from shared.platform.executions import RunCounts, RunStatus

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
def stores(project_id: str) -> FirestoreStores:
    return FirestoreStores(project_id, timeout_s=5)


def test_execution_runs_then_records_its_counts_and_outcome(stores: FirestoreStores) -> None:
    log = stores.executions
    ok = log.start("reconcile_invoices", now=NOW)
    failed = log.start("reconcile_invoices", now=NOW + timedelta(minutes=5))
    other = log.start("backfill_attachments", now=NOW + timedelta(minutes=6))
    (running, *_) = log.recent("reconcile_invoices")
    assert running.id == failed and running.status is RunStatus.RUNNING
    log.finish(
        ok, RunCounts(seen=10, updated=3, skipped=7), error=None, now=NOW + timedelta(minutes=1)
    )
    log.finish(
        failed,
        RunCounts(seen=2, failed=2),
        error="erpnext unavailable",
        now=NOW + timedelta(minutes=7),
    )
    newest, oldest = log.recent("reconcile_invoices")
    assert (newest.id, newest.status, newest.error) == (
        failed,
        RunStatus.FAILED,
        "erpnext unavailable",
    )
    assert (oldest.id, oldest.status, oldest.counts) == (
        ok,
        RunStatus.SUCCEEDED,
        RunCounts(10, 3, 7, 0),
    )
    assert oldest.finished_at == NOW + timedelta(minutes=1)
    assert [e.id for e in log.recent()] == [other, failed, ok]


def test_watermark_only_moves_forward(stores: FirestoreStores) -> None:
    marks = stores.watermarks
    assert marks.get("invoices") is None
    marks.advance("invoices", "2026-11-23 10:00:00.000002")
    marks.advance("invoices", "2026-11-23 09:59:59")
    assert marks.get("invoices") == "2026-11-23 10:00:00.000002"
    marks.advance("invoices", "2026-11-23 10:00:01")
    assert marks.get("invoices") == "2026-11-23 10:00:01"
