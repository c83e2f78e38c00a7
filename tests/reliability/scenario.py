"""What the reliability suites share: ERPNext documents and the webhooks Frappe would post for
each of their versions, a poster that retries 5xx answers as ERPNext does, and the checks that
every tool ended equal to ERPNext with nothing doubled."""

from __future__ import annotations

import copy
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests

from devstack.erpnext import Webhook, build_request
from devstack.stack import CHATS, Devstack
from devstack.waiting import wait_until
from shared.alerts.rules import REPEAT_NOTICE
from shared.ingress.webhook import webhook_template

Delivery = tuple[str, bytes, dict[str, str]]
"""URL, body and headers of one webhook request, as Frappe posts it."""

SUITE_ENV = {
    "TELEGRAM_GROUP_WINDOW_SECONDS": "0.5",
    "SHEETS_GATHER_SECONDS": "1",
    "MAX_DELIVERY_ATTEMPTS": "10",
    "ERROR_RETRY_AFTER_SECONDS": "20",
}
"""The devstack for the failure suites: infra's 10 delivery attempts before a dead letter, and
shorter waits (a group's 20 messages a minute in half a second, the scheduled retry after 20 s
instead of 10 minutes) so a run takes minutes, not hours."""
TOM = "+14155550134"
"""The seeded client's mobile: the scenario's service requests are his."""


@dataclass
class Scenario:
    """Documents made in ERPNext and the webhooks for every version of them."""

    posts: list[Delivery] = field(default_factory=list)
    invoices: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)
    urgent: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    """Issues resolved afterwards: the client hears it on WhatsApp, once."""


def signed(stack: Devstack, secret: str, doctype: str, event: str, doc: dict[str, Any]) -> Delivery:
    """What Frappe would post for this version of the document."""
    era = "develop" if doctype in ("File", "Issue") else "v15"
    hook = Webhook(
        0, doctype, event, stack.webhook_url, secret, era, webhook_json=webhook_template(event)
    )
    body, headers = build_request(hook, {**copy.deepcopy(doc), "doctype": doctype})
    return stack.webhook_url, body, headers


def make_scenario(
    stack: Devstack,
    secret: str,
    *,
    invoices: int,
    files: int,
    issues: int,
    urgent_every: int = 0,
    resolved_every: int = 0,
    tag: str = "Reliability",
) -> Scenario:
    """Invoices in three versions (insert, amount corrected to 1000 + n, submitted), imported
    attachments, and service requests for a seeded client (every `urgent_every`-th Urgent,
    every `resolved_every`-th resolved afterwards)."""
    erp = stack.erpnext
    project = str(erp.all("Project")[0]["name"])
    contact = next(doc for doc in erp.all("Contact") if doc.get("first_name") == "Tom")
    customer = str(contact["links"][0]["link_name"])
    made = Scenario()
    for n in range(invoices):
        draft = erp.insert(
            "Sales Invoice",
            {"customer": customer, "project": project, "grand_total": 100 + n, "currency": "USD"},
        )
        name = str(draft["name"])
        made.invoices.append(name)
        made.posts.append(signed(stack, secret, "Sales Invoice", "after_insert", draft))
        corrected = erp.save("Sales Invoice", name, {"grand_total": 1000 + n})
        made.posts.append(signed(stack, secret, "Sales Invoice", "on_update", corrected))
        submitted = erp.submit("Sales Invoice", name)
        made.posts.append(signed(stack, secret, "Sales Invoice", "on_submit", submitted))
    for n in range(files):
        doc = erp.add_file(f"{tag.lower()}-{n}.pdf", f"bytes of file {n}".encode(), imported=True)
        made.files.append(str(doc["name"]))
        made.posts.append(signed(stack, secret, "File", "after_insert", doc))
    for n in range(issues):
        urgent = bool(urgent_every) and n % urgent_every == 0
        issue = erp.insert(
            "Issue",
            {
                "subject": f"{tag} request {n}",
                "priority": "Urgent" if urgent else "Medium",
                "customer": customer,
                "contact": contact["name"],
            },
        )
        name = str(issue["name"])
        made.issues.append(name)
        made.urgent += [name] if urgent else []
        made.posts.append(signed(stack, secret, "Issue", "after_insert", issue))
        if resolved_every and n % resolved_every == 0:
            done = erp.save("Issue", name, {"status": "Resolved"})
            made.resolved.append(name)
            made.posts.append(signed(stack, secret, "Issue", "on_update", done))
    return made


def shuffled_twice(made: Scenario, seed: int) -> list[Delivery]:
    """Every webhook of the scenario twice, in a random order."""
    deliveries = made.posts * 2
    random.Random(seed).shuffle(deliveries)
    return deliveries


def deliver(
    deliveries: Sequence[Delivery], *, threads: int = 8, give_up_s: float = 120.0
) -> Counter[int]:
    """Post every delivery; a 5xx is retried a second later, as a retrying sender does, until
    `give_up_s` has passed for that delivery (the final statuses counted)."""
    session = requests.Session()

    def post(delivery: Delivery) -> int:
        url, body, headers = delivery
        deadline = time.monotonic() + give_up_s
        while True:
            try:
                status = session.post(url, data=body, headers=headers, timeout=30).status_code
            except requests.ConnectionError:
                status = 599  # the webhook function is being restarted
            if status < 500 or time.monotonic() > deadline:
                return status
            time.sleep(1)  # the pace of the retries, not a wait for anything

    with ThreadPoolExecutor(threads) as pool:
        return Counter(pool.map(post, deliveries))


def sheet_differences(stack: Devstack, invoices: Iterable[str]) -> list[str]:
    """How the Invoice Tracker differs from ERPNext for these invoices (empty when equal),
    duplicate rows included."""
    erp = stack.erpnext
    expected = {}
    for name in invoices:
        doc = erp.get("Sales Invoice", name)
        expected[name] = (doc["status"], f"{doc['grand_total']:,.2f}")
    header, *rows = stack.tracker_rows()
    found: dict[str, dict[str, object]] = {}
    wrong: list[str] = []
    for row in rows:
        if row and row[0] in expected:
            if row[0] in found:
                wrong.append(f"{row[0]}: a second row")
            found[str(row[0])] = dict(zip(header, row, strict=False))
    wrong += [f"{name}: missing" for name in expected if name not in found]
    wrong += [
        f"{name}: {row.get('Status')} {row.get('Amount')}, ERPNext has {expected[name]}"
        for name, row in found.items()
        if (row.get("Status"), row.get("Amount")) != expected[name]
    ]
    return wrong


def drive_copies(stack: Devstack, files: Iterable[str]) -> dict[str, int]:
    """How many live Drive copies each File has, for files linked back in ERPNext (0 if not)."""
    copies = Counter(
        drive_file.app_properties.get("erp_file", "").rsplit(":", 1)[-1]
        for drive_file in stack.drive.files(include_trashed=False)
        if drive_file.app_properties.get("erp_file")
    )
    erp = stack.erpnext
    return {
        name: copies[name] if erp.get("File", name).get("drive_file_id") else 0 for name in files
    }


def alerts(stack: Devstack, chat: str, names: Iterable[str]) -> tuple[Counter[str], Counter[str]]:
    """How many messages in the chat name each document (in bold, as the alerts do): plain ones,
    and those sent again in doubt (headed by the repeat notice)."""
    plain: Counter[str] = Counter()
    repeated: Counter[str] = Counter()
    for text in stack.telegram.texts(CHATS[chat]):
        counted = repeated if text.startswith(REPEAT_NOTICE) else plain
        counted.update(name for name in names if f"<b>{name}</b>" in text)
    return plain, repeated


def whatsapp_completions(stack: Devstack, phone: str, names: Iterable[str]) -> Counter[str]:
    """Completion messages the client got through the Messages API, per request."""
    sent = [m for m in list(stack.twilio.outbound.get(phone, [])) if m.direction == "outbound-api"]
    return Counter(
        name for message in sent for name in names if f"request {name} " in (message.body or "")
    )


def wait_all_once(
    stack: Devstack, count: Callable[[], Counter[str]], names: Sequence[str], timeout: float
) -> Counter[str]:
    """Wait until every name was counted and no alert waits to be sent. Every message is sent
    from the alert outbox, and an alert it has once held is never queued again (a send in doubt
    goes again from its queue entry, announced); so a wrong double, if there were one, is in the
    count by then."""
    wait_until(
        lambda: len(count()) == len(names) and stack.outboxes_empty(), timeout=timeout, every=5
    )
    return count()


def assert_alerted_once(stack: Devstack, chat: str, names: Sequence[str], timeout: float) -> int:
    """Every document alerted in the chat, never twice plainly: a second copy only as a repeat
    the notice announces (a send in doubt; Telegram cannot be asked). The repeats' number."""
    wait_all_once(stack, lambda: sum(alerts(stack, chat, names), Counter()), names, timeout)
    plain, repeated = alerts(stack, chat, names)
    assert set(plain + repeated) == set(names), f"never alerted in {chat}"
    assert set(plain.values()) <= {1}, f"alerted twice in {chat}: {plain - Counter(names)}"
    return sum(repeated.values())


@contextmanager
def scheduled_jobs(
    stack: Devstack, every_s: float = 15.0, *, safety_nets: bool = False
) -> Iterator[None]:
    """Cloud Scheduler, faster: the retry of pending errors and the alert drain every `every_s`;
    with `safety_nets`, also the reconciliation of invoices and the backfill of attachments."""
    stop = threading.Event()
    jobs = [stack.retry_errors, stack.drain_alerts]
    jobs += [stack.reconcile, stack.backfill] if safety_nets else []

    def run() -> None:
        while not stop.wait(every_s):
            for job in jobs:
                try:
                    job()
                except Exception:  # refused (409 running) or a fault: tried again next round
                    logging.getLogger(__name__).warning("scheduled job failed", exc_info=True)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=120)


def assert_applied_once(stack: Devstack, made: Scenario, timeout: float = 900) -> int:
    """Wait until every tool holds the scenario as ERPNext does, then check nothing is doubled:
    the sheet, one Drive copy per file, one alert per document in each chat (and repeats only
    announced ones), one WhatsApp message per resolved request. The announced repeats' number."""
    assert wait_until(
        lambda: not sheet_differences(stack, made.invoices), timeout=timeout, every=5
    ), sheet_differences(stack, made.invoices)[:10]
    assert wait_until(
        lambda: all(drive_copies(stack, made.files).values()), timeout=timeout, every=5
    ), [name for name, n in drive_copies(stack, made.files).items() if not n]
    assert set(drive_copies(stack, made.files).values()) <= {1}, "a file was copied twice"
    repeats = sum(
        assert_alerted_once(stack, chat, names, timeout)
        for chat, names in (
            ("admins", made.invoices),
            ("service_team", made.issues),
            ("oncall", made.urgent),
        )
    )
    sent = wait_all_once(
        stack, lambda: whatsapp_completions(stack, TOM, made.resolved), made.resolved, timeout
    )
    assert sorted(sent) == sorted(made.resolved) and set(sent.values()) <= {1}, sent
    return repeats
