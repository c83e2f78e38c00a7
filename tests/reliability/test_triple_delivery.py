"""1,000 ERPNext events, each delivered three times, shuffled, stale versions among them, posted to
the real webhook function as Frappe signs them: every tool must end exactly equal to ERPNext,
with no duplicate row, file or message.

    250 invoices x 3 versions (insert, amount corrected, submitted): 750 events -> the Invoice
        Tracker and the admins' alerts;
    150 attachments (File after_insert): 150 events -> Drive;
    100 service requests (Issue after_insert): 100 events -> the service team's alerts.

About 100 s on 2 cores: it runs in `make test`.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator

import pytest

from devstack.emulators import Emulators
from devstack.stack import Devstack, running_devstack
from tests.reliability.scenario import assert_applied_once, deliver, make_scenario

pytestmark = pytest.mark.timeout(1200)

SECRET = "reliability-secret"
GROUP_WINDOW_S = 0.5


@pytest.fixture(scope="module")
def stack(emulators: Emulators) -> Iterator[Devstack]:
    extra = {"TELEGRAM_GROUP_WINDOW_SECONDS": str(GROUP_WINDOW_S), "SHEETS_GATHER_SECONDS": "1"}
    with running_devstack(
        webhook_secret=SECRET, extra_env=extra, project="reliability", emulators=emulators
    ) as running:
        yield running


def test_a_thousand_events_three_times_shuffled_end_exactly_equal_to_erpnext(
    stack: Devstack,
) -> None:
    made = make_scenario(stack, SECRET, invoices=250, files=150, issues=100)
    assert len(made.posts) == 1000
    deliveries = made.posts * 3
    random.Random(7).shuffle(deliveries)

    assert deliver(deliveries) == Counter({200: 3000})

    assert all(  # ERPNext holds the newest version: the corrected amount
        stack.erpnext.get("Sales Invoice", name)["grand_total"] == 1000 + n
        for n, name in enumerate(made.invoices)
    )
    assert_applied_once(stack, made, timeout=300)
    assert stack.telegram.refused == []
