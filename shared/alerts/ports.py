"""The alerts' ports: the outbox of alerts, WhatsApp's sessions and sender, and the Telegram
Bot API as the drain uses it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # annotations only: importing ports stays cheap for erp_webhook's cold start
    from shared.alerts.rules import Alert


@dataclass(frozen=True, slots=True)
class QueuedAlert:
    """An alert waiting in the outbox: `not_before` (epoch seconds) after a throttle or failure;
    `in_doubt_since` when a send of it began whose outcome nobody learnt (an answer lost, a
    sender crashed), so it may have arrived."""

    alert: Alert
    not_before: float = 0.0
    attempts: int = 0
    in_doubt_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class SentMessage:
    """A message a channel says it has from us: its id and text as the channel keeps them."""

    sid: str
    body: str


class AlertOutbox(Protocol):
    """Every alert once (its key), queued until sent; the record stays to refuse a second one."""

    def put(self, alerts: Sequence[Alert], *, now: datetime) -> int:
        """Queue the alerts not seen before; how many were new."""
        ...

    def pending(self, limit: int) -> list[QueuedAlert]:
        """Oldest first."""
        ...

    def mark_sending(self, key: str, *, now: datetime) -> bool:
        """Written before each send, so that were the sender to die before `mark_sent` the alert
        is known to be in doubt. False when it is no longer queued (settled meanwhile)."""
        ...

    def mark_sent(self, key: str, message_id: str, *, now: datetime) -> None: ...

    def mark_failed(self, key: str, reason: str, *, now: datetime) -> None: ...

    def defer(
        self, key: str, *, not_before: float, attempts: int, in_doubt_since: datetime | None
    ) -> None: ...

    def recent_sent(self, since: datetime) -> list[tuple[str, str, float]]:
        """(channel, destination, epoch seconds) of alerts and bot replies sent since `since`,
        by any instance."""
        ...

    def note_reply(self, chat: int, *, now: datetime) -> None:
        """A bot reply went to `chat` at `now`: it counts in Telegram's limits like an alert."""
        ...

    def by_message(self, message_id: str) -> Alert | None:
        """The alert a sent message carried (Twilio reports failures by message sid)."""
        ...


class WhatsAppSessions(Protocol):
    """When each number last wrote to us: WhatsApp's 24-hour window for free-form messages."""

    def last_inbound(self, phone: str) -> datetime | None: ...

    def record_inbound(self, phone: str, *, now: datetime) -> None: ...


class TelegramSession(Protocol):
    async def send(self, chat: int, text: str, topic: int | None = None) -> int:
        """Send HTML text; the message id. Raises UpstreamUnavailable (retry_after_s on a 429),
        ChatMoved or UpstreamRejected."""
        ...


class TelegramSender(Protocol):
    """The Bot API for the alerts (the adapter is `TelegramApi`): one session per drain."""

    def session(self) -> AbstractAsyncContextManager[TelegramSession]: ...


class ReplyChannel(Protocol):
    """Telegram for a synchronous caller (the adapter is `KeptSession`)."""

    def send(self, chat: int, text: str, topic: int | None = None) -> int: ...


class Directory(Protocol):
    def user_full_name(self, user_id: str) -> str | None: ...

    def project_manager_user(self, project: str) -> str | None: ...


class WhatsApp(Protocol):
    def send_text(self, to_e164: str, body: str) -> str: ...

    def sent_since(self, to_e164: str, since: datetime) -> list[SentMessage]: ...

    def send_template(
        self, to_e164: str, content_sid: str, variables: Mapping[str, str]
    ) -> str: ...
