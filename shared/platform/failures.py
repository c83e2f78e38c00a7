"""Failure reports, and the error records they become: what a person needs to see, triage and
replay a failed event."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from datetime import datetime


class ErrorStatus(enum.StrEnum):
    PENDING = "pending"
    RESOLVED = "resolved"
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class FailureReport:
    """One failure of one operation on one entity; `envelope` is the message body for replay."""

    integration: str
    operation: str
    entity_type: str
    entity_id: str
    message: str
    event_id: str | None = None
    details: str = ""
    envelope: str | None = None

    def record_id(self) -> str:
        """Deterministic id, so the same failure seen again updates one record (attempts + 1)."""
        subject = self.event_id or f"{self.entity_type}/{self.entity_id}"
        key = "\x1f".join((self.integration, self.operation, subject))
        return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """An error record as stored: the failure, how often it came, and what people did about it.

    Read from the store at its boundary (`shared/adapters/firestore.py`), and shown as it is by
    the admin API, the CSV export and `bridge errors` (`fields()`: the stored event stays out).
    """

    id: str
    integration: str
    operation: str
    entity_type: str
    entity_id: str
    message: str
    status: ErrorStatus
    attempts: int
    first_seen: datetime | None
    last_seen: datetime | None
    event_id: str | None = None
    details: str = ""
    resolved_at: datetime | None = None
    note: str | None = None
    """Who set the status last, and why."""
    replayed_as: str | None = None
    """The event a replay published; its success resolves this record."""
    replayed_at: datetime | None = None
    envelope: str | None = field(default=None, repr=False)
    """The failed message's body, to replay it; an ERPNext document, never shown."""

    @property
    def replayable(self) -> bool:
        return bool(self.envelope)

    def fields(self) -> dict[str, object]:
        """Every field people see, by name (the event itself replaced by whether it can be
        replayed): the admin API's JSON, the CSV's columns."""
        return {
            "id": self.id,
            "status": self.status.value,
            "integration": self.integration,
            "operation": self.operation,
            "entity_type": self.entity_type,
            "entity_id": self.entity_id,
            "event_id": self.event_id,
            "message": self.message,
            "details": self.details,
            "attempts": self.attempts,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "resolved_at": self.resolved_at,
            "note": self.note,
            "replayed_as": self.replayed_as,
            "replayed_at": self.replayed_at,
            "replayable": self.replayable,
        }
