"""OncePerMessage over FirestoreInboundMessages on the Firestore emulator, on a clock the test
moves: each signed inbound WhatsApp message is answered once, weeks later too."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from twilio.request_validator import RequestValidator
from werkzeug.test import EnvironBuilder

from shared.adapters.firestore import FirestoreConnection, FirestoreIdempotencyStore
from shared.adapters.twilio import signature_valid
from shared.adapters.whatsapp_inbound import CONSUMER, FirestoreInboundMessages
from shared.errors import AccessDenied, InvalidPayload, UpstreamUnavailable
from shared.platform.runtime import Headers, HttpAnswer, HttpRequest, read_body
from shared.servicedesk.inbound import NOTHING, OncePerMessage
from tests.helpers.clocks import SettableClock

TOKEN = "twilio-auth-token-for-tests"
URL = "https://bridge.example.com/whatsapp"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
WEEKS = timedelta(weeks=3)
YEAR = timedelta(days=366)


def form(**fields: str) -> dict[str, str]:
    sid = "SM" + uuid.uuid4().hex
    return {"MessageSid": sid, "From": "whatsapp:+447700900123", "Body": "hi", **fields}


def request(params: Mapping[str, str], *, signature: str | None = None) -> HttpRequest:
    """A POST as Twilio makes it: the form, signed over the public URL unless told otherwise."""
    signed = RequestValidator(TOKEN).compute_signature(URL, dict(params))
    headers = {"X-Twilio-Signature": signed if signature is None else signature}
    built: HttpRequest = EnvironBuilder(
        method="POST", data=dict(params), headers=headers
    ).get_request()
    return built


def signed(params: Mapping[str, str], headers: Headers) -> bool:
    return signature_valid(URL, params, headers.get("X-Twilio-Signature") or "", TOKEN)


@dataclass
class Webhook:
    """The webhook behind the guard: what it was given, and what it does next."""

    bodies: list[bytes] = field(default_factory=list)
    then: list[Callable[[], None]] = field(default_factory=list)

    def handle(self, request: HttpRequest) -> HttpAnswer:
        self.bodies.append(read_body(request, 1_000_000))
        if self.then:
            self.then.pop(0)()
        return "<Response><Message>answered</Message></Response>", 200, {}


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(NOW)


@pytest.fixture
def webhook() -> Webhook:
    return Webhook()


@pytest.fixture
def guard(project_id: str, webhook: Webhook, clock: SettableClock) -> OncePerMessage:
    messages = FirestoreInboundMessages(FirestoreConnection(project_id))
    return OncePerMessage(webhook=webhook.handle, messages=messages, signed=signed, clock=clock)


def claims(project_id: str) -> FirestoreIdempotencyStore:
    return FirestoreIdempotencyStore(FirestoreConnection(project_id))


def test_the_same_signed_message_weeks_later_is_not_answered_again(
    guard: OncePerMessage, webhook: Webhook, clock: SettableClock, project_id: str
) -> None:
    message = form()
    first = guard.handle(request(message))
    assert first[0] == "<Response><Message>answered</Message></Response>"
    assert len(webhook.bodies) == 1  # the webhook read the whole form, as Twilio sent it
    assert b"MessageSid=" + message["MessageSid"].encode() in webhook.bodies[0]

    clock.advance(WEEKS.total_seconds())
    again = guard.handle(request(message))

    assert again == (NOTHING, 200, {"Content-Type": "text/xml"})
    assert len(webhook.bodies) == 1  # no answer, no session touched: the webhook never ran
    clock.now = NOW + YEAR  # a year on, still remembered
    assert guard.handle(request(message))[0] == NOTHING
    assert len(webhook.bodies) == 1


def test_the_memory_outlives_a_year_in_production(guard: OncePerMessage, project_id: str) -> None:
    message = form()
    guard.handle(request(message))
    document = (
        FirestoreConnection(project_id)
        .collection("idempotency")
        .document(f"{CONSUMER}:{message['MessageSid']}")
        .get()
    )
    # Production's TTL policy deletes it only after expire_at (the emulator never does).
    assert document.get("expire_at") > NOW + YEAR


def test_a_failure_a_retry_can_help_forgets_the_message_so_the_retry_is_answered(
    guard: OncePerMessage, webhook: Webhook
) -> None:
    def erpnext_down() -> None:
        raise UpstreamUnavailable("ERPNext is down", service="erpnext")

    message = form()
    webhook.then.append(erpnext_down)
    with pytest.raises(UpstreamUnavailable):
        guard.handle(request(message))
    assert guard.handle(request(message))[0].endswith("<Message>answered</Message></Response>")
    assert guard.handle(request(message))[0] == NOTHING
    assert len(webhook.bodies) == 2


def test_a_repeat_while_the_first_is_answered_is_503(
    guard: OncePerMessage, webhook: Webhook
) -> None:
    message = form()
    during: list[BaseException] = []

    def repeat_arrives() -> None:
        try:
            guard.handle(request(message))
        except UpstreamUnavailable as exc:
            during.append(exc)

    webhook.then.append(repeat_arrives)
    guard.handle(request(message))
    assert len(during) == 1 and "another instance" in str(during[0])
    assert len(webhook.bodies) == 1


def test_an_unsigned_request_is_refused_and_remembers_nothing(
    guard: OncePerMessage, webhook: Webhook, project_id: str
) -> None:
    message = form()
    with pytest.raises(AccessDenied):
        guard.handle(request(message, signature="Zm9yZ2Vk"))
    assert claims(project_id).get(CONSUMER, message["MessageSid"]) is None
    assert webhook.bodies == []
    guard.handle(request(message))  # Twilio's own request, after it, is answered
    assert len(webhook.bodies) == 1


def test_a_signed_message_without_a_message_sid_is_refused_with_400(
    guard: OncePerMessage, webhook: Webhook
) -> None:
    for message in (
        {"From": "whatsapp:+447700900123", "Body": "hi"},
        form(MessageSid=""),
        form(MessageSid="../telegram_bot:1"),
    ):
        with pytest.raises(InvalidPayload) as refused:
            guard.handle(request(message))
        assert refused.value.status == 400
    assert webhook.bodies == []


def test_status_callbacks_pass_through_unclaimed(
    guard: OncePerMessage, webhook: Webhook, project_id: str
) -> None:
    callback = {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "MessageStatus": "failed",
        "ErrorCode": "63016",
    }
    guard.handle(request(callback))
    guard.handle(request(callback))
    assert len(webhook.bodies) == 2
    assert claims(project_id).get(CONSUMER, callback["MessageSid"]) is None
