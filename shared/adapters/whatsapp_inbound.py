"""Firestore memory of the inbound WhatsApp messages answered (shared/bot/webhooks.py).

Each is a claim in the `idempotency` collection, `whatsapp_inbound:{MessageSid}`, whose
`expire_at` (the collection's TTL policy) forgets it RETENTION after it was answered.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from shared.adapters.firestore import FirestoreConnection, FirestoreIdempotencyStore
from shared.core.claims import ClaimOutcome

CONSUMER = "whatsapp_inbound"
LEASE = timedelta(minutes=2)
"""Longer than one answer can take (Twilio waits 15 s, the function's timeout): a crashed
handler's claim lapses, and Twilio's retry after that is answered."""
RETENTION = timedelta(days=400)
"""How long a MessageSid is remembered. A captured request stays signed until the Twilio auth
token changes, so no memory shorter than the token's life stops every replay. Over a year, so a
token rotated yearly leaves no request both still signed and forgotten; the cost is one small
document per message people send."""


class FirestoreInboundMessages:
    """The `InboundMessages` (shared/bot/ports.py) of the WhatsApp webhook, in Firestore."""

    def __init__(
        self,
        connection: FirestoreConnection,
        *,
        lease: timedelta = LEASE,
        retention: timedelta = RETENTION,
    ) -> None:
        self._claims = FirestoreIdempotencyStore(connection, retention=retention)
        self._lease = lease

    def first_time(self, sid: str, *, now: datetime) -> str | None:
        owner = uuid.uuid4().hex  # per call: two racing calls of one instance are two claimants
        outcome = self._claims.claim(CONSUMER, sid, owner=owner, now=now, lease=self._lease)
        return None if outcome is ClaimOutcome.ALREADY_DONE else owner

    def answered(self, sid: str, *, now: datetime) -> None:
        self._claims.complete(CONSUMER, sid, outcome="answered", now=now)

    def forget(self, sid: str, claim: str) -> None:
        self._claims.release(CONSUMER, sid, owner=claim)
