"""The webhook's service: verify, parse, build the envelope, publish to every routed topic.

It answers only after Pub/Sub confirmed every publish, so an accepted event is never lost.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from shared.core.envelope import Envelope, Json, build_envelope, is_doc_event
from shared.core.routing import RouteTable, topics_for
from shared.core.signature import verify_frappe_signature
from shared.errors import InvalidPayload, InvalidSignature
from shared.platform import logs, metrics
from shared.platform.ports import Publisher

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Accepted:
    envelope: Envelope
    topics: tuple[str, ...]
    message_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Unrouted:
    doctype: str
    event: str


@dataclass(frozen=True)
class Ingress:
    """Accepts one signed ERPNext webhook. `webhook_secret=None` only in local insecure mode."""

    site: str
    webhook_secret: str | None
    routes: RouteTable
    publisher: Publisher
    clock: Callable[[], datetime]
    max_body_bytes: int = 1_000_000

    def accept(self, raw_body: bytes, signature: str | None) -> Accepted | Unrouted:
        """Raise from the error tree on bad input (nothing published); return what happened.

        Every webhook is counted once in `bridge_webhooks_received` by doctype, event and
        outcome: accepted, unrouted, rejected_signature, rejected_payload or publish_failed.
        A refused webhook has told us nothing we trust, so its doctype and event are "unknown":
        junk requests cannot invent label sets.
        """
        try:
            envelope = self._envelope(raw_body, signature)
        except (InvalidSignature, InvalidPayload) as exc:
            outcome = (
                "rejected_signature" if isinstance(exc, InvalidSignature) else "rejected_payload"
            )
            metrics.webhooks_received.add(
                1, {"doctype": "unknown", "event": "unknown", "outcome": outcome}
            )
            raise
        labels = {"doctype": envelope.doctype, "event": envelope.event}
        topics = topics_for(self.routes, envelope.doctype, envelope.event)
        with logs.bound(
            event_id=envelope.event_id,
            event_type=envelope.event_type,
            doctype=envelope.doctype,
            name=envelope.name,
        ):
            if not topics:
                metrics.webhooks_received.add(1, {**labels, "outcome": "unrouted"})
                logs.log_event(log, logging.INFO, "no route for this doctype and event")
                return Unrouted(envelope.doctype, envelope.event)
            started = time.perf_counter()
            try:
                message_ids = self.publisher.publish_all(
                    topics, envelope.to_json(), envelope.attributes()
                )
            except Exception:
                metrics.publish_latency.record(time.perf_counter() - started, {"outcome": "failed"})
                metrics.webhooks_received.add(1, {**labels, "outcome": "publish_failed"})
                raise
            metrics.publish_latency.record(time.perf_counter() - started, {"outcome": "ok"})
            metrics.webhooks_received.add(1, {**labels, "outcome": "accepted"})
            logs.log_event(log, logging.DEBUG, "published", topics=list(topics))
            return Accepted(envelope, topics, tuple(message_ids))

    def _envelope(self, raw_body: bytes, signature: str | None) -> Envelope:
        if len(raw_body) > self.max_body_bytes:
            raise InvalidPayload(f"body is over the {self.max_body_bytes}-byte limit", status=413)
        if self.webhook_secret is not None:
            verify_frappe_signature(self.webhook_secret, raw_body, signature)
        return build_envelope(
            raw_body=raw_body,
            payload=parse_json_object(raw_body),
            site=self.site,
            received_at=self.clock(),
        )


def webhook_template(event: str) -> str:
    """The JSON template of every ERPNext Webhook the bridge receives (Frappe renders it with
    Jinja, `doc` being the document, and its `json` filter is `frappe.as_json`): the event is
    written into the signed body, because Frappe signs nothing else. One Webhook per doctype and
    event, each with its own event here."""
    if not is_doc_event(event):
        raise ValueError(f"{event!r} is not a Frappe doc event")
    return '{"event": "' + event + '", "doc": {{ doc | json }}}'


def parse_json_object(raw_body: bytes) -> dict[str, Json]:
    """The body as a JSON object, whatever the Content-Type said (Frappe's form mode sends JSON)."""
    try:
        payload = json.loads(raw_body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidPayload("body is not JSON") from exc
    except RecursionError:
        # Thousands of nested brackets; `from None` keeps the deep traceback out of the log.
        raise InvalidPayload("body is JSON nested too deeply") from None
    if not isinstance(payload, dict):
        raise InvalidPayload("body is JSON but not an object")
    return payload
