"""The ERPNext stand-in speaks Frappe's REST API v1 and sends webhooks byte for byte as Frappe does."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.erpnext import (
    DEVELOP_RETRY_DELAYS,
    ErpNextStandIn,
    FieldFilter,
    matches,
)
from devstack.httpserver import FILE_CHUNK_BYTES
from tests.helpers.clocks import SettableClock
from tests.helpers.receivers import WebhookReceiver

API_KEY = "test-key"
API_SECRET = "test-secret"
WEBHOOK_SECRET = "whsec-42"
ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 11, 3, 9, 30, tzinfo=UTC)


HOOK = "/hook?event=on_submit"
"""Where the tests' webhooks post, on the receiver."""


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(START)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def erp(clock: SettableClock, sleeps: list[float]) -> Iterator[ErpNextStandIn]:
    with ErpNextStandIn(
        api_key=API_KEY,
        api_secret=API_SECRET,
        user="bridge@example.com",
        clock=clock,
        sleep=sleeps.append,
    ) as standin:
        yield standin


def _auth() -> dict[str, str]:
    return {"Authorization": f"token {API_KEY}:{API_SECRET}"}


def _get(erp: ErpNextStandIn, path: str, **params: Any) -> requests.Response:
    return requests.get(erp.url + path, params=params, headers=_auth(), timeout=5)


def _signature(secret: str, body: bytes) -> str:
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def test_invoice_status_follows_docstatus_and_outstanding_amount(erp: ErpNextStandIn) -> None:
    doc = _invoice(erp, grand_total=100.0)
    assert (doc["status"], doc["outstanding_amount"]) == ("Draft", 100.0)
    assert erp.submit("Sales Invoice", doc["name"])["status"] == "Unpaid"
    partly = erp.update_after_submit("Sales Invoice", doc["name"], {"outstanding_amount": 40.0})
    assert partly["status"] == "Partly Paid"
    assert erp.cancel("Sales Invoice", doc["name"])["status"] == "Cancelled"
    paid = _invoice(erp, grand_total=10.0, docstatus=1, outstanding_amount=0)
    assert paid["status"] == "Paid"


def _invoice(erp: ErpNextStandIn, **values: Any) -> dict[str, Any]:
    return erp.insert(
        "Sales Invoice",
        {"customer": "Acme Builders", "grand_total": 100.0, "status": "Draft", **values},
    )


# --- REST API ---------------------------------------------------------------------------------


def test_api_answers_401_authentication_error_when_secret_is_wrong(erp: ErpNextStandIn) -> None:
    response = requests.get(
        erp.url + "/api/resource/Sales Invoice",
        headers={"Authorization": f"token {API_KEY}:wrong"},
        timeout=5,
    )

    assert response.status_code == 401
    body = response.json()
    assert body["exc_type"] == "AuthenticationError"
    messages = [json.loads(message) for message in json.loads(body["_server_messages"])]
    assert messages[0]["message"]


def test_api_answers_403_permission_error_when_no_token_is_sent(erp: ErpNextStandIn) -> None:
    response = requests.get(erp.url + "/api/method/frappe.auth.get_logged_user", timeout=5)

    assert response.status_code == 403
    assert response.json()["exc_type"] == "PermissionError"


def test_logged_user_is_answered_when_token_is_valid(erp: ErpNextStandIn) -> None:
    response = _get(erp, "/api/method/frappe.auth.get_logged_user")

    assert response.status_code == 200
    assert response.json() == {"message": "bridge@example.com"}


def test_list_returns_20_newest_names_when_no_params_are_given(erp: ErpNextStandIn) -> None:
    names = [_invoice(erp)["name"] for _ in range(25)]

    rows = _get(erp, "/api/resource/Sales Invoice").json()["data"]

    assert rows == [{"name": name} for name in reversed(names[-20:])]


def test_list_applies_fields_filters_order_and_paging_when_given(erp: ErpNextStandIn) -> None:
    for total in (10, 50, 20, 40, 30):
        # Submitted; status follows the outstanding amount, as ERPNext's set_status decides it.
        _invoice(erp, grand_total=total, docstatus=1, outstanding_amount=total if total > 15 else 0)

    response = _get(
        erp,
        "/api/resource/Sales Invoice",
        fields=json.dumps(["name", "grand_total"]),
        filters=json.dumps([["Sales Invoice", "status", "=", "unpaid"], ["grand_total", ">=", 20]]),
        order_by="grand_total asc",
        limit_start=1,
        limit_page_length=2,
    )

    rows = response.json()["data"]
    assert [row["grand_total"] for row in rows] == [30, 40]
    assert set(rows[0]) == {"name", "grand_total"}


def test_list_accepts_dict_filters_star_fields_and_limit_alias_when_given(
    erp: ErpNextStandIn,
) -> None:
    for total in (10, 20, 30):
        _invoice(erp, grand_total=total, items=[{"item_code": "X", "qty": 1}])

    rows = _get(
        erp,
        "/api/resource/Sales Invoice",
        fields='["*"]',
        filters=json.dumps({"grand_total": [">", 10], "customer": "Acme Builders"}),
        limit=1,
    ).json()["data"]

    assert len(rows) == 1
    assert rows[0]["grand_total"] == 30
    assert rows[0]["doctype"] == "Sales Invoice"
    assert "items" not in rows[0]  # get_list never returns child tables


def test_list_returns_every_row_when_page_length_is_zero(erp: ErpNextStandIn) -> None:
    for _ in range(23):
        _invoice(erp)

    rows = _get(erp, "/api/resource/Sales Invoice", limit_page_length=0).json()["data"]

    assert len(rows) == 23


def test_list_answers_500_json_decode_error_when_filters_are_not_json(
    erp: ErpNextStandIn,
) -> None:
    response = _get(erp, "/api/resource/Sales Invoice", filters="[[status")

    assert response.status_code == 500
    assert response.json()["exc_type"] == "JSONDecodeError"


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("=", "PAID", True),
        ("!=", "Paid", False),
        ("in", ["Unpaid", "Paid"], True),
        ("in", "Unpaid, Paid", True),
        ("not in", ["Paid"], False),
        ("like", "pa%", True),
        ("not like", "%id", False),
        ("is", "set", True),
        ("is", "not set", False),
    ],
)
def test_filter_on_status_matches_when_operator_applies(
    operator: str, value: Any, expected: bool
) -> None:
    assert matches({"status": "Paid"}, FieldFilter("status", operator, value)) is expected


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [(">", 99, True), (">=", "100.5", True), ("<", 100, False), ("<=", 100.5, True)],
)
def test_filter_on_amount_compares_numbers_when_operator_is_ordered(
    operator: str, value: Any, expected: bool
) -> None:
    assert matches({"grand_total": 100.5}, FieldFilter("grand_total", operator, value)) is expected


def test_filter_is_not_set_matches_when_field_is_missing() -> None:
    assert matches({}, FieldFilter("project", "is", "not set"))


def test_get_returns_full_document_when_it_exists(erp: ErpNextStandIn) -> None:
    created = _invoice(erp, items=[{"item_code": "X", "qty": 2}])

    doc = _get(erp, f"/api/resource/Sales Invoice/{created['name']}").json()["data"]

    assert doc == created
    assert doc["items"][0]["parent"] == created["name"]


def test_get_answers_404_does_not_exist_when_name_is_unknown(erp: ErpNextStandIn) -> None:
    response = _get(erp, "/api/resource/Sales Invoice/ACC-SINV-2026-99999")

    assert response.status_code == 404
    assert response.json()["exc_type"] == "DoesNotExistError"


def test_insert_sets_name_and_standard_fields_when_posted(erp: ErpNextStandIn) -> None:
    response = requests.post(
        erp.url + "/api/resource/Sales Invoice",
        json={"customer": "Acme Builders", "grand_total": 5},
        headers=_auth(),
        timeout=5,
    )

    doc = response.json()["data"]
    assert response.status_code == 200
    assert doc["name"] == "ACC-SINV-2026-00001"
    assert doc["creation"] == doc["modified"] == "2026-11-03 09:30:00.000000"
    assert (doc["owner"], doc["modified_by"]) == ("bridge@example.com", "bridge@example.com")
    assert (doc["docstatus"], doc["doctype"]) == (0, "Sales Invoice")
    assert erp.insert("Project", {"project_name": "P"})["name"] == "PROJ-0001"


def test_insert_answers_409_duplicate_entry_when_name_exists(erp: ErpNextStandIn) -> None:
    erp.insert("Customer", {"customer_name": "Acme Builders"})

    response = requests.post(
        erp.url + "/api/resource/Customer",
        json={"customer_name": "Acme Builders"},
        headers=_auth(),
        timeout=5,
    )

    assert response.status_code == 409
    assert response.json()["exc_type"] == "DuplicateEntryError"


def test_modified_strictly_increases_when_clock_stands_still(erp: ErpNextStandIn) -> None:
    stamps = [_invoice(erp)["modified"], erp.insert("Project", {})["modified"]]
    stamps.append(erp.save("Project", "PROJ-0001", {"status": "Open"})["modified"])

    assert stamps == sorted(set(stamps))
    assert stamps[-1] == "2026-11-03 09:30:00.000002"


def test_update_merges_fields_and_bumps_modified_when_modified_matches(
    erp: ErpNextStandIn, clock: SettableClock
) -> None:
    created = _invoice(erp)
    clock.now += timedelta(seconds=3)

    response = requests.put(
        erp.url + f"/api/resource/Sales Invoice/{created['name']}",
        json={"modified": created["modified"], "remarks": "rush"},
        headers=_auth(),
        timeout=5,
    )

    doc = response.json()["data"]
    assert response.status_code == 200
    assert (doc["remarks"], doc["customer"]) == ("rush", "Acme Builders")
    assert doc["modified"] == "2026-11-03 09:30:03.000000"


def test_update_answers_417_timestamp_mismatch_when_modified_is_stale(
    erp: ErpNextStandIn,
) -> None:
    created = _invoice(erp)
    erp.save("Sales Invoice", created["name"], {"remarks": "changed by someone else"})

    response = requests.put(
        erp.url + f"/api/resource/Sales Invoice/{created['name']}",
        json={"modified": created["modified"], "remarks": "mine"},
        headers=_auth(),
        timeout=5,
    )

    assert response.status_code == 417
    assert response.json()["exc_type"] == "TimestampMismatchError"
    assert erp.get("Sales Invoice", created["name"])["remarks"] == "changed by someone else"


def test_delete_answers_202_ok_and_removes_document_when_it_exists(erp: ErpNextStandIn) -> None:
    created = _invoice(erp)
    path = f"/api/resource/Sales Invoice/{created['name']}"

    response = requests.delete(erp.url + path, headers=_auth(), timeout=5)

    assert (response.status_code, response.json()) == (202, {"message": "ok"})
    assert _get(erp, path).status_code == 404


def test_private_file_answers_403_without_token_and_bytes_with_it_when_downloaded(
    erp: ErpNextStandIn,
) -> None:
    content = bytes(range(256)) * (FILE_CHUNK_BYTES // 64)  # several chunks
    doc = erp.add_file("scan.pdf", content, is_private=True, attached_to_doctype="Sales Invoice")

    anonymous = requests.get(erp.url + doc["file_url"], timeout=5)
    authorised = requests.get(erp.url + doc["file_url"], headers=_auth(), timeout=5)

    assert doc["file_url"] == "/private/files/scan.pdf"
    assert anonymous.status_code == 403
    assert authorised.status_code == 200
    assert authorised.content == content


def test_public_file_downloads_without_token_when_file_is_public(erp: ErpNextStandIn) -> None:
    doc = erp.add_file("logo.png", b"\x89PNG fake", attached_to_doctype="Project")

    response = requests.get(erp.url + doc["file_url"], timeout=5)

    assert (response.status_code, response.content) == (200, b"\x89PNG fake")
    assert doc["content_hash"] == hashlib.md5(b"\x89PNG fake").hexdigest()  # noqa: S324 (Frappe's hash)
    assert (doc["is_private"], doc["file_size"]) == (0, 9)


# --- Webhooks -------------------------------------------------------------------------------


def test_v15_body_is_json_dumps_with_base64_signature_when_webhook_fires(
    erp: ErpNextStandIn, receiver: WebhookReceiver
) -> None:
    erp.add_webhook(
        "Sales Invoice",
        "on_submit",
        receiver.url + HOOK,
        WEBHOOK_SECRET,
        fields=["name", "doctype", "modified", "grand_total"],
    )
    created = _invoice(erp, grand_total=120.5)

    submitted = erp.submit("Sales Invoice", created["name"])
    assert erp.wait_for_deliveries(5)

    expected = {key: submitted[key] for key in ("name", "doctype", "modified", "grand_total")}
    (post,) = receiver.posts
    assert post.body == json.dumps(expected, default=str).encode()
    assert post.headers["X-Frappe-Webhook-Signature"] == _signature(WEBHOOK_SECRET, post.body)
    assert post.headers["Content-Type"] == "application/json"
    assert post.path == "/hook?event=on_submit"


def test_develop_body_is_frappe_as_json_when_webhook_fires(
    erp: ErpNextStandIn, receiver: WebhookReceiver
) -> None:
    erp.add_webhook(
        "Sales Invoice", "on_update", receiver.url + HOOK, WEBHOOK_SECRET, era="develop"
    )

    created = _invoice(erp, customer="Zoë Café")
    assert erp.wait_for_deliveries(5)

    (post,) = receiver.posts
    expected = json.dumps(created, indent=1, sort_keys=True, separators=(",", ": "))
    assert post.body == expected.encode()
    assert post.headers["X-Frappe-Webhook-Signature"] == _signature(WEBHOOK_SECRET, post.body)


def test_signature_header_is_absent_when_webhook_has_no_secret(
    erp: ErpNextStandIn, receiver: WebhookReceiver
) -> None:
    erp.add_webhook("Sales Invoice", "after_insert", receiver.url + HOOK)

    _invoice(erp)
    assert erp.wait_for_deliveries(5)

    assert "X-Frappe-Webhook-Signature" not in receiver.posts[0].headers


def test_form_structure_sends_json_body_with_form_content_type_when_configured(
    erp: ErpNextStandIn, receiver: WebhookReceiver
) -> None:
    erp.add_webhook(
        "Sales Invoice",
        "after_insert",
        receiver.url + HOOK,
        WEBHOOK_SECRET,
        request_structure="form",
        fields=["name"],
    )

    created = _invoice(erp)
    assert erp.wait_for_deliveries(5)

    (post,) = receiver.posts
    assert post.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert json.loads(post.body) == {"name": created["name"]}


def test_template_replaces_data_in_its_key_order_when_given(
    erp: ErpNextStandIn, receiver: WebhookReceiver
) -> None:
    erp.add_webhook(
        "Sales Invoice",
        "on_submit",
        receiver.url + HOOK,
        WEBHOOK_SECRET,
        template=lambda doc: {"event": "on_submit", "doc": {"name": doc["name"], "total": 1}},
    )
    created = _invoice(erp)

    erp.submit("Sales Invoice", created["name"])
    assert erp.wait_for_deliveries(5)

    expected = {"event": "on_submit", "doc": {"name": created["name"], "total": 1}}
    assert receiver.posts[0].body == json.dumps(expected).encode()


def test_a_jinja_json_template_is_rendered_with_frappes_json_filter(
    erp: ErpNextStandIn, receiver: WebhookReceiver
) -> None:
    erp.add_webhook(
        "Sales Invoice",
        "on_submit",
        receiver.url + HOOK,
        WEBHOOK_SECRET,
        webhook_json='{"event": "on_submit", "name": "{{ doc.name }}", "doc": {{ doc | json }}}',
    )
    created = _invoice(erp)

    submitted = erp.submit("Sales Invoice", created["name"])
    assert erp.wait_for_deliveries(5)

    (body,) = receiver.bodies()
    assert (body["event"], body["name"]) == ("on_submit", created["name"])
    # frappe.as_json of a Document: its fields without the empty ones.
    assert body["doc"] == {key: value for key, value in submitted.items() if value is not None}


@pytest.mark.parametrize(
    "template", ['{"event": "on_submit", "doc": {{ doc }}}', '{"a": {{ doc.name }', "{% if %}"]
)
def test_a_json_template_that_does_not_render_to_json_is_refused_as_frappe_validates(
    erp: ErpNextStandIn, template: str
) -> None:
    with pytest.raises(ValueError, match="JSON template is not valid"):
        erp.add_webhook("Sales Invoice", "on_submit", "http://x/", webhook_json=template)


def test_v15_sends_three_attempts_sleeping_1_4_7_then_drops_when_receiver_fails(
    erp: ErpNextStandIn, receiver: WebhookReceiver, sleeps: list[float]
) -> None:
    receiver.statuses = [500, 503, 502]
    erp.add_webhook("Sales Invoice", "after_insert", receiver.url + HOOK, WEBHOOK_SECRET)

    _invoice(erp)
    assert erp.wait_for_deliveries(5)

    (delivery,) = erp.deliveries()
    assert delivery.status_codes == [500, 503, 502]
    assert sleeps == [1, 4, 7]  # sleep(3 * i + 1), also after the last try
    assert delivery.state == "dropped"
    assert len({post.body for post in receiver.posts}) == 1


def test_v15_stops_retrying_when_second_attempt_succeeds(
    erp: ErpNextStandIn, receiver: WebhookReceiver, sleeps: list[float]
) -> None:
    receiver.statuses = [500, 200]
    erp.add_webhook("Sales Invoice", "after_insert", receiver.url + HOOK)

    _invoice(erp)
    assert erp.wait_for_deliveries(5)

    assert erp.deliveries()[0].state == "delivered"
    assert (len(receiver.posts), sleeps) == (2, [1])


def test_v15_retries_at_once_when_receiver_times_out(
    erp: ErpNextStandIn, receiver: WebhookReceiver, sleeps: list[float]
) -> None:
    receiver.delay_s = 0.4
    erp.add_webhook("Sales Invoice", "after_insert", receiver.url + HOOK, timeout=0.1)

    _invoice(erp)
    assert erp.wait_for_deliveries(5)

    (delivery,) = erp.deliveries()
    assert [attempt.error for attempt in delivery.attempts] == ["ReadTimeout"] * 3
    assert sleeps == []
    assert len(receiver.posts) == 3  # a slow receiver gets duplicates


def test_develop_queues_retries_on_its_schedule_when_receiver_fails(
    erp: ErpNextStandIn, receiver: WebhookReceiver, clock: SettableClock
) -> None:
    receiver.statuses = [500] * 7
    erp.add_webhook("Sales Invoice", "after_insert", receiver.url + HOOK, era="develop")
    _invoice(erp)
    assert erp.wait_for_deliveries(5)
    (delivery,) = erp.deliveries()
    assert (delivery.state, delivery.next_retry) == ("failed", START + timedelta(minutes=5))

    assert erp.run_due_retries(now=START + timedelta(minutes=4)) == []
    now = START
    for delay in DEVELOP_RETRY_DELAYS:
        now += delay
        assert erp.run_due_retries(now=now) == [delivery]

    assert delivery.state == "exhausted"
    assert len(receiver.posts) == 7
    assert erp.run_due_retries(now=now + timedelta(days=2)) == []


def test_develop_retry_delivers_the_stored_payload_when_document_changed_since(
    erp: ErpNextStandIn, receiver: WebhookReceiver
) -> None:
    receiver.statuses = [500]
    erp.add_webhook("Sales Invoice", "after_insert", receiver.url + HOOK, era="develop")
    created = _invoice(erp)
    assert erp.wait_for_deliveries(5)
    erp.set_value_silently("Sales Invoice", created["name"], "status", "Overdue")

    (retried,) = erp.retry_failed_now()

    assert retried.state == "delivered"
    assert receiver.posts[0].body == receiver.posts[1].body
    assert receiver.bodies()[1]["status"] == "Draft"


def test_insert_fires_after_insert_and_on_update_but_not_on_change(
    erp: ErpNextStandIn, receiver: WebhookReceiver
) -> None:
    for event in ("after_insert", "on_update", "on_change", "on_submit"):
        erp.add_webhook("Sales Invoice", event, receiver.url + HOOK)

    _invoice(erp)
    assert erp.wait_for_deliveries(5)

    assert [delivery.event for delivery in erp.deliveries()] == ["after_insert", "on_update"]


def test_submit_fires_on_update_on_submit_and_on_change_when_draft_is_submitted(
    erp: ErpNextStandIn, receiver: WebhookReceiver
) -> None:
    created = _invoice(erp)
    for event in ("after_insert", "on_update", "on_submit", "on_change", "on_cancel"):
        erp.add_webhook("Sales Invoice", event, receiver.url + HOOK)

    erp.submit("Sales Invoice", created["name"], {"status": "Unpaid"})
    assert erp.wait_for_deliveries(5)

    assert {d.event for d in erp.deliveries()} == {"on_update", "on_submit", "on_change"}
    assert all(body["docstatus"] == 1 for body in receiver.bodies())


def test_cancel_fires_on_cancel_and_on_change_with_status_cancelled(
    erp: ErpNextStandIn, receiver: WebhookReceiver
) -> None:
    created = _invoice(erp)
    erp.submit("Sales Invoice", created["name"])
    for event in ("on_update", "on_cancel", "on_change"):
        erp.add_webhook("Sales Invoice", event, receiver.url + HOOK)

    erp.cancel("Sales Invoice", created["name"])
    assert erp.wait_for_deliveries(5)

    assert {d.event for d in erp.deliveries()} == {"on_cancel", "on_change"}
    assert {(b["docstatus"], b["status"]) for b in receiver.bodies()} == {(2, "Cancelled")}


def test_db_set_fires_on_change_only_when_a_payment_is_recorded(
    erp: ErpNextStandIn, receiver: WebhookReceiver
) -> None:
    created = _invoice(erp)
    erp.submit("Sales Invoice", created["name"])
    for event in ("on_update", "on_submit", "on_change", "on_update_after_submit"):
        erp.add_webhook("Sales Invoice", event, receiver.url + HOOK, era="develop")

    changed = erp.db_set("Sales Invoice", created["name"], "status", "Paid")
    assert erp.wait_for_deliveries(5)

    assert [d.event for d in erp.deliveries()] == ["on_change"]
    assert receiver.bodies()[0]["status"] == "Paid"
    assert receiver.bodies()[0]["modified"] == changed["modified"] > created["modified"]


def test_set_value_silently_fires_nothing_and_bumps_modified_when_asked(
    erp: ErpNextStandIn, receiver: WebhookReceiver
) -> None:
    created = _invoice(erp)
    for event in ("on_update", "on_change", "after_insert"):
        erp.add_webhook("Sales Invoice", event, receiver.url + HOOK)

    bumped = erp.set_value_silently("Sales Invoice", created["name"], "status", "Overdue")
    kept = erp.set_value_silently(
        "Sales Invoice", created["name"], {"outstanding_amount": 0}, update_modified=False
    )
    assert erp.wait_for_deliveries(5)

    assert erp.deliveries() == []
    assert receiver.posts == []
    assert bumped["modified"] > created["modified"]
    assert kept["modified"] == bumped["modified"]
    assert erp.get("Sales Invoice", created["name"])["status"] == "Overdue"


def test_on_trash_sends_document_as_it_was_when_deleted(
    erp: ErpNextStandIn, receiver: WebhookReceiver
) -> None:
    doc = erp.add_file("a.txt", b"a", attached_to_doctype="Issue", attached_to_name="ISS-1")
    erp.add_webhook("File", "on_trash", receiver.url + HOOK, fields=["name", "file_url"])

    erp.delete("File", doc["name"])
    assert erp.wait_for_deliveries(5)

    assert receiver.bodies() == [{"name": doc["name"], "file_url": "/files/a.txt"}]
    assert requests.get(erp.url + "/files/a.txt", timeout=5).status_code == 404


def test_on_update_after_submit_reaches_only_develop_webhooks_when_fired(
    erp: ErpNextStandIn, receiver: WebhookReceiver
) -> None:
    created = _invoice(erp)
    erp.submit("Sales Invoice", created["name"])
    erp.add_webhook("Sales Invoice", "on_update_after_submit", receiver.url + HOOK, era="v15")
    develop = erp.add_webhook(
        "Sales Invoice", "on_update_after_submit", receiver.url + HOOK, era="develop"
    )

    erp.update_after_submit("Sales Invoice", created["name"], {"remarks": "late note"})
    assert erp.wait_for_deliveries(5)

    assert [d.webhook_id for d in erp.deliveries()] == [develop.id]


def test_redeliver_sends_identical_bytes_and_headers_when_asked(
    erp: ErpNextStandIn, receiver: WebhookReceiver
) -> None:
    erp.add_webhook("Sales Invoice", "after_insert", receiver.url + HOOK, WEBHOOK_SECRET)
    _invoice(erp)
    assert erp.wait_for_deliveries(5)

    again = erp.redeliver(erp.deliveries()[0].id)
    assert erp.wait_for_deliveries(5)

    first, second = receiver.posts
    assert second.body == first.body
    sent_headers = ("Content-Type", "X-Frappe-Webhook-Signature")
    assert [second.headers[h] for h in sent_headers] == [first.headers[h] for h in sent_headers]
    assert (again.redelivery_of, again.state) == (1, "delivered")


def test_rest_insert_fires_webhooks_when_posted(
    erp: ErpNextStandIn, receiver: WebhookReceiver
) -> None:
    erp.add_webhook("Issue", "after_insert", receiver.url + HOOK, fields=["name", "subject"])

    requests.post(
        erp.url + "/api/resource/Issue", json={"subject": "Leak"}, headers=_auth(), timeout=5
    )
    assert erp.wait_for_deliveries(5)

    assert receiver.bodies() == [{"name": "ISS-2026-00001", "subject": "Leak"}]


# --- Faults, counts, process ------------------------------------------------------------------


def test_injected_faults_fail_next_requests_and_are_counted_when_armed(
    erp: ErpNextStandIn,
) -> None:
    erp.faults.fail_next(2, status=429, retry_after=7)
    path = "/api/resource/Sales Invoice"

    answers = [_get(erp, path) for _ in range(3)]

    assert [answer.status_code for answer in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "7"
    assert erp.request_count("GET", path) == 3


def test_process_prints_its_url_and_serves_until_sigterm_when_started() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devstack.erpnext",
            "--port",
            "0",
            "--api-key",
            API_KEY,
            "--api-secret",
            API_SECRET,
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("ERPNEXT_URL=http://127.0.0.1:")
        url = line.split("=", 1)[1]
        answer = requests.get(
            url + "/api/method/frappe.auth.get_logged_user", headers=_auth(), timeout=5
        )
        assert answer.json() == {"message": "Administrator"}
        assert API_SECRET not in line
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_v15_event_is_logged_but_never_sent_when_data_cannot_be_signed(
    erp: ErpNextStandIn, receiver: WebhookReceiver
) -> None:
    erp.add_webhook(
        "Sales Invoice",
        "after_insert",
        receiver.url + HOOK,
        WEBHOOK_SECRET,
        template=lambda doc: {"name": doc["name"], "at": START},
    )

    _invoice(erp)
    assert erp.wait_for_deliveries(5)

    assert [d.state for d in erp.deliveries()] == ["not_sent"]
    assert receiver.posts == []


def test_stop_returns_promptly_when_a_v15_job_is_sleeping_between_attempts(
    receiver: WebhookReceiver,
) -> None:
    receiver.statuses = [500] * 3
    standin = ErpNextStandIn().start()  # real sleep: 1 s, 4 s, 7 s
    standin.add_webhook("Sales Invoice", "after_insert", receiver.url + HOOK)
    standin.insert("Sales Invoice", {"customer": "Acme Builders"})
    deadline = time.monotonic() + 5
    while not receiver.posts and time.monotonic() < deadline:
        time.sleep(0.01)

    started = time.monotonic()
    standin.stop()

    assert time.monotonic() - started < 1.0
    assert len(receiver.posts) < 3


def test_seed_adds_projects_users_and_parties_without_webhooks_when_called(
    erp: ErpNextStandIn, receiver: WebhookReceiver
) -> None:
    for doctype in ("Project", "User", "Customer", "Supplier"):
        erp.add_webhook(doctype, "after_insert", receiver.url + HOOK)

    erp.seed_demo_data(project_manager_field="custom_project_manager")

    project = erp.get("Project", "PROJ-0001")
    manager = erp.get("User", project["custom_project_manager"])
    assert manager["full_name"] == "Ana Lopez"
    assert erp.get("Customer", project["customer"])["customer_name"] == project["customer"]
    assert [p["name"] for p in erp.all("Project")] == ["PROJ-0001", "PROJ-0002", "PROJ-0003"]
    assert erp.all("Supplier")
    assert erp.deliveries() == []


# --- service desk: Issues, assignments, Contacts, Users, uploads, counts --------------------------


def _put(erp: ErpNextStandIn, path: str, values: dict[str, Any]) -> requests.Response:
    return requests.put(erp.url + path, json=values, headers=_auth(), timeout=5)


def test_issue_gets_erpnext_defaults_when_inserted_with_a_subject_only(
    erp: ErpNextStandIn,
) -> None:
    issue = erp.insert("Issue", {"subject": "Leak"})

    assert (issue["status"], issue["priority"], issue["raised_by"]) == (
        "Open",
        "Medium",
        "bridge@example.com",
    )
    assert (issue["opening_date"], issue["opening_time"]) == ("2026-11-03", "09:30:00.000000")
    assert issue.get("resolution_date") is None


def test_issue_resolution_date_is_set_when_resolved_and_cleared_when_reopened(
    erp: ErpNextStandIn, clock: SettableClock
) -> None:
    name = erp.insert("Issue", {"subject": "Leak"})["name"]
    clock.now = START + timedelta(hours=5)

    replied = _put(erp, f"/api/resource/Issue/{name}", {"status": "Replied"}).json()["data"]
    resolved = _put(erp, f"/api/resource/Issue/{name}", {"status": "Resolved"}).json()["data"]
    clock.now = START + timedelta(hours=8)
    closed = _put(erp, f"/api/resource/Issue/{name}", {"status": "Closed"}).json()["data"]
    reopened = _put(erp, f"/api/resource/Issue/{name}", {"status": "Open"}).json()["data"]

    assert replied["resolution_date"] is None
    assert resolved["resolution_date"] == "2026-11-03 14:30:00.000000"
    assert closed["resolution_date"] == resolved["resolution_date"]
    assert reopened["resolution_date"] is None


@pytest.mark.parametrize(
    ("values", "exc_type"),
    [
        ({"subject": "Leak", "status": "Done"}, "ValidationError"),
        ({"subject": "Leak", "raised_by": "+447700900123"}, "InvalidEmailAddressError"),
    ],
)
def test_issue_insert_answers_417_when_a_value_is_not_allowed(
    erp: ErpNextStandIn, values: dict[str, Any], exc_type: str
) -> None:
    response = requests.post(
        erp.url + "/api/resource/Issue", json=values, headers=_auth(), timeout=5
    )

    assert (response.status_code, response.json()["exc_type"]) == (417, exc_type)
    assert erp.all("Issue") == []


def test_assign_creates_todos_and_sets_assign_silently_when_users_are_assigned(
    erp: ErpNextStandIn, receiver: WebhookReceiver
) -> None:
    issue = erp.insert("Issue", {"subject": "Leak"})
    erp.add_webhook("Issue", "on_update", receiver.url + HOOK)
    erp.add_webhook("ToDo", "after_insert", receiver.url + HOOK, fields=["allocated_to"])

    erp.assign("Issue", issue["name"], ["dana@example.com"])
    assigned = erp.assign("Issue", issue["name"], ["eli@example.com", "dana@example.com"])
    assert erp.wait_for_deliveries(5)

    assert json.loads(assigned["_assign"]) == ["dana@example.com", "eli@example.com"]
    assert assigned["modified"] == issue["modified"]
    assert sorted(body["allocated_to"] for body in receiver.bodies()) == [
        "dana@example.com",
        "eli@example.com",
    ]
    rows = _get(
        erp,
        "/api/resource/Issue",
        filters=json.dumps([["Issue", "_assign", "like", "%eli@example.com%"]]),
    ).json()["data"]
    assert rows == [{"name": issue["name"]}]


def test_contact_takes_name_and_primary_numbers_from_its_rows_when_inserted(
    erp: ErpNextStandIn,
) -> None:
    contact = erp.insert(
        "Contact",
        {
            "first_name": "Maria",
            "last_name": "Garcia",
            "mobile_no": "+1 999",  # not kept: Contact.set_primary reads the rows
            "phone_nos": [
                {"phone": "+44 20 7946 0000", "is_primary_phone": 1},
                {"phone": "+44 7700 900123", "is_primary_mobile_no": 1},
            ],
            "links": [{"link_doctype": "Customer", "link_name": "Acme Builders"}],
        },
    )
    again = erp.insert(
        "Contact",
        {"first_name": "Maria", "last_name": "Garcia", "links": contact["links"]},
    )

    assert (contact["name"], again["name"]) == (
        "Maria Garcia-Acme Builders",
        "Maria Garcia-Acme Builders-1",
    )
    assert (contact["mobile_no"], contact["phone"]) == ("+44 7700 900123", "+44 20 7946 0000")
    assert (again["mobile_no"], again["full_name"]) == ("", "Maria Garcia")
    assert [row["doctype"] for row in contact["phone_nos"] + contact["links"]] == [
        "Contact Phone",
        "Contact Phone",
        "Dynamic Link",
    ]


def test_contact_insert_answers_417_when_two_rows_claim_primary_mobile(
    erp: ErpNextStandIn,
) -> None:
    rows = [{"phone": "1", "is_primary_mobile_no": 1}, {"phone": "2", "is_primary_mobile_no": 1}]
    response = requests.post(
        erp.url + "/api/resource/Contact",
        json={"first_name": "A", "phone_nos": rows},
        headers=_auth(),
        timeout=5,
    )

    assert response.status_code == 417


def test_list_filters_parents_by_child_rows_when_a_child_doctype_is_named(
    erp: ErpNextStandIn,
) -> None:
    def contact(first: str, phones: list[dict[str, Any]], customer: str) -> None:
        links = [{"link_doctype": "Customer", "link_name": customer}]
        erp.insert("Contact", {"first_name": first, "phone_nos": phones, "links": links})

    contact("Ann", [{"phone": "+44 7700 900123", "is_primary_mobile_no": 1}], "Acme Builders")
    contact("Bob", [{"phone": "+44 7700 900123"}, {"phone": "555", "is_primary_mobile_no": 1}], "X")
    contact("Cy", [{"phone": "+1 415 555 0134", "is_primary_mobile_no": 1}], "Acme Builders")

    def names(filters: list[list[Any]]) -> list[str]:
        params = {"filters": json.dumps(filters), "order_by": "name asc"}
        return [row["name"] for row in _get(erp, "/api/resource/Contact", **params).json()["data"]]

    by_phone = [["Contact Phone", "phone", "like", "%7700%900%123%"]]
    assert names(by_phone) == ["Ann-Acme Builders", "Bob-X"]
    # Conditions on one child doctype hold on the same row.
    assert names([*by_phone, ["Contact Phone", "is_primary_mobile_no", "=", 1]]) == [
        "Ann-Acme Builders"
    ]
    assert names([["Dynamic Link", "link_name", "=", "Acme Builders"]]) == [
        "Ann-Acme Builders",
        "Cy-Acme Builders",
    ]
    assert names([["Contact", "mobile_no", "=", "555"]]) == ["Bob-X"]


def test_user_is_read_with_its_roles_when_asked_through_rest(erp: ErpNextStandIn) -> None:
    erp.seed_demo_data()

    user = _get(erp, "/api/resource/User/ana.lopez@example.com").json()["data"]

    assert user["full_name"] == "Ana Lopez"
    assert [(row["doctype"], row["role"]) for row in user["roles"]] == [
        ("Has Role", "System Manager"),
        ("Has Role", "Projects Manager"),
    ]


def _upload(erp: ErpNextStandIn, content: bytes, **fields: str) -> requests.Response:
    return requests.post(
        erp.url + "/api/method/upload_file",
        files={"file": ("photo 1.jpg", content, "image/jpeg")},
        data={"is_private": "1", "file_name": "ignored.jpg", **fields},
        headers=_auth(),
        timeout=5,
    )


def test_upload_file_attaches_a_file_and_fires_its_webhooks_when_posted(
    erp: ErpNextStandIn, receiver: WebhookReceiver
) -> None:
    issue = erp.insert("Issue", {"subject": "Leak"})
    erp.add_webhook("File", "after_insert", receiver.url + HOOK, WEBHOOK_SECRET)
    content = b"\xff\xd8\xff\r\n--not-a-boundary\r\n\x00jpeg\n"

    response = _upload(erp, content, doctype="Issue", docname=issue["name"])
    assert erp.wait_for_deliveries(5)

    assert response.status_code == 200
    doc = response.json()["message"]
    assert doc["file_name"] == "photo 1.jpg"
    assert doc["file_url"] == "/private/files/photo 1.jpg"
    assert (doc["attached_to_doctype"], doc["attached_to_name"]) == ("Issue", issue["name"])
    assert (doc["is_private"], doc["file_size"], doc["folder"]) == (1, len(content), "Home")
    assert doc["owner"] == "bridge@example.com"
    assert (
        erp.get("File", doc["name"])["content_hash"]
        == hashlib.md5(content, usedforsecurity=False).hexdigest()
    )
    (post,) = receiver.posts
    assert json.loads(post.body)["name"] == doc["name"]
    assert post.headers["X-Frappe-Webhook-Signature"] == _signature(WEBHOOK_SECRET, post.body)
    downloaded = requests.get(erp.url + doc["file_url"], headers=_auth(), timeout=5)
    assert downloaded.content == content


def test_upload_file_answers_417_when_no_file_part_is_sent(erp: ErpNextStandIn) -> None:
    response = requests.post(
        erp.url + "/api/method/upload_file",
        data={"doctype": "Issue", "docname": "ISS-1"},
        headers=_auth(),
        timeout=5,
    )

    assert response.status_code == 417
    assert erp.all("File") == []


def test_get_count_counts_matching_documents_when_called_by_get_or_post(
    erp: ErpNextStandIn,
) -> None:
    for status in ("Open", "Open", "Replied", "Closed"):
        erp.insert("Issue", {"subject": "s", "status": status})
    filters = json.dumps([["Issue", "status", "not in", ["Resolved", "Closed"]]])
    path = "/api/method/frappe.client.get_count"

    by_get = _get(erp, path, doctype="Issue", filters=filters).json()
    by_post = requests.post(
        erp.url + path, data={"doctype": "Issue"}, headers=_auth(), timeout=5
    ).json()

    assert (by_get, by_post) == ({"message": 3}, {"message": 4})


def test_seed_adds_roles_contacts_and_assigned_issues_without_webhooks_when_called(
    erp: ErpNextStandIn, receiver: WebhookReceiver
) -> None:
    for doctype in ("Issue", "Contact", "ToDo", "User"):
        erp.add_webhook(doctype, "after_insert", receiver.url + HOOK)

    erp.seed_demo_data(emergency_priority="Emergency")

    roles = {u["name"]: {r["role"] for r in u["roles"]} for u in erp.all("User")}
    assert roles["dana.kim@example.com"] == {"Support Team"}
    assert "System Manager" in roles["ana.lopez@example.com"]
    issues = {issue["subject"]: issue for issue in erp.all("Issue")}
    emergency = issues["Cold room alarm: temperature rising"]
    assert emergency["priority"] == "Emergency"
    assert json.loads(emergency["_assign"]) == ["dana.kim@example.com", "eli.moreau@example.com"]
    assert erp.get("Project", emergency["project"])["customer"] == emergency["customer"]
    contact = erp.get("Contact", emergency["contact"])
    assert contact["mobile_no"] == "+1 (415) 555-0134"
    assert contact["links"][0]["link_name"] == emergency["customer"]
    assert {i["status"] for i in issues.values()} == {"Open", "Resolved", "On Hold"}
    assert len(erp.all("ToDo")) == 5
    assert erp.deliveries() == []


def test_a_draft_owes_its_corrected_total_and_is_unpaid_once_submitted(erp: ErpNextStandIn) -> None:
    draft = erp.insert("Sales Invoice", {"customer": "Acme Builders", "grand_total": 100.0})
    corrected = erp.save("Sales Invoice", str(draft["name"]), {"grand_total": 250.0})
    assert corrected["outstanding_amount"] == 250.0
    submitted = erp.submit("Sales Invoice", str(draft["name"]))
    assert (submitted["status"], submitted["outstanding_amount"]) == ("Unpaid", 250.0)
