"""Retrying a call to an outside service inside one invocation: exponential backoff with jitter.

Only `Retryable` errors (429, 5xx, timeouts, a held claim) are retried, and only while the
time budget lasts; then the last error goes up the error tree, where Pub/Sub's redelivery and
the error records take over. Google asks for exactly this on 429 from Sheets and Drive: wait
1, 2, 4, ... seconds plus a random fraction, up to about 64 s, so a per-minute quota has
refilled before the attempts give out.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from shared import logs
from shared.errors import Retryable

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

    def run(self, call: Callable[[], T], *, what: str) -> T:
        """`call()` until it succeeds, a non-retryable error, or the budget runs out."""
        started = self.clock()
        wait = self.first_s
        attempt = 1
        while True:
            try:
                return call()
            except Retryable as exc:
                pause = min(wait, self.cap_s) * (1 + self.jitter() / 2)
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
