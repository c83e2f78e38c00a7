"""Waiting on a condition, not on the clock: the demo and the tests poll what they wait for."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(check: Callable[[], bool], timeout: float = 30.0, every: float = 0.2) -> bool:
    """Poll `check` until it holds or `timeout` passes; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every)
    return check()
