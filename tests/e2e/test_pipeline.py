"""End to end, as `make demo` runs it: the ERPNext stand-in's webhooks through every function.

One devstack for the module (emulators, five functions, push subscriptions, dead-letter topic);
each test uses its own documents, so their claims and records never meet.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests

from devstack.drive import DriveFile
from devstack.emulators import Emulators
from devstack.erpnext import ErpNextStandIn
from devstack.stack import CHATS, Devstack, running_devstack
from devstack.waiting import wait_until
from shared.adapters.firestore import CLAIMS
from shared.core.claims import ClaimState, claim_key
from shared.platform.failures import ErrorRecord
from tests.e2e import settle
from tests.helpers.frappe import frappe_signature

SECRET = "e2e-webhook-secret"
LEASE_S = 4


@pytest.fixture(scope="module")
def stack(emulators: Emulators) -> Iterator[Devstack]:
    extra = {"CLAIM_LEASE_SECONDS": str(LEASE_S), "MAX_DELIVERY_ATTEMPTS": "5"}
    with running_devstack(
        webhook_secret=SECRET, extra_env=extra, project="e2e-pipeline", emulators=emulators
    ) as running:
        yield running


@pytest.fixture(scope="module")
def erp(stack: Devstack) -> ErpNextStandIn:
    """The devstack's site, one for the module, so document names never repeat between tests."""
    erp = stack.erpnext
    for event in ("after_insert", "on_submit", "on_change", "on_cancel"):
        for doctype in ("Sales Invoice", "Purchase Invoice"):
            erp.add_bridge_webhook(doctype, event, stack.webhook_url, SECRET)
    erp.add_bridge_webhook(
        "File",
        "after_insert",
        stack.webhook_url,
        SECRET,
        era="develop",
        request_structure="form",
    )
    erp.add_bridge_webhook("Issue", "after_insert", stack.webhook_url, SECRET)
    return erp


def alerts_about(stack: Devstack, name: str) -> list[tuple[int, str]]:
    """Every Telegram message that names the document: (chat, text)."""
    return [
        (chat, sent.text or "")
        for chat, messages in list(stack.telegram.chats.items())
        for sent in list(messages)
        if name in (sent.text or "")
    ]


def sheet_rows(stack: Devstack, name: str) -> list[list[object]]:
    return [row for row in stack.tracker_rows() if row and row[0] == name]


def new_invoice(erp: ErpNextStandIn, customer: str = "Acme Builders") -> str:
    doc = erp.insert(
        "Sales Invoice",
        {
            "customer": customer,
            "project": "PROJ-0001",
            "grand_total": 5000,
            "currency": "USD",
            "posting_date": "2026-11-23",
        },
    )
    return str(doc["name"])


def test_stand_in_webhooks_verify_and_reach_every_consumer(
    stack: Devstack, erp: ErpNextStandIn
) -> None:
    name = new_invoice(erp)
    assert erp.wait_for_deliveries(timeout=20)
    (delivery,) = erp.deliveries(docname=name, event="after_insert")
    assert delivery.state == "delivered"
    assert wait_until(lambda: len(sheet_rows(stack, name)) == 1)
    assert wait_until(lambda: len(alerts_about(stack, name)) == 1)
    ((chat, text),) = alerts_about(stack, name)
    assert chat == CHATS["admins"]
    assert f"Invoice <b>{name}</b> uploaded by Administrator for Project PROJ-0001" in text
    assert "amount 5,000.00 USD" in text
    row = stack.tracker_row(name)
    assert row is not None
    assert row["Customer / Supplier"] == "Acme Builders" and row["Amount"] == "5,000.00"
    assert row["Project manager"] == "Ana Lopez" and row["Entered by"] == "Administrator"


def test_one_effect_per_consumer_when_the_same_webhook_arrives_three_times(
    stack: Devstack, erp: ErpNextStandIn
) -> None:
    name = new_invoice(erp)
    erp.wait_for_deliveries(timeout=20)
    (first,) = erp.deliveries(docname=name, event="after_insert")
    erp.redeliver(first.id)
    erp.redeliver(first.id)
    erp.wait_for_deliveries(timeout=20)
    deliveries = erp.deliveries(docname=name, event="after_insert")
    assert [d.state for d in deliveries] == ["delivered"] * 3
    settle(stack, name, consumers=2)
    outcomes = [(o["consumer"], o["outcome"]) for o in stack.outcomes() if o.get("name") == name]
    assert sorted(outcomes) == sorted(
        [(function, "applied") for function in ("notifier", "sheets_sync")]
        + [(function, "duplicate") for function in ("notifier", "sheets_sync")] * 2
    )
    assert len(alerts_about(stack, name)) == 1
    assert len(sheet_rows(stack, name)) == 1


def test_older_version_is_acknowledged_not_applied_when_it_arrives_late(
    stack: Devstack, erp: ErpNextStandIn
) -> None:
    name = new_invoice(erp)
    erp.submit("Sales Invoice", name)
    erp.wait_for_deliveries(timeout=20)
    assert wait_until(lambda: (stack.tracker_row(name) or {}).get("Status") == "Unpaid")
    (insert_delivery,) = erp.deliveries(docname=name, event="after_insert")
    # The late copy: a v15 retry that reaches us after the newer versions were applied.
    stale_body = json.loads(insert_delivery.body)
    stale_body["event"] = "on_update"
    stale_body["doc"]["customer"] = "Stale Copy Ltd"
    body = json.dumps(stale_body).encode()
    response = requests.post(
        stack.webhook_url,
        data=body,
        headers={"X-Frappe-Webhook-Signature": sign(body)},
        timeout=10,
    )
    assert response.status_code == 200
    # The stale copy was decided without an effect, and nothing queued before it is still
    # waiting to be written, so the row is final.
    assert wait_until(
        lambda: (
            any(o.get("name") == name and o["outcome"] == "stale" for o in stack.outcomes())
            and stack.outboxes_empty()
        )
    )
    row = stack.tracker_row(name)
    assert row is not None and row["Customer / Supplier"] == "Acme Builders"
    assert row["Status"] == "Unpaid"


def test_a_signed_body_means_only_what_it_says_whatever_the_url_adds(
    stack: Devstack, erp: ErpNextStandIn
) -> None:
    # A Webhook set up the old way: the document alone in the body, its event only in the URL.
    flat = erp.add_webhook(
        "Sales Invoice", "on_update", f"{stack.webhook_url}?event=on_update", SECRET
    )
    try:
        name = new_invoice(erp)
        assert erp.wait_for_deliveries(timeout=20)
    finally:
        erp.remove_webhook(flat)
    assert wait_until(lambda: stack.tracker_row(name) is not None)
    # Its deliveries are refused with an answer that says how to set the Webhook up ...
    (refused,) = erp.deliveries(docname=name, event="on_update")
    assert set(refused.status_codes) == {422}
    # ... and the attacker's move: the same signed bytes (ERPNext's request log keeps them, with
    # their signature) posted with a URL that says the invoice was deleted.
    attack = requests.post(
        f"{stack.webhook_url}?event=on_trash&doctype=Sales+Invoice",
        data=refused.body,
        headers=dict(refused.headers),
        timeout=10,
    )
    assert attack.status_code == 422
    assert "the event must be inside the signed body" in attack.json()["error"]
    # A signed template body keeps its own event, whatever the URL says.
    (inserted,) = erp.deliveries(docname=name, event="after_insert")
    again = requests.post(
        f"{stack.webhook_url}?event=on_trash",
        data=inserted.body,
        headers=dict(inserted.headers),
        timeout=10,
    )
    assert again.json()["event_type"] == "erpnext.sales_invoice.after_insert"
    assert wait_until(
        lambda: (
            sum(o.get("name") == name and o["outcome"] == "duplicate" for o in stack.outcomes())
            == 2
            and stack.outboxes_empty()
        )
    )
    assert stack.tracker_row(name) is not None


def sign(body: bytes) -> str:
    return frappe_signature(SECRET, body)


def test_crashed_claim_is_taken_over_after_its_lease_and_applied_once(
    stack: Devstack, erp: ErpNextStandIn
) -> None:
    # What a crash leaves behind: a claim whose owner died before marking it done. We place it
    # first, then let the webhook through, as if the crashed instance had got the event earlier.
    (issue,) = erp.import_docs("Issue", [{"subject": "Pump broken", "priority": "High"}])
    body = json.dumps(
        {"event": "after_insert", "doc": {**issue, "doctype": "Issue"}}, default=str
    ).encode()
    from shared.core.envelope import build_envelope

    envelope = build_envelope(
        raw_body=body,
        payload=json.loads(body),
        site="erp.example.com",
        received_at=datetime.now(UTC),
    )
    crashed_at = datetime.now(UTC)
    stack.stores().claims.claim(
        "notifier",
        envelope.event_id,
        owner="crashed-instance",
        now=crashed_at,
        lease=timedelta(seconds=LEASE_S),
    )
    response = requests.post(
        stack.webhook_url,
        data=body,
        headers={"X-Frappe-Webhook-Signature": sign(body)},
        timeout=10,
    )
    assert response.json()["event_id"] == envelope.event_id
    assert wait_until(lambda: len(alerts_about(stack, str(issue["name"]))) == 1, timeout=40)

    def settled() -> bool:
        # Once the claim is done, any later delivery is a duplicate; once the outbox is empty,
        # every alert the takeover queued has been sent: a second alert would be visible now.
        claim = stack.stores().claims.get("notifier", envelope.event_id)
        return claim is not None and claim.state is ClaimState.DONE and stack.outboxes_empty()

    assert wait_until(settled)
    ((chat, text),) = alerts_about(stack, str(issue["name"]))
    assert chat == CHATS["service_team"] and "Pump broken" in text
    # Taken over once, by another instance, and only after the crashed claim's lease ran out.
    raw = (
        stack.stores()
        .connection.collection(CLAIMS)
        .document(claim_key("notifier", envelope.event_id))
    )
    fields = raw.get().to_dict() or {}
    assert fields["attempts"] == 2 and fields["owner"] != "crashed-instance"
    assert fields["claimed_at"] >= crashed_at + timedelta(seconds=LEASE_S)


def test_undecodable_message_becomes_an_error_record_and_is_acknowledged(stack: Devstack) -> None:
    # Pushed as the emulator pushes it, so the function's answer is seen: a 2xx acknowledges, and
    # acknowledged, Pub/Sub never delivers the message again.
    push = {
        "message": {
            "data": base64.b64encode(b'{"schema": 1, "half": "an envelope"}').decode(),
            "attributes": {"doctype": "File", "event_id": "bad-1"},
            "messageId": "undecodable-1",
            "publishTime": datetime.now(UTC).isoformat(),
        },
        "subscription": f"projects/{stack.project}/subscriptions/drive-upload-files",
    }
    function = stack.functions["upload_attachment"]
    response = requests.post(
        f"{function.url}/projects/{stack.project}/topics/erp-files", json=push, timeout=30
    )
    assert 200 <= response.status_code < 300, response.text
    (found,) = [r for r in stack.stores().errors.list_errors() if r.event_id == "bad-1"]
    assert found.status == "pending" and found.integration == "drive_upload"
    assert found.attempts == 1


def test_undeliverable_event_is_dead_lettered_into_a_pending_error_record(
    stack: Devstack, erp: ErpNextStandIn
) -> None:
    stack.functions["upload_attachment"].kill()
    try:
        file_doc = erp.add_file(
            "site-photo.jpg",
            b"\xff\xd8 jpeg bytes",
            attached_to_doctype="Issue",
            attached_to_name="ISS-1",
        )
        erp.wait_for_deliveries(timeout=20)

        def dead_lettered() -> list[ErrorRecord]:
            return [
                r
                for r in stack.stores().errors.list_errors()
                if r.entity_id == file_doc["name"] and "gave up" in str(r.message)
            ]

        assert wait_until(lambda: bool(dead_lettered()), timeout=90)
        (record,) = dead_lettered()
        assert record.integration == "drive_upload" and record.status == "pending"
        assert "after 5 deliveries" in str(record.message)  # redelivered, then dead-lettered
        assert json.loads(str(record.envelope))["name"] == file_doc["name"]
    finally:
        stack.restart("upload_attachment")


def test_an_attachment_reaches_drive_once_and_is_linked_back_then_trashed_on_delete(
    stack: Devstack, erp: ErpNextStandIn
) -> None:
    name = new_invoice(erp)
    content = b"%PDF-1.7 signed delivery note"
    file_doc = erp.add_file(
        "delivery note.pdf",
        content,
        is_private=True,
        attached_to_doctype="Sales Invoice",
        attached_to_name=name,
    )

    def copies() -> list[DriveFile]:
        return [
            f for f in stack.drive.files(include_trashed=False) if f.name == "delivery note.pdf"
        ]

    assert wait_until(lambda: bool(erp.get("File", file_doc["name"]).get("drive_file_id")))
    (copy,) = copies()
    assert stack.drive.content(copy.id) == content
    assert stack.drive.path_of(copy.id) == f"PROJ-0001/{name}/delivery note.pdf"
    erp.add_bridge_webhook("File", "on_trash", stack.webhook_url, SECRET)
    erp.delete("File", str(file_doc["name"]))
    assert wait_until(lambda: not copies())


def test_the_download_proxy_serves_only_people_erpnext_lets_read_the_document(
    stack: Devstack, erp: ErpNextStandIn
) -> None:
    name = new_invoice(erp)
    file_doc = erp.add_file(
        "quote.pdf",
        b"%PDF quote",
        is_private=True,
        attached_to_doctype="Sales Invoice",
        attached_to_name=name,
    )
    assert wait_until(lambda: bool(erp.get("File", file_doc["name"]).get("drive_file_id")))
    erp.add_api_user("pm@example.com", "pm-key", "pm-secret")
    erp.add_api_user(
        "temp@example.com", "temp-key", "temp-secret", can_read=lambda doctype, _: doctype == "File"
    )

    def fetch(token: str | None) -> requests.Response:
        headers = {"Authorization": f"token {token}"} if token else {}
        return requests.get(
            stack.download_url, params={"file": file_doc["name"]}, headers=headers, timeout=20
        )

    allowed = fetch("pm-key:pm-secret")
    assert allowed.status_code == 200 and allowed.content == b"%PDF quote"
    assert "quote.pdf" in allowed.headers["Content-Disposition"]
    refused = fetch("temp-key:temp-secret")
    assert refused.status_code == 404 and b"PDF" not in refused.content
    assert fetch(None).status_code == 403
    assert fetch("pm-key:wrong").status_code == 403
    missing = requests.get(
        stack.download_url,
        params={"file": "nope"},
        headers={"Authorization": "token pm-key:pm-secret"},
        timeout=20,
    )
    assert missing.status_code == 404
    # Not allowed and not there read the same: the answer tells nothing of what exists.
    assert missing.json() == refused.json()


def download(stack: Devstack, file_name: str, token: str | None) -> requests.Response:
    headers = {"Authorization": f"token {token}"} if token else {}
    return requests.get(stack.download_url, params={"file": file_name}, headers=headers, timeout=20)


def test_the_download_proxy_serves_the_bridges_own_copy_whatever_the_file_says(
    stack: Devstack, erp: ErpNextStandIn
) -> None:
    """An attacker owns a File on a document they may read and writes into it the Drive id of
    someone else's attachment (ids are in every drive_link): they get their own file back."""
    private, mine = new_invoice(erp), new_invoice(erp)
    salary = erp.add_file(
        "salary.pdf",
        b"%PDF salaries",
        attached_to_doctype="Sales Invoice",
        attached_to_name=private,
    )
    own = erp.add_file(
        "mine.pdf", b"%PDF my own", attached_to_doctype="Sales Invoice", attached_to_name=mine
    )
    for doc in (salary, own):
        assert wait_until(lambda doc=doc: bool(erp.get("File", doc["name"]).get("drive_file_id")))
    erp.add_api_user(
        "mallory@example.com",
        "mallory-key",
        "mallory-secret",
        can_read=lambda doctype, name: doctype == "File" or name == mine,
    )
    victim_copy = erp.get("File", salary["name"])["drive_file_id"]
    erp.db_set("File", str(own["name"]), "drive_file_id", victim_copy)  # the owner may write it

    answer = download(stack, str(own["name"]), "mallory-key:mallory-secret")
    assert answer.status_code == 200 and answer.content == b"%PDF my own"
    assert download(stack, str(salary["name"]), "mallory-key:mallory-secret").status_code == 404


def test_the_download_proxy_checks_the_token_before_it_reads_anything(
    stack: Devstack, erp: ErpNextStandIn
) -> None:
    """A junk token learns nothing: the bridge reads no File for it, and its answer is the same
    whether the File exists or not; dot names and an empty name are 404 without a lookup."""
    name = new_invoice(erp)
    secret_file = erp.add_file(
        "board minutes.pdf", b"%PDF", attached_to_doctype="Sales Invoice", attached_to_name=name
    )
    files_read = erp.request_count("GET", f"/api/resource/File/{secret_file['name']}")
    listed = erp.request_count("GET", "/api/resource/File")
    there = download(stack, str(secret_file["name"]), "junk-key:junk-secret")
    absent = download(stack, "no-such-file", "junk-key:junk-secret")
    assert there.status_code == absent.status_code == 403
    assert there.json() == absent.json()
    assert "Sales Invoice" not in there.text and name not in there.text
    assert erp.request_count("GET", f"/api/resource/File/{secret_file['name']}") == files_read

    erp.add_api_user("reader@example.com", "reader-key", "reader-secret")
    for odd in ("", ".", ".."):
        answer = download(stack, odd, "reader-key:reader-secret")
        assert answer.status_code == 404, odd
    assert erp.request_count("GET", "/api/resource/File") == listed


def test_a_replaced_attachment_is_a_new_drive_file_and_the_old_one_is_trashed(
    stack: Devstack, erp: ErpNextStandIn
) -> None:
    name = new_invoice(erp)
    erp.add_bridge_webhook("File", "on_trash", stack.webhook_url, SECRET)
    old = erp.add_file(
        "plan-v1.pdf", b"plan 1", attached_to_doctype="Sales Invoice", attached_to_name=name
    )
    assert wait_until(lambda: bool(erp.get("File", old["name"]).get("drive_file_id")))
    new = erp.add_file(
        "plan-v2.pdf", b"plan 2", attached_to_doctype="Sales Invoice", attached_to_name=name
    )
    erp.delete("File", str(old["name"]))  # the person removes the old version
    assert wait_until(lambda: bool(erp.get("File", new["name"]).get("drive_file_id")))

    def named(file_name: str) -> list[DriveFile]:
        return [f for f in stack.drive.files() if f.name == file_name]

    assert wait_until(lambda: all(f.trashed for f in named("plan-v1.pdf")))
    (current,) = named("plan-v2.pdf")
    assert not current.trashed and stack.drive.content(current.id) == b"plan 2"


def test_the_scheduled_backfill_uploads_files_that_fired_no_webhook(
    stack: Devstack, erp: ErpNextStandIn
) -> None:
    name = new_invoice(erp)
    quiet = erp.add_file(
        "imported.pdf",
        b"imported bytes",
        attached_to_doctype="Sales Invoice",
        attached_to_name=name,
        imported=True,  # Data Import: no webhook
    )
    answer = stack.backfill()
    assert answer["status"] == "finished" and int(str(answer["updated"])) >= 1
    linked = erp.get("File", str(quiet["name"]))
    assert linked.get("drive_file_id")
    assert stack.drive.content(str(linked["drive_file_id"])) == b"imported bytes"
    assert stack.backfill()["seen"] == 0  # nothing left without a copy
