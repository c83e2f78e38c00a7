"""End-to-end tests: the devstack's functions, emulators and stand-ins, as `make demo` runs them."""

from __future__ import annotations

import time
from collections.abc import Callable

from devstack.stack import Devstack

FINAL_OUTCOMES = ("applied", "duplicate", "stale", "rejected")


def wait_until(check: Callable[[], bool], timeout: float = 30.0, every: float = 0.2) -> bool:
    """Poll `check` until it holds or `timeout` passes; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every)
    return check()


def settle(stack: Devstack, name: str, *, consumers: int = 1, timeout: float = 60.0) -> None:
    """Wait until every webhook ERPNext sent about `name` is delivered, each consumer it reaches
    has decided each delivery, and nothing they queued still waits to be written or sent.

    Then every effect those deliveries can have, a wrongly repeated one included, has happened:
    this is how a test shows that nothing more happens, without waiting to see."""
    assert stack.erpnext.wait_for_deliveries(timeout=timeout)
    deliveries = stack.erpnext.deliveries(docname=name)
    assert all(d.state == "delivered" for d in deliveries), [d.state for d in deliveries]

    def decided() -> int:
        return sum(
            1
            for entry in stack.outcomes()
            if entry.get("name") == name and entry["outcome"] in FINAL_OUTCOMES
        )

    expected = consumers * len(deliveries)
    assert wait_until(lambda: decided() >= expected and stack.outboxes_empty(), timeout), (
        f"{decided()} of {expected} deliveries decided; outboxes empty: {stack.outboxes_empty()}"
    )
