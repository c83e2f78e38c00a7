"""1,000 ERPNext events, each delivered three times, shuffled, stale versions among them, posted to
the real webhook function as Frappe signs them: every tool must end exactly equal to ERPNext,
with no duplicate row, file or message.

    250 invoices x 3 versions (insert, amount corrected, submitted): 750 events -> the Invoice
        Tracker and the admins' alerts;
    150 attachments (File after_insert): 150 events -> Drive;
    100 service requests (Issue after_insert): 100 events -> the service team's alerts.
"""

from __future__ import annotations

import copy
import random
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from devstack.emulators import Emulators
from devstack.erpnext import Webhook, build_request
from devstack.stack import CHATS, Devstack, running_devstack
from tests.e2e import wait_until

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(1200)]

SECRET = "reliability-secret"
INVOICES, FILES, ISSUES = 250, 150, 100
GROUP_WINDOW_S = 0.5


@pytest.fixture(scope="module")
def stack(emulators: Emulators) -> Iterator[Devstack]:
    extra = {"TELEGRAM_GROUP_WINDOW_SECONDS": str(GROUP_WINDOW_S), "SHEETS_GATHER_SECONDS": "1"}
    with running_devstack(
        webhook_secret=SECRET, extra_env=extra, project="reliability", emulators=emulators
    ) as running:
        yield running


def signed(
    stack: Devstack, doctype: str, event: str, doc: dict[str, Any]
) -> tuple[str, bytes, dict[str, str]]:
    """What Frappe would post for this version of the document."""
    era = "develop" if doctype in ("File", "Issue") else "v15"
    hook = Webhook(0, doctype, event, stack.webhook_url, SECRET, era)
    body, headers = build_request(hook, {**doc, "doctype": doctype})
    return f"{stack.webhook_url}?event={event}", body, headers


def test_a_thousand_events_three_times_shuffled_end_exactly_equal_to_erpnext(
    stack: Devstack,
) -> None:
    erp = stack.erpnext
    project = str(erp.all("Project")[0]["name"])
    posts: list[tuple[str, bytes, dict[str, str]]] = []
    for n in range(INVOICES):
        draft = erp.insert(
            "Sales Invoice",
            {
                "customer": "Acme Builders",
                "project": project,
                "grand_total": 100 + n,
                "currency": "USD",
            },
        )
        name = str(draft["name"])
        posts.append(signed(stack, "Sales Invoice", "after_insert", copy.deepcopy(draft)))
        corrected = erp.save("Sales Invoice", name, {"grand_total": 1000 + n})
        posts.append(signed(stack, "Sales Invoice", "on_update", copy.deepcopy(corrected)))
        submitted = erp.submit("Sales Invoice", name)
        posts.append(signed(stack, "Sales Invoice", "on_submit", copy.deepcopy(submitted)))
    for n in range(FILES):
        file_doc = erp.add_file(
            f"reliability-{n}.pdf", f"bytes of file {n}".encode(), imported=True
        )
        posts.append(signed(stack, "File", "after_insert", copy.deepcopy(file_doc)))
    for n in range(ISSUES):
        issue = erp.insert("Issue", {"subject": f"Reliability request {n}", "priority": "Medium"})
        posts.append(signed(stack, "Issue", "after_insert", copy.deepcopy(issue)))
    assert len(posts) == 1000
    deliveries = posts * 3
    random.Random(7).shuffle(deliveries)

    session = requests.Session()

    def post(delivery: tuple[str, bytes, dict[str, str]]) -> int:
        url, body, headers = delivery
        for _ in range(5):  # as ERPNext retries a 5xx
            answer = session.post(url, data=body, headers=headers, timeout=30)
            if answer.status_code < 500:
                return answer.status_code
            time.sleep(1)
        return answer.status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = Counter(pool.map(post, deliveries))
    assert statuses == Counter({200: 3000}), statuses

    invoices = {str(doc["name"]): doc for doc in erp.all("Sales Invoice")}
    files = [
        doc for doc in erp.all("File") if str(doc.get("file_name", "")).startswith("reliability-")
    ]
    issues = [
        str(doc["name"])
        for doc in erp.all("Issue")
        if str(doc.get("subject", "")).startswith("Reliability")
    ]

    # What ERPNext holds now: the newest version (status as its set_status left it).
    expected = {
        name: (doc["status"], f"{doc['grand_total']:,.2f}") for name, doc in invoices.items()
    }
    assert all(
        amount == f"{1000 + _number(name) - 1:,.2f}" for name, (_, amount) in expected.items()
    )

    def sheet_differences() -> list[str]:
        header, *rows = stack.tracker_rows()
        found: dict[str, dict[str, object]] = {}
        for row in rows:
            if row and row[0] in invoices:
                found[str(row[0])] = dict(zip(header, row, strict=False))
        wrong = [f"{name}: missing" for name in expected if name not in found]
        wrong += [
            f"{name}: {row.get('Status')} {row.get('Amount')}"
            for name, row in found.items()
            if (row.get("Status"), row.get("Amount")) != expected[name]
        ]
        return wrong

    def sheet_equal() -> bool:
        return not sheet_differences()

    assert wait_until(sheet_equal, timeout=300, every=5), sheet_differences()[:10]
    sheet_names = [row[0] for row in stack.tracker_rows()[1:] if row and row[0] in invoices]
    assert len(sheet_names) == len(set(sheet_names)) == INVOICES  # no duplicate row

    def drive_equal() -> bool:
        return all(erp.get("File", str(f["name"])).get("drive_file_id") for f in files)

    assert wait_until(drive_equal, timeout=300, every=5), "some files never reached Drive"
    copies = Counter(
        drive_file.app_properties.get("erp_file", "").rsplit(":", 1)[-1]
        for drive_file in stack.drive.files(include_trashed=False)
        if drive_file.app_properties.get("erp_file")
    )
    assert all(copies[str(f["name"])] == 1 for f in files), "a file was copied twice"

    def alerts(chat: int, names: list[str] | dict[str, Any]) -> Counter[str]:
        return Counter(
            name
            for text in stack.telegram.texts(chat)
            for name in names
            if f"<b>{name}</b>" in text
        )

    assert wait_until(
        lambda: len(alerts(CHATS["admins"], invoices)) == INVOICES, timeout=300, every=5
    )
    assert wait_until(
        lambda: len(alerts(CHATS["service_team"], issues)) == ISSUES, timeout=300, every=5
    )
    time.sleep(5)  # room for a wrongly doubled message to show up
    assert set(alerts(CHATS["admins"], invoices).values()) == {1}
    assert set(alerts(CHATS["service_team"], issues).values()) == {1}
    assert stack.telegram.refused == []


def _number(name: str) -> int:
    return int(name.rsplit("-", 1)[-1])
