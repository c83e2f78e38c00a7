"""The runtime wrappers: the one place that decides ack or retry (events) and the answer (HTTP).

Event functions: return -> Pub/Sub acknowledges; raise -> it redelivers (Cloud Functions answers
the push with 500). Retryable errors and surprises raise; Permanent ones become error records
and return. HTTP functions: the error tree maps to status codes in `http_status`.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Protocol, TypeAlias

from shared.core.claims import MAX_EVENT_AGE, ClaimOutcome
from shared.core.envelope import Envelope
from shared.core.routing import OPERATIONS, consumer_of
from shared.core.versions import is_stale, least_age
from shared.errors import (
    AccessDenied,
    AlreadyRunning,
    BridgeError,
    InvalidPayload,
    InvalidSignature,
    Permanent,
    Retryable,
)
from shared.platform import logs, metrics, observability
from shared.platform.executions import RunCounts
from shared.platform.failures import FailureReport
from shared.platform.ports import ErrorLog, IdempotencyStore, VersionStore

log = logging.getLogger(__name__)

DEAD_LETTER_SOURCE = "CloudPubSubDeadLetterSourceSubscription"
DEAD_LETTER_COUNT = "CloudPubSubDeadLetterSourceDeliveryCount"


@dataclass(frozen=True, slots=True)
class PubSubMessage:
    """A Pub/Sub message as a push delivery carries it, already base64-decoded."""

    data: bytes
    attributes: Mapping[str, str]
    message_id: str


def message_from_push(body: Mapping[str, object]) -> PubSubMessage:
    """Decode the `{"message": {...}}` of a push body or of a Pub/Sub CloudEvent's data."""
    message = body.get("message")
    if not isinstance(message, dict):
        raise InvalidPayload("push body has no message")
    attributes = message.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise InvalidPayload("message attributes are not an object")
    try:
        data = base64.b64decode(str(message.get("data", "")), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidPayload("message data is not base64") from exc
    message_id = message.get("messageId") or message.get("message_id") or ""
    return PubSubMessage(
        data=data,
        attributes={str(k): str(v) for k, v in attributes.items()},
        message_id=str(message_id),
    )


class Outcome(enum.StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"
    REJECTED = "rejected"


Effect: TypeAlias = Callable[[Envelope], str]
"""A consumer's side effect; returns a short account of what it did (ids, never payloads)."""


def age(envelope: Envelope, now: datetime) -> timedelta:
    """How old the change is at least: by its signed `modified`, or since it arrived when it has
    none. An `on_trash` keeps the document's last `modified` (deleting does not touch it), so it
    counts from arrival; applying a deletion again changes nothing."""
    since_arrival = now - envelope.received_at
    if envelope.modified is None or envelope.event == "on_trash":
        return since_arrival
    signed = least_age(envelope.modified, now)
    return since_arrival if signed is None else max(since_arrival, signed)


@dataclass(frozen=True)
class Consumer:
    """Claim, check the version, apply, mark done: the exactly-once path every subscriber runs."""

    name: str
    effect: Effect
    claims: IdempotencyStore
    versions: VersionStore
    errors: ErrorLog
    owner: str
    clock: Callable[[], datetime]
    lease: timedelta = timedelta(seconds=120)
    max_age: timedelta = MAX_EVENT_AGE
    """Older events are refused: by their signed `modified` (`age`), so a body sent again after
    its claim expired is not applied twice."""
    skip_stale: bool = True
    """A mirror of state (the sheet, Drive) skips versions older than the one applied; a consumer
    of events (the alerts) acts on each event once, whatever order they arrive in: an invoice's
    after_insert delivered after its on_submit is still the invoice's "new invoice" alert."""

    @property
    def operation(self) -> str:
        return OPERATIONS.get(self.name, "consume")

    def handle(self, message: PubSubMessage) -> Outcome:
        """Apply one message at most once; raise (to be redelivered) only when a retry can help."""
        now = self.clock()
        try:
            envelope = Envelope.from_json(message.data)
        except InvalidPayload as exc:
            self._report(exc, message=message)
            return self._finish(Outcome.REJECTED)
        with logs.bound(
            event_id=envelope.event_id,
            event_type=envelope.event_type,
            doctype=envelope.doctype,
            name=envelope.name,
        ):
            return self._handle(envelope, now)

    def _handle(self, envelope: Envelope, now: datetime) -> Outcome:
        if age(envelope, now) > self.max_age:
            self._report(
                InvalidPayload(
                    f"the change was made over {self.max_age / timedelta(hours=1):g} hours ago "
                    "(its signed `modified`): too old to apply once for sure; reconciliation "
                    "covers it"
                ),
                envelope=envelope,
            )
            return self._finish(Outcome.REJECTED)
        claimed = self.claims.claim(
            self.name, envelope.event_id, owner=self.owner, now=now, lease=self.lease
        )
        if claimed is ClaimOutcome.ALREADY_DONE:
            return self._finish(Outcome.DUPLICATE)
        try:
            last = (
                self.versions.last_applied(self.name, envelope.doctype, envelope.name)
                if self.skip_stale
                else None
            )
            if is_stale(envelope.modified, last):
                self.claims.complete(self.name, envelope.event_id, outcome="stale", now=now)
                logs.log_event(log, logging.INFO, "older than applied", applied=last)
                return self._finish(Outcome.STALE)
            action = self.effect(envelope)
        except Permanent as exc:
            self._report(exc, envelope=envelope)
            self._release(envelope)
            return self._finish(Outcome.REJECTED)
        except Exception as exc:
            # Retryable, or a surprise: either way a redelivery may succeed, so it is retried,
            # and the failure is visible as a pending error record meanwhile.
            self._report(exc, envelope=envelope)
            self._release(envelope)
            metrics.consumer_outcomes.add(1, {"consumer": self.name, "outcome": "retried"})
            raise
        if envelope.modified and self.skip_stale:
            self.versions.record_applied(
                self.name, envelope.doctype, envelope.name, envelope.modified
            )
        self.claims.complete(self.name, envelope.event_id, outcome="applied", now=now)
        if self.errors.resolve_event(self.name, envelope.event_id, now=now):
            logs.log_event(log, logging.INFO, "earlier failure resolved by this delivery")
        logs.log_event(log, logging.INFO, "applied", action=action, takeover=claimed.value)
        return self._finish(Outcome.APPLIED)

    def _finish(self, outcome: Outcome) -> Outcome:
        metrics.consumer_outcomes.add(1, {"consumer": self.name, "outcome": outcome.value})
        logs.log_event(log, logging.INFO, f"outcome {outcome.value}", outcome=outcome.value)
        return outcome

    def _release(self, envelope: Envelope) -> None:
        try:
            self.claims.release(self.name, envelope.event_id, owner=self.owner)
        except Exception:
            # The lease will expire on its own; the original error is the one to surface.
            log.warning("could not release claim; it expires with its lease", exc_info=True)

    def _report(
        self,
        exc: BaseException,
        *,
        envelope: Envelope | None = None,
        message: PubSubMessage | None = None,
    ) -> None:
        report = failure_report(self.name, self.operation, exc, envelope=envelope, message=message)
        severity = logging.WARNING if isinstance(exc, Retryable) else logging.ERROR
        logs.log_event(log, severity, f"{type(exc).__name__}: {exc}", record_id=report.record_id())
        try:
            self.errors.record_failure(report, now=self.clock())
        except Exception:
            if isinstance(exc, Permanent):
                # Acknowledging without a record would lose the failure: be redelivered instead.
                raise
            log.exception("could not write the error record; the event is retried anyway")


def failure_report(
    integration: str,
    operation: str,
    exc: BaseException,
    *,
    envelope: Envelope | None = None,
    message: PubSubMessage | None = None,
) -> FailureReport:
    """Describe a failure for a person: which entity, what went wrong, and the body to replay."""
    if envelope is not None:
        return FailureReport(
            integration=integration,
            operation=operation,
            entity_type=envelope.doctype,
            entity_id=envelope.name,
            event_id=envelope.event_id,
            message=str(exc),
            details=type(exc).__name__,
            envelope=envelope.to_json().decode(),
        )
    attributes = message.attributes if message else {}
    return FailureReport(
        integration=integration,
        operation=operation,
        entity_type=attributes.get("doctype", "unknown"),
        entity_id=message.message_id if message else "unknown",
        event_id=attributes.get("event_id"),
        message=str(exc),
        details=type(exc).__name__,
        envelope=message.data.decode(errors="replace") if message else None,
    )


@dataclass(frozen=True)
class DeadLetterRecorder:
    """Turns a message that exhausted its deliveries into a pending error record, then acks it."""

    errors: ErrorLog
    clock: Callable[[], datetime]

    def handle(self, message: PubSubMessage) -> str:
        source = message.attributes.get(DEAD_LETTER_SOURCE, "")
        consumer = consumer_of(source) or source or "unknown"
        count = message.attributes.get(DEAD_LETTER_COUNT, "?")
        reason = InvalidPayload(f"gave up after {count} deliveries to {source or 'a consumer'}")
        try:
            envelope: Envelope | None = Envelope.from_json(message.data)
        except InvalidPayload:
            envelope = None
        report = failure_report(
            consumer,
            OPERATIONS.get(consumer, "consume"),
            reason,
            envelope=envelope,
            message=message,
        )
        metrics.dead_letters.add(1, {"consumer": consumer})
        record_id = self.errors.record_failure(report, now=self.clock())
        logs.log_event(log, logging.ERROR, "dead letter recorded", record_id=record_id)
        return record_id


_STATUSES: tuple[tuple[type[BaseException], int], ...] = (
    (InvalidSignature, 401),
    (AccessDenied, 403),
    (AlreadyRunning, 409),
    (Permanent, 422),
    (Retryable, 503),
)
"""Most specific first: the first class an error is an instance of gives its answer."""


def http_status(exc: BaseException) -> int:
    """The HTTP answer for an error: the error tree, mapped once for every HTTP function."""
    if isinstance(exc, InvalidPayload):
        return exc.status
    return next((status for kind, status in _STATUSES if isinstance(exc, kind)), 500)


class Headers(Protocol):
    def get(self, key: str, /) -> str | None: ...


class HttpRequest(Protocol):
    """What the HTTP wrappers need of a request (flask's, under functions-framework)."""

    @property
    def content_length(self) -> int | None: ...

    @property
    def stream(self) -> IO[bytes]: ...

    @property
    def headers(self) -> Headers: ...

    @property
    def args(self) -> Mapping[str, str]: ...


HttpAnswer: TypeAlias = tuple[str | Iterator[bytes], int, dict[str, str]]
"""Body (text, or chunks streamed as they come), status, headers: what Flask accepts."""


def read_body(request: HttpRequest, limit: int) -> bytes:
    """Read at most `limit + 1` bytes, so an oversize body is refused without holding it all."""
    if request.content_length is not None and request.content_length > limit:
        raise InvalidPayload(f"body is over the {limit}-byte limit", status=413)
    body = request.stream.read(limit + 1)
    observability.note_input(body)  # what people wrote in it never reaches a log or Sentry
    return body


def answer(code: int, **body: object) -> HttpAnswer:
    """A JSON answer with HTTP status `code`."""
    return json.dumps(body, default=str), code, {"Content-Type": "application/json"}


def job_answer(run: tuple[str, RunCounts]) -> HttpAnswer:
    """A scheduled job's answer: its sync-execution id and counts."""
    execution, counts = run
    return answer(
        200,
        status="finished",
        execution=execution,
        seen=counts.seen,
        updated=counts.updated,
        skipped=counts.skipped,
        failed=counts.failed,
    )


def serve_http(
    function: str,
    project: str,
    request: HttpRequest,
    handler: Callable[[HttpRequest], HttpAnswer],
) -> HttpAnswer:
    """Run an HTTP handler; errors become answers here and nowhere else (messages carry no secrets)."""
    trace = logs.trace_context(request.headers.get("X-Cloud-Trace-Context"), project)
    with logs.bound(function=function, **trace), observability.invocation():
        try:
            return handler(request)
        except BridgeError as exc:
            status = http_status(exc)
            logs.log_event(log, logging.WARNING, f"refused: {exc}", status=status)
            headers = {"Retry-After": "30"} if status == 503 else {}
            text, _, content_type = answer(status, error=exc.message)
            return text, status, {**content_type, **headers}
        except Exception as exc:
            observability.capture(exc)
            log.exception("unexpected error")
            return answer(500, error="internal error")


def serve_event(
    function: str,
    consumer: str,
    data: Mapping[str, object],
    handle: Callable[[PubSubMessage], object],
) -> None:
    """Run `consumer`'s handler (entry point `function`) on a Pub/Sub CloudEvent's data: return
    acks, raise redelivers. Logs and Sentry events are labelled with both."""
    with logs.bound(function=function, consumer=consumer), observability.invocation():
        try:
            message = message_from_push(data)
        except InvalidPayload:
            # Pub/Sub never sends this; a retry cannot repair it, so say so loudly and acknowledge.
            log.exception("undecodable Pub/Sub delivery acknowledged")
            return
        observability.note_input(message.data)
        attributes = message.attributes
        with logs.bound(
            message_id=message.message_id,
            event_type=attributes.get("event_type"),
            doctype=attributes.get("doctype"),
        ):
            try:
                handle(message)
            except Exception as exc:
                observability.capture(exc)  # tagged here; Sentry drops the framework's repeat
                raise
