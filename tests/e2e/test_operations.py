"""Operations end to end: the admin API over error records and sync executions, replay of a
dead-lettered event, the retry job, job locks, and OIDC authentication as Cloud Scheduler sends it
(tokens signed by the devstack's Google issuer stand-in, verified by google-auth)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests

from devstack.emulators import Emulators
from devstack.stack import ADMIN_AUDIENCE, SCHEDULER_ACCOUNT, Devstack, running_devstack
from devstack.waiting import wait_until
from shared.cli import main
from shared.core.envelope import document_envelope
from shared.platform.failures import FailureReport
from tests.helpers.frappe import recent_modified

SECRET = "e2e-operations-secret"


@pytest.fixture(scope="module")
def stack(emulators: Emulators) -> Iterator[Devstack]:
    extra = {"MAX_DELIVERY_ATTEMPTS": "5", "CLAIM_LEASE_SECONDS": "4"}
    with running_devstack(
        webhook_secret=SECRET, extra_env=extra, project="e2e-operations", emulators=emulators
    ) as running:
        running.erpnext.add_bridge_webhook(
            "File",
            "after_insert",
            running.webhook_url,
            SECRET,
            era="develop",
            request_structure="form",
        )
        yield running


def admin(stack: Devstack, method: str, path: str, **kwargs: object) -> requests.Response:
    headers = kwargs.pop("headers", None) or stack.admin_headers()
    return requests.request(
        method,
        stack.admin_url + path,
        headers=headers,
        timeout=60,
        **kwargs,  # type: ignore[arg-type]
    )


def test_the_admin_api_refuses_callers_it_cannot_verify(stack: Devstack) -> None:
    assert requests.get(stack.admin_url + "/errors", timeout=10).status_code == 401
    wrong = {
        "a stranger's identity": stack.oidc.token_for("someone@evil.example", ADMIN_AUDIENCE),
        "another audience": stack.oidc.token_for(SCHEDULER_ACCOUNT, "https://other.example/"),
        "an expired token": stack.oidc.token_for(SCHEDULER_ACCOUNT, ADMIN_AUDIENCE, lifetime_s=-60),
        "an unverified email": stack.oidc.token_for(
            SCHEDULER_ACCOUNT, ADMIN_AUDIENCE, verified=False
        ),
        "garbage": "not.a.token",
    }
    for why, token in wrong.items():
        answer = admin(stack, "GET", "/errors", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 403, why
        assert token not in answer.text
    answer = admin(stack, "GET", "/errors", headers={"Authorization": "Key wrong-key"})
    assert answer.status_code == 403
    local = {"Authorization": f"Key {stack.env['ADMIN_API_KEY']}"}
    assert admin(stack, "GET", "/errors", headers=local).status_code == 200
    assert admin(stack, "GET", "/errors").status_code == 200
    # The scheduled jobs too.
    for spec_url in (
        stack.functions["reconcile_invoices"].url,
        stack.functions["retry_errors"].url,
    ):
        assert requests.post(spec_url + "/", timeout=30).status_code == 401


def test_a_dead_lettered_event_replayed_is_applied_once_and_resolves_its_record(
    stack: Devstack,
) -> None:
    erp = stack.erpnext
    # ERPNext refuses the file's bytes for as long as the deliveries last: dead-lettered.
    erp.faults.fail_next(40, status=503, path_prefix="/files/dead-letter.pdf")
    file_doc = erp.add_file("dead-letter.pdf", b"replayed bytes")
    name = str(file_doc["name"])

    def record() -> dict[str, object] | None:
        found = [
            r
            for r in admin(stack, "GET", "/errors?integration=drive_upload").json()["errors"]
            if r["entity_id"] == name
        ]
        return found[0] if found else None

    assert wait_until(lambda: (record() or {}).get("attempts", 0) >= 5, timeout=90)
    failed = record()
    assert failed is not None and failed["status"] == "pending" and failed["replayable"]
    assert not erp.get("File", name).get("drive_file_id")
    erp.faults.clear()

    # ERPNext's circuit may still be open in drive_upload after that burst of failures; an
    # operator replays again until the copy is there, and each replay is one execution record.
    replays = 0
    while replays < 6 and not erp.get("File", name).get("drive_file_id"):
        replay = admin(stack, "POST", "/errors/replay", json={"ids": [failed["id"]]}).json()
        assert replay["replayed"] == [failed["id"]] and replay["skipped"] == {}
        replays += 1
        wait_until(lambda: bool(erp.get("File", name).get("drive_file_id")), timeout=20)
    assert erp.get("File", name).get("drive_file_id")
    assert wait_until(lambda: (record() or {}).get("status") == "resolved")
    # Replayed again: the claim says done, so no second copy.
    admin(stack, "POST", "/errors/replay", json={"ids": [failed["id"]]})
    assert wait_until(
        lambda: any(
            o.get("outcome") == "duplicate" and o.get("name") == name for o in stack.outcomes()
        )
    )
    copies = [
        f for f in stack.drive.files() if f.app_properties.get("erp_file", "").endswith(":" + name)
    ]
    assert len(copies) == 1 and stack.drive.content(copies[0].id) == b"replayed bytes"
    runs = admin(stack, "GET", "/executions?job=replay_errors").json()["executions"]
    assert len(runs) == replays + 1 and all(run["status"] == "succeeded" for run in runs)


def failure(n: int, integration: str, when: datetime) -> FailureReport:
    doc = {"doctype": "Sales Invoice", "name": f"OPS-{n}", "modified": recent_modified()}
    envelope = document_envelope(
        doc,
        doctype="Sales Invoice",
        event="on_submit",
        site="erp.example.com",
        received_at=when,
    )
    return FailureReport(
        integration=integration,
        operation="sync_invoice_row",
        entity_type="Sales Invoice",
        entity_id=f"OPS-{n}",
        event_id=envelope.event_id,
        message=f'=HYPERLINK("x") failure {n}',
        details="MappingError",
        envelope=envelope.to_json().decode(),
    )


def test_filters_csv_export_and_bulk_resolve_round_trip(stack: Devstack) -> None:
    errors = stack.stores().errors
    now = datetime.now(UTC)
    ids = [errors.record_failure(failure(n, "csv_check", now), now=now) for n in range(5)]
    old = errors.record_failure(failure(9, "csv_check", now), now=now - timedelta(days=40))
    listed = admin(stack, "GET", "/errors?integration=csv_check&status=pending").json()
    assert {r["id"] for r in listed["errors"]} == {*ids, old}
    recent = admin(
        stack, "GET", f"/errors?integration=csv_check&since={(now - timedelta(days=1)).date()}"
    )
    assert {r["id"] for r in recent.json()["errors"]} == set(ids)
    assert admin(stack, "GET", "/errors?limit=1001").status_code == 400
    assert admin(stack, "GET", "/errors?status=lost").status_code == 400
    assert admin(stack, "GET", "/errors?since=yesterday").status_code == 400

    exported = admin(stack, "GET", "/errors.csv?integration=csv_check")
    assert exported.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {row["id"] for row in rows} == {*ids, old}
    assert all(row["message"].startswith("'=") for row in rows)  # no formula runs in a sheet

    answer = admin(
        stack,
        "POST",
        "/errors/status",
        json={"ids": [row["id"] for row in rows], "status": "resolved"},
    ).json()
    assert answer["count"] == 6
    resolved = admin(stack, "GET", "/errors?integration=csv_check&status=resolved").json()
    assert {r["id"] for r in resolved["errors"]} == {*ids, old}
    assert all(str(r["note"]).startswith(SCHEDULER_ACCOUNT) for r in resolved["errors"])
    bad = admin(stack, "POST", "/errors/status", json={"ids": ids, "status": "deleted"})
    assert bad.status_code == 400


def test_the_retry_job_replays_pending_errors_that_went_quiet(stack: Devstack) -> None:
    errors = stack.stores().errors
    past = datetime.now(UTC) - timedelta(hours=1)
    quiet = errors.record_failure(failure(20, "sheets_sync", past), now=past)
    answer = stack.retry_errors()
    assert answer["status"] == "finished" and int(str(answer["updated"])) >= 1
    # The replayed invoice reaches the sheet writer, whose success resolves the record.
    assert wait_until(lambda: getattr(errors.get(quiet), "status", None) == "resolved", timeout=60)


def test_a_job_that_is_running_is_not_started_twice(stack: Devstack) -> None:
    lock = stack.stores().lease("job-reconcile_invoices")
    assert lock.acquire("another-run", now=datetime.now(UTC), ttl=timedelta(minutes=5))
    try:
        response = requests.post(
            stack.functions["reconcile_invoices"].url + "/",
            headers=stack.admin_headers(),
            timeout=60,
        )
        assert response.status_code == 409
        assert "already running" in response.json()["error"]
    finally:
        lock.release("another-run")
    assert stack.reconcile()["status"] == "finished"


def test_bridge_check_tests_every_connection_and_names_what_fails(
    stack: Devstack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in stack.env.items():
        monkeypatch.setenv(key, value)
    assert main(["check"]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    passed = [line for line in out.splitlines() if "│ ok " in line]
    assert len(passed) == 11 and "FAILED" not in out  # 4 functions' settings, 7 services
    assert "@erp_bridge_bot" in out
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "7000001:not-the-token")
    assert main(["check"]) == 1
    failed = [line for line in capsys.readouterr().out.splitlines() if "FAILED" in line]
    assert len(failed) == 1 and "Telegram" in failed[0]
    assert "not-the-token" not in failed[0]
