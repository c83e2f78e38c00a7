"""WhatsApp end to end: the Twilio stand-in posts signed inbound messages to the real webhook
function; completed requests and the daily digest go out through ERPNext's webhooks, Pub/Sub,
the notifier and the Twilio and Telegram stand-ins.

People (seeded contacts): Maria (Acme Builders), Sam (Acme Builders), Tom (Blue River Foods),
Priya (Cobalt Clinics). Each test uses its own person or its own documents.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta

import pytest
import requests

from devstack.emulators import Emulators
from devstack.erpnext import ErpNextStandIn
from devstack.stack import (
    CHATS,
    COMPLETED_TEMPLATE,
    TWILIO_ACCOUNT,
    WHATSAPP_FROM,
    WHATSAPP_PUBLIC_URL,
    WHATSAPP_WEBHOOK,
    Devstack,
    running_devstack,
)
from devstack.twilio import Message
from devstack.waiting import wait_until
from tests.e2e import settle

SECRET = "e2e-whatsapp-webhook-secret"
MARIA = "+447700900123"
SAM = "+14155550199"
TOM = "+14155550134"
PRIYA = "+447700900456"
STRANGER = "+15005550009"
UNKNOWN_REPLY = (
    "Sorry, this number is not registered with us. Please ask your project manager to add it "
    "to your contact details."
)
COMPLETED = "Your service request {name} ({subject}) is completed. Thank you!"


@pytest.fixture(scope="module")
def stack(emulators: Emulators) -> Iterator[Devstack]:
    with running_devstack(
        webhook_secret=SECRET, project="e2e-whatsapp", emulators=emulators
    ) as running:
        for event in ("after_insert", "on_update", "on_change"):
            running.erpnext.add_bridge_webhook("Issue", event, running.webhook_url, SECRET)
        yield running


# -- helpers --------------------------------------------------------------------------------------


def reply_text(answer: requests.Response) -> str:
    """The one <Message> of a TwiML answer."""
    body = answer.text
    assert answer.headers["Content-Type"].startswith("text/xml"), body
    start, end = body.index("<Message>") + len("<Message>"), body.index("</Message>")
    return body[start:end]


def issue_of(erp: ErpNextStandIn, subject: str) -> str:
    (name,) = [str(doc["name"]) for doc in erp.all("Issue") if doc["subject"] == subject]
    return name


def contact_of(erp: ErpNextStandIn, first_name: str) -> dict[str, object]:
    (contact,) = [doc for doc in erp.all("Contact") if doc.get("first_name") == first_name]
    return contact


def new_issue(erp: ErpNextStandIn, contact_first_name: str, subject: str) -> str:
    """A request raised for a seeded client (its Contact and Customer), as the desk enters it."""
    contact = contact_of(erp, contact_first_name)
    links: list[dict[str, object]] = contact["links"]  # type: ignore[assignment]
    doc = erp.insert(
        "Issue",
        {
            "subject": subject,
            "priority": "Medium",
            "customer": links[0]["link_name"],
            "contact": contact["name"],
            "raised_by": contact["email_id"],
        },
    )
    return str(doc["name"])


def sent_by_api(stack: Devstack, phone: str) -> list[Message]:
    """Messages the bridge created through the Messages API for `phone` (TwiML replies aside)."""
    return [m for m in list(stack.twilio.outbound.get(phone, [])) if m.direction == "outbound-api"]


def settled(stack: Devstack, name: str) -> None:
    """Everything about `name` has happened (see `settle`), Twilio's status callbacks too."""
    settle(stack, name)
    stack.twilio.settle()


def twilio_form(sender: str, body: str) -> dict[str, str]:
    """Twilio's inbound form for a text message (what post_inbound sends)."""
    sid = "SM" + uuid.uuid4().hex
    return {
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ProfileName": "WhatsApp User",
        "MessageType": "text",
        "SmsSid": sid,
        "WaId": sender.removeprefix("+"),
        "SmsStatus": "received",
        "Body": body,
        "To": f"whatsapp:{WHATSAPP_FROM}",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": TWILIO_ACCOUNT,
        "From": f"whatsapp:{sender}",
        "ApiVersion": "2010-04-01",
    }


# -- the inbound webhook --------------------------------------------------------------------------


def test_bad_signature_is_refused_with_403_and_nothing_recorded(stack: Devstack) -> None:
    before = len(stack.twilio.outbound.get(PRIYA, []))
    answer = stack.twilio.post_inbound(PRIYA, "STATUS anything", signature="bm90IGEgc2lnbmF0dXJl")
    assert answer.status_code == 403
    assert len(stack.twilio.outbound.get(PRIYA, [])) == before  # no reply went to her
    assert stack.stores().whatsapp_sessions.last_inbound(PRIYA) is None


def test_signature_over_the_local_url_is_refused_when_the_public_url_is_configured(
    stack: Devstack,
) -> None:
    local_url = stack.functions[WHATSAPP_WEBHOOK.target].url + "/"
    form = twilio_form(STRANGER, "hello")
    local = requests.post(
        local_url,
        data=form,
        headers={"X-Twilio-Signature": stack.twilio.signature_for(local_url, form)},
        timeout=15,
    )
    assert local.status_code == 403
    # The very same form signed over the configured public URL is accepted: only the URL differs.
    public = requests.post(
        local_url,
        data=form,
        headers={"X-Twilio-Signature": stack.twilio.signature_for(WHATSAPP_PUBLIC_URL, form)},
        timeout=15,
    )
    assert public.status_code == 200


def test_unknown_number_gets_a_polite_refusal_when_it_writes(stack: Devstack) -> None:
    answer = stack.twilio.post_inbound(STRANGER, "STATUS ISS-2026-00001")
    assert answer.status_code == 200
    assert reply_text(answer) == UNKNOWN_REPLY
    stack.twilio.settle()
    assert stack.twilio.inbox(STRANGER)[-1] == UNKNOWN_REPLY


def test_client_gets_the_status_of_their_own_request(stack: Devstack) -> None:
    erp = stack.erpnext
    own = issue_of(erp, "Hydraulic leak at the loading bay")  # Maria's, Acme Builders
    status = str(erp.get("Issue", own)["status"])
    answer = stack.twilio.post_inbound(MARIA, f"STATUS {own}")
    assert answer.status_code == 200
    expected = f"Request {own} (Hydraulic leak at the loading bay): {status}."
    assert reply_text(answer) == expected
    stack.twilio.settle()
    assert stack.twilio.inbox(MARIA)[-1] == expected  # what Maria reads on her phone


def test_another_customers_request_is_refused_exactly_as_a_missing_one(stack: Devstack) -> None:
    erp = stack.erpnext
    others = issue_of(erp, "Cold room alarm: temperature rising")  # Blue River Foods'
    missing = "ISS-2026-99999"
    assert not [doc for doc in erp.all("Issue") if doc["name"] == missing]
    about_other = reply_text(stack.twilio.post_inbound(MARIA, f"status {others}"))
    about_missing = reply_text(stack.twilio.post_inbound(MARIA, f"status {missing}"))
    assert about_other == f"I found no request {others} of yours."
    assert about_other.replace(others, "<id>") == about_missing.replace(missing, "<id>")
    assert "Cold room" not in about_other and "Open" not in about_other


def test_client_inbound_opens_the_24_hour_window_in_firestore(stack: Devstack) -> None:
    sessions = stack.stores().whatsapp_sessions
    assert sessions.last_inbound(SAM) is None
    before = datetime.now(UTC)
    answer = stack.twilio.post_inbound(SAM, "hi")
    after = datetime.now(UTC)
    assert answer.status_code == 200
    assert reply_text(answer).startswith("Send STATUS followed by your request number")
    last = sessions.last_inbound(SAM)
    assert last is not None
    assert before - timedelta(seconds=1) <= last <= after + timedelta(seconds=1)


def signed_post(stack: Devstack, form: Mapping[str, str]) -> requests.Response:
    """The form posted to the webhook as Twilio posts it (or as anyone who captured it would)."""
    return requests.post(
        stack.functions[WHATSAPP_WEBHOOK.target].url + "/",
        data=form,
        headers={"X-Twilio-Signature": stack.twilio.signature_for(WHATSAPP_PUBLIC_URL, form)},
        timeout=15,
    )


def test_a_replayed_message_gets_no_reply_and_leaves_the_clients_window_as_it_was(
    stack: Devstack,
) -> None:
    erp = stack.erpnext
    own = issue_of(erp, "Hydraulic leak at the loading bay")  # Maria's
    sessions = stack.stores().whatsapp_sessions
    form = twilio_form(MARIA, f"STATUS {own}")
    first = signed_post(stack, form)
    assert first.status_code == 200
    assert reply_text(first).startswith(f"Request {own} (Hydraulic leak at the loading bay)")
    opened = sessions.last_inbound(MARIA)
    assert opened is not None
    sent = len(sent_by_api(stack, MARIA))

    replayed = signed_post(stack, form)  # the very same signed request, again

    assert replayed.status_code == 200
    assert replayed.headers["Content-Type"].startswith("text/xml")
    assert "<Message>" not in replayed.text  # Twilio would send nothing back
    assert sessions.last_inbound(MARIA) == opened  # the 24-hour window did not move
    assert len(sent_by_api(stack, MARIA)) == sent
    remembered = stack.stores().claims.get("whatsapp_inbound", form["MessageSid"])
    assert remembered is not None and remembered.outcome == "answered"


def test_a_signed_message_without_its_message_sid_is_refused_with_400(stack: Devstack) -> None:
    sessions = stack.stores().whatsapp_sessions
    before = sessions.last_inbound(MARIA)
    form = twilio_form(MARIA, "STATUS anything")
    del form["MessageSid"]
    answer = signed_post(stack, form)
    assert answer.status_code == 400
    assert sessions.last_inbound(MARIA) == before


# -- request completed -> the client on WhatsApp --------------------------------------------------


def test_completed_request_sends_the_approved_template_when_the_client_has_not_written(
    stack: Devstack,
) -> None:
    erp = stack.erpnext
    subject = "Condenser fan noisy"
    name = new_issue(erp, "Tom", subject)
    settled(stack, name)
    assert stack.stores().whatsapp_sessions.last_inbound(TOM) is None
    assert not stack.twilio.window_open(TOM)
    assert sent_by_api(stack, TOM) == []  # a new request tells the client nothing
    erp.save("Issue", name, {"status": "Resolved"})
    assert wait_until(lambda: len(sent_by_api(stack, TOM)) >= 1)
    settled(stack, name)
    (message,) = sent_by_api(stack, TOM)
    assert message.content_sid == COMPLETED_TEMPLATE
    assert dict(message.content_variables) == {"1": name, "2": subject}
    assert message.body == COMPLETED.format(name=name, subject=subject)
    assert message.status == "delivered" and message.error_code is None
    assert stack.twilio.inbox(TOM) == [COMPLETED.format(name=name, subject=subject)]


def test_completed_request_sends_free_text_when_the_client_wrote_recently(
    stack: Devstack,
) -> None:
    erp = stack.erpnext
    subject = "Loading bay door sticks"
    name = new_issue(erp, "Maria", subject)
    assert stack.twilio.post_inbound(MARIA, "Any news about the bay door?").status_code == 200
    settled(stack, name)
    assert sent_by_api(stack, MARIA) == []
    erp.save("Issue", name, {"status": "Resolved"})
    assert wait_until(lambda: len(sent_by_api(stack, MARIA)) >= 1)
    settled(stack, name)
    (message,) = sent_by_api(stack, MARIA)
    assert message.content_sid is None  # free text, inside the 24-hour window
    assert message.body == COMPLETED.format(name=name, subject=subject)
    assert message.status == "delivered" and message.error_code is None
    assert stack.twilio.inbox(MARIA)[-1] == message.body


def test_second_save_of_a_resolved_request_sends_nothing_more(stack: Devstack) -> None:
    erp = stack.erpnext
    name = new_issue(erp, "Priya", "Waiting room heater dead")
    erp.save("Issue", name, {"status": "Resolved"})
    assert wait_until(lambda: len(sent_by_api(stack, PRIYA)) >= 1)
    settled(stack, name)
    assert len(sent_by_api(stack, PRIYA)) == 1
    erp.save("Issue", name, {"resolution_details": "<p>Thermostat replaced.</p>"})
    settled(stack, name)
    assert len(erp.deliveries(docname=name, event="on_update")) == 3  # insert and both saves
    assert len(sent_by_api(stack, PRIYA)) == 1


# -- the daily digest -----------------------------------------------------------------------------


def frappe_moment(day: object, clock: object = None) -> datetime:
    """A Frappe date (and time), naive in the site's zone (UTC here), as an aware datetime."""
    text = f"{day} {clock}" if clock else str(day)
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def expected_figures(erp: ErpNextStandIn, now: datetime) -> Mapping[str, str]:
    """The digest's three figures, read from ERPNext's own documents."""
    issues = erp.all("Issue")
    open_count = sum(1 for doc in issues if doc["status"] not in ("Resolved", "Closed"))
    hours = [
        (resolved - frappe_moment(doc["opening_date"], doc["opening_time"])).total_seconds() / 3600
        for doc in issues
        if doc["status"] in ("Resolved", "Closed") and doc.get("resolution_date")
        if (resolved := frappe_moment(doc["resolution_date"])) >= now - timedelta(days=30)
    ]
    month = now.date().replace(day=1)
    invoiced = sum(
        float(doc["grand_total"])
        for doc in erp.all("Sales Invoice")
        if doc["docstatus"] == 1 and date.fromisoformat(str(doc["posting_date"])) >= month
    )
    return {
        "open": str(open_count),
        "average": f"{sum(hours) / len(hours):.1f} h",
        "invoiced": f"{invoiced:,.2f} USD",
    }


def test_daily_digest_reaches_the_admins_once_with_erpnexts_figures(stack: Devstack) -> None:
    erp = stack.erpnext
    now = datetime.now(UTC)
    # A request opened six hours ago and resolved now: the average is not a trivial 0.0.
    opened = (now - timedelta(hours=6)).replace(tzinfo=None)
    slow = erp.insert(
        "Issue",
        {
            "subject": "Roof drain blocked",
            "opening_date": opened.date().isoformat(),
            "opening_time": opened.strftime("%H:%M:%S.%f"),
        },
    )["name"]
    erp.save("Issue", slow, {"status": "Closed"})
    today = now.date().isoformat()
    for total, posted in ((1200, today), (800.5, today), (999, "2020-01-15")):
        invoice = erp.insert(
            "Sales Invoice",
            {
                "customer": "Acme Builders",
                "grand_total": total,
                "currency": "USD",
                "posting_date": posted,
            },
        )
        erp.submit("Sales Invoice", str(invoice["name"]))
    erp.insert(  # a draft counts for nothing
        "Sales Invoice",
        {"customer": "Acme Builders", "grand_total": 5, "currency": "USD", "posting_date": today},
    )
    settled(stack, str(slow))
    figures = expected_figures(erp, now)
    assert figures["invoiced"] == "2,000.50 USD"

    first, second = stack.daily_digest(), stack.daily_digest()

    assert "digest queued" in str(first["result"]) and "sent 1" in str(first["result"])
    assert "already queued" in str(second["result"]) and "sent 0" in str(second["result"])
    digests = [text for text in stack.telegram.texts(CHATS["admins"]) if "Daily digest" in text]
    assert len(digests) == 1
    (digest,) = digests
    assert f"Open requests: {figures['open']}\n" in digest
    assert f"Average time to close: {figures['average']}\n" in digest
    assert digest.endswith(f"Invoiced this month: {figures['invoiced']}")
