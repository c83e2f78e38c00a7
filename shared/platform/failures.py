"""Failure reports: what a person needs to see, triage and replay a failed event."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass


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
