"""`make demo`: the whole bridge on this machine, a scripted day of ERPNext activity, and what happened.

Starts the emulators, the functions and the ERPNext, Sheets and Drive stand-ins; plays invoices,
an attachment and a service request (with a duplicate, a late older delivery, a forged signature,
a silent change caught by reconciliation, and a consumer outage); prints what was published, what
each consumer did and why, the Invoice Tracker sheet, the Drive folders, and the error records;
then stops everything it started.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections import Counter
from collections.abc import Callable

import requests
from google.cloud import pubsub_v1
from rich.console import Console
from rich.table import Table

from devstack.drive import FOLDER
from devstack.erpnext import ErpNextStandIn
from devstack.stack import Devstack, running_devstack
from shared.adapters.pubsub import ensure_pull_subscription
from shared.core.routing import DEAD_LETTER, TOPICS
from shared.core.sheet_layout import TRACKER_TAB

console = Console(width=150)
SITE = "erp.example.com"


def step(text: str) -> None:
    console.print(f"[bold cyan]>[/] {text}")


def wait_until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return False


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
            erp.add_webhook(doctype, event, f"{url}?event={event}", secret, era="v15")
    erp.add_webhook(
        "File",
        "after_insert",
        f"{url}?event=after_insert",
        secret,
        era="develop",
        request_structure="form",
    )
    erp.add_webhook("Issue", "after_insert", f"{url}?event=after_insert", secret, era="develop")
    erp.add_webhook("ToDo", "after_insert", f"{url}?event=after_insert", secret)


def submitted_invoice(
    erp: ErpNextStandIn, doctype: str, fields: dict[str, object], user: str
) -> str:
    """A draft invoice saved by `user`, then submitted (ERPNext sets it Unpaid on submit)."""
    name = str(erp.insert(doctype, {**fields, "posting_date": "2026-11-23"}, user=user)["name"])
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
    requests.post(
        f"{stack.webhook_url}?event=on_update",
        data=inserted.body,
        headers=dict(inserted.headers),
        timeout=10,
    )
    step("Someone posts a forged invoice to the webhook (wrong signature)")
    forged = json.dumps({"doctype": "Sales Invoice", "name": "FAKE-1", "grand_total": 1e6}).encode()
    bad_sig = base64.b64encode(hmac.new(b"guess", forged, hashlib.sha256).digest()).decode()
    forged_answer = requests.post(
        f"{stack.webhook_url}?event=on_submit",
        data=forged,
        headers={"X-Frappe-Webhook-Signature": bad_sig},
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
    step("The notifier is down while a service request arrives; Pub/Sub retries, then dead-letters")
    stack.functions["send_alerts"].kill()
    urgent = erp.insert(
        "Issue",
        {"subject": "Freezer alarm", "priority": "Emergency", "customer": "Blue River Foods"},
    )["name"]
    erp.wait_for_deliveries(timeout=30)
    wait_until(
        lambda: any(r.get("entity_id") == urgent for r in stack.stores().errors.list_errors()), 90
    )
    stack.restart("send_alerts")
    notes[urgent] = "notifier was down: dead-lettered into a pending error record"
    notes[issue] = "service request"
    settled(stack)
    return notes


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
        consumer = str(entry.get("function"))
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
            str(record["integration"]),
            str(record["operation"]),
            f"{record['entity_type']} {record['entity_id']}",
            str(record["status"]),
            str(record["attempts"]),
            str(record["message"])[:70],
        )
    console.print(errors)

    accidents = Table(title="7. The day's accidents, and what the bridge did about them")
    accidents.add_column("document")
    accidents.add_column("what happened")
    for name, note in notes.items():
        accidents.add_row(name, note)
    console.print(accidents)


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


def main() -> int:
    secret = secrets.token_urlsafe(24)
    console.rule("[bold]ERPNext Bridge demo")
    step(
        "starting the Pub/Sub and Firestore emulators, the ERPNext and Google Sheets stand-ins, "
        "and the six functions (a few seconds)"
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
        show(stack, erp, notes)
    step("stopped everything the demo started")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
