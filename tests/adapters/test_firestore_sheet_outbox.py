"""The Invoice Tracker outbox and flush lease on the real Firestore emulator."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.firestore import FirestoreStores
from shared.core.envelope import Envelope, document_envelope

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
def stores(project_id: str) -> FirestoreStores:
    return FirestoreStores(project_id, timeout_s=5)


def invoice(name: str, second: int, event: str = "on_change") -> Envelope:
    doc = {"doctype": "Sales Invoice", "name": name, "modified": f"2026-11-23 10:00:{second:02d}"}
    return document_envelope(doc, doctype="Sales Invoice", event=event, site="s", received_at=NOW)


def test_outbox_keeps_only_the_newest_change_per_invoice(stores: FirestoreStores) -> None:
    outbox = stores.sheet_outbox
    for second in (3, 1, 5, 2):
        outbox.put(invoice("SINV-1", second), now=NOW)
    outbox.put(invoice("SINV-2", 1), now=NOW)
    pending = {entry.envelope.name: entry.envelope.modified for entry in outbox.pending(10)}
    assert pending == {"SINV-1": "2026-11-23 10:00:05", "SINV-2": "2026-11-23 10:00:01"}


def test_remove_spares_an_entry_rewritten_after_it_was_read(stores: FirestoreStores) -> None:
    outbox = stores.sheet_outbox
    outbox.put(invoice("SINV-1", 1), now=NOW)
    outbox.put(invoice("SINV-2", 1), now=NOW)
    read = outbox.pending(10)
    outbox.put(invoice("SINV-1", 2), now=NOW + timedelta(seconds=1))  # arrives mid-flush
    assert outbox.remove(read) == 1
    (left,) = outbox.pending(10)
    assert (left.envelope.name, left.envelope.modified) == ("SINV-1", "2026-11-23 10:00:02")


def test_one_holder_at_a_time_when_eight_instances_race_for_the_lease(
    stores: FirestoreStores,
) -> None:
    barrier = threading.Barrier(8)
    won: list[str] = []

    def contend(owner: str) -> None:
        lease = FirestoreStores(stores.connection.project, timeout_s=5).sheet_flush_lease
        barrier.wait()
        if lease.acquire(owner, now=NOW, ttl=timedelta(seconds=60)):
            won.append(owner)

    threads = [threading.Thread(target=contend, args=(f"i{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1


def test_lease_is_taken_over_after_it_expires_and_free_after_release(
    stores: FirestoreStores,
) -> None:
    lease = stores.sheet_flush_lease
    assert lease.acquire("a", now=NOW, ttl=timedelta(seconds=30))
    assert not lease.acquire("b", now=NOW + timedelta(seconds=10), ttl=timedelta(seconds=30))
    assert lease.acquire("b", now=NOW + timedelta(seconds=31), ttl=timedelta(seconds=30))
    lease.release("a")  # not a's any more: nothing happens
    assert not lease.acquire("c", now=NOW + timedelta(seconds=32), ttl=timedelta(seconds=30))
    lease.release("b")
    assert lease.acquire("c", now=NOW + timedelta(seconds=32), ttl=timedelta(seconds=30))
