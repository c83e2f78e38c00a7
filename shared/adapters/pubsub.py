"""Google Cloud Pub/Sub: the webhook's publisher, and the admin helpers the devstack and tests use.

The clients honour PUBSUB_EMULATOR_HOST by themselves: emulator or GCP is configuration, not code.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any, cast

from google.api_core import exceptions as google_errors
from google.api_core.retry import Retry, if_exception_type
from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient
from google.cloud.pubsub_v1.publisher.exceptions import MessageTooLargeError
from google.cloud.pubsub_v1.types import BatchSettings, PublisherOptions

from shared.adapters.gcp_errors import GOOGLE_FAILURES, TRANSIENT, describe
from shared.errors import ConfigurationError, UpstreamRejected, UpstreamUnavailable

log = logging.getLogger(__name__)

SERVICE = "pubsub"
DEFAULT_TIMEOUT_S = 10.0
BATCH_WINDOW_S = 0.002
"""How long the SDK holds a message for others to join its batch (its default is 10 ms). Every
webhook waits for its publish, so the window is added to every answer; concurrent webhooks
still share a batch within 2 ms. Measured by `make bench` at 16 connections (bench/REPORT.md):
the answer's p50 fell from 33 ms (10 ms window) to 22-29 ms, depending on the machine's load."""

# Pub/Sub's rule for topic and subscription ids (the emulator enforces it too, 3 chars at least).
_RESOURCE_ID = re.compile(r"^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$")


class PubSubPublisher:
    """Publishes one message to several topics at once and returns only when all are confirmed.

    Every failure becomes UpstreamUnavailable, so the webhook answers 503 and ERPNext retries.
    That includes a missing topic (NotFound) and refused permissions: they are infrastructure
    problems, loud in the log, and the very same request succeeds once infra is fixed, so a
    retry is what we want; acknowledging would lose the event. Only a request Pub/Sub calls
    malformed (InvalidArgument, e.g. a message over its size limit) is UpstreamRejected: no
    retry can make it acceptable.
    """

    def __init__(self, project: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._project = project
        self._timeout_s = timeout_s
        self._client: Any = None
        self._lock = threading.Lock()

    def _publisher(self) -> Any:
        """The SDK client, built on first use and then shared by every call on this instance."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    # The SDK keeps retrying for minutes by default; ours stops when the caller gives up,
                    # so no publish keeps running in the background after we answered 503.
                    options = PublisherOptions(
                        retry=Retry(
                            predicate=if_exception_type(*TRANSIENT),
                            initial=0.1,
                            maximum=1.0,
                            multiplier=2.0,
                            timeout=self._timeout_s,
                        ),
                        timeout=self._timeout_s,
                    )
                    self._client = PublisherClient(
                        publisher_options=options,
                        batch_settings=BatchSettings(max_latency=BATCH_WINDOW_S),
                    )
        return self._client

    def publish_all(
        self, topics: Sequence[str], data: bytes, attributes: Mapping[str, str]
    ) -> list[str]:
        """Publish to every topic concurrently; the message ids, in the order of `topics`."""
        deadline = time.monotonic() + self._timeout_s
        with self._translated(",".join(topics)):
            client = self._publisher()
        futures = []
        for topic in topics:
            with self._translated(topic):
                path = client.topic_path(self._project, topic)
                futures.append(client.publish(path, data, **attributes))
        message_ids = []
        for topic, future in zip(topics, futures, strict=True):
            with self._translated(topic):
                remaining = max(deadline - time.monotonic(), 0.0)
                message_ids.append(str(future.result(timeout=remaining)))
        return message_ids

    @contextmanager
    def _translated(self, topic: str) -> Iterator[None]:
        """Turn whatever the SDK, gRPC or the wait raised into the bridge's error tree."""
        try:
            yield
        except (google_errors.InvalidArgument, MessageTooLargeError) as exc:
            raise UpstreamRejected(
                f"pubsub refused the message for topic {topic}: {describe(exc)}", service=SERVICE
            ) from None
        except (
            google_errors.NotFound,
            google_errors.PermissionDenied,
            google_errors.Unauthenticated,
        ) as exc:
            log.error(
                "pubsub topic %s in project %s is missing or not ours to publish to (%s): "
                "fix the infrastructure; ERPNext will retry",
                topic,
                self._project,
                describe(exc),
            )
            raise UpstreamUnavailable(
                f"pubsub topic {topic} is not publishable: {describe(exc)}", service=SERVICE
            ) from None
        except GOOGLE_FAILURES as exc:
            raise UpstreamUnavailable(
                f"pubsub publish to {topic} failed: {describe(exc)}", service=SERVICE
            ) from None
        except TimeoutError:  # concurrent.futures.TimeoutError is this class since 3.11
            raise UpstreamUnavailable(
                f"pubsub did not confirm the publish to {topic} within {self._timeout_s:g} s",
                service=SERVICE,
            ) from None


# ---- admin: topics and subscriptions (devstack and tests; production uses Terraform) ----------


def check_resource_id(kind: str, resource_id: str) -> None:
    """Refuse ids Pub/Sub refuses: 3-255 chars, starting with a letter, no `goog` prefix."""
    if not _RESOURCE_ID.match(resource_id) or resource_id.lower().startswith("goog"):
        raise ConfigurationError(
            f"{kind} id {resource_id!r} is not valid for Pub/Sub (3-255 chars of letters, "
            "digits and - _ . ~ + %, starting with a letter, not starting with 'goog')"
        )


def ensure_topic(project: str, topic: str) -> str:
    """Create the topic unless it exists; its full path."""
    check_resource_id("topic", topic)
    client = PublisherClient()
    try:
        path = cast(str, client.topic_path(project, topic))
        with suppress(google_errors.AlreadyExists):
            client.create_topic(name=path)
        return path
    finally:
        client.transport.close()


def missing_topics(project: str, topics: Sequence[str]) -> list[str]:
    """The topics that do not exist (a connection test); errors into the tree."""
    client = PublisherClient()
    missing = []
    try:
        for topic in topics:
            try:
                client.get_topic(topic=client.topic_path(project, topic), timeout=10)
            except google_errors.NotFound:
                missing.append(topic)
            except GOOGLE_FAILURES as exc:
                raise UpstreamUnavailable(
                    f"pubsub get topic failed: {describe(exc)}", service=SERVICE
                ) from None
        return missing
    finally:
        client.transport.close()


def ensure_push_subscription(
    project: str,
    name: str,
    topic: str,
    *,
    push_endpoint: str,
    dead_letter_topic: str | None = None,
    max_delivery_attempts: int = 5,
    min_backoff_s: int = 10,
    max_backoff_s: int = 600,
    ack_deadline_s: int = 60,
) -> str:
    """Create the push subscription, or re-point an existing one at `push_endpoint` and settings."""
    return _ensure_subscription(
        project,
        name,
        topic,
        push_endpoint=push_endpoint,
        dead_letter_topic=dead_letter_topic,
        max_delivery_attempts=max_delivery_attempts,
        min_backoff_s=min_backoff_s,
        max_backoff_s=max_backoff_s,
        ack_deadline_s=ack_deadline_s,
    )


def ensure_pull_subscription(
    project: str,
    name: str,
    topic: str,
    *,
    dead_letter_topic: str | None = None,
    max_delivery_attempts: int = 5,
    min_backoff_s: int = 10,
    max_backoff_s: int = 600,
    ack_deadline_s: int = 10,
) -> str:
    """Create the pull subscription unless it exists (an observer in tests, a queue in the demo)."""
    return _ensure_subscription(
        project,
        name,
        topic,
        push_endpoint=None,
        dead_letter_topic=dead_letter_topic,
        max_delivery_attempts=max_delivery_attempts,
        min_backoff_s=min_backoff_s,
        max_backoff_s=max_backoff_s,
        ack_deadline_s=ack_deadline_s,
    )


def _ensure_subscription(
    project: str,
    name: str,
    topic: str,
    *,
    push_endpoint: str | None,
    dead_letter_topic: str | None,
    max_delivery_attempts: int,
    min_backoff_s: int,
    max_backoff_s: int,
    ack_deadline_s: int,
) -> str:
    check_resource_id("subscription", name)
    check_resource_id("topic", topic)
    if dead_letter_topic is not None:
        check_resource_id("topic", dead_letter_topic)
    with SubscriberClient() as client:
        path = cast(str, client.subscription_path(project, name))
        settings: dict[str, object] = {
            "push_config": {"push_endpoint": push_endpoint} if push_endpoint else {},
            "ack_deadline_seconds": ack_deadline_s,
            "retry_policy": {
                "minimum_backoff": {"seconds": min_backoff_s},
                "maximum_backoff": {"seconds": max_backoff_s},
            },
        }
        if dead_letter_topic:
            # Only when there is one: the emulator reads an empty policy as a topic named "".
            settings["dead_letter_policy"] = {
                "dead_letter_topic": f"projects/{project}/topics/{dead_letter_topic}",
                "max_delivery_attempts": max_delivery_attempts,
            }
        try:
            client.create_subscription(
                request={"name": path, "topic": f"projects/{project}/topics/{topic}", **settings}
            )
        except google_errors.AlreadyExists:
            # Re-apply every setting: a restarted function listens on a new URL.
            client.update_subscription(
                request={
                    "subscription": {"name": path, **settings},
                    "update_mask": {"paths": list(settings)},
                }
            )
        return path
