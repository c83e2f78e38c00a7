"""Firestore memory of the Telegram bot: chat links, one-time link codes, conversations, updates seen.

Every write that must happen once is a compare-and-set (create, or an update-time precondition)
through FirestoreConnection.swap, never an SDK transaction (those retry for a minute under an outage).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import uuid
from datetime import datetime, timedelta

from google.cloud import firestore

from shared.adapters.firestore import (
    Change,
    FirestoreConnection,
    FirestoreIdempotencyStore,
    Record,
    translated,
)
from shared.bot.ports import Conversation, Redemption
from shared.core.claims import ClaimOutcome

CHATS = "telegram_chats"
USERS = "telegram_users"
LINK_CODES = "telegram_link_codes"
CONVERSATIONS = "telegram_conversations"
STRANGERS = "telegram_strangers"
UPDATES_CONSUMER = "telegram_bot"
"""Updates are claimed in the `idempotency` collection as `telegram_bot:{update_id}`."""

CODE_BYTES = 24
"""token_urlsafe(24): 32 characters of A-Z a-z 0-9 _ - (a deep link allows 64), 192 random bits."""
UPDATE_LEASE = timedelta(minutes=2)
"""Longer than one handling can take (the function's timeout): a crashed handler's claim lapses."""
UPDATE_RETENTION = timedelta(days=2)
"""Telegram keeps an undelivered update 24 h: a claim must outlive every redelivery."""
CODE_RETENTION = timedelta(days=7)
"""A used or expired code is kept a while (TTL on `expire_at`) so it is refused, not unknown."""


class FirestoreBotStore:
    """The `BotStore` (and so `ChatLinks`) of the Telegram bot in Firestore.

    `telegram_chats/{chat_id}` and `telegram_users/{sha256(user)}` hold a link both ways; a link
    counts only while both agree, so a relinked user's old chat loses its rights even when a crash
    left its document behind. Link codes are stored by their SHA-256 only: reading Firestore does
    not give anyone a usable code.

    Update de-duplication is mark-before with a lease, complete after: `first_time` claims the
    update (True: handle it), `mark_handled` completes the claim once the replies went out,
    `forget_update` drops it when handling failed so the redelivery is handled at once. A handler
    that dies without either leaves a claim whose lease lapses, after which a redelivery is handled
    again; meanwhile a redelivery gets ClaimHeld (answer 503, Telegram tries later), never a silent
    drop. Marking only after success would instead let two instances handle one update at once.
    """

    def __init__(
        self,
        connection: FirestoreConnection,
        *,
        update_lease: timedelta = UPDATE_LEASE,
        update_retention: timedelta = UPDATE_RETENTION,
        consumer: str = UPDATES_CONSUMER,
    ) -> None:
        self._connection = connection
        self._updates = FirestoreIdempotencyStore(connection, retention=update_retention)
        self._update_lease = update_lease
        self._consumer = consumer
        # Who claimed each update being handled by this instance: only that claim may be dropped.
        self._owners: dict[int, str] = {}
        self._owners_lock = threading.Lock()

    # -- chat links ------------------------------------------------------------------------------

    def _chat(self, chat_id: int) -> firestore.DocumentReference:
        return self._connection.collection(CHATS).document(str(chat_id))

    def _user(self, user: str) -> firestore.DocumentReference:
        # An ERPNext user name may hold characters a document id cannot ('/').
        key = hashlib.sha256(user.encode()).hexdigest()[:40]
        return self._connection.collection(USERS).document(key)

    def chat_of(self, user: str) -> int | None:
        with translated("read chat link"):
            chat_id = self._fields(self._user(user)).get("chat_id")
            if not isinstance(chat_id, int):
                return None
            confirmed = self._fields(self._chat(chat_id)).get("user") == user
        return chat_id if confirmed else None

    def user_of(self, chat_id: int) -> str | None:
        with translated("read chat link"):
            user = self._fields(self._chat(chat_id)).get("user")
            if not isinstance(user, str):
                return None
            confirmed = self._fields(self._user(user)).get("chat_id") == chat_id
        return user if confirmed else None

    def linked_users(self) -> list[str]:
        connection = self._connection
        with translated("list chat links"):
            snapshots = list(
                connection.collection(USERS).stream(
                    retry=connection.retry, timeout=connection.timeout_s
                )
            )
            return [
                user
                for snapshot in snapshots
                if isinstance(user := (snapshot.to_dict() or {}).get("user"), str)
                and self.chat_of(user) is not None
            ]

    def _fields(self, document: firestore.DocumentReference) -> Record:
        snapshot = self._connection.read(document)
        fields = snapshot.to_dict() if snapshot.exists else None
        return dict(fields or {})

    def _link(self, chat_id: int, user: str, *, now: datetime) -> None:
        """Chat first, then user: until both are written neither direction counts."""
        retry, timeout = self._connection.retry, self._connection.timeout_s
        previous = self._fields(self._user(user)).get("chat_id")
        self._chat(chat_id).set({"user": user, "linked_at": now}, retry=retry, timeout=timeout)
        self._user(user).set(
            {"user": user, "chat_id": chat_id, "linked_at": now}, retry=retry, timeout=timeout
        )
        if isinstance(previous, int) and previous != chat_id:
            self._drop_chat(previous, user)

    def _drop_chat(self, chat_id: int, user: str) -> None:
        def decide(fields: Record | None) -> tuple[Change | None, None]:
            if fields is None or fields.get("user") != user:
                return None, None  # linked to someone else since
            return Change(None), None

        self._connection.swap(self._chat(chat_id), decide)

    def answer_stranger(self, chat_id: int, *, now: datetime, every: timedelta) -> bool:
        """Whether an unlinked chat may be answered now: once per `every`, among all instances."""

        def decide(fields: Record | None) -> tuple[Change | None, bool]:
            last = (fields or {}).get("answered_at")
            if isinstance(last, datetime) and now - last < every:
                return None, False
            return Change({"answered_at": now, "expire_at": now + every}), True

        with translated("note an answer to an unlinked chat"):
            return self._connection.swap(
                self._connection.collection(STRANGERS).document(str(chat_id)), decide
            )

    # -- link codes ------------------------------------------------------------------------------

    def _code(self, code: str) -> firestore.DocumentReference:
        key = hashlib.sha256(code.encode()).hexdigest()
        return self._connection.collection(LINK_CODES).document(key)

    def create_link_code(self, user: str, *, now: datetime, lifetime: timedelta) -> str:
        code = secrets.token_urlsafe(CODE_BYTES)
        fields: Record = {
            "user": user,
            "created_at": now,
            "valid_until": now + lifetime,
            "used_at": None,
            "used_by_chat": None,
            "expire_at": now + lifetime + CODE_RETENTION,
        }
        with translated("create link code"):
            self._code(code).create(
                fields, retry=self._connection.retry, timeout=self._connection.timeout_s
            )
        return code

    def redeem_link_code(self, code: str, chat_id: int, *, now: datetime) -> Redemption:
        def decide(fields: Record | None) -> tuple[Change | None, Redemption]:
            if fields is None or not isinstance(fields.get("user"), str):
                return None, Redemption("unknown")
            user = str(fields["user"])
            if fields.get("used_by_chat") == chat_id:
                return None, Redemption("repeated", user)
            if fields.get("used_at") is not None:
                return None, Redemption("used")
            valid_until = fields.get("valid_until")
            if not isinstance(valid_until, datetime) or valid_until <= now:
                return None, Redemption("expired")
            return Change({"used_at": now, "used_by_chat": chat_id}), Redemption("linked", user)

        if not code or len(code) > 64:
            return Redemption("unknown")
        with translated("redeem link code"):
            redemption = self._connection.swap(self._code(code), decide)
            if redemption.user is not None:
                # Also after "repeated": a redelivery finishes links an earlier attempt began.
                self._link(chat_id, redemption.user, now=now)
        return redemption

    # -- conversations ---------------------------------------------------------------------------

    def _conversation(self, chat_id: int, person: int) -> firestore.DocumentReference:
        return self._connection.collection(CONVERSATIONS).document(f"{chat_id}:{person}")

    def get_conversation(self, chat_id: int, person: int, *, now: datetime) -> Conversation | None:
        with translated("read conversation"):
            fields = self._fields(self._conversation(chat_id, person))
        flow, step = fields.get("flow"), fields.get("step")
        expire_at, values = fields.get("expire_at"), fields.get("values")
        if not isinstance(flow, str) or not isinstance(step, str):
            return None
        if not isinstance(expire_at, datetime) or expire_at <= now:
            return None  # abandoned; production's TTL policy deletes it
        stored = values if isinstance(values, dict) else {}
        return Conversation(flow, step, {str(k): str(v) for k, v in stored.items()})

    def put_conversation(
        self,
        chat_id: int,
        person: int,
        conversation: Conversation,
        *,
        now: datetime,
        lifetime: timedelta,
    ) -> None:
        fields: Record = {
            "flow": conversation.flow,
            "step": conversation.step,
            "values": dict(conversation.values),
            "updated_at": now,
            "expire_at": now + lifetime,
        }
        with translated("save conversation"):
            self._conversation(chat_id, person).set(
                fields, retry=self._connection.retry, timeout=self._connection.timeout_s
            )

    def clear_conversation(self, chat_id: int, person: int) -> None:
        with translated("clear conversation"):
            self._conversation(chat_id, person).delete(
                retry=self._connection.retry, timeout=self._connection.timeout_s
            )

    # -- updates seen ----------------------------------------------------------------------------

    def first_time(self, update_id: int, *, now: datetime) -> bool:
        """True: handle the update (new, or its last handler's lease lapsed); False: a duplicate.

        Raises ClaimHeld while another handler's lease runs.
        """
        owner = uuid.uuid4().hex  # per call: two racing calls of one instance are two claimants
        outcome = self._updates.claim(
            self._consumer, str(update_id), owner=owner, now=now, lease=self._update_lease
        )
        if outcome is ClaimOutcome.ALREADY_DONE:
            return False
        with self._owners_lock:
            self._owners[update_id] = owner
        return True

    def mark_handled(self, update_id: int, *, now: datetime) -> None:
        self._updates.complete(self._consumer, str(update_id), outcome="handled", now=now)
        with self._owners_lock:
            self._owners.pop(update_id, None)

    def forget_update(self, update_id: int) -> None:
        with self._owners_lock:
            owner = self._owners.pop(update_id, None)
        if owner is not None:
            self._updates.release(self._consumer, str(update_id), owner=owner)
