"""Crashes and restarts: every consumer's worker killed with kill -9 in the middle of a batch (a
new one takes its place, as a new Cloud Run instance would), the Firestore emulator frozen
mid-batch (an outage: every call hangs, then it is back with its data, as Firestore would be),
then restarted between batches, and the Pub/Sub emulator killed and started again while ERPNext
keeps sending: nothing lost, nothing doubled. The notifier is killed while Telegram (and Twilio,
when a WhatsApp send comes in time) holds the answer to a message it took: such alerts are in
doubt; WhatsApp's are looked up at Twilio and not sent again, Telegram's go again headed by the
repeat notice (announced, never a plain double).

Where the emulators differ from GCP, the suite plays GCP's part:
- the Pub/Sub emulator never redelivers a push whose worker died (GCP does, after the ack
  deadline): once the dead workers' claims have expired, ERPNext sends the batch once more;
- the Firestore emulator keeps nothing across a restart (its --export-on-exit wrote nothing
  here): its data is exported before the kill and imported by the new one, on the same port;
- the Pub/Sub emulator keeps nothing across a restart (GCP keeps topics, subscriptions and
  unacknowledged messages): it is killed between batches, after the first was applied, and its
  topics and subscriptions are made again as infra/ declares them; the webhooks that arrive
  meanwhile are answered 503 and retried, as ERPNext retries them.

Some minutes: `make reliability`.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from devstack.emulators import export_firestore, launch_emulator
from devstack.stack import CONSUMER_FUNCTIONS, Devstack, running_devstack
from devstack.waiting import wait_until
from shared.adapters.pubsub import ensure_topic
from shared.core.routing import DEAD_LETTER, TOPICS
from tests.reliability.scenario import (
    SUITE_ENV,
    Delivery,
    Scenario,
    assert_applied_once,
    deliver,
    make_scenario,
    scheduled_jobs,
    shuffled_twice,
)

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(2400)]

SECRET = "restart-suite-secret"
CLAIM_LEASE_S = 60
"""How long a dead worker's claims hold before a redelivery may take them over (120 s by
default; a minute is still three times the notifier's 20 s budget)."""


@pytest.fixture(scope="module")
def stack() -> Iterator[Devstack]:
    """Emulators of its own: this test kills them."""
    with running_devstack(
        webhook_secret=SECRET,
        extra_env={**SUITE_ENV, "CLAIM_LEASE_SECONDS": str(CLAIM_LEASE_S)},
        project="restarts",
    ) as running:
        yield running


def in_background(deliveries: list[Delivery]) -> tuple[threading.Thread, Counter[int]]:
    statuses: Counter[int] = Counter()

    def run() -> None:
        statuses.update(deliver(deliveries))

    thread = threading.Thread(target=run)
    thread.start()
    return thread, statuses


def mid_batch(stack: Devstack, made: Scenario) -> bool:
    """The sheet and Drive consumers have each begun applying the batch."""
    names = {"sheets_sync": set(made.invoices), "drive_upload": set(made.files)}
    applied = {
        function: {
            o.get("name")
            for o in stack.outcomes()
            if o.get("consumer") == function and o["outcome"] == "applied"
        }
        & wanted
        for function, wanted in names.items()
    }
    return all(applied.values())


def kill_notifier_mid_send(stack: Devstack) -> int:
    """kill -9 of the notifier's worker while Telegram holds the answer to a message it has
    taken (and Twilio too, when a WhatsApp send comes within 10 s): those sends' outcomes die
    with the worker. How many held answers the kill caught."""
    held = (stack.telegram.faults, stack.twilio.faults)
    for faults in held:
        faults.timeout_s = 30.0  # longer than the clients wait; the kill comes first
        faults.fail_next("timeout_after_apply")

    def caught() -> int:
        return sum(faults.injected["timeout_after_apply"] for faults in held)

    assert wait_until(lambda: caught() >= 1, timeout=120, every=0.1), "no send to hold"
    wait_until(lambda: caught() == 2, timeout=10, every=0.1)
    stack.crash(CONSUMER_FUNCTIONS["notifier"].target)
    return caught()


def test_consumers_killed_mid_batch_and_emulators_restarted_lose_and_double_nothing(
    stack: Devstack, capsys: pytest.CaptureFixture[str]
) -> None:
    first = make_scenario(
        stack, SECRET, invoices=80, files=30, issues=30, resolved_every=3, tag="Crash"
    )
    second = make_scenario(stack, SECRET, invoices=40, files=15, issues=15, tag="Outage")
    # The jobs that catch what webhooks and deliveries miss run, as in production.
    with scheduled_jobs(stack, safety_nets=True), ExitStack() as restarted:
        # 1. kill -9 of every consumer mid-batch, and a Firestore outage of 15 s.
        posting, statuses = in_background(shuffled_twice(first, 1))
        assert wait_until(lambda: mid_batch(stack, first), timeout=120), "the batch never began"
        for name in ("sheets_sync", "drive_upload"):
            stack.crash(CONSUMER_FUNCTIONS[name].target)
        held = kill_notifier_mid_send(stack)
        killed_at = time.monotonic()
        firestore = stack.emulators.firestore.process.pid
        os.killpg(firestore, signal.SIGSTOP)
        time.sleep(15)  # the outage's length, chosen: nothing is waited for
        os.killpg(firestore, signal.SIGCONT)
        posting.join()
        assert statuses == Counter({200: 2 * len(first.posts)}), statuses
        # GCP redelivers a push whose worker died once its ack deadline passes; the emulator
        # never does. Its redelivery is played by the batch coming once more (the same events,
        # the same ids) once the dead workers' claims may be taken over.
        time.sleep(max(0.0, killed_at + CLAIM_LEASE_S + 5 - time.monotonic()))
        assert deliver(list(first.posts)) == Counter({200: len(first.posts)})
        repeats = assert_applied_once(stack, first)
        with capsys.disabled():  # the figures, for the report
            sys.stderr.write(
                f"\nthe notifier killed holding {held} sent messages' answers (Telegram, and "
                f"Twilio when 2); announced Telegram repeats after the kills: {repeats}\n"
            )
        # The message Telegram took went again, announced: its outcome died with the worker.
        assert repeats >= 1

        # 2. Firestore restarted between batches: its data exported, the emulator killed and
        # started again on its port with that data (the emulator keeps nothing otherwise;
        # Firestore itself loses no write). The first batch once more changes nothing.
        old_firestore = stack.emulators.firestore
        saved = export_firestore(old_firestore, stack.project, stack.log_dir / "firestore-export")
        old_firestore.kill()
        firestore_again = launch_emulator(
            "firestore", stack.log_dir, port=old_firestore.port, import_data=saved
        )
        restarted.callback(firestore_again.stop)
        firestore_again.wait_listening(60)
        assert deliver(list(first.posts)) == Counter({200: len(first.posts)})
        assert_applied_once(stack, first)

        # 3. Pub/Sub killed while ERPNext sends, started again 10 s later on its port.
        old_pubsub = stack.emulators.pubsub
        old_pubsub.kill()
        posting, statuses = in_background(shuffled_twice(second, 2))
        time.sleep(10)  # the outage's length, chosen: nothing is waited for
        pubsub_again = launch_emulator("pubsub", stack.log_dir, port=old_pubsub.port)
        restarted.callback(pubsub_again.stop)
        pubsub_again.wait_listening(60)
        for topic in (*TOPICS, DEAD_LETTER):
            ensure_topic(stack.project, topic)
        stack.subscribe()
        posting.join()
        assert statuses == Counter({200: 2 * len(second.posts)}), statuses
        assert_applied_once(stack, second)
        assert_applied_once(stack, first)  # still once
