"""Telegram's sending limits, kept on our side so that its 429 never comes in normal operation.

Sliding windows, as Telegram counts: a private chat takes about one message a second, a group
20 a minute, the bot 30 a second in all (FACTS.md). Each window is widened by `margin_s` so a
request that travels a little slower than the one before it still lands inside the limit. A
429's retry_after blocks its chat until then. Times are epoch seconds, so the windows can be
primed with what another instance sent a moment ago.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeAlias

Destination: TypeAlias = int | str
"""A Telegram chat id (groups negative) or a phone number."""


@dataclass(frozen=True, slots=True)
class Limits:
    chat_per_window: int = 1
    chat_window_s: float = 1.0
    group_per_window: int = 20
    group_window_s: float = 60.0
    global_per_window: int = 30
    global_window_s: float = 1.0
    margin_s: float = 0.1

    def window(self, chat: Destination) -> tuple[int, float]:
        """Groups and channels have negative ids; people positive ones."""
        if isinstance(chat, int) and chat < 0:
            return self.group_per_window, self.group_window_s + self.margin_s
        return self.chat_per_window, self.chat_window_s + self.margin_s


@dataclass
class Pacer:
    limits: Limits = field(default_factory=Limits)
    _chats: dict[Destination, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    _all: deque[float] = field(default_factory=deque)
    _blocked: dict[Destination, float] = field(default_factory=dict)

    def prime(self, sent: Iterable[tuple[Destination, float]]) -> None:
        """Count messages already sent (by any instance) at these times."""
        for chat, at in sorted(sent, key=lambda pair: pair[1]):
            self._count(chat, at)

    def next_time(self, chat: Destination, now: float) -> float:
        """The earliest time, not before `now`, at which `chat` may take a message."""
        cap, span = self.limits.window(chat)
        times = self._chats.get(chat, ())
        at = max(now, self._blocked.get(chat, now))
        if len(times) >= cap:
            at = max(at, times[-cap] + span)
        if len(self._all) >= self.limits.global_per_window:
            every = self.limits.global_window_s + self.limits.margin_s
            at = max(at, self._all[-self.limits.global_per_window] + every)
        return at

    def take(self, chat: Destination, now: float) -> bool:
        """Count a message to `chat` now if the limits allow it; False otherwise."""
        if self.next_time(chat, now) > now:
            return False
        self._count(chat, now)
        return True

    def block(self, chat: Destination, until: float) -> None:
        """Telegram said retry_after: nothing more to this chat before `until`."""
        self._blocked[chat] = max(until, self._blocked.get(chat, until))

    def _count(self, chat: Destination, at: float) -> None:
        """Only the last `cap` times of a window decide the next one: keep no more."""
        times = self._chats[chat]
        times.append(at)
        while len(times) > self.limits.window(chat)[0]:
            times.popleft()
        self._all.append(at)
        while len(self._all) > self.limits.global_per_window:
            self._all.popleft()
