"""Faults on every outside service: 30% of the calls to ERPNext, Sheets, Drive, Telegram and
Twilio fail (429s, 500s, 503s, timeouts, and a write applied or a message sent whose answer is lost),
while every event is delivered twice, shuffled. Pub/Sub redelivers, dead-letters after 10
attempts (infra's default), and the scheduled retry replays the error records, as Cloud
Scheduler would: everything must be applied, once.

Several minutes (timeouts hang for 20-35 s): `make reliability`.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator

import pytest

from devstack.emulators import Emulators
from devstack.stack import Devstack, running_devstack
from tests.reliability.scenario import (
    SUITE_ENV,
    assert_applied_once,
    deliver,
    make_scenario,
    scheduled_jobs,
    shuffled_twice,
)

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(2400)]

SECRET = "fault-suite-secret"
RATE = 0.3


@pytest.fixture(scope="module")
def stack(emulators: Emulators) -> Iterator[Devstack]:
    with running_devstack(
        webhook_secret=SECRET, extra_env=SUITE_ENV, project="faults", emulators=emulators
    ) as running:
        yield running


@pytest.fixture
def scheduler(stack: Devstack) -> Iterator[None]:
    with scheduled_jobs(stack):
        yield


def test_thirty_percent_faults_on_every_outside_service_and_everything_applied_once(
    stack: Devstack, scheduler: None, capsys: pytest.CaptureFixture[str]
) -> None:
    made = make_scenario(
        stack,
        SECRET,
        invoices=60,
        files=40,
        issues=40,
        urgent_every=4,
        resolved_every=2,
        tag="Faulty",
    )
    every_google_kind = ("429", "500", "503", "timeout", "timeout_after_apply")
    stack.sheets.faults.kinds = every_google_kind
    stack.drive.faults.kinds = every_google_kind
    # A message sent whose answer is lost: WhatsApp's is looked up at Twilio, Telegram's goes
    # again as an announced repeat.
    stack.telegram.faults.kinds = ("429", "500", "timeout", "timeout_after_apply")
    stack.twilio.faults.kinds = ("429", "500", "503", "timeout", "timeout_after_apply")
    for seed, faults in enumerate(
        (stack.sheets.faults, stack.drive.faults, stack.telegram.faults, stack.twilio.faults)
    ):
        faults.set_rate(RATE, seed=seed)
    stack.erpnext.faults.set_rate(RATE, statuses=(429, 500, 503), seed=9)

    deliveries = shuffled_twice(made, 11)
    assert deliver(deliveries) == Counter({200: len(deliveries)})
    repeats = assert_applied_once(stack, made)
    with capsys.disabled():  # the figures, for the report
        sys.stderr.write(
            f"\nannounced Telegram repeats: {repeats}; lost answers injected: Telegram "
            f"{stack.telegram.faults.injected['timeout_after_apply']}, Twilio "
            f"{stack.twilio.faults.injected['timeout_after_apply']}\n"
        )

    # The faults did happen, on every service.
    for service, injected in (
        ("Sheets", sum(stack.sheets.faults.injected.values())),
        ("Drive", sum(stack.drive.faults.injected.values())),
        ("Telegram", sum(stack.telegram.faults.injected.values())),
        ("Twilio", sum(stack.twilio.faults.injected.values())),
        ("ERPNext", stack.erpnext.faults.injected),
    ):
        assert injected > 0, f"no fault was injected into {service}"
