"""The bot's ports: its store (links, conversations, link codes), Telegram's files, and how
replies and WhatsApp sessions go out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol

from shared.servicedesk.ports import ChatLinks


class TelegramFiles(Protocol):
    def download(self, file_id: str) -> bytes:
        """The bytes of a file people sent (getFile, then its download URL)."""
        ...


@dataclass(frozen=True, slots=True)
class Conversation:
    """Where a person is in a guided flow (`new_request`, `upload_photo`) and what they said so far."""

    flow: str
    step: str
    values: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Redemption:
    """What `/start CODE` did: `linked` (now), `repeated` (this chat redeemed it before: links
    rewritten, nothing new), or why it was refused (`unknown`, `used` by another chat, `expired`)."""

    outcome: Literal["linked", "repeated", "unknown", "used", "expired"]
    user: str | None = None


class BotStore(ChatLinks, Protocol):
    """The bot's memory, shared by every instance.

    How a webhook answers one update exactly once (FirestoreBotStore says why it is so):

        first_time(update_id) is False -> answer 200: a duplicate; ClaimHeld -> answer 503
        replies = bot.handle(update), then send them
        a Retryable error on the way -> forget_update(update_id), answer 503: Telegram redelivers
        otherwise (a Permanent send error too) -> mark_handled(update_id), answer 200

    Handling a redelivery again is safe: /set_status is idempotent, a confirmed /new_request
    has left no conversation to confirm twice, a photo is attached once per file_unique_id,
    and a redeemed code answers "already linked".
    """

    def answer_stranger(self, chat_id: int, *, now: datetime, every: timedelta) -> bool:
        """Whether an unlinked chat may be answered now: True at most once per `every` (all
        instances together), so a flood of strangers' messages spends no sending limits."""
        ...

    def linked_users(self) -> list[str]:
        """Every ERPNext user with a link in force (both directions agree)."""
        ...

    def create_link_code(self, user: str, *, now: datetime, lifetime: timedelta) -> str:
        """A new one-time code for `user`: <= 64 chars of A-Z a-z 0-9 _ -, unguessable."""
        ...

    def redeem_link_code(self, code: str, chat_id: int, *, now: datetime) -> Redemption:
        """Consume the code atomically (exactly one chat ever wins it) and link the chat to its user."""
        ...

    def get_conversation(self, chat_id: int, person: int, *, now: datetime) -> Conversation | None:
        """The person's conversation in this chat, unless there is none or it expired."""
        ...

    def put_conversation(
        self,
        chat_id: int,
        person: int,
        conversation: Conversation,
        *,
        now: datetime,
        lifetime: timedelta,
    ) -> None: ...

    def clear_conversation(self, chat_id: int, person: int) -> None: ...

    def first_time(self, update_id: int, *, now: datetime) -> bool:
        """Claim an update: True to handle it; False when it was handled already.

        Raises ClaimHeld while another instance handles it within its lease.
        """
        ...

    def mark_handled(self, update_id: int, *, now: datetime) -> None:
        """After the replies went out: every later delivery of this update is a duplicate."""
        ...

    def forget_update(self, update_id: int) -> None:
        """Handling failed: drop the claim so a redelivery is handled at once."""
        ...


class ReplySender(Protocol):
    def send_all(self, messages: list[tuple[int, str, int | None]]) -> list[int]: ...


class Sessions(Protocol):
    def record_inbound(self, phone: str, *, now: datetime) -> None: ...


class InboundMessages(Protocol):
    """The inbound WhatsApp messages answered, by MessageSid, shared by every instance."""

    def first_time(self, sid: str, *, now: datetime) -> str | None:
        """A claim (its token) to answer the message; None when it was answered already.

        Raises ClaimHeld while another handler's lease runs.
        """
        ...

    def answered(self, sid: str, *, now: datetime) -> None:
        """Every later request with this sid is a repeat."""
        ...

    def forget(self, sid: str, claim: str) -> None:
        """Answering failed and a retry can help: drop our claim so the retry is answered."""
        ...


class SignatureCheck(Protocol):
    def __call__(
        self, public_url: str, params: Mapping[str, str], signature: str, auth_token: str
    ) -> bool: ...
