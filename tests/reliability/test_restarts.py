"""Crashes and restarts: every consumer's worker killed with kill -9 in the middle of a batch (a
new one takes its place, as a new Cloud Run instance would), the Firestore emulator frozen
mid-batch (an outage: every call hangs, then it is back with its data, as Firestore would be),
and the Pub/Sub emulator killed and started again while ERPNext keeps sending: nothing lost,
nothing doubled.

The Pub/Sub emulator keeps nothing across a restart (GCP keeps topics, subscriptions and
unacknowledged messages), so it is killed between batches, after the first was applied, and
its topics and subscriptions are made again as infra/ declares them; the webhooks that arrive
meanwhile are answered 503 and retried, as ERPNext retries them.

Some minutes: `make reliability`.
"""

from __future__ import annotations

import os
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
from tests.reliability.scenario import (
    SUITE_ENV,
    Delivery,
    assert_applied_once,
    deliver,
    make_scenario,
    scheduled_jobs,
    shuffled_twice,
)

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(2400)]

SECRET = "restart-suite-secret"


@pytest.fixture(scope="module")
def stack() -> Iterator[Devstack]:
    """Emulators of its own: this test kills them."""
    with running_devstack(
        webhook_secret=SECRET, extra_env=SUITE_ENV, project="restarts"
    ) as running:
        yield running


def in_background(
    deliveries: list[Delivery], attempts: int = 10
) -> tuple[threading.Thread, Counter[int]]:
    statuses: Counter[int] = Counter()

    def run() -> None:
        statuses.update(deliver(deliveries, attempts=attempts))

    thread = threading.Thread(target=run)
    thread.start()
    return thread, statuses


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
