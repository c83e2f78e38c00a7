"""Reading what was published, from a pull subscription on the Pub/Sub emulator."""

from __future__ import annotations

import time
from typing import Any

from google.cloud import pubsub_v1


def pull(project: str, subscription: str, *, want: int = 1, within_s: float = 10) -> list[Any]:
    """Pull (and ack) until `want` messages came or the time is up."""
    messages: list[Any] = []
    deadline = time.monotonic() + within_s
    with pubsub_v1.SubscriberClient() as subscriber:
        path = subscriber.subscription_path(project, subscription)
        while len(messages) < want and time.monotonic() < deadline:
            response = subscriber.pull(
                request={"subscription": path, "max_messages": 10}, timeout=5
            )
            received = response.received_messages
            if received:
                subscriber.acknowledge(
                    request={"subscription": path, "ack_ids": [m.ack_id for m in received]}
                )
            messages += [m.message for m in received]
    return messages
