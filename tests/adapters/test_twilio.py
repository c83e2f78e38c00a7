"""WhatsAppSender through the twilio client against the Twilio stand-in: sends, the window, errors."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from devstack.twilio import TwilioStandIn
from shared.adapters.twilio import MessageStatus, WhatsAppSender, failure_of, signature_valid
from shared.errors import (
    ConfigurationError,
    OutsideSessionWindow,
    Permanent,
    UpstreamRejected,
    UpstreamUnavailable,
)
from tests.helpers.clocks import SettableClock
from tests.helpers.receivers import WebhookReceiver

ACCOUNT = "AC" + "fedcba9876543210" * 2
TOKEN = "adapter-test-auth-token"
BUSINESS = "+14155238886"
PERSON = "+4915112345678"
TEMPLATE = "HX" + "d" * 32
PUBLIC = "https://bridge.example.com/whatsapp/inbound"
STATUS_URL = "https://bridge.example.com/whatsapp/status"


START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(START)


@pytest.fixture
def twilio(clock: SettableClock) -> Iterator[TwilioStandIn]:
    with TwilioStandIn(ACCOUNT, TOKEN, clock=clock, sender_mps=2) as running:
        running.add_template(TEMPLATE, "Request {{1}} is now {{2}}.")
        yield running


@pytest.fixture
def receiver(twilio: TwilioStandIn) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(answer=b"<Response/>", content_type="text/xml") as running:
        twilio.set_webhook(f"{running.url}/whatsapp/inbound", public_url=PUBLIC)
        yield running


def sender(twilio: TwilioStandIn, *, token: str = TOKEN, timeout_s: float = 5.0) -> WhatsAppSender:
    return WhatsAppSender(
        ACCOUNT,
        token,
        BUSINESS,
        base_url=twilio.base_url,
        status_callback_url=STATUS_URL,
        timeout_s=timeout_s,
    )


def test_send_text_within_the_window_is_delivered(twilio: TwilioStandIn) -> None:
    twilio.open_window(PERSON)
    sid = sender(twilio).send_text(PERSON, "SR-7 is resolved")
    twilio.settle()
    assert sid.startswith("SM") and len(sid) == 34
    assert sender(twilio).status(sid) == MessageStatus(sid, "delivered", None)
    assert twilio.inbox(PERSON) == ["SR-7 is resolved"]


def test_send_template_outside_the_window_is_delivered_with_its_variables(
    twilio: TwilioStandIn,
) -> None:
    sid = sender(twilio).send_template(PERSON, TEMPLATE, {"1": "SR-7", "2": "Resolved"})
    twilio.settle()
    assert sender(twilio).status(sid).status == "delivered"
    assert twilio.inbox(PERSON) == ["Request SR-7 is now Resolved."]
    assert twilio.message(sid).content_sid == TEMPLATE


def test_free_text_outside_the_window_fails_later_with_63016_as_twilio_reports_it(
    twilio: TwilioStandIn, receiver: WebhookReceiver, clock: SettableClock
) -> None:
    twilio.open_window(PERSON)
    clock.now += timedelta(hours=25)
    sid = sender(twilio).send_text(PERSON, "free text, too late")  # accepted: no error here
    twilio.settle()
    status = sender(twilio).status(sid)
    assert (status.status, status.error_code, status.failed) == ("failed", 63016, True)
    assert isinstance(failure_of(status.status, status.error_code), OutsideSessionWindow)
    path, signature, form = receiver.forms("X-Twilio-Signature")[-1]
    assert path == "/whatsapp/status" and form["MessageSid"] == sid
    assert signature_valid(STATUS_URL, form, signature, TOKEN)
    assert isinstance(failure_of(form["MessageStatus"], form["ErrorCode"]), OutsideSessionWindow)
    assert twilio.inbox(PERSON) == []


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        ("delivered", None, None),
        ("sent", None, None),
        ("failed", "63016", OutsideSessionWindow),
        ("undelivered", 63024, UpstreamRejected),
    ],
)
def test_failure_of_a_status(status: str, code: str | int | None, expected: type | None) -> None:
    failure = failure_of(status, code)
    assert type(failure) is expected if expected else failure is None


def test_outside_session_window_is_a_permanent_rejection_by_twilio() -> None:
    failure = failure_of("failed", 63016)
    assert isinstance(failure, UpstreamRejected) and isinstance(failure, Permanent)
    assert failure.service == "twilio"


def test_wrong_auth_token_is_rejected_without_the_token_in_the_error(twilio: TwilioStandIn) -> None:
    with pytest.raises(UpstreamRejected) as refused:
        sender(twilio, token="wrong-token-value").send_text(PERSON, "secret body text")
    assert "20003" in str(refused.value) and "401" in str(refused.value)
    for private in ("wrong-token-value", "secret body text", PERSON, PERSON[1:]):
        assert private not in str(refused.value) and private not in repr(refused.value)


def test_invalid_number_is_rejected_without_the_number_or_body_in_the_error(
    twilio: TwilioStandIn,
) -> None:
    with pytest.raises(UpstreamRejected) as refused:
        sender(twilio).send_text("4915112345678", "private words")
    assert not isinstance(refused.value, UpstreamUnavailable)
    assert "21211" in str(refused.value)
    assert "4915112345678" not in str(refused.value) and "private words" not in str(refused.value)


def test_a_sender_twilio_has_not_enabled_is_a_configuration_error_naming_it(
    twilio: TwilioStandIn,
) -> None:
    """63007 says the deployment is wrong, not the message: a ConfigurationError naming our
    sender (its last digits) and the setting to fix, after one attempt."""
    not_enabled = WhatsAppSender(ACCOUNT, TOKEN, "+15550001234", base_url=twilio.base_url)
    twilio.open_window(PERSON)
    with pytest.raises(ConfigurationError) as refused:
        not_enabled.send_text(PERSON, "SR-7 is resolved")
    message = str(refused.value)
    assert "our sender +...1234 (TWILIO_WHATSAPP_FROM) is not a WhatsApp sender" in message
    assert "error 63007" in message and PERSON not in message
    assert twilio.refused == [(400, 63007)]


def test_unknown_template_is_rejected(twilio: TwilioStandIn) -> None:
    with pytest.raises(UpstreamRejected, match="21655"):
        sender(twilio).send_template(PERSON, "HX" + "e" * 32, {"1": "a"})


def test_rate_limit_429_is_upstream_unavailable(twilio: TwilioStandIn) -> None:
    whatsapp = sender(twilio)
    for _ in range(2):
        whatsapp.send_template(PERSON, TEMPLATE, {"1": "a", "2": "b"})
    with pytest.raises(UpstreamUnavailable, match="20429") as throttled:
        whatsapp.send_template(PERSON, TEMPLATE, {"1": "a", "2": "b"})
    assert throttled.value.service == "twilio" and throttled.value.retry_after_s is None


@pytest.mark.parametrize("status", [429, 500, 503])
def test_throttling_and_server_errors_are_unavailable_with_retry_after(
    twilio: TwilioStandIn, status: int
) -> None:
    twilio.fail_next(1, status=status, retry_after_s=7)
    with pytest.raises(UpstreamUnavailable) as failed:
        sender(twilio).send_template(PERSON, TEMPLATE, {"1": "a", "2": "b"})
    assert failed.value.retry_after_s == 7.0
    assert not failed.value.maybe_applied  # an answer: Twilio did not take it
    sender(twilio).send_template(PERSON, TEMPLATE, {"1": "a", "2": "b"})  # the next call goes


def test_timeout_is_upstream_unavailable_and_maybe_applied(twilio: TwilioStandIn) -> None:
    twilio.fail_next(1, status=503, delay_s=2.0)
    with pytest.raises(UpstreamUnavailable, match="Timeout") as failed:
        sender(twilio, timeout_s=0.3).send_text(PERSON, "hello")
    assert failed.value.maybe_applied


def test_a_lost_answer_leaves_the_message_sent_and_sent_since_finds_it(
    twilio: TwilioStandIn, clock: SettableClock
) -> None:
    twilio.open_window(PERSON)
    twilio.faults.timeout_s = 1.0
    twilio.faults.fail_next("timeout_after_apply")
    with pytest.raises(UpstreamUnavailable) as failed:
        sender(twilio, timeout_s=0.3).send_text(PERSON, "SR-7 is resolved")
    assert failed.value.maybe_applied
    (created,) = twilio.outbound[PERSON]
    assert [(m.sid, m.body) for m in sender(twilio).sent_since(PERSON, START)] == [
        (created.sid, "SR-7 is resolved")
    ]


def test_sent_since_lists_only_our_messages_to_that_number_since_then_newest_first(
    twilio: TwilioStandIn, clock: SettableClock
) -> None:
    other = "+4915199999999"
    whatsapp = sender(twilio)
    whatsapp.send_template(PERSON, TEMPLATE, {"1": "SR-1", "2": "open"})
    clock.now += timedelta(minutes=1)
    first = whatsapp.send_template(PERSON, TEMPLATE, {"1": "SR-2", "2": "open"})
    clock.now += timedelta(seconds=1)
    whatsapp.send_template(other, TEMPLATE, {"1": "SR-3", "2": "open"})
    second = whatsapp.send_template(PERSON, TEMPLATE, {"1": "SR-4", "2": "open"})
    found = whatsapp.sent_since(PERSON, START + timedelta(seconds=30))
    assert [(m.sid, m.body) for m in found] == [
        (second, "Request SR-4 is now open."),
        (first, "Request SR-2 is now open."),
    ]


def test_connection_refused_is_upstream_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    whatsapp = WhatsAppSender(ACCOUNT, TOKEN, BUSINESS, base_url=f"http://127.0.0.1:{closed_port}")
    with pytest.raises(UpstreamUnavailable, match="ConnectionError") as failed:
        whatsapp.send_text(PERSON, "hello")
    assert not failed.value.maybe_applied  # it never left


def test_repr_shows_neither_token_nor_full_number(twilio: TwilioStandIn) -> None:
    shown = repr(sender(twilio))
    assert TOKEN not in shown and BUSINESS not in shown and ACCOUNT in shown


def test_signature_of_an_inbound_message_validates_only_for_the_public_url_and_its_params(
    twilio: TwilioStandIn, receiver: WebhookReceiver
) -> None:
    twilio.post_inbound(PERSON, "status SR-7")
    _, signature, form = receiver.forms("X-Twilio-Signature")[0]
    assert signature_valid(PUBLIC, form, signature, TOKEN)
    assert not signature_valid(f"{receiver.url}/whatsapp/inbound", form, signature, TOKEN)
    assert not signature_valid(PUBLIC, {**form, "Body": "status SR-8"}, signature, TOKEN)
    assert not signature_valid(PUBLIC, form, signature, "another-token")
    assert not signature_valid(PUBLIC, form, "", TOKEN)


def test_forged_signature_does_not_validate(
    twilio: TwilioStandIn, receiver: WebhookReceiver
) -> None:
    twilio.post_inbound(PERSON, "hello", signature="Zm9yZ2Vk")
    _, signature, form = receiver.forms("X-Twilio-Signature")[0]
    assert signature == "Zm9yZ2Vk" and not signature_valid(PUBLIC, form, signature, TOKEN)
