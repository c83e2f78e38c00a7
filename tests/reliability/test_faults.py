"""Faults on every outside service: 30% of the calls to ERPNext, Sheets, Drive, Telegram and
Twilio fail (429s, 500s, 503s, timeouts, and for Google a write applied whose answer is lost),
while every event is delivered twice, shuffled. Pub/Sub redelivers, dead-letters after 10
attempts (infra's default), and the scheduled retry replays the error records, as Cloud
Scheduler would: everything must be applied, once.

Several minutes (timeouts hang for 20-35 s): `make reliability`.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator

import pytest

from devstack.emulators import Emulators
from devstack.stack import Devstack, running_devstack
from tests.e2e import wait_until
from tests.reliability.scenario import (
    alerts,
    deliver,
    drive_copies,
    make_scenario,
    scheduled_jobs,
    sheet_differences,
    wait_all_once,
    whatsapp_completions,
)

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(2400)]

SECRET = "fault-suite-secret"
RATE = 0.3
TOM = "+14155550134"
"""The seeded client's mobile (the requests are his)."""


@pytest.fixture(scope="module")
def stack(emulators: Emulators) -> Iterator[Devstack]:
    extra = {
        "TELEGRAM_GROUP_WINDOW_SECONDS": "0.5",
        "SHEETS_GATHER_SECONDS": "1",
        "MAX_DELIVERY_ATTEMPTS": "10",
        "ERROR_RETRY_AFTER_SECONDS": "20",
    }
    with running_devstack(
        webhook_secret=SECRET, extra_env=extra, project="faults", emulators=emulators
    ) as running:
        yield running


@pytest.fixture
def scheduler(stack: Devstack) -> Iterator[None]:
    with scheduled_jobs(stack):
        yield


def test_thirty_percent_faults_on_every_outside_service_and_everything_applied_once(
    stack: Devstack, scheduler: None
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
    for seed, faults in enumerate(
        (stack.sheets.faults, stack.drive.faults, stack.telegram.faults, stack.twilio.faults)
    ):
        faults.set_rate(RATE, seed=seed)
    stack.erpnext.faults.set_rate(RATE, statuses=(429, 500, 503), seed=9)

    deliveries = made.posts * 2
    random.Random(11).shuffle(deliveries)
    assert deliver(deliveries) == Counter({200: len(deliveries)})

    assert wait_until(lambda: not sheet_differences(stack, made.invoices), timeout=900, every=10), (
        sheet_differences(stack, made.invoices)[:10]
    )
    assert wait_until(
        lambda: all(drive_copies(stack, made.files).values()), timeout=900, every=10
    ), [name for name, n in drive_copies(stack, made.files).items() if not n]
    admins = wait_all_once(lambda: alerts(stack, "admins", made.invoices), made.invoices, 900)
    team = wait_all_once(lambda: alerts(stack, "service_team", made.issues), made.issues, 900)
    oncall = wait_all_once(lambda: alerts(stack, "oncall", made.urgent), made.urgent, 900)
    clients = wait_all_once(
        lambda: whatsapp_completions(stack, TOM, made.resolved), made.resolved, 900
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
    # Everything applied, once.
    assert set(drive_copies(stack, made.files).values()) == {1}, "a file was copied twice"
    for sent, names in (
        (admins, made.invoices),
        (team, made.issues),
        (oncall, made.urgent),
        (clients, made.resolved),
    ):
        assert sorted(sent) == sorted(names) and set(sent.values()) == {1}, sent
