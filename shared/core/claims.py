"""Idempotency claims as pure decisions: who may run an event's side effect, and when to take over."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta


class ClaimState(enum.StrEnum):
    CLAIMED = "claimed"
    DONE = "done"


class ClaimOutcome(enum.StrEnum):
    """What a claim attempt found; ClaimHeld is raised rather than returned."""

    ACQUIRED = "acquired"
    TAKEN_OVER = "taken_over"
    ALREADY_DONE = "already_done"


@dataclass(frozen=True, slots=True)
class Claim:
    """The stored claim of `consumer` on `event_id`."""

    consumer: str
    event_id: str
    state: ClaimState
    owner: str
    lease_until: datetime
    outcome: str | None = None


def claim_key(consumer: str, event_id: str) -> str:
    return f"{consumer}:{event_id}"


def can_take_over(existing: Claim, now: datetime) -> bool:
    """A claim may be taken over only while unfinished and past its lease (its holder crashed)."""
    return existing.state is ClaimState.CLAIMED and existing.lease_until <= now


def new_claim(consumer: str, event_id: str, owner: str, now: datetime, lease: timedelta) -> Claim:
    return Claim(consumer, event_id, ClaimState.CLAIMED, owner, now + lease)
