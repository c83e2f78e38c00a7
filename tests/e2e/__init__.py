"""End-to-end tests: the devstack's functions, emulators and stand-ins, as `make demo` runs them."""

from __future__ import annotations

from devstack.stack import Devstack
from devstack.waiting import wait_until

FINAL_OUTCOMES = ("applied", "duplicate", "stale", "rejected")


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
