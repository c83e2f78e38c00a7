"""Idempotency claims as pure decisions: who may run an event's side effect, and when to take over."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.core.versions import SITE_CLOCK_SPREAD

CLAIM_RETENTION = timedelta(days=7)
"""How long a claim outlives its event (production's TTL policy on `expire_at` deletes it then):
an event older than that would be applied again, so the consumers refuse events that old
(`versions.SITE_CLOCK_SPREAD`)."""


MAX_EVENT_AGE = CLAIM_RETENTION - SITE_CLOCK_SPREAD
"""The oldest change a consumer applies, by its signed `modified` read as early as the site's
clock allows: an event's claim then outlives every body of it that is accepted, however often it
is sent again."""


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
