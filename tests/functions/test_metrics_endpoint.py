"""Each function's /metrics, scraped as Prometheus would, from functions-framework processes.

The functions run as deployed (functions-framework under gunicorn, which forks its worker after
importing the function), so this also proves the endpoint serves the worker's instruments.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.samples import Sample

from devstack.emulators import Emulators
from devstack.stack import (
    DEAD_LETTERS,
    WEBHOOK,
    FunctionSpec,
    RunningFunction,
    launch_function,
    scrape,
    wait_serving,
)
from shared.adapters.pubsub import ensure_topic
from shared.core.routing import DEAD_LETTER, TOPICS
from tests.helpers.frappe import frappe_signature, v15_body

SECRET = "metrics-test-webhook-secret"
INVOICE = {"doctype": "Sales Invoice", "name": "SINV-0042", "modified": "2026-11-23 10:00:00"}


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when none)."""
    return sum(
        sample.value
        for sample in samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


@pytest.fixture
def start(
    emulators: Emulators, project_id: str, tmp_path: Path
) -> Iterator[dict[str, RunningFunction]]:
    for topic in (*TOPICS, DEAD_LETTER):
        ensure_topic(project_id, topic)
    env = {
        **emulators.env(),
        "GCP_PROJECT": project_id,
        "GOOGLE_CLOUD_PROJECT": project_id,
        "ERP_SITE": "erp.example.com",
        "WEBHOOK_SECRET": SECRET,
    }
    running: dict[str, RunningFunction] = {}

    def launched(spec: FunctionSpec) -> RunningFunction:
        running[spec.target] = launch_function(spec, env, tmp_path)
        return running[spec.target]

    yield {spec.target: wait_serving(launched(spec)) for spec in (WEBHOOK, DEAD_LETTERS)}
    for function in running.values():
        function.stop()


def post_webhook(function: RunningFunction, body: bytes, signature: str, query: str = "") -> int:
    response = requests.post(
        f"{function.url}/{query}",
        data=body,
        headers={"X-Frappe-Webhook-Signature": signature, "Content-Type": "application/json"},
        timeout=30,
    )
    return response.status_code


def test_webhook_outcomes_and_publish_latency_are_scraped_from_the_functions_worker(
    start: dict[str, RunningFunction],
) -> None:
    webhook = start[WEBHOOK.target]
    body = v15_body(INVOICE)
    assert post_webhook(webhook, body, frappe_signature(SECRET, body)) == 200
    # Refused requests say nothing we trust: whatever their URL claims, their labels are fixed,
    # so junk cannot push the real label sets out of the metric.
    for n in range(3):
        junk = f"?doctype=Junk+{n}&event=junk_{n}"
        assert post_webhook(webhook, body, frappe_signature("a guess", body), junk) == 401
        flat = json.dumps(INVOICE).encode()
        assert post_webhook(webhook, flat, frappe_signature(SECRET, flat), junk) == 422
    todo = v15_body({"doctype": "ToDo", "name": "T-1"}, "after_insert")
    assert post_webhook(webhook, todo, frappe_signature(SECRET, todo)) == 202

    samples = scrape(webhook.metrics_url)
    received = "bridge_webhooks_received_total"
    assert value(samples, received, doctype="Sales Invoice", outcome="accepted") == 1
    unknown = {"doctype": "unknown", "event": "unknown"}
    assert value(samples, received, **unknown, outcome="rejected_signature") == 3
    assert value(samples, received, **unknown, outcome="rejected_payload") == 3
    assert value(samples, received, doctype="ToDo", outcome="unrouted") == 1
    labels = {sample.labels.get("doctype") for sample in samples if sample.name == received}
    assert labels == {"Sales Invoice", "ToDo", "unknown"}
    assert value(samples, "bridge_publish_latency_seconds_count", outcome="ok") == 1


def test_dead_letters_and_pending_errors_are_scraped_after_a_dead_letter(
    start: dict[str, RunningFunction],
) -> None:
    recorder = start[DEAD_LETTERS.target]
    envelope = {"event_id": "e-dead", "doctype": "Issue", "name": "ISS-1"}
    push = {
        "message": {
            "data": base64.b64encode(json.dumps(envelope).encode()).decode(),
            "attributes": {
                "CloudPubSubDeadLetterSourceSubscription": "notifier",
                "CloudPubSubDeadLetterSourceDeliveryCount": "5",
                "doctype": "Issue",
            },
            "messageId": "1",
        },
        "subscription": "projects/p/subscriptions/dead-letter",
    }
    response = requests.post(
        f"{recorder.url}/",
        data=json.dumps(push),
        headers={
            "Content-Type": "application/json",
            "ce-specversion": "1.0",
            "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
            "ce-source": f"//pubsub.googleapis.com/projects/p/topics/{DEAD_LETTER}",
            "ce-id": "1",
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text

    samples = scrape(recorder.metrics_url)
    assert value(samples, "bridge_dead_letters_total", consumer="notifier") == 1
    assert value(samples, "bridge_pending_errors") == 1
