"""erp_webhook through functions-framework, as deployed, against the real Pub/Sub emulator."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from functions_framework import create_app
from google.cloud import pubsub_v1
from prometheus_client import REGISTRY

from devstack.emulators import Emulators
from devstack.faultproxy import FaultProxy
from shared.adapters.pubsub import ensure_pull_subscription, ensure_topic
from shared.core.routing import DEAD_LETTER, TOPICS
from shared.errors import ConfigurationError
from shared.platform import metrics
from tests.helpers.frappe import develop_body, frappe_signature, hex_signature, v15_body

SECRET = "webhook-secret-for-tests"
SOURCE = "functions/erp_webhook/main.py"
INVOICE = {
    "doctype": "Sales Invoice",
    "name": "SINV-0001",
    "customer": "ACME",
    "grand_total": 5000.0,
    "modified": "2026-11-23 10:00:00.000001",
}


def signature(body: bytes, secret: str = SECRET) -> str:
    return frappe_signature(secret, body)


@dataclass
class Webhook:
    post: Callable[..., object]
    pull: Callable[[str], list[pubsub_v1.types.PubsubMessage]]
    project: str


def pull_all(project: str, subscriber: pubsub_v1.SubscriberClient, topic: str) -> list:
    """Every message waiting on the observer subscription of `topic` (pulls until one comes empty)."""
    path = subscriber.subscription_path(project, f"observe-{topic}")
    messages = []
    while True:
        response = subscriber.pull(
            request={"subscription": path, "max_messages": 100, "return_immediately": True},
            timeout=10,
        )
        if not response.received_messages:
            return messages
        messages += [m.message for m in response.received_messages]
        subscriber.acknowledge(
            request={
                "subscription": path,
                "ack_ids": [m.ack_id for m in response.received_messages],
            }
        )


def make_app(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return create_app("receive_erp_webhook", SOURCE, "http").test_client()


@pytest.fixture
def webhook(
    emulators: Emulators, project_id: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Webhook]:
    for topic in (*TOPICS, DEAD_LETTER):
        ensure_topic(project_id, topic)
        ensure_pull_subscription(project_id, f"observe-{topic}", topic)
    client = make_app(
        monkeypatch,
        {"GCP_PROJECT": project_id, "ERP_SITE": "erp.example.com", "WEBHOOK_SECRET": SECRET},
    )
    subscriber = pubsub_v1.SubscriberClient()

    def post(body: bytes, *, sign: str | None = None, query: str = "", **headers: str):
        if sign is None:
            sign = signature(body)
        all_headers = {"Content-Type": "application/json", **headers}
        if sign:
            all_headers["X-Frappe-Webhook-Signature"] = sign
        return client.post("/" + query, data=body, headers=all_headers)

    yield Webhook(post, lambda topic: pull_all(project_id, subscriber, topic), project_id)
    subscriber.close()


def nothing_published(webhook: Webhook) -> bool:
    return all(webhook.pull(topic) == [] for topic in TOPICS)


@pytest.mark.parametrize("make_body", [v15_body, develop_body])
def test_accepted_and_published_when_signed_in_either_frappe_format(
    webhook: Webhook, make_body
) -> None:
    response = webhook.post(make_body(INVOICE))
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    (message,) = webhook.pull("erp-invoices")
    envelope = json.loads(message.data)
    assert envelope["event_id"] == answer["event_id"]
    assert envelope["event_type"] == "erpnext.sales_invoice.on_submit"
    assert envelope["doc"]["grand_total"] == 5000.0
    assert dict(message.attributes) == {
        "event_type": "erpnext.sales_invoice.on_submit",
        "doctype": "Sales Invoice",
        "event_id": answer["event_id"],
    }


def test_form_content_type_is_read_as_json_when_frappe_sends_form_mode(webhook: Webhook) -> None:
    body = v15_body(INVOICE)
    response = webhook.post(body, **{"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200
    assert len(webhook.pull("erp-invoices")) == 1


def test_same_change_in_both_formats_has_one_event_id(webhook: Webhook) -> None:
    first = webhook.post(v15_body(INVOICE)).get_json()
    second = webhook.post(develop_body(INVOICE)).get_json()
    assert first["event_id"] == second["event_id"]


@pytest.mark.parametrize(
    ("body", "sign", "why"),
    [
        (v15_body(INVOICE).replace(b"5000.0", b"9000.0"), signature(v15_body(INVOICE)), "tampered"),
        (v15_body(INVOICE), signature(v15_body(INVOICE), "wrong-secret"), "wrong secret"),
        (
            v15_body(INVOICE),
            hex_signature(SECRET, v15_body(INVOICE)),
            "hex",
        ),
        (v15_body(INVOICE), "", "missing"),
    ],
)
def test_401_and_nothing_published_when_signature_is_bad(
    webhook: Webhook, body: bytes, sign: str, why: str
) -> None:
    response = webhook.post(body, sign=sign)
    assert response.status_code == 401
    assert SECRET not in response.get_data(as_text=True)
    assert nothing_published(webhook)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"x" * 1_000_001, 413),
        (b"doctype=Sales+Invoice&name=SINV-1", 400),
        (b"[1, 2]", 400),
        (v15_body({"doctype": "Sales Invoice"}), 422),
        (v15_body({"name": "SINV-0001"}), 422),
        (json.dumps(INVOICE).encode(), 422),
    ],
)
def test_bad_input_gets_its_answer_and_nothing_is_published(
    webhook: Webhook, body: bytes, status: int
) -> None:
    response = webhook.post(body)
    assert response.status_code == status
    assert "error" in response.get_json()
    assert nothing_published(webhook)


def unrouted_count(doctype: str) -> float:
    """The unrouted counter for `doctype`, as Prometheus would scrape it."""
    metrics.install_prometheus()  # as METRICS_PORT would have it deployed
    wanted = {"doctype": doctype, "event": "on_update", "outcome": "unrouted"}
    return sum(
        sample.value
        for family in REGISTRY.collect()
        for sample in family.samples
        if sample.name == "bridge_webhooks_received_total"
        and wanted.items() <= sample.labels.items()
    )


def test_unrouted_doctype_is_202_counted_and_not_published(webhook: Webhook) -> None:
    before = unrouted_count("ToDo")
    response = webhook.post(v15_body({"doctype": "ToDo", "name": "T-1"}, "on_update"))
    assert response.status_code == 202
    assert unrouted_count("ToDo") == before + 1
    assert nothing_published(webhook)


def test_refuses_to_start_without_a_secret(
    emulators: Emulators, project_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WEBHOOK_SECRET", raising=False)
    with pytest.raises(ConfigurationError, match="WEBHOOK_SECRET"):
        make_app(monkeypatch, {"GCP_PROJECT": project_id, "ERP_SITE": "erp.example.com"})


def test_unsigned_accepted_only_with_the_local_insecure_flag(
    emulators: Emulators, project_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ensure_topic(project_id, "erp-invoices")
    monkeypatch.delenv("WEBHOOK_SECRET", raising=False)
    client = make_app(
        monkeypatch,
        {
            "GCP_PROJECT": project_id,
            "ERP_SITE": "erp.example.com",
            "BRIDGE_INSECURE_UNSIGNED_WEBHOOKS": "local-only",
        },
    )
    response = client.post("/", data=v15_body(INVOICE))
    assert response.status_code == 200


def test_503_while_pubsub_is_down_and_every_accepted_event_is_published(
    emulators: Emulators, project_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, port = emulators.pubsub.host.split(":")
    proxy = FaultProxy(host, int(port)).start()
    try:
        ensure_topic(project_id, "erp-invoices")
        ensure_pull_subscription(project_id, "observe-erp-invoices", "erp-invoices")
        client = make_app(
            monkeypatch,
            {
                "GCP_PROJECT": project_id,
                "ERP_SITE": "erp.example.com",
                "WEBHOOK_SECRET": SECRET,
                "PUBSUB_EMULATOR_HOST": proxy.address,
                "PUBLISH_TIMEOUT_SECONDS": "3",
            },
        )
        accepted: set[str] = set()
        answers = []
        for step in range(9):
            if step == 3:
                proxy.cut()
            if step == 6:
                proxy.restore()
            doc = {**INVOICE, "name": f"SINV-{step:04d}"}
            body = v15_body(doc)
            response = client.post(
                "/",
                data=body,
                headers={"X-Frappe-Webhook-Signature": signature(body)},
            )
            answers.append(response.status_code)
            if response.status_code == 200:
                accepted.add(response.get_json()["event_id"])
        assert answers[:3] == [200, 200, 200]
        assert answers[3:6] == [503, 503, 503]
        assert 200 in answers[6:]
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emulators.pubsub.host)
        subscriber = pubsub_v1.SubscriberClient()
        published = {
            json.loads(m.data)["event_id"] for m in pull_all(project_id, subscriber, "erp-invoices")
        }
        subscriber.close()
        assert accepted <= published
    finally:
        proxy.stop()
