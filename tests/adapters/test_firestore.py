"""The Firestore adapters against the real Firestore emulator: claims, versions, errors, actions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from google.cloud import firestore

from devstack.emulators import Emulators
from devstack.sockets import free_port
from shared.adapters.firestore import FirestoreStores
from shared.core.claims import ClaimOutcome, ClaimState
from shared.core.envelope import Envelope
from shared.errors import ClaimHeld, UpstreamUnavailable
from shared.platform.failures import ErrorStatus, FailureReport

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)
AFTER_LEASE = NOW + LEASE + timedelta(seconds=1)


@pytest.fixture
def stores(project_id: str) -> FirestoreStores:
    return FirestoreStores(project_id)


def raw_document(project: str, collection: str, document_id: str) -> dict[str, object] | None:
    """The stored fields as Firestore holds them, read past the adapter."""
    return (
        firestore.Client(project=project)
        .collection(collection)
        .document(document_id)
        .get()
        .to_dict()
    )


def failure(event_id: str = "e1", **overrides: str) -> FailureReport:
    fields = {
        "integration": "sheets_sync",
        "operation": "sync_invoice_row",
        "entity_type": "Sales Invoice",
        "entity_id": "SINV-0001",
        "message": "sheet refused the row",
        "event_id": event_id,
        "envelope": '{"schema": 1}',
        **overrides,
    }
    return FailureReport(**fields)


def envelope(event_id: str = "e1") -> Envelope:
    return Envelope(
        event_id=event_id,
        event_type="erpnext.sales_invoice.on_submit",
        site="erp.example.com",
        doctype="Sales Invoice",
        name="SINV-0001",
        event="on_submit",
        modified="2026-11-23 10:00:00",
        received_at=NOW,
        doc={"name": "SINV-0001"},
    )


# ---- claims ---------------------------------------------------------------------------------


def test_claim_acquired_and_stored_with_lease_and_expiry_when_event_is_new(
    stores: FirestoreStores, project_id: str
) -> None:
    outcome = stores.claims.claim("sheets_sync", "e1", owner="a", now=NOW, lease=LEASE)

    assert outcome is ClaimOutcome.ACQUIRED
    stored = raw_document(project_id, "idempotency", "sheets_sync:e1")  # ':' is a valid id char
    assert stored is not None
    assert stored["state"] == "claimed"
    assert stored["owner"] == "a"
    assert stored["lease_until"] == NOW + LEASE
    assert stored["attempts"] == 1
    assert stored["expire_at"] == NOW + timedelta(days=7)


def test_duplicate_is_already_done_when_claim_was_completed(stores: FirestoreStores) -> None:
    stores.claims.claim("sheets_sync", "e1", owner="a", now=NOW, lease=LEASE)
    stores.claims.complete("sheets_sync", "e1", outcome="row 7 upserted", now=NOW)
    stores.claims.complete("sheets_sync", "e1", outcome="row 7 upserted", now=NOW)

    # Even past the lease: a finished claim is never taken over.
    outcome = stores.claims.claim("sheets_sync", "e1", owner="b", now=AFTER_LEASE, lease=LEASE)

    assert outcome is ClaimOutcome.ALREADY_DONE
    claim = stores.claims.get("sheets_sync", "e1")
    assert claim is not None
    assert (claim.state, claim.outcome, claim.owner) == (ClaimState.DONE, "row 7 upserted", "a")


def test_claim_held_when_another_owner_lease_still_runs(stores: FirestoreStores) -> None:
    stores.claims.claim("sheets_sync", "e1", owner="a", now=NOW, lease=LEASE)

    with pytest.raises(ClaimHeld):
        stores.claims.claim(
            "sheets_sync", "e1", owner="b", now=NOW + timedelta(minutes=4), lease=LEASE
        )


def test_a_live_claim_of_another_owner_is_refused_to_its_lease_end_and_taken_over_after(
    stores: FirestoreStores,
) -> None:
    """The lease, and only the lease, decides a takeover: to its last instant another owner is
    refused and the claim stays its holder's; just after, it is taken over, and the crashed
    holder coming back is the one refused (the new owner's lease runs)."""
    stores.claims.claim("notifier", "e1", owner="crashed", now=NOW, lease=LEASE)
    instant = timedelta(milliseconds=1)
    for now in (NOW, NOW + timedelta(seconds=1), NOW + LEASE - instant):
        with pytest.raises(ClaimHeld):
            stores.claims.claim("notifier", "e1", owner="b", now=now, lease=LEASE)
    held = stores.claims.get("notifier", "e1")
    assert held is not None
    assert (held.state, held.owner, held.lease_until) == (
        ClaimState.CLAIMED,
        "crashed",
        NOW + LEASE,
    )

    later = NOW + LEASE + instant
    outcome = stores.claims.claim("notifier", "e1", owner="b", now=later, lease=LEASE)
    assert outcome is ClaimOutcome.TAKEN_OVER
    with pytest.raises(ClaimHeld):
        stores.claims.claim("notifier", "e1", owner="crashed", now=later, lease=LEASE)
    taken = stores.claims.get("notifier", "e1")
    assert taken is not None and (taken.owner, taken.lease_until) == ("b", later + LEASE)


def test_claims_are_per_consumer_when_two_consumers_see_one_event(stores: FirestoreStores) -> None:
    stores.claims.claim("sheets_sync", "e1", owner="a", now=NOW, lease=LEASE)

    outcome = stores.claims.claim("notifier", "e1", owner="b", now=NOW, lease=LEASE)

    assert outcome is ClaimOutcome.ACQUIRED


def test_claim_taken_over_with_new_lease_when_holder_lease_expired(
    stores: FirestoreStores, project_id: str
) -> None:
    stores.claims.claim("sheets_sync", "e1", owner="crashed", now=NOW, lease=LEASE)

    outcome = stores.claims.claim("sheets_sync", "e1", owner="b", now=AFTER_LEASE, lease=LEASE)

    assert outcome is ClaimOutcome.TAKEN_OVER
    stored = raw_document(project_id, "idempotency", "sheets_sync:e1")
    assert stored is not None
    assert (stored["owner"], stored["attempts"]) == ("b", 2)
    assert stored["lease_until"] == AFTER_LEASE + LEASE


def test_exactly_one_instance_takes_over_when_eight_race_for_an_expired_claim(
    project_id: str,
) -> None:
    FirestoreStores(project_id).claims.claim("sheets_sync", "e1", owner="x", now=NOW, lease=LEASE)
    instances = [FirestoreStores(project_id) for _ in range(8)]  # one client each, as in prod
    start = threading.Barrier(len(instances))
    results: dict[str, object] = {}

    def race(index: int, stores: FirestoreStores) -> None:
        start.wait()
        owner = f"instance-{index}"
        try:
            results[owner] = stores.claims.claim(
                "sheets_sync", "e1", owner=owner, now=AFTER_LEASE, lease=LEASE
            )
        except Exception as exc:
            results[owner] = exc

    threads = [threading.Thread(target=race, args=pair) for pair in enumerate(instances)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    winners = [owner for owner, result in results.items() if result is ClaimOutcome.TAKEN_OVER]
    losers = [result for result in results.values() if isinstance(result, ClaimHeld)]
    assert len(winners) == 1, results
    assert len(losers) == 7, results
    claim = FirestoreStores(project_id).claims.get("sheets_sync", "e1")
    assert claim is not None and claim.owner == winners[0]


def test_claim_acquired_at_once_when_holder_released_it(stores: FirestoreStores) -> None:
    stores.claims.claim("sheets_sync", "e1", owner="a", now=NOW, lease=LEASE)
    stores.claims.release("sheets_sync", "e1", owner="a")

    outcome = stores.claims.claim("sheets_sync", "e1", owner="b", now=NOW, lease=LEASE)

    assert outcome is ClaimOutcome.ACQUIRED


def test_release_keeps_the_claim_when_another_owner_holds_it(stores: FirestoreStores) -> None:
    stores.claims.claim("sheets_sync", "e1", owner="a", now=NOW, lease=LEASE)

    stores.claims.release("sheets_sync", "e1", owner="b")

    with pytest.raises(ClaimHeld):
        stores.claims.claim("sheets_sync", "e1", owner="b", now=NOW, lease=LEASE)


def test_release_keeps_the_claim_when_it_is_done(stores: FirestoreStores) -> None:
    stores.claims.claim("sheets_sync", "e1", owner="a", now=NOW, lease=LEASE)
    stores.claims.complete("sheets_sync", "e1", outcome="ok", now=NOW)

    stores.claims.release("sheets_sync", "e1", owner="a")

    assert stores.claims.claim("sheets_sync", "e1", owner="a", now=NOW, lease=LEASE) is (
        ClaimOutcome.ALREADY_DONE
    )


# ---- versions -------------------------------------------------------------------------------


def test_version_never_moves_back_when_an_older_stamp_is_recorded(stores: FirestoreStores) -> None:
    versions = stores.versions
    assert versions.last_applied("sheets_sync", "Sales Invoice", "SINV-0001") is None

    versions.record_applied("sheets_sync", "Sales Invoice", "SINV-0001", "2026-11-23 10:00:00.5")
    versions.record_applied("sheets_sync", "Sales Invoice", "SINV-0001", "2026-11-23 09:59:59")
    assert versions.last_applied("sheets_sync", "Sales Invoice", "SINV-0001") == (
        "2026-11-23 10:00:00.5"
    )

    versions.record_applied("sheets_sync", "Sales Invoice", "SINV-0001", "2026-11-23 10:00:01")
    assert versions.last_applied("sheets_sync", "Sales Invoice", "SINV-0001") == (
        "2026-11-23 10:00:01"
    )


def test_versions_kept_apart_when_names_contain_slashes_or_consumers_differ(
    stores: FirestoreStores,
) -> None:
    versions = stores.versions
    versions.record_applied("sheets_sync", "File", "a/b", "2026-11-23 10:00:00")
    versions.record_applied("sheets_sync", "File", "a", "2026-11-23 11:00:00")

    assert versions.last_applied("sheets_sync", "File", "a/b") == "2026-11-23 10:00:00"
    assert versions.last_applied("sheets_sync", "File", "a") == "2026-11-23 11:00:00"
    assert versions.last_applied("notifier", "File", "a/b") is None


# ---- error records --------------------------------------------------------------------------


def test_error_record_counts_attempts_and_keeps_first_seen_when_failure_repeats(
    stores: FirestoreStores,
) -> None:
    first = stores.errors.record_failure(failure(), now=NOW)
    second = stores.errors.record_failure(
        failure(message="still refused"), now=NOW + timedelta(minutes=1)
    )

    assert first == second == failure().record_id()
    record = stores.errors.get(first)
    assert record is not None
    assert record.attempts == 2
    assert record.first_seen == NOW
    assert record.last_seen == NOW + timedelta(minutes=1)
    assert record.message == "still refused"
    assert record.status == "pending"
    assert record.envelope == '{"schema": 1}'
    assert (record.integration, record.entity_id, record.event_id) == (
        "sheets_sync",
        "SINV-0001",
        "e1",
    )


def test_resolve_event_resolves_the_pending_record_when_the_event_later_succeeded(
    stores: FirestoreStores,
) -> None:
    record_id = stores.errors.record_failure(failure("e1"), now=NOW)
    other = stores.errors.record_failure(failure("e2"), now=NOW)
    elsewhere = stores.errors.record_failure(failure("e1", integration="notifier"), now=NOW)

    assert stores.errors.resolve_event("sheets_sync", "e1", now=NOW + timedelta(minutes=2))

    resolved = stores.errors.get(record_id)
    assert resolved is not None
    assert resolved.status == "resolved"
    assert resolved.resolved_at == NOW + timedelta(minutes=2)
    for untouched in (other, elsewhere):
        record = stores.errors.get(untouched)
        assert record is not None and record.status == "pending"


def test_resolve_event_is_false_when_nothing_is_pending(stores: FirestoreStores) -> None:
    stores.errors.record_failure(failure("e1"), now=NOW)
    stores.errors.resolve_event("sheets_sync", "e1", now=NOW)

    assert not stores.errors.resolve_event("sheets_sync", "e1", now=NOW)
    assert not stores.errors.resolve_event("sheets_sync", "never-failed", now=NOW)


def test_error_record_pending_again_when_failure_repeats_after_resolution(
    stores: FirestoreStores,
) -> None:
    record_id = stores.errors.record_failure(failure(), now=NOW)
    stores.errors.resolve_event("sheets_sync", "e1", now=NOW)

    stores.errors.record_failure(failure(), now=NOW + timedelta(hours=1))

    record = stores.errors.get(record_id)
    assert record is not None
    assert (record.status, record.attempts, record.resolved_at) == ("pending", 2, None)


def test_list_errors_filters_by_status_newest_first_when_asked(stores: FirestoreStores) -> None:
    older = stores.errors.record_failure(failure("e1"), now=NOW)
    newer = stores.errors.record_failure(failure("e2"), now=NOW + timedelta(minutes=1))
    done = stores.errors.record_failure(failure("e3"), now=NOW)
    stores.errors.resolve_event("sheets_sync", "e3", now=NOW)

    assert [r.id for r in stores.errors.list_errors(status="pending")] == [newer, older]
    assert [r.id for r in stores.errors.list_errors(status="resolved")] == [done]
    assert len(stores.errors.list_errors()) == 3
    assert stores.errors.get("no-such-record") is None


# ---- outages and fixtures -------------------------------------------------------------------


def test_upstream_unavailable_within_the_timeout_when_firestore_is_unreachable(
    project_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    stores = FirestoreStores(project_id, timeout_s=1.5)
    operations: list[Callable[[], object]] = [
        lambda: stores.claims.claim("sheets_sync", "e1", owner="a", now=NOW, lease=LEASE),
        lambda: stores.versions.record_applied("c", "File", "a", "2026-11-23 10:00:00"),
        lambda: stores.errors.record_failure(failure(), now=NOW),
    ]
    for operation in operations:
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable) as raised:
            operation()
        assert time.monotonic() - started < 5
        assert raised.value.service == "firestore"


def test_clear_firestore_empties_a_project_when_called(
    stores: FirestoreStores,
    project_id: str,
    emulators: Emulators,
    clear_firestore: Callable[[str], None],
) -> None:
    stores.claims.claim("sheets_sync", "e1", owner="a", now=NOW, lease=LEASE)

    clear_firestore(project_id)

    assert stores.claims.get("sheets_sync", "e1") is None


def test_an_error_record_is_typed_at_the_boundary_and_an_older_one_takes_defaults(
    stores: FirestoreStores,
) -> None:
    record_id = stores.errors.record_failure(failure(), now=NOW)
    stores.errors.set_status([record_id], "ignored", now=NOW, note="ops: known outage")
    record = stores.errors.get(record_id)
    assert record is not None
    assert record.status is ErrorStatus.IGNORED and record.note == "ops: known outage"
    assert record.replayable and record.replayed_as is None
    shown = record.fields()
    assert "envelope" not in shown and shown["status"] == "ignored" and shown["replayable"]
    # A record written before `details`, `note` and the replay fields existed.
    stores.connection.collection("errors").document("old-1").set(
        {"integration": "notifier", "status": "pending", "attempts": 4, "last_seen": NOW}
    )
    old = stores.errors.get("old-1")
    assert old is not None
    assert (old.integration, old.status, old.attempts, old.last_seen) == (
        "notifier",
        ErrorStatus.PENDING,
        4,
        NOW,
    )
    assert (old.details, old.note, old.first_seen, old.replayable) == ("", None, None, False)
