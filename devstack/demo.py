"""`make demo`: the whole bridge on this machine, a scripted day of ERPNext activity, and what happened.

Starts the emulators, the functions and the ERPNext, Sheets, Drive, Telegram and Twilio stand-ins;
plays invoices, an attachment and service requests (with a duplicate, a late older delivery, a
forged signature, a silent change caught by reconciliation, and a consumer outage), an emergency,
two requests resolved, clients writing on WhatsApp and the daily digest; prints what was
published, what each consumer did and why, the Invoice Tracker sheet, the Drive folders, the
error records, every Telegram chat and WhatsApp conversation as the people in them see it, and
a summary of the metrics each function serves on /metrics; then stops everything it started.
"""

from __future__ import annotations

import html
import json
import re
import secrets
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import requests
from google.cloud import pubsub_v1
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from devstack.drive import FOLDER
from devstack.erpnext import WEBHOOK_SIGNATURE_HEADER, ErpNextStandIn, sign_body
from devstack.stack import CHATS, WHATSAPP_WEBHOOK, Devstack, running_devstack
from devstack.twilio import Message
from devstack.waiting import wait_until
from shared.adapters.bot_store import FirestoreBotStore
from shared.adapters.pubsub import ensure_pull_subscription
from shared.core.routing import DEAD_LETTER, TOPICS
from shared.servicedesk.phones import normalise_e164
from shared.sheets.layout import TRACKER_TAB

console = Console(width=150)
SITE = "erp.example.com"
CHAT_NAMES = {
    CHATS["service_team"]: "service team",
    CHATS["oncall"]: "on-call",
    CHATS["admins"]: "admins",
}
STRANGER = "+15005550009"
TODAY = datetime.now(UTC).date().isoformat()
"""The demo's day: its invoices are posted today, so the digest counts them as this month's."""
_TAG = re.compile(r"<[^>]+>")


def step(text: str) -> None:
    console.print(f"[bold cyan]>[/] {text}")


def settled(stack: Devstack, *, quiet_for: float = 4.0, timeout: float = 60.0) -> None:
    """Wait until the consumers have logged no new outcome for `quiet_for` seconds."""
    last, since = -1, time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = len(stack.outcomes())
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since >= quiet_for:
            return
        time.sleep(0.5)


def wire_webhooks(erp: ErpNextStandIn, url: str, secret: str) -> None:
    """The webhooks an operator creates in ERPNext: one per doctype and event, both Frappe eras."""
    for doctype in ("Sales Invoice", "Purchase Invoice"):
        for event in ("after_insert", "on_submit", "on_change", "on_cancel"):
            erp.add_bridge_webhook(doctype, event, url, secret, era="v15")
    erp.add_bridge_webhook(
        "File",
        "after_insert",
        url,
        secret,
        era="develop",
        request_structure="form",
    )
    for event in ("after_insert", "on_update"):
        erp.add_bridge_webhook("Issue", event, url, secret, era="develop")
    erp.add_bridge_webhook("ToDo", "after_insert", url, secret)


def submitted_invoice(
    erp: ErpNextStandIn, doctype: str, fields: dict[str, object], user: str
) -> str:
    """A draft invoice saved by `user`, then submitted (ERPNext sets it Unpaid on submit)."""
    name = str(erp.insert(doctype, {**fields, "posting_date": TODAY}, user=user)["name"])
    erp.submit(doctype, name)
    return name


def play_the_day(stack: Devstack, erp: ErpNextStandIn, secret: str) -> dict[str, str]:
    """The scripted activity; returns notes on the deliberate accidents, by document name."""
    notes: dict[str, str] = {}
    projects = [p["name"] for p in erp.all("Project")]
    step("Ana raises a Sales Invoice for Acme Builders and submits it; the customer pays")
    inv1 = submitted_invoice(
        erp,
        "Sales Invoice",
        {
            "customer": "Acme Builders",
            "project": projects[0],
            "grand_total": 5000,
            "currency": "USD",
        },
        "ana.lopez@example.com",
    )
    erp.db_set("Sales Invoice", inv1, {"status": "Paid", "outstanding_amount": 0})
    step("Ben books a subcontractor's Purchase Invoice")
    pinv = submitted_invoice(
        erp,
        "Purchase Invoice",
        {
            "supplier": "Delta Steel",
            "project": projects[1],
            "grand_total": 1250.5,
            "currency": "EUR",
            "bill_no": "DS-778",
        },
        "ben.okafor@example.com",
    )
    step("Chen submits an invoice on Ana's project by mistake, then cancels it")
    inv2 = submitted_invoice(
        erp,
        "Sales Invoice",
        {
            "customer": "Cobalt Clinics",
            "project": projects[0],
            "grand_total": 780,
            "currency": "USD",
        },
        "chen.wei@example.com",
    )
    erp.cancel("Sales Invoice", inv2)
    notes[inv2] = "entered by Chen on Ana's project, then cancelled: the sheet highlights the row"
    step("A site photo is attached to the first invoice; a service request comes in")
    erp.add_file(
        "site-photo.jpg",
        b"\xff\xd8\xff demo jpeg",
        is_private=True,
        attached_to_doctype="Sales Invoice",
        attached_to_name=inv1,
    )
    issue = erp.insert(
        "Issue", {"subject": "Cold room at 9 C", "priority": "High", "customer": "Blue River Foods"}
    )["name"]
    erp.insert("ToDo", {"description": "call the client back"})
    erp.wait_for_deliveries(timeout=60)
    settled(stack)

    step("ERPNext delivers the invoice's submit webhook a second time (a duplicate)")
    (submitted,) = erp.deliveries(docname=inv1, event="on_submit")
    erp.redeliver(submitted.id)
    notes[inv1] = "duplicate on_submit delivery"
    step(
        "A late retry of the first invoice's insert arrives after newer versions (older `modified`)"
    )
    (inserted,) = erp.deliveries(docname=inv1, event="after_insert")
    late = json.dumps({**json.loads(inserted.body), "event": "on_update"}).encode()
    requests.post(
        stack.webhook_url,
        data=late,
        headers={WEBHOOK_SIGNATURE_HEADER: sign_body(secret, late)},
        timeout=10,
    )
    step("Someone posts a forged invoice to the webhook (wrong signature)")
    forged = json.dumps(
        {"event": "on_submit", "doc": {"doctype": "Sales Invoice", "name": "FAKE-1"}}
    ).encode()
    forged_answer = requests.post(
        stack.webhook_url,
        data=forged,
        headers={WEBHOOK_SIGNATURE_HEADER: sign_body("guess", forged)},
        timeout=10,
    )
    notes["FAKE-1"] = f"forged: answered {forged_answer.status_code}, nothing published"
    step(
        "The nightly job marks the purchase invoice Overdue through db.set_value: no webhook fires"
    )
    erp.set_value_silently("Purchase Invoice", pinv, "status", "Overdue")
    notes[pinv] = "status changed to Overdue with no webhook: reconciliation's job"
    settled(stack)
    step("Cloud Scheduler runs the reconciliation: it finds the silent change")
    answer = stack.reconcile()
    notes["reconciliation"] = (
        f"read {answer.get('seen')} invoices changed since its watermark, "
        f"wrote {answer.get('updated')} rows"
    )
    step("The notifier is down while a service request arrives; Pub/Sub keeps it until it is back")
    stack.functions["send_alerts"].kill()
    urgent = erp.insert(
        "Issue",
        {"subject": "Freezer alarm", "priority": "Urgent", "customer": "Blue River Foods"},
    )["name"]
    erp.wait_for_deliveries(timeout=30)
    time.sleep(3)  # pushes to the dead endpoint fail meanwhile
    stack.restart("send_alerts")
    wait_until(
        lambda: any(urgent in text for text in stack.telegram.texts(CHATS["service_team"])), 60
    )
    notes[urgent] = (
        "notifier was down when it arrived: Pub/Sub kept the event and pushed it again once the "
        "notifier was back; the team was alerted once"
    )
    notes[issue] = "service request"
    settled(stack)
    return notes


def contact_named(erp: ErpNextStandIn, first_name: str) -> dict[str, object]:
    (contact,) = [doc for doc in erp.all("Contact") if doc.get("first_name") == first_name]
    return contact


def issue_named(erp: ErpNextStandIn, subject: str) -> str:
    (name,) = [str(doc["name"]) for doc in erp.all("Issue") if doc.get("subject") == subject]
    return name


def phone_of(contact: dict[str, object]) -> str:
    phone = normalise_e164(str(contact.get("mobile_no") or ""))
    assert phone is not None, "the seeded contacts have mobile numbers"
    return phone


def play_the_notifier(stack: Devstack, erp: ErpNextStandIn, notes: dict[str, str]) -> None:
    """The service desk's side: alerts to the team's chats, clients on WhatsApp, the digest."""
    twilio = stack.twilio
    tom, maria, sam = (contact_named(erp, name) for name in ("Tom", "Maria", "Sam"))
    step("Tom (Blue River Foods) phones in an emergency; the desk raises it as Urgent")
    emergency = str(
        erp.insert(
            "Issue",
            {
                "subject": "Walk-in freezer at -2 C and rising",
                "priority": "Urgent",
                "customer": "Blue River Foods",
                "contact": tom["name"],
                "raised_by": tom["email_id"],
            },
            user="dana.kim@example.com",
        )["name"]
    )
    step(f"Tom asks on WhatsApp: STATUS {emergency}")
    twilio.post_inbound(phone_of(tom), f"STATUS {emergency}", profile_name="Tom Becker")
    step("Sam (Acme Builders) asks about Tom's request: refused, as if it did not exist")
    twilio.post_inbound(phone_of(sam), f"STATUS {emergency}", profile_name="Sam Ortiz")
    step("Someone whose number ERPNext does not know writes to the WhatsApp number")
    twilio.post_inbound(STRANGER, "hi, is my order ready?", profile_name="Unknown")
    step("Someone posts a forged WhatsApp message straight to the webhook (wrong signature)")
    forged = requests.post(
        stack.functions[WHATSAPP_WEBHOOK.target].url + "/",
        data={"From": f"whatsapp:{phone_of(maria)}", "Body": "STATUS ISS-2026-00001"},
        headers={"X-Twilio-Signature": "Zm9yZ2Vk"},
        timeout=15,
    )
    notes["forged WhatsApp"] = (
        f"Twilio's signature checked over the public URL: answered {forged.status_code}, "
        "nothing looked up or sent"
    )
    erp.wait_for_deliveries(timeout=30)
    settled(stack)
    step("Eli fixes the freezer and resolves it: Tom wrote minutes ago, so plain text")
    erp.save("Issue", emergency, {"status": "Resolved"}, user="eli.moreau@example.com")
    notes[emergency] = (
        "emergency: service team and on-call alerted; Tom asked on WhatsApp and was told "
        "when it was done (free text: he wrote within 24 hours)"
    )
    leak = issue_named(erp, "Hydraulic leak at the loading bay")
    # The seeded requests were imported just now; this one was reported yesterday morning.
    reported = datetime.now(UTC) - timedelta(days=1)
    erp.set_value_silently(
        "Issue",
        leak,
        {"opening_date": reported.date().isoformat(), "opening_time": "08:30:00"},
    )
    step(f"Dana resolves {leak}, Maria's hydraulic leak reported yesterday, then saves her notes")
    erp.save("Issue", leak, {"status": "Resolved"}, user="dana.kim@example.com")
    erp.save("Issue", leak, {"resolution_details": "Seal replaced."}, user="dana.kim@example.com")
    notes[leak] = (
        "resolved: Maria, who has not written in 24 hours, got the approved WhatsApp template; "
        "once, although the request was saved twice"
    )
    erp.wait_for_deliveries(timeout=30)
    settled(stack)
    step("Cloud Scheduler's morning call runs the daily digest (twice, by accident)")
    stack.daily_digest()
    stack.daily_digest()
    notes["daily digest"] = "called twice: the admins got it once"
    twilio.settle()


def drain(project: str) -> list[tuple[str, dict[str, object]]]:
    subscriber = pubsub_v1.SubscriberClient()
    seen: list[tuple[str, dict[str, object]]] = []
    for topic in (*TOPICS, DEAD_LETTER):
        path = subscriber.subscription_path(project, f"demo-observe-{topic}")
        while True:
            response = subscriber.pull(
                request={"subscription": path, "max_messages": 100, "return_immediately": True},
                timeout=10,
            )
            if not response.received_messages:
                break
            subscriber.acknowledge(
                request={
                    "subscription": path,
                    "ack_ids": [m.ack_id for m in response.received_messages],
                }
            )
            seen += [(topic, json.loads(m.message.data)) for m in response.received_messages]
    subscriber.close()
    return seen


def show(stack: Devstack, erp: ErpNextStandIn, notes: dict[str, str]) -> None:
    deliveries = Table(title="1. Webhooks ERPNext sent (as Frappe sends them)")
    for column in ("#", "doctype", "document", "event", "era", "attempts", "answer"):
        deliveries.add_column(column)
    for d in erp.deliveries():
        answer = d.attempts[-1].status_code if d.attempts else "-"
        deliveries.add_row(
            str(d.id),
            d.doctype,
            d.docname,
            d.event,
            d.era,
            str(len(d.attempts)),
            f"{answer}{' (redelivery)' if d.redelivery_of else ''}",
        )
    console.print(deliveries)

    published = Table(title="2. What erp_webhook published to Pub/Sub")
    for column in ("topic", "event_type", "document", "modified", "event id"):
        published.add_column(column)
    for topic, envelope in drain(stack.project):
        if topic == DEAD_LETTER:
            continue
        published.add_row(
            topic,
            str(envelope["event_type"]),
            str(envelope["name"]),
            str(envelope["modified"]),
            str(envelope["event_id"])[:12],
        )
    console.print(published)

    outcomes = Table(title="3. What each consumer did, and why")
    for column in ("consumer", "document", "event id", "outcome", "what it did"):
        outcomes.add_column(column)
    actions = stack.actions()
    why = {
        "duplicate": "already done: same event id seen before",
        "stale": "older than the version applied",
    }
    counts: Counter[str] = Counter()
    for entry in stack.outcomes():
        outcome = str(entry["outcome"])
        consumer = str(entry.get("consumer"))
        counts[outcome] += 1
        detail = (
            actions.get((consumer, str(entry.get("event_id"))))
            if outcome == "applied"
            else why.get(outcome, "")
        )
        outcomes.add_row(
            consumer,
            str(entry.get("name")),
            str(entry.get("event_id"))[:12],
            outcome,
            str(detail or ""),
        )
    console.print(outcomes)
    console.print("   totals: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))

    show_tracker(stack)
    show_drive(stack)

    errors = Table(title="6. Error records (Firestore `errors`: for a person to triage and replay)")
    for column in ("integration", "operation", "entity", "status", "attempts", "message"):
        errors.add_column(column)
    for record in stack.stores().errors.list_errors():
        errors.add_row(
            record.integration,
            record.operation,
            f"{record.entity_type} {record.entity_id}",
            record.status.value,
            str(record.attempts),
            record.message[:70],
        )
    console.print(errors)

    accidents = Table(title="7. The day's accidents, and what the bridge did about them")
    accidents.add_column("document")
    accidents.add_column("what happened")
    for name, note in notes.items():
        accidents.add_row(name, note)
    console.print(accidents)

    show_telegram(stack)
    show_whatsapp(stack, erp)
    show_metrics(stack)


def show_tracker(stack: Devstack) -> None:
    """The Invoice Tracker as a person sees it in Google Sheets (the stand-in's cells)."""
    header, *rows = stack.tracker_rows()
    highlighted = set(stack.sheets.highlighted_rows(stack.spreadsheet_id, TRACKER_TAB))
    shown = [column for column in header if column not in ("ERPNext link", "Last modified")]
    sheet = Table(
        title="4. The Invoice Tracker sheet (red: entered by someone other than the project manager)"
    )
    for column in shown:
        sheet.add_column(str(column), no_wrap=column == "Invoice")
    for number, row in enumerate(rows, start=2):
        cells = dict(zip(header, [*row, *[""] * (len(header) - len(row))], strict=True))
        sheet.add_row(
            *(str(cells[column]) for column in shown),
            style="red" if number in highlighted else None,
        )
    console.print(sheet)


def show_drive(stack: Devstack) -> None:
    """What drive_upload filed in the shared drive, and the link ERPNext now holds."""
    drive = Table(title="5. Google Drive: attachments filed by project and document, linked back")
    for column in (
        "path in the shared drive",
        "bytes",
        "md5",
        "in the trash",
        "ERPNext File links to it",
    ):
        drive.add_column(column)
    linked = {str(doc.get("drive_file_id")): str(doc["name"]) for doc in stack.erpnext.all("File")}
    for item in stack.drive.files():
        if item.mime_type == FOLDER:
            continue
        drive.add_row(
            stack.drive.path_of(item.id),
            str(item.size),
            str(item.md5)[:12],
            "yes" if item.trashed else "no",
            linked.get(item.id, "-"),
        )
    console.print(drive)


def plain(text: str) -> str:
    """Telegram HTML as a person reads it: tags rendered away, entities as characters."""
    return html.unescape(_TAG.sub("", text))


def show_telegram(stack: Devstack) -> None:
    """Every Telegram chat the bot wrote in, oldest message first: the groups, then people."""
    console.rule("8. Telegram: each chat as its members see it")
    links = FirestoreBotStore(stack.stores().connection)
    chats = stack.telegram.chats
    for chat_id in [*CHAT_NAMES, *sorted(set(chats) - set(CHAT_NAMES))]:
        messages = list(chats.get(chat_id, []))
        if chat_id in CHAT_NAMES:
            title = f"{CHAT_NAMES[chat_id]} group ({chat_id})"
        else:
            title = f"{links.user_of(chat_id) or 'a person'}'s private chat ({chat_id})"
        transcript = Table.grid(padding=(0, 2))
        transcript.add_column(style="bold green", no_wrap=True)
        transcript.add_column()
        for sent in messages:
            transcript.add_row("bot", plain(sent.text or sent.caption or ""))
        if not messages:
            transcript.add_row("", Text("(no messages)", style="dim"))
        console.print(Panel(transcript, title=title, title_align="left", width=140))


def show_whatsapp(stack: Devstack, erp: ErpNextStandIn) -> None:
    """Every WhatsApp conversation: what the person wrote and what reached their phone."""
    console.rule("9. WhatsApp: each conversation as the person sees it on their phone")
    twilio = stack.twilio
    people = {
        phone: (str(contact.get("first_name")), f"{contact.get('full_name')}, {_customer(contact)}")
        for contact in erp.all("Contact")
        if (phone := normalise_e164(str(contact.get("mobile_no") or "")))
    }
    conversations: dict[str, list[Message]] = {}
    for message in [*twilio.inbound, *(m for sent in twilio.outbound.values() for m in sent)]:
        person = message.from_ if message.direction == "inbound" else message.to
        conversations.setdefault(person.removeprefix("whatsapp:"), []).append(message)
    for phone, messages in conversations.items():
        first_name, who = people.get(phone, ("them", "a number ERPNext does not know"))
        transcript = Table.grid(padding=(0, 2))
        transcript.add_column(style="dim", no_wrap=True)
        transcript.add_column(no_wrap=True)
        transcript.add_column()
        transcript.add_column(style="dim", no_wrap=True)
        for message in sorted(messages, key=lambda m: m.date_created):
            when = message.date_created.strftime("%H:%M:%S")
            if message.direction == "inbound":
                transcript.add_row(when, Text(first_name, style="bold cyan"), message.body, "")
                continue
            kind = (
                "approved template"
                if message.content_sid
                else "reply"
                if message.direction == "outbound-reply"
                else "free text"
            )
            status = message.status + (f" ({message.error_code})" if message.error_code else "")
            transcript.add_row(
                when, Text("bridge", style="bold green"), message.body, f"{kind}, {status}"
            )
        console.print(Panel(transcript, title=f"{who}: {phone}", title_align="left", width=140))


def show_metrics(stack: Devstack) -> None:
    """What Prometheus would scrape from each function's /metrics (bridge_* series only):
    counters as totals, histograms as count and mean, gauges once however many report them."""
    counters: Counter[tuple[str, str, str]] = Counter()
    histograms: dict[tuple[str, str, str], list[float]] = {}
    gauges: dict[tuple[str, str], float] = {}
    for target, samples in stack.metrics().items():
        for sample in samples:
            if not sample.name.startswith("bridge_") or sample.name.endswith(
                ("_created", "_bucket")
            ):
                continue
            labels = ", ".join(
                f"{k}={v}" for k, v in sorted(sample.labels.items()) if not k.startswith("otel_")
            )
            if sample.name.endswith("_total"):
                counters[(sample.name.removesuffix("_total"), labels, target)] += sample.value
            elif sample.name.endswith(("_count", "_sum")):
                name, _, part = sample.name.rpartition("_")
                pair = histograms.setdefault((name, labels, target), [0.0, 0.0])
                pair[0 if part == "count" else 1] += sample.value
            else:
                gauges[(sample.name, labels)] = max(
                    gauges.get((sample.name, labels), 0), sample.value
                )
    table = Table(title="10. Metrics, scraped from each function's /metrics (Prometheus text)")
    for column in ("metric", "labels", "function", "value"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for (name, labels, target), total in sorted(counters.items()):
        table.add_row(name, labels, target, f"{total:g}")
    for (name, labels, target), (count, seconds) in sorted(histograms.items()):
        mean = seconds / count * 1000 if count else 0.0
        table.add_row(name, labels, target, f"{count:g} (mean {mean:.1f} ms)")
    for (name, labels), value in sorted(gauges.items()):
        table.add_row(name, labels, "(every function that reports it)", f"{value:g}")
    console.print(table)


def _customer(contact: dict[str, object]) -> str:
    links = contact.get("links")
    names = [
        str(row.get("link_name"))
        for row in (links if isinstance(links, list) else [])
        if isinstance(row, dict) and row.get("link_doctype") == "Customer"
    ]
    return ", ".join(names) or "no customer"


def main() -> int:
    secret = secrets.token_urlsafe(24)
    console.rule("[bold]ERPNext Bridge demo")
    step(
        "starting the Pub/Sub and Firestore emulators, the ERPNext, Google Sheets, Drive, "
        "Telegram and Twilio stand-ins, and the functions (a few seconds)"
    )
    started = time.monotonic()
    with running_devstack(
        webhook_secret=secret, site=SITE, extra_env={"MAX_DELIVERY_ATTEMPTS": "5"}
    ) as stack:
        for topic in (*TOPICS, DEAD_LETTER):
            ensure_pull_subscription(stack.project, f"demo-observe-{topic}", topic)
        console.print(
            f"   up in {time.monotonic() - started:.0f} s; webhook at {stack.webhook_url}; logs in {stack.log_dir}"
        )
        erp = stack.erpnext
        wire_webhooks(erp, stack.webhook_url, secret)
        notes = play_the_day(stack, erp, secret)
        play_the_notifier(stack, erp, notes)
        show(stack, erp, notes)
    step("stopped everything the demo started")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
