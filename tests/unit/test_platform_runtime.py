"""The consumer runtime's decisions (claim, stale, apply, record, retry) against in-memory fakes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devstack.erpnext import MODIFIED_FORMAT
from shared.core.claims import CLAIM_RETENTION, MAX_EVENT_AGE
from shared.core.envelope import Envelope, document_envelope
from shared.core.versions import SITE_CLOCK_SPREAD
from shared.errors import ClaimHeld, MappingError, UpstreamUnavailable
from shared.platform.failures import ErrorStatus
from shared.platform.runtime import Consumer, Outcome, PubSubMessage
from tests.helpers.fakes import (
    InMemoryErrorLog,
    InMemoryIdempotencyStore,
    InMemoryVersionStore,
    RecordingEffect,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def envelope(
    modified: str = "2026-11-23 10:00:00", name: str = "SINV-0001", event: str = "on_submit"
) -> Envelope:
    doc = {"doctype": "Sales Invoice", "name": name, "modified": modified}
    return document_envelope(doc, doctype="Sales Invoice", event=event, site="s", received_at=NOW)


def message(env: Envelope) -> PubSubMessage:
    return PubSubMessage(data=env.to_json(), attributes=env.attributes(), message_id="m1")


def make_consumer(
    effect: RecordingEffect,
    owner: str = "a",
    now: datetime = NOW,
    name: str = "sheets_sync",
    skip_stale: bool = True,
    **stores,
) -> Consumer:
    return Consumer(
        name=name,
        effect=effect,
        claims=stores.get("claims") or InMemoryIdempotencyStore(),
        versions=stores.get("versions") or InMemoryVersionStore(),
        errors=stores.get("errors") or InMemoryErrorLog(),
        owner=owner,
        clock=lambda: now,
        lease=timedelta(seconds=60),
        skip_stale=skip_stale,
    )


def test_applied_once_when_the_same_event_is_delivered_three_times() -> None:
    effect = RecordingEffect()
    consumer = make_consumer(effect)
    outcomes = [consumer.handle(message(envelope())) for _ in range(3)]
    assert outcomes == [Outcome.APPLIED, Outcome.DUPLICATE, Outcome.DUPLICATE]
    assert len(effect.applied) == 1


def stamp(at: datetime) -> str:
    """A Frappe `modified` stamp: the site's local time, no zone."""
    return at.strftime(MODIFIED_FORMAT)


def test_a_body_sent_again_after_its_claim_expired_is_refused_by_its_signed_modified() -> None:
    # Received just now, but the change it carries was made eight days ago: its claim (7 days)
    # may be gone, so applying it could repeat its effect (an alert, a page).
    effect, errors = RecordingEffect(), InMemoryErrorLog()
    consumer = make_consumer(effect, errors=errors)
    replayed = envelope(stamp(NOW - CLAIM_RETENTION - timedelta(days=1)))
    assert consumer.handle(message(replayed)) is Outcome.REJECTED
    assert effect.applied == []
    (record,) = errors.records.values()
    assert "made over 142 hours ago" in str(record["report"].message)


def test_the_age_bound_keeps_every_accepted_event_inside_its_claims_life() -> None:
    # The oldest stamp accepted, read in the latest time zone (UTC-12), was made
    # MAX_EVENT_AGE + 26 h ago at most: still inside the claim's 7 days.
    effect = RecordingEffect()
    oldest = NOW - MAX_EVENT_AGE - timedelta(hours=12)
    assert make_consumer(effect).handle(message(envelope(stamp(oldest)))) is Outcome.APPLIED
    assert MAX_EVENT_AGE + SITE_CLOCK_SPREAD <= CLAIM_RETENTION
    older = oldest - timedelta(seconds=1)
    assert make_consumer(effect).handle(message(envelope(stamp(older)))) is Outcome.REJECTED


def test_a_deletion_counts_from_its_arrival_as_deleting_leaves_modified_as_it_was() -> None:
    effect = RecordingEffect()
    trashed = envelope(stamp(NOW - timedelta(days=400)), event="on_trash")
    assert make_consumer(effect).handle(message(trashed)) is Outcome.APPLIED


def test_older_version_is_acknowledged_not_applied_when_a_newer_one_was_applied() -> None:
    effect = RecordingEffect()
    consumer = make_consumer(effect)
    assert consumer.handle(message(envelope("2026-11-23 11:00:00"))) is Outcome.APPLIED
    assert consumer.handle(message(envelope("2026-11-23 10:00:00"))) is Outcome.STALE
    assert [e.modified for e in effect.applied] == ["2026-11-23 11:00:00"]


def test_an_event_consumer_acts_on_an_older_event_that_arrives_late_once() -> None:
    """The alerts: an invoice's after_insert delivered after its on_submit still alerts."""
    effect = RecordingEffect()
    consumer = make_consumer(effect, name="notifier", skip_stale=False)
    submitted = envelope("2026-11-23 11:00:00", event="on_submit")
    inserted = envelope("2026-11-23 10:00:00", event="after_insert")
    outcomes = [consumer.handle(message(e)) for e in (submitted, inserted, inserted)]
    assert outcomes == [Outcome.APPLIED, Outcome.APPLIED, Outcome.DUPLICATE]
    assert [e.event for e in effect.applied] == ["on_submit", "after_insert"]


def test_permanent_error_becomes_a_pending_record_and_is_acknowledged() -> None:
    errors = InMemoryErrorLog()
    consumer = make_consumer(
        RecordingEffect(fail_with=MappingError("no such column")), errors=errors
    )
    assert consumer.handle(message(envelope())) is Outcome.REJECTED
    (record,) = errors.records.values()
    assert record["status"] is ErrorStatus.PENDING
    assert "no such column" in record["report"].message  # type: ignore[union-attr]


def test_retryable_error_raises_releases_the_claim_and_records_then_a_retry_resolves_it() -> None:
    errors, claims = InMemoryErrorLog(), InMemoryIdempotencyStore()
    effect = RecordingEffect(fail_with=UpstreamUnavailable("429", service="sheets"))
    consumer = make_consumer(effect, errors=errors, claims=claims)
    with pytest.raises(UpstreamUnavailable):
        consumer.handle(message(envelope()))
    assert claims.claims == {}
    effect.fail_with = None
    assert consumer.handle(message(envelope())) is Outcome.APPLIED
    (record,) = errors.records.values()
    assert record["status"] is ErrorStatus.RESOLVED


def test_claim_held_is_retried_when_another_instance_holds_a_live_claim() -> None:
    claims = InMemoryIdempotencyStore()
    claims.claim(
        "sheets_sync", envelope().event_id, owner="crashed", now=NOW, lease=timedelta(seconds=60)
    )
    effect = RecordingEffect()
    with pytest.raises(ClaimHeld):
        make_consumer(effect, claims=claims).handle(message(envelope()))
    later = make_consumer(effect, claims=claims, now=NOW + timedelta(seconds=61))
    assert later.handle(message(envelope())) is Outcome.APPLIED
    assert len(effect.applied) == 1


def test_too_old_event_is_recorded_and_acknowledged() -> None:
    errors = InMemoryErrorLog()
    effect = RecordingEffect()
    consumer = make_consumer(effect, errors=errors, now=NOW + timedelta(days=8))
    assert consumer.handle(message(envelope())) is Outcome.REJECTED
    assert effect.applied == [] and len(errors.records) == 1


def test_undecodable_message_is_recorded_and_acknowledged() -> None:
    errors = InMemoryErrorLog()
    consumer = make_consumer(RecordingEffect(), errors=errors)
    bad = PubSubMessage(data=b"{not json", attributes={"doctype": "Sales Invoice"}, message_id="m9")
    assert consumer.handle(bad) is Outcome.REJECTED
    (record,) = errors.records.values()
    assert record["report"].entity_id == "m9"  # type: ignore[union-attr]
