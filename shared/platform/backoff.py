"""Retrying a call to an outside service inside one invocation: exponential backoff with jitter.

Only `Retryable` errors (429, 5xx, timeouts, a held claim) are retried, and only while the
time budget lasts; then the last error goes up the error tree, where Pub/Sub's redelivery and
the error records take over. Google asks for exactly this on 429 from Sheets and Drive: wait
1, 2, 4, ... seconds plus a random fraction, up to about 64 s, so a per-minute quota has
refilled before the attempts give out. A wait the service asked for (`retry_after_s`: Retry-After,
Telegram's retry_after, an open circuit's time left) is waited in full, or not at all when it
would outlast the budget.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from shared.errors import Retryable, UpstreamUnavailable
from shared.platform import logs

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    first_s: float = 1.0
    cap_s: float = 64.0
    budget_s: float = 180.0
    """No new attempt starts after this long; the caller's lease or deadline must outlast it."""
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    jitter: Callable[[], float] = field(default=random.random)
    attempts: int | None = None
    """At most this many calls (None: as many as the budget allows)."""

    def run(self, call: Callable[[], T], *, what: str) -> T:
        """`call()` until it succeeds, a non-retryable error, or the attempts or budget run out."""
        started = self.clock()
        wait = self.first_s
        attempt = 1
        while True:
            try:
                return call()
            except Retryable as exc:
                pause = min(wait, self.cap_s) * (1 + self.jitter() / 2)
                if isinstance(exc, UpstreamUnavailable) and exc.retry_after_s is not None:
                    pause = max(pause, exc.retry_after_s)
                if self.attempts is not None and attempt >= self.attempts:
                    raise
                if self.clock() - started + pause > self.budget_s:
                    raise
                logs.log_event(
                    log,
                    logging.WARNING,
                    "retrying after a transient failure",
                    what=what,
                    attempt=attempt,
                    wait_s=round(pause, 2),
                    error=str(exc),
                )
                self.sleep(pause)
                wait = min(wait * 2, self.cap_s)
                attempt += 1
