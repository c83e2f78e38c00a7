"""Telegram's sending limits, kept on our side so that its 429 never comes in normal operation.

Sliding windows, as Telegram counts: a private chat takes about one message a second, a group
20 a minute, the bot 30 a second in all (docs/SERVICES.md, Telegram). We cannot see when a request reaches
Telegram, only that it did so between our sending it and our reading the answer; so a message
counts from the moment its answer came back (`finish`), and while in flight it fills its window
for good. The next message then always lands a full window after the one it follows, whatever
the network's delays. `margin_s` adds a little more for clocks that disagree. A 429's
retry_after blocks its chat until then. Times are epoch seconds, so the windows can be primed
with what another instance sent a moment ago.
"""

from __future__ import annotations

import math
from collections import defaultdict
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
    margin_s: float = 0.02

    def window(self, chat: Destination) -> tuple[int, float]:
        """Groups and channels have negative ids; people positive ones."""
        if isinstance(chat, int) and chat < 0:
            return self.group_per_window, self.group_window_s + self.margin_s
        return self.chat_per_window, self.chat_window_s + self.margin_s

    @property
    def overall(self) -> tuple[int, float]:
        return self.global_per_window, self.global_window_s + self.margin_s

    @property
    def longest_s(self) -> float:
        """How far back a send can still hold up the next: what a new pacer must be primed with."""
        return max(self.chat_window_s, self.group_window_s, self.global_window_s) + self.margin_s


@dataclass(eq=False, slots=True)
class Slot:
    """One message's place in its windows: in flight (infinite) until its answer came back."""

    at: float = math.inf


@dataclass
class Pacer:
    limits: Limits = field(default_factory=Limits)
    _chats: dict[Destination, list[Slot]] = field(default_factory=lambda: defaultdict(list))
    _all: list[Slot] = field(default_factory=list)
    _blocked: dict[Destination, float] = field(default_factory=dict)

    def prime(self, sent: Iterable[tuple[Destination, float]]) -> None:
        """Count messages already sent (by any instance) at these times."""
        for chat, at in sent:
            self._count(chat, Slot(at))

    def next_time(self, chat: Destination, now: float) -> float:
        """The earliest time, not before `now`, at which `chat` may take a message
        (infinite while the messages that decide it are still in flight)."""
        at = max(now, self._blocked.get(chat, now))
        for slots, (cap, span) in (
            (self._chats.get(chat, []), self.limits.window(chat)),
            (self._all, self.limits.overall),
        ):
            if len(slots) >= cap:
                self._forget(slots, span, now)
            if len(slots) >= cap:
                at = max(at, sorted(slot.at for slot in slots)[-cap] + span)
        return at

    def start(self, chat: Destination, now: float) -> Slot | None:
        """Take a place for a message to `chat` now if the limits allow it; None otherwise."""
        if self.next_time(chat, now) > now:
            return None
        slot = Slot()
        self._count(chat, slot)
        return slot

    def finish(self, slot: Slot, at: float) -> None:
        """The message's answer came back at `at` (sent, refused or failed alike)."""
        slot.at = at

    def take(self, chat: Destination, now: float) -> bool:
        """A message sent and answered at once (for callers that do not wait on answers)."""
        slot = self.start(chat, now)
        if slot is None:
            return False
        self.finish(slot, now)
        return True

    def block(self, chat: Destination, until: float) -> None:
        """Telegram said retry_after: nothing more to this chat before `until`."""
        self._blocked[chat] = max(until, self._blocked.get(chat, until))

    def _count(self, chat: Destination, slot: Slot) -> None:
        self._chats[chat].append(slot)
        self._all.append(slot)

    @staticmethod
    def _forget(slots: list[Slot], span: float, now: float) -> None:
        """Slots whose window has passed can never decide a later message again."""
        slots[:] = [slot for slot in slots if slot.at > now - span]
