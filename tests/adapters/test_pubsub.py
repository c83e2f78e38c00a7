"""The Pub/Sub publisher and admin helpers against the real Pub/Sub emulator."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterator

import pytest

from devstack.sockets import free_port
from shared.adapters.pubsub import (
    PubSubPublisher,
    ensure_pull_subscription,
    ensure_push_subscription,
    ensure_topic,
)
from shared.errors import ConfigurationError, UpstreamUnavailable
from tests.helpers.pubsub import pull
from tests.helpers.receivers import WebhookReceiver

ATTRIBUTES = {"event_type": "erpnext.sales_invoice.on_submit", "event_id": "e1"}


@pytest.fixture
def receivers() -> Iterator[list[WebhookReceiver]]:
    """Two push endpoints (answering 204, as a consumer does), stopped after the test."""
    with WebhookReceiver(status=204) as old, WebhookReceiver(status=204) as new:
        yield [old, new]


def test_publish_all_returns_an_id_per_topic_when_every_topic_exists(project_id: str) -> None:
    topics = ["erp-invoices", "erp-files", "erp-service-requests"]
    for topic in topics:
        ensure_topic(project_id, topic)
        ensure_pull_subscription(project_id, f"observe-{topic}", topic)

    message_ids = PubSubPublisher(project_id, timeout_s=5).publish_all(
        topics, b'{"event_id":"e1"}', ATTRIBUTES
    )

    assert len(message_ids) == 3
    assert all(message_ids)
    for topic, message_id in zip(topics, message_ids, strict=True):
        (message,) = pull(project_id, f"observe-{topic}")
        assert message.message_id == message_id
        assert message.data == b'{"event_id":"e1"}'
        assert dict(message.attributes) == ATTRIBUTES


def test_one_publisher_serves_many_calls_when_reused(project_id: str) -> None:
    ensure_topic(project_id, "erp-invoices")
    ensure_pull_subscription(project_id, "observe", "erp-invoices")
    publisher = PubSubPublisher(project_id, timeout_s=5)

    ids = [publisher.publish_all(["erp-invoices"], f"{n}".encode(), {}) for n in range(5)]

    assert len({message_id for (message_id,) in ids}) == 5
    assert sorted(m.data for m in pull(project_id, "observe", want=5)) == [
        b"0",
        b"1",
        b"2",
        b"3",
        b"4",
    ]


def test_upstream_unavailable_and_logged_when_topic_is_missing(
    project_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    ensure_topic(project_id, "erp-invoices")
    caplog.set_level(logging.ERROR, logger="shared.adapters.pubsub")

    with pytest.raises(UpstreamUnavailable) as raised:
        PubSubPublisher(project_id, timeout_s=5).publish_all(
            ["erp-invoices", "erp-missing"], b"{}", ATTRIBUTES
        )

    assert raised.value.service == "pubsub"
    assert "erp-missing" in str(raised.value)
    assert any("erp-missing" in record.getMessage() for record in caplog.records)


def test_upstream_unavailable_within_the_timeout_when_pubsub_is_unreachable(
    project_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    publisher = PubSubPublisher(project_id, timeout_s=2)

    started = time.monotonic()
    with pytest.raises(UpstreamUnavailable) as raised:
        publisher.publish_all(["erp-invoices", "erp-files"], b"{}", ATTRIBUTES)

    assert time.monotonic() - started < 4
    assert raised.value.service == "pubsub"


def test_ensure_helpers_change_nothing_when_called_twice(project_id: str) -> None:
    first = ensure_topic(project_id, "erp-invoices")
    assert (
        ensure_topic(project_id, "erp-invoices")
        == first
        == (f"projects/{project_id}/topics/erp-invoices")
    )
    ensure_pull_subscription(project_id, "observe", "erp-invoices")
    ensure_pull_subscription(project_id, "observe", "erp-invoices")

    PubSubPublisher(project_id, timeout_s=5).publish_all(["erp-invoices"], b"once", {})

    assert [m.data for m in pull(project_id, "observe")] == [b"once"]


@pytest.mark.parametrize("name", ["ab", "1abc", "goog-topic", "a:b"])
def test_ensure_topic_refuses_when_name_is_not_a_pubsub_id(project_id: str, name: str) -> None:
    with pytest.raises(ConfigurationError, match="not valid for Pub/Sub"):
        ensure_topic(project_id, name)


def test_push_reaches_the_new_endpoint_when_a_subscription_is_repointed(
    project_id: str, receivers: list[WebhookReceiver]
) -> None:
    old, new = receivers
    ensure_topic(project_id, "erp-invoices")
    publisher = PubSubPublisher(project_id, timeout_s=5)
    ensure_push_subscription(
        project_id, "sheets-sync", "erp-invoices", push_endpoint=f"{old.url}/push"
    )
    publisher.publish_all(["erp-invoices"], b"first", ATTRIBUTES)
    (first,) = (post.json() for post in old.wait_for(1))

    ensure_push_subscription(
        project_id, "sheets-sync", "erp-invoices", push_endpoint=f"{new.url}/push"
    )
    publisher.publish_all(["erp-invoices"], b"second", ATTRIBUTES)
    (second,) = (post.json() for post in new.wait_for(1))

    assert base64.b64decode(first["message"]["data"]) == b"first"
    assert base64.b64decode(second["message"]["data"]) == b"second"
    assert second["message"]["attributes"] == ATTRIBUTES
    assert len(old.posts) == 1


def test_message_dead_lettered_when_the_push_endpoint_keeps_failing(
    project_id: str, receivers: list[WebhookReceiver]
) -> None:
    failing = receivers[0]
    failing.status = 500
    ensure_topic(project_id, "erp-invoices")
    ensure_topic(project_id, "erp-dead-letter")
    ensure_pull_subscription(project_id, "dead-letter-observer", "erp-dead-letter")
    ensure_push_subscription(
        project_id,
        "sheets-sync",
        "erp-invoices",
        push_endpoint=f"{failing.url}/push",
        dead_letter_topic="erp-dead-letter",
        max_delivery_attempts=5,
        min_backoff_s=1,
        max_backoff_s=2,
        ack_deadline_s=10,
    )

    PubSubPublisher(project_id, timeout_s=5).publish_all(["erp-invoices"], b"poison", ATTRIBUTES)

    (dead,) = pull(project_id, "dead-letter-observer", within_s=30)
    assert dead.data == b"poison"
    assert len(failing.posts) == 5
