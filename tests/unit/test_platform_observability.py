"""What leaves the process: the scrubber's cases, and Sentry events as they would be sent.

The Sentry tests run real functions under functions-framework with a real Sentry client whose
transport captures the envelopes instead of posting them, so they check the bytes that would
leave: no secret, token, phone number or message text, and the tags that make events findable.
"""

from __future__ import annotations

import base64
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import sentry_sdk
from functions_framework import create_app
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from shared.platform import observability
from shared.roots import read_settings

SCRUB = observability.scrubber
WEBHOOK_SECRET = "whsec-9f8e7d6c5b4a"
ERP_API_SECRET = "erp-api-secret-5d41402abc4b2a76"
BOT_TOKEN = "7000001:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
TELEGRAM_SECRET = "tg-webhook-secret_0123456789"
TWILIO_TOKEN = "twilio-auth-token-0f1e2d3c4b5a"
PHONE = "+15005550009"
TYPED_PHONE = "+1 (500) 555-0009"
TEXT = "the freezer is beeping and the door will not close"
SUBJECT = "Walk-in freezer at -2 C and rising"


# ---- the scrubber, case by case ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("from whatsapp:+15005550009", "from whatsapp:[phone]"),
        ("call +1 (415) 523-8886 today", "call [phone] today"),
        ("0044 20 7946 0958", "[phone]"),
        ("555-123-4567 or (555) 123 4567", "[phone] or [phone]"),
        ("contact 15551234567", "contact [phone]"),
        ("modified 2026-11-23 10:00:00.000001", "modified 2026-11-23 10:00:00.000001"),
        ("request ISS-2026-00012", "request ISS-2026-00012"),
        ("chat -1001234567890 user 123456789", "chat -1001234567890 user 123456789"),
        ("total 1250.5 at 127.0.0.1:8080", "total 1250.5 at 127.0.0.1:8080"),
        ("message 2070443601311540", "message 2070443601311540"),
    ],
)
def test_phone_numbers_removed_and_ids_dates_amounts_kept(given: str, expected: str) -> None:
    assert SCRUB.text(given) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            f"GET https://api.telegram.org/bot{BOT_TOKEN}/getMe",
            "GET https://api.telegram.org/bot[redacted]/getMe",
        ),
        (
            f"https://api.telegram.org/file/bot{BOT_TOKEN}/photos/1.jpg",
            "https://api.telegram.org/file/bot[redacted]/photos/1.jpg",
        ),
        ("Authorization: token key:secret123", "Authorization: token [redacted]"),
        ("Bearer eyJhbGciOiJSUzI1NiJ9.e30.sig", "Bearer [redacted]"),
        ("GET /?file=F-1&token=abc123", "GET /?file=F-1&token=[redacted]"),
        ("the Telegram secret token is missing", "the Telegram secret token is missing"),
    ],
)
def test_tokens_in_urls_and_headers_removed(given: str, expected: str) -> None:
    assert SCRUB.text(given) == expected


def test_every_secret_of_the_settings_is_removed_once_protected() -> None:
    settings = read_settings(
        "notifier",
        {
            "GCP_PROJECT": "p",
            "ERP_SITE": "erp.example.com",
            "WEBHOOK_SECRET": WEBHOOK_SECRET,
            "ERPNEXT_URL": "http://erp",
            "ERPNEXT_API_KEY": "erp-key-0001",
            "ERPNEXT_API_SECRET": ERP_API_SECRET,
            "TELEGRAM_BOT_TOKEN": "plainbottoken-without-the-usual-shape",
            "TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET,
            "TELEGRAM_BOT_USERNAME": "bridge_bot",
            "ALERT_CHATS_JSON": json.dumps({"service_team": -1, "oncall": -2, "admins": -3}),
        },
    )
    scrubber = observability.Scrubber()
    scrubber.protect_settings(settings)
    line = scrubber.text(
        f"{ERP_API_SECRET} {TELEGRAM_SECRET} plainbottoken-without-the-usual-shape erp-key-0001"
    )
    assert line == " ".join(["[redacted]"] * 4)


def test_structures_lose_secret_headers_phones_and_texts_by_key() -> None:
    scrubbed = SCRUB.value(
        {
            "headers": {
                "Authorization": "token k:s",
                "X-Frappe-Webhook-Signature": "c2ln",
                "X-Telegram-Bot-Api-Secret-Token": "t",
                "X-Twilio-Signature": "c2ln",
                "Host": "bridge",
            },
            "message": {"text": "hello there", "caption": "a photo", "chat": {"id": 5}},
            "Body": "STATUS ISS-1",
            "mobile_no": "0151 2345",
        }
    )
    assert scrubbed == {
        "headers": {
            "Authorization": "[redacted]",
            "X-Frappe-Webhook-Signature": "[redacted]",
            "X-Telegram-Bot-Api-Secret-Token": "[redacted]",
            "X-Twilio-Signature": "[redacted]",
            "Host": "bridge",
        },
        "message": {"text": "[text removed]", "caption": "[text removed]", "chat": {"id": 5}},
        "Body": "[text removed]",
        "mobile_no": "[phone]",
    }


def test_texts_people_wrote_are_removed_from_any_string_during_their_invocation() -> None:
    update = {"update_id": 1, "message": {"text": TEXT, "chat": {"id": 5}}}
    with observability.invocation():
        observability.note_input(json.dumps(update).encode())
        observability.note_input(b"From=whatsapp%3A%2B15005550009&Body=is+my+order+ready%3F")
        assert SCRUB.text(f"ValueError: {TEXT!r}") == "ValueError: '[text removed]'"
        assert SCRUB.text("asked: is my order ready?") == "asked: [text removed]"
    assert SCRUB.text(f"later: {TEXT}") == f"later: {TEXT}"  # another invocation's input


def test_context_of_an_error_is_the_innermost_block_it_left() -> None:
    with (
        pytest.raises(RuntimeError) as raised,
        observability.bound(function="notifier"),
        observability.bound(doctype="Issue"),
    ):
        raise RuntimeError("boom")
    assert dict(observability.context_of(raised.value)) == {
        "function": "notifier",
        "doctype": "Issue",
    }
    assert dict(observability.current()) == {}


# ---- Sentry, as it would be sent -----------------------------------------------------------------


class CapturingTransport(Transport):
    """Keeps every envelope the Sentry client would send."""

    envelopes: ClassVar[list[Envelope]] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)


FUNCTIONS = textwrap.dedent(
    '''
    """Functions that fail the way a careless adapter might, with everything private in the error."""

    import json
    import logging

    import functions_framework

    from shared.platform import runtime

    TOKEN = "{token}"
    ERP_SECRET = "{erp_secret}"
    PHONE = "{typed_phone}"
    log = logging.getLogger("careless")
    log.setLevel(logging.INFO)


    def _handle(request):
        update = json.loads(runtime.read_body(request, 100_000))
        text = update["message"]["text"]
        url = f"https://api.telegram.org/bot{{TOKEN}}/sendMessage"
        log.info("sending %r to %s via %s", text, PHONE, url)  # a breadcrumb
        headers = {{"Authorization": f"token erp-key:{{ERP_SECRET}}"}}  # a local variable
        raise RuntimeError(
            f"could not send {{text!r}} to {{PHONE}} via {{url}} with {{headers}}"
        )


    @functions_framework.http
    def telegram_webhook(request):
        return runtime.serve_http("telegram_webhook", "demo-project", request, _handle)


    def _consume(message):
        doc = json.loads(message.data)["doc"]
        raise ValueError(
            f"alert {{doc['subject']!r}} for {{doc['contact_mobile']}} failed: "
            f"token={{TOKEN}} secret {{ERP_SECRET}}"
        )


    @functions_framework.cloud_event
    def send_alerts(cloud_event):
        runtime.serve_event("send_alerts", "notifier", cloud_event.data, _consume)


    def _throttled(message):
        from shared.errors import UpstreamUnavailable

        raise UpstreamUnavailable("telegram said 429", service="telegram")


    @functions_framework.cloud_event
    def throttled_alerts(cloud_event):
        runtime.serve_event("throttled_alerts", "notifier", cloud_event.data, _throttled)
    '''
)


@pytest.fixture
def sentry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Sentry on, as `shared.roots.start` turns it on, with a capturing transport; the source."""
    source = tmp_path / "main.py"
    source.write_text(
        FUNCTIONS.format(token=BOT_TOKEN, erp_secret=ERP_API_SECRET, typed_phone=TYPED_PHONE)
    )
    monkeypatch.setenv("SENTRY_DSN", "https://public@sentry.example.com/1")
    monkeypatch.delenv("METRICS_PORT", raising=False)
    settings = read_settings(
        "erp_webhook",
        {"GCP_PROJECT": "demo-project", "ERP_SITE": "erp", "WEBHOOK_SECRET": WEBHOOK_SECRET},
    )
    CapturingTransport.envelopes.clear()
    observability.start("notifier", settings, transport=CapturingTransport)
    observability.scrubber.protect(ERP_API_SECRET)  # as the notifier's settings would
    yield source
    observability.stop_sentry()


def sent(envelopes: list[Envelope]) -> tuple[str, list[dict[str, object]]]:
    """Everything that would go over the wire (as text), and the error events in it."""
    wire = b"".join(envelope.serialize() for envelope in envelopes).decode()
    events = [
        item.payload.json
        for envelope in envelopes
        for item in envelope.items
        if item.type == "event" and item.payload.json
    ]
    return wire, events


def private_parts() -> list[str]:
    return [
        WEBHOOK_SECRET,
        ERP_API_SECRET,
        BOT_TOKEN,
        BOT_TOKEN.split(":")[1],
        TELEGRAM_SECRET,
        PHONE,
        PHONE.lstrip("+"),
        TYPED_PHONE,
        "555-0009",
        TEXT,
        SUBJECT,
    ]


def test_sentry_gets_a_tagged_http_error_without_secrets_tokens_phones_or_texts(
    sentry: Path,
) -> None:
    client = create_app("telegram_webhook", str(sentry), "http").test_client()
    update = {
        "update_id": 42,
        "message": {
            "message_id": 7,
            "chat": {"id": 99, "type": "private"},
            "text": TEXT,
            "contact": {"phone_number": PHONE},
        },
    }
    response = client.post(
        f"/?token={WEBHOOK_SECRET}",
        data=json.dumps(update),
        headers={
            "Content-Type": "application/json",
            "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET,
            "Authorization": f"token erp-key:{ERP_API_SECRET}",
            "X-Frappe-Webhook-Signature": base64.b64encode(WEBHOOK_SECRET.encode()).decode(),
            "X-Twilio-Signature": TWILIO_TOKEN,
            "X-Cloud-Trace-Context": "0af7651916cd43dd8448eb211c80319c/17;o=1",
        },
    )
    assert response.status_code == 500
    assert ERP_API_SECRET not in response.get_data(as_text=True)

    wire, events = sent(CapturingTransport.envelopes)
    (event,) = events
    assert event["tags"]["function"] == "telegram_webhook"
    assert event["tags"]["service"] == "notifier"
    (error,) = event["exception"]["values"]
    assert error["type"] == "RuntimeError"
    assert error["value"].startswith("could not send '[text removed]' to [phone] via ")
    assert "bot[redacted]/sendMessage" in error["value"]
    crumbs = [crumb["message"] for crumb in event["breadcrumbs"]["values"]]
    assert (
        "sending '[text removed]' to [phone] via https://api.telegram.org/bot[redacted]/sendMessage"
        in crumbs
    )
    for private in [*private_parts(), TWILIO_TOKEN]:
        assert private not in wire, private


def push_event(data: dict[str, object], attributes: dict[str, str]) -> dict[str, object]:
    """A Pub/Sub push body, as the CloudEvent's data."""
    return {
        "message": {
            "data": base64.b64encode(json.dumps(data).encode()).decode(),
            "attributes": attributes,
            "messageId": "2070443601311540",
        },
        "subscription": "projects/demo-project/subscriptions/notifier",
    }


def post_cloud_event(client, body: dict[str, object]):
    return client.post(
        "/",
        data=json.dumps(body),
        headers={
            "Content-Type": "application/json",
            "ce-specversion": "1.0",
            "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
            "ce-source": "//pubsub.googleapis.com/projects/demo-project/topics/erp-service-requests",
            "ce-id": "2070443601311540",
        },
    )


def test_sentry_gets_a_tagged_event_error_without_phones_texts_or_secrets(sentry: Path) -> None:
    client = create_app("send_alerts", str(sentry), "cloudevent").test_client()
    envelope = {
        "event_type": "erpnext.issue.after_insert",
        "doctype": "Issue",
        "name": "ISS-2026-00012",
        "doc": {"subject": SUBJECT, "contact_mobile": PHONE, "priority": "Urgent"},
    }
    attributes = {
        "event_type": "erpnext.issue.after_insert",
        "doctype": "Issue",
        "event_id": "e1",
    }
    response = post_cloud_event(client, push_event(envelope, attributes))
    assert response.status_code == 500  # raised: Pub/Sub redelivers

    wire, events = sent(CapturingTransport.envelopes)
    (event,) = events  # captured once, tagged; the framework's own report is deduplicated
    tagged = ("function", "consumer", "event_type", "doctype")
    assert {key: event["tags"][key] for key in tagged} == {
        "function": "send_alerts",
        "consumer": "notifier",
        "event_type": "erpnext.issue.after_insert",
        "doctype": "Issue",
    }
    (error,) = event["exception"]["values"]
    assert error["value"].startswith("alert '[text removed]' for [phone] failed")
    for frame in error["stacktrace"]["frames"]:
        assert "vars" not in frame
    for private in private_parts():
        assert private not in wire, private


def test_retryable_errors_are_not_sent_to_sentry(sentry: Path) -> None:
    client = create_app("throttled_alerts", str(sentry), "cloudevent").test_client()
    response = post_cloud_event(client, push_event({"doc": {}}, {"doctype": "Issue"}))
    assert response.status_code == 500
    assert sent(CapturingTransport.envelopes)[1] == []


def test_nothing_is_sent_when_no_dsn_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    monkeypatch.delenv("METRICS_PORT", raising=False)
    CapturingTransport.envelopes.clear()
    observability.start("notifier", object(), transport=CapturingTransport)
    assert not sentry_sdk.get_client().dsn
    observability.capture(RuntimeError(f"to {PHONE}"))
    assert CapturingTransport.envelopes == []
