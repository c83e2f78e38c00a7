"""In-memory implementations of the ports, for unit tests of the services (no network)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from shared.core.claims import Claim, ClaimOutcome, ClaimState, can_take_over, claim_key, new_claim
from shared.core.envelope import Envelope
from shared.core.failures import ErrorStatus, FailureReport
from shared.core.versions import parse_modified
from shared.errors import ClaimHeld, UpstreamUnavailable


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
