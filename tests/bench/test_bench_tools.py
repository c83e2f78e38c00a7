"""The benchmark's own tools, run briefly so they cannot rot: the naive handler and the load generator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bench.ingress_bench import (
    AUDIT_SUBSCRIPTION,
    NAIVE,
    create_audit_subscription,
    pull_names,
    serving,
    webhook_url,
)
from bench.load import run_load
from devstack.emulators import Emulators
from devstack.processes import ServerProcess
from shared.adapters.pubsub import ensure_topic
from shared.core.routing import INVOICES

SECRET = "bench-test-secret"


@pytest.fixture
def naive_handler(emulators: Emulators, project_id: str, tmp_path: Path) -> Iterator[ServerProcess]:
    ensure_topic(project_id, INVOICES)
    create_audit_subscription(project_id, INVOICES)
    env = {
        **emulators.env(),
        "GCP_PROJECT": project_id,
        "GOOGLE_CLOUD_PROJECT": project_id,
        "WEBHOOK_SECRET": SECRET,
        "NAIVE_TOPIC": INVOICES,
    }
    with serving(NAIVE, env, tmp_path) as server:
        yield server


def test_every_request_the_naive_handler_accepts_is_in_pubsub_when_loaded_briefly(
    naive_handler: ServerProcess, project_id: str
) -> None:
    result = run_load(webhook_url(naive_handler), SECRET, connections=4, requests_total=40)

    assert len(result.samples) == 40
    assert {sample.status for sample in result.samples} == {200}
    assert all(sample.latency_s > 0 for sample in result.samples)
    assert pull_names(project_id, AUDIT_SUBSCRIPTION) == {s.name for s in result.samples}


def test_the_naive_handler_refuses_a_wrong_signature_and_publishes_nothing_when_signed_badly(
    naive_handler: ServerProcess, project_id: str
) -> None:
    answer = requests.post(
        webhook_url(naive_handler),
        data=b'{"doctype": "Sales Invoice", "name": "SINV-BAD"}',
        headers={"X-Frappe-Webhook-Signature": "bm90IHRoZSBzaWduYXR1cmU="},
        timeout=10,
    )

    assert answer.status_code == 401
    assert pull_names(project_id, AUDIT_SUBSCRIPTION) == set()


def test_the_load_generator_stops_after_the_seconds_it_was_given_when_timed(
    naive_handler: ServerProcess,
) -> None:
    result = run_load(webhook_url(naive_handler), SECRET, connections=2, seconds=1.0)

    assert result.accepted
    assert 1.0 <= result.seconds < 3.0
    assert len({sample.name for sample in result.samples}) == len(result.samples)
