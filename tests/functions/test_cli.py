"""The `bridge` operator commands, configured by the environment as an operator runs them,
against the Firestore emulator and the ERPNext and Sheets stand-ins."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from devstack.erpnext import ErpNextStandIn
from devstack.sheets import SheetsStandIn
from devstack.telegram import TelegramStandIn
from shared.adapters.firestore import FirestoreStores
from shared.adapters.pubsub import ensure_pull_subscription, ensure_topic
from shared.cli import main
from shared.core.envelope import document_envelope
from shared.core.routing import INVOICES
from shared.operations.error_query import ErrorFilter
from shared.platform.failures import FailureReport
from shared.platform.jobs import Jobs
from shared.sheets.layout import TRACKER_TAB
from shared.sheets.reconcile import JOB as RECONCILE_JOB
from tests.helpers.frappe import recent_modified
from tests.helpers.pubsub import pull

SECRET = "commands-api-secret"
BOT_TOKEN = "7000002:ops-bot-token"


@pytest.fixture
def site(
    project_id: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ErpNextStandIn, SheetsStandIn, str]]:
    with ErpNextStandIn(api_key="ops", api_secret=SECRET) as erp, SheetsStandIn() as sheets:
        erp.seed_demo_data()
        spreadsheet = sheets.create_spreadsheet()
        for key, value in {
            "GCP_PROJECT": project_id,
            "ERPNEXT_URL": erp.url,
            "ERPNEXT_API_KEY": "ops",
            "ERPNEXT_API_SECRET": SECRET,
            "SHEETS_ENDPOINT": sheets.url,
            "SHEETS_SPREADSHEET_ID": spreadsheet,
        }.items():
            monkeypatch.setenv(key, value)
        yield erp, sheets, spreadsheet


def test_sheet_setup_twice_changes_the_sheet_once(
    site: tuple[ErpNextStandIn, SheetsStandIn, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, sheets, spreadsheet = site
    assert main(["sheet-setup"]) == 0
    assert "set up with" in capsys.readouterr().out
    state = sheets.sheet_state(spreadsheet, TRACKER_TAB)
    assert main(["sheet-setup"]) == 0
    assert "already set up, nothing changed" in capsys.readouterr().out
    assert sheets.sheet_state(spreadsheet, TRACKER_TAB) == state


def test_reconcile_brings_silent_changes_into_the_sheet_and_reports_counts(
    site: tuple[ErpNextStandIn, SheetsStandIn, str], capsys: pytest.CaptureFixture[str]
) -> None:
    erp, sheets, spreadsheet = site
    assert main(["sheet-setup"]) == 0
    project = str(erp.all("Project")[0]["name"])
    erp.import_docs(
        "Sales Invoice",
        [
            {"customer": "Acme Builders", "project": project, "grand_total": n, "docstatus": 1}
            for n in range(1, 31)
        ],
    )
    capsys.readouterr()
    assert main(["reconcile"]) == 0
    out = capsys.readouterr().out
    assert "seen" in out and "30" in out
    rows = sheets.values(spreadsheet, TRACKER_TAB)[1:]
    assert len(rows) == 30
    assert {row[0] for row in rows} == {str(doc["name"]) for doc in erp.all("Sales Invoice")}


def test_reconcile_is_refused_while_the_scheduled_run_holds_the_job(
    site: tuple[ErpNextStandIn, SheetsStandIn, str],
    project_id: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    erp, sheets, spreadsheet = site
    assert main(["sheet-setup"]) == 0
    erp.import_docs("Sales Invoice", [{"customer": "Acme Builders", "grand_total": 1}])
    capsys.readouterr()
    stores = FirestoreStores(project_id)
    scheduled = Jobs(
        lease=stores.lease,
        executions=stores.executions,
        owner="cloud-scheduler-run",
        clock=lambda: datetime.now(UTC),
    )
    with scheduled.exclusive(RECONCILE_JOB):  # the scheduled run, mid-way
        assert main(["reconcile"]) == 1
    assert "reconcile_invoices is already running" in capsys.readouterr().err
    assert sheets.values(spreadsheet, TRACKER_TAB)[1:] == []  # the command did nothing
    assert stores.executions.recent(RECONCILE_JOB) == []
    assert main(["reconcile"]) == 0  # once the run is over, the command runs
    assert len(sheets.values(spreadsheet, TRACKER_TAB)[1:]) == 1


def test_a_missing_setting_is_named_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in ("SHEETS_SPREADSHEET_ID", "ERPNEXT_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("GCP_PROJECT", "p")
    assert main(["sheet-setup"]) == 2
    assert "SHEETS_SPREADSHEET_ID" in capsys.readouterr().err


@pytest.fixture
def bot_site(
    site: tuple[ErpNextStandIn, SheetsStandIn, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[TelegramStandIn]:
    with TelegramStandIn(BOT_TOKEN, username="ops_bot") as telegram:
        for key, value in {
            "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
            "TELEGRAM_WEBHOOK_SECRET": "ops-webhook-secret",
            "TELEGRAM_BOT_USERNAME": "ops_bot",
            "TELEGRAM_API_URL": telegram.url,
            "ALERT_CHATS_JSON": '{"service_team": -1, "oncall": -2, "admins": -3}',
        }.items():
            monkeypatch.setenv(key, value)
        yield telegram


def test_telegram_webhook_points_telegram_at_the_bot_with_its_secret(
    bot_site: TelegramStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["telegram-webhook", "http://not-https.example.com/"]) == 2
    assert bot_site.webhook is None
    assert main(["telegram-webhook", "https://bridge.example.com/telegram"]) == 0
    assert bot_site.webhook == ("https://bridge.example.com/telegram", "ops-webhook-secret")
    assert "ops-webhook-secret" not in capsys.readouterr().out


def test_link_code_prints_a_one_time_deep_link(
    bot_site: TelegramStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["link-code", "ana.lopez@example.com"]) == 0
    link = capsys.readouterr().out.strip()
    assert link.startswith("https://t.me/ops_bot?start=")
    code = link.rsplit("=", 1)[1]
    assert 20 <= len(code) <= 64 and code.replace("-", "").replace("_", "").isalnum()
    assert main(["link-code", "not-a-user"]) == 2


@pytest.fixture
def error_log(project_id: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FirestoreStores]:
    for key, value in {
        "GCP_PROJECT": project_id,
        "ERP_SITE": "erp.example.com",
        "WEBHOOK_SECRET": "commands-webhook-secret",
    }.items():
        monkeypatch.setenv(key, value)
    yield FirestoreStores(project_id, timeout_s=10)


def invoice_failure(name: str, *, with_event: bool = True) -> FailureReport:
    doc = {"doctype": "Sales Invoice", "name": name, "modified": recent_modified()}
    envelope = document_envelope(
        doc,
        doctype="Sales Invoice",
        event="on_submit",
        site="erp.example.com",
        received_at=datetime.now(UTC),
    )
    return FailureReport(
        integration="sheets_sync",
        operation="sync_invoice_row",
        entity_type="Sales Invoice",
        entity_id=name,
        event_id=envelope.event_id,
        message=f"{name} could not be written",
        envelope=envelope.to_json().decode() if with_event else None,
    )


def test_errors_are_listed_exported_resolved_and_replayed_from_the_command_line(
    error_log: FirestoreStores, project_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    replayable = error_log.errors.record_failure(invoice_failure("SINV-CLI-1"), now=now)
    bare = error_log.errors.record_failure(invoice_failure("SINV-CLI-2", with_event=False), now=now)
    assert main(["errors", "status=pending", "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {row["id"] for row in rows} == {replayable, bare}
    assert main(["errors", "status=lost"]) == 1
    assert "status must be one of" in capsys.readouterr().err

    ensure_topic(project_id, INVOICES)
    ensure_pull_subscription(project_id, "cli-replay-check", INVOICES)
    assert main(["replay", replayable, bare]) == 1  # one could not be replayed
    out = capsys.readouterr()
    assert f"replayed {replayable}" in out.out and f"skipped {bare}" in out.err
    (message,) = pull(project_id, "cli-replay-check")
    assert json.loads(message.data)["name"] == "SINV-CLI-1"

    assert main(["ignore", bare]) == 0
    assert main(["resolve", replayable]) == 0
    assert {r.id: r.status for r in error_log.errors.search(ErrorFilter())} == {
        replayable: "resolved",
        bare: "ignored",
    }
    assert main(["executions", "replay_errors"]) == 0
    (run,) = error_log.executions.recent("replay_errors")
    assert run.status.value == "succeeded" and (run.counts.seen, run.counts.updated) == (2, 1)
