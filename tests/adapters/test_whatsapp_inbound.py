"""The WhatsApp webhook over FirestoreInboundMessages on the Firestore emulator, on a clock the
test moves: each signed inbound message is answered once, weeks later too."""

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
from shared.bot.webhooks import NOTHING, WhatsAppWebhook
from shared.errors import AccessDenied, InvalidPayload, UpstreamUnavailable
from shared.platform.runtime import HttpRequest
from tests.helpers.clocks import SettableClock
from tests.helpers.fakes import InMemoryServiceDesk

TOKEN = "twilio-auth-token-for-tests"
URL = "https://bridge.example.com/whatsapp"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
WEEKS = timedelta(weeks=3)
YEAR = timedelta(days=366)
CLIENT = "+447700900123"
ANSWER = "Send STATUS followed by your request number"


def form(**fields: str) -> dict[str, str]:
    sid = "SM" + uuid.uuid4().hex
    return {"MessageSid": sid, "From": f"whatsapp:{CLIENT}", "Body": "hi", **fields}


def request(params: Mapping[str, str], *, signature: str | None = None) -> HttpRequest:
    """A POST as Twilio makes it: the form, signed over the public URL unless told otherwise."""
    signed = RequestValidator(TOKEN).compute_signature(URL, dict(params))
    headers = {"X-Twilio-Signature": signed if signature is None else signature}
    built: HttpRequest = EnvironBuilder(
        method="POST", data=dict(params), headers=headers
    ).get_request()
    return built


@dataclass
class Sessions:
    """The clients' windows: each inbound message recorded, and what happens meanwhile."""

    inbound: list[datetime] = field(default_factory=list)
    then: list[Callable[[], None]] = field(default_factory=list)

    def record_inbound(self, phone: str, *, now: datetime) -> None:
        self.inbound.append(now)
        if self.then:
            self.then.pop(0)()


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(NOW)


@pytest.fixture
def sessions() -> Sessions:
    return Sessions()


@pytest.fixture
def desk() -> InMemoryServiceDesk:
    return InMemoryServiceDesk(phones={"Acme Builders": CLIENT})


@pytest.fixture
def webhook(
    project_id: str, sessions: Sessions, desk: InMemoryServiceDesk, clock: SettableClock
) -> WhatsAppWebhook:
    return WhatsAppWebhook(
        desk=desk,
        sessions=sessions,
        messages=FirestoreInboundMessages(FirestoreConnection(project_id)),
        auth_token=TOKEN,
        public_url=URL,
        signature_valid=signature_valid,
        clock=clock,
    )


def claims(project_id: str) -> FirestoreIdempotencyStore:
    return FirestoreIdempotencyStore(FirestoreConnection(project_id))


def test_the_same_signed_message_weeks_later_is_not_answered_again(
    webhook: WhatsAppWebhook, sessions: Sessions, clock: SettableClock, project_id: str
) -> None:
    message = form()
    first = webhook.handle(request(message))
    assert ANSWER in str(first[0]) and sessions.inbound == [NOW]

    clock.advance(WEEKS.total_seconds())
    again = webhook.handle(request(message))

    assert again == (NOTHING, 200, {"Content-Type": "text/xml"})
    assert sessions.inbound == [NOW]  # no answer, and the client's window did not move
    clock.now = NOW + YEAR  # a year on, still remembered
    assert webhook.handle(request(message))[0] == NOTHING
    assert sessions.inbound == [NOW]


def test_the_memory_outlives_a_year_in_production(
    webhook: WhatsAppWebhook, project_id: str
) -> None:
    message = form()
    webhook.handle(request(message))
    document = (
        FirestoreConnection(project_id)
        .collection("idempotency")
        .document(f"{CONSUMER}:{message['MessageSid']}")
        .get()
    )
    # Production's TTL policy deletes it only after expire_at (the emulator never does).
    assert document.get("expire_at") > NOW + YEAR


def test_a_failure_a_retry_can_help_forgets_the_message_so_the_retry_is_answered(
    webhook: WhatsAppWebhook, sessions: Sessions, desk: InMemoryServiceDesk
) -> None:
    message = form()
    desk.failure = UpstreamUnavailable("ERPNext is down", service="erpnext")
    with pytest.raises(UpstreamUnavailable):
        webhook.handle(request(message))
    desk.failure = None
    assert ANSWER in str(webhook.handle(request(message))[0])
    assert webhook.handle(request(message))[0] == NOTHING
    assert len(sessions.inbound) == 1


def test_a_repeat_while_the_first_is_answered_is_503(
    webhook: WhatsAppWebhook, sessions: Sessions
) -> None:
    message = form()
    during: list[BaseException] = []

    def repeat_arrives() -> None:
        try:
            webhook.handle(request(message))
        except UpstreamUnavailable as exc:
            during.append(exc)

    sessions.then.append(repeat_arrives)
    webhook.handle(request(message))
    assert len(during) == 1 and "another instance" in str(during[0])
    assert len(sessions.inbound) == 1


def test_an_unsigned_request_is_refused_and_remembers_nothing(
    webhook: WhatsAppWebhook, sessions: Sessions, project_id: str
) -> None:
    message = form()
    with pytest.raises(AccessDenied):
        webhook.handle(request(message, signature="Zm9yZ2Vk"))
    assert claims(project_id).get(CONSUMER, message["MessageSid"]) is None
    assert sessions.inbound == []
    webhook.handle(request(message))  # Twilio's own request, after it, is answered
    assert len(sessions.inbound) == 1


def test_a_signed_message_without_a_message_sid_is_refused_with_400(
    webhook: WhatsAppWebhook, sessions: Sessions
) -> None:
    for message in (
        {"From": "whatsapp:+447700900123", "Body": "hi"},
        form(MessageSid=""),
        form(MessageSid="../telegram_bot:1"),
    ):
        with pytest.raises(InvalidPayload) as refused:
            webhook.handle(request(message))
        assert refused.value.status == 400
    assert sessions.inbound == []


def test_status_callbacks_pass_through_unclaimed(
    webhook: WhatsAppWebhook, sessions: Sessions, project_id: str
) -> None:
    callback = {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "MessageStatus": "failed",
        "ErrorCode": "63016",
    }
    assert webhook.handle(request(callback)) == webhook.handle(request(callback))
    assert claims(project_id).get(CONSUMER, callback["MessageSid"]) is None
