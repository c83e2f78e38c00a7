"""`bridge sheet-setup` and `bridge reconcile`, configured by the environment as an operator runs them,
against the Firestore emulator and the ERPNext and Sheets stand-ins."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.erpnext import ErpNextStandIn
from devstack.sheets import SheetsStandIn
from shared import bootstrap
from shared.cli import main
from shared.core.sheet_layout import TRACKER_TAB

SECRET = "commands-api-secret"


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
        bootstrap.reset()
        yield erp, sheets, spreadsheet
        bootstrap.reset()


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


def test_a_missing_setting_is_named_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in ("SHEETS_SPREADSHEET_ID", "ERPNEXT_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("GCP_PROJECT", "p")
    bootstrap.reset()
    try:
        assert main(["sheet-setup"]) == 2
    finally:
        bootstrap.reset()
    assert "SHEETS_SPREADSHEET_ID" in capsys.readouterr().err
