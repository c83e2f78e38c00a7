"""Crashes and restarts: every consumer's worker killed with kill -9 in the middle of a batch (a
new one takes its place, as a new Cloud Run instance would), the Firestore emulator frozen mid-batch (an outage: every call hangs, then it is back with
its data, as Firestore would be), and the Pub/Sub emulator killed and started again while
ERPNext keeps sending: nothing lost, nothing doubled.

The Pub/Sub emulator keeps nothing across a restart (GCP keeps topics, subscriptions and
unacknowledged messages), so it is killed between batches, after the first was applied, and
its topics and subscriptions are made again as infra/ declares them; the webhooks that arrive
meanwhile are answered 503 and retried, as ERPNext retries them.

Some minutes: `make reliability`.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from devstack.emulators import launch_emulator
from devstack.stack import CONSUMER_FUNCTIONS, Devstack, running_devstack
from shared.adapters.pubsub import ensure_topic
from shared.core.routing import DEAD_LETTER, TOPICS
from tests.e2e import wait_until
from tests.reliability.scenario import (
    Delivery,
    Scenario,
    alerts,
    deliver,
    drive_copies,
    make_scenario,
    scheduled_jobs,
    sheet_differences,
    wait_all_once,
)

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(2400)]

SECRET = "restart-suite-secret"


@pytest.fixture(scope="module")
def stack() -> Iterator[Devstack]:
    """Emulators of its own: this test kills them."""
    extra = {
        "TELEGRAM_GROUP_WINDOW_SECONDS": "0.5",
        "SHEETS_GATHER_SECONDS": "1",
        "MAX_DELIVERY_ATTEMPTS": "10",
        "ERROR_RETRY_AFTER_SECONDS": "20",
    }
    with running_devstack(webhook_secret=SECRET, extra_env=extra, project="restarts") as running:
        yield running


def shuffled_twice(made: Scenario, seed: int) -> list[Delivery]:
    deliveries = made.posts * 2
    random.Random(seed).shuffle(deliveries)
    return deliveries


def in_background(
    deliveries: list[Delivery], attempts: int = 10
) -> tuple[threading.Thread, Counter[int]]:
    statuses: Counter[int] = Counter()

    def run() -> None:
        statuses.update(deliver(deliveries, attempts=attempts))

    thread = threading.Thread(target=run)
    thread.start()
    return thread, statuses


def assert_applied_once(stack: Devstack, made: Scenario) -> None:
    assert wait_until(lambda: not sheet_differences(stack, made.invoices), timeout=900, every=5), (
        sheet_differences(stack, made.invoices)[:10]
    )
    assert wait_until(
        lambda: all(drive_copies(stack, made.files).values()), timeout=900, every=5
    ), [name for name, n in drive_copies(stack, made.files).items() if not n]
    assert set(drive_copies(stack, made.files).values()) == {1}, "a file was copied twice"
    admins = wait_all_once(lambda: alerts(stack, "admins", made.invoices), made.invoices, 900)
    team = wait_all_once(lambda: alerts(stack, "service_team", made.issues), made.issues, 900)
    for sent, names in ((admins, made.invoices), (team, made.issues)):
        assert sorted(sent) == sorted(names) and set(sent.values()) == {1}, sent


def test_consumers_killed_mid_batch_and_emulators_restarted_lose_and_double_nothing(
    stack: Devstack,
) -> None:
    first = make_scenario(stack, SECRET, invoices=80, files=30, issues=30, tag="Crash")
    second = make_scenario(stack, SECRET, invoices=40, files=15, issues=15, tag="Outage")
    # The Pub/Sub emulator never redelivers a push whose connection died with the worker (GCP
    # does): the jobs that catch what webhooks and deliveries miss run, as in production.
    with scheduled_jobs(stack, safety_nets=True):
        # 1. kill -9 of every consumer mid-batch, and a Firestore outage of 15 s.
        posting, statuses = in_background(shuffled_twice(first, 1))
        time.sleep(4)
        for spec in CONSUMER_FUNCTIONS.values():
            stack.crash(spec.target)
        time.sleep(4)
        firestore = stack.emulators.firestore.process.pid
        os.killpg(firestore, signal.SIGSTOP)
        time.sleep(15)
        os.killpg(firestore, signal.SIGCONT)
        posting.join()
        assert statuses == Counter({200: 2 * len(first.posts)}), statuses
        assert_applied_once(stack, first)

        # 2. Pub/Sub killed while ERPNext sends, started again 10 s later on its port.
        old = stack.emulators.pubsub
        old.kill()
        posting, statuses = in_background(shuffled_twice(second, 2), attempts=60)
        time.sleep(10)
        restarted = launch_emulator("pubsub", stack.log_dir, port=old.port)
        try:
            restarted.wait_listening(60)
            for topic in (*TOPICS, DEAD_LETTER):
                ensure_topic(stack.project, topic)
            stack.subscribe()
            posting.join()
            assert statuses == Counter({200: 2 * len(second.posts)}), statuses
            assert_applied_once(stack, second)
            assert_applied_once(stack, first)  # still once
        finally:
            restarted.stop()
