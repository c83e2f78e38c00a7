"""The Sheets adapter through google-api-python-client against the Sheets stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from devstack.sheets import SheetsStandIn
from shared.adapters.sheets import GoogleInvoiceSheet, GoogleSheetLayout, sheets_client
from shared.errors import ConfigurationError, UpstreamRejected, UpstreamUnavailable
from shared.sheets.layout import OVERHEAD_TAB, SUMMARY_TAB, TRACKER_TAB
from shared.sheets.rows import (
    IndexedRow,
    RowDelete,
    RowPlan,
    RowWrite,
    TrackerConfig,
    header_row,
    invoice_facts,
    plan_upsert,
)
from shared.sheets.sync import set_up_sheet

CONFIG = TrackerConfig(site_url="https://erp.example.com", overhead_projects=frozenset({"HQ"}))
COLUMNS = CONFIG.columns


def row(name: str, modified: str, **cells: object) -> tuple[object, ...]:
    values: dict[str, object] = {"invoice": name, "status": "Unpaid", "last_modified": modified}
    values.update(cells)
    return tuple(values.get(key, "") for key in COLUMNS)


def write(name: str, modified: str, row_number: int | None = None, **cells: object) -> RowWrite:
    return RowWrite(name, row_number, row(name, modified, **cells), modified)  # type: ignore[arg-type]


@pytest.fixture
def standin() -> Iterator[SheetsStandIn]:
    with SheetsStandIn() as running:
        yield running


@pytest.fixture
def spreadsheet(standin: SheetsStandIn) -> str:
    spreadsheet_id = standin.create_spreadsheet()
    service = sheets_client(endpoint=standin.url, timeout_s=5)
    set_up_sheet(GoogleSheetLayout(service, spreadsheet_id), CONFIG)
    return spreadsheet_id


def tracker(standin: SheetsStandIn, spreadsheet: str, timeout_s: float = 5) -> GoogleInvoiceSheet:
    return GoogleInvoiceSheet(
        sheets_client(endpoint=standin.url, timeout_s=timeout_s), spreadsheet, CONFIG
    )


def test_setup_builds_the_layout_once_and_a_second_run_changes_nothing(
    standin: SheetsStandIn,
) -> None:
    spreadsheet = standin.create_spreadsheet()
    layout = GoogleSheetLayout(sheets_client(endpoint=standin.url, timeout_s=5), spreadsheet)
    assert set_up_sheet(layout, CONFIG) > 0
    states = {
        tab: standin.sheet_state(spreadsheet, tab)
        for tab in (TRACKER_TAB, SUMMARY_TAB, OVERHEAD_TAB)
    }
    writes = standin.calls["write"]

    assert set_up_sheet(layout, CONFIG) == 0
    assert standin.calls["write"] == writes
    for tab, state in states.items():
        assert standin.sheet_state(spreadsheet, tab) == state
    tracker_state = states[TRACKER_TAB]
    assert tracker_state["properties"]["gridProperties"]["frozenRowCount"] == 1
    assert tuple(standin.values(spreadsheet, TRACKER_TAB)[0]) == header_row(CONFIG)
    assert len(tracker_state["conditionalFormats"]) == 1
    amount = COLUMNS.index("amount")
    assert standin.cell(spreadsheet, TRACKER_TAB, 5, amount)["userEnteredFormat"][
        "numberFormat"
    ] == {
        "type": "NUMBER",
        "pattern": "#,##0.00",
    }
    assert standin.values(spreadsheet, OVERHEAD_TAB) == [["Overhead projects"], ["HQ"]]
    summary = standin.values(spreadsheet, SUMMARY_TAB)[0]
    assert str(summary[0]).startswith("=QUERY(") and str(summary[3]).startswith("=QUERY(")


def test_rows_are_written_raw_and_indexed_with_their_version_and_paid_date(
    standin: SheetsStandIn, spreadsheet: str
) -> None:
    sheet = tracker(standin, spreadsheet)
    assert sheet.read_index() == {}
    sheet.apply(
        RowPlan(
            appends=(
                write("SINV-1", "2026-11-01 10:00:00", counterparty='=HYPERLINK("x")', amount=12.5),
                write("SINV-2", "2026-11-02 10:00:00", status="Paid", paid_date="2026-11-02"),
            )
        )
    )
    index = sheet.read_index()
    assert index == {
        "SINV-1": IndexedRow(2, "2026-11-01 10:00:00", None),
        "SINV-2": IndexedRow(3, "2026-11-02 10:00:00", date(2026, 11, 2)),
    }
    counterparty = COLUMNS.index("counterparty")
    assert standin.cell(spreadsheet, TRACKER_TAB, 1, counterparty)["userEnteredValue"] == {
        "stringValue": '=HYPERLINK("x")'
    }
    assert standin.cell(spreadsheet, TRACKER_TAB, 1, COLUMNS.index("amount"))[
        "userEnteredValue"
    ] == {"numberValue": 12.5}


def test_the_index_follows_rows_a_person_sorts_and_inserts(
    standin: SheetsStandIn, spreadsheet: str
) -> None:
    sheet = tracker(standin, spreadsheet)
    sheet.apply(
        RowPlan(appends=tuple(write(f"SINV-{n}", f"2026-11-0{n} 10:00:00") for n in (1, 2, 3)))
    )
    standin.person_sorts(spreadsheet, TRACKER_TAB, COLUMNS.index("invoice"), descending=True)
    standin.person_inserts_rows(spreadsheet, TRACKER_TAB, 3, [["", "a note typed by hand"]])
    index = sheet.read_index()
    assert {name: entry.row_number for name, entry in index.items()} == {
        "SINV-3": 2,
        "SINV-2": 4,
        "SINV-1": 5,
    }
    sheet.apply(
        RowPlan(
            updates=(
                write("SINV-2", "2026-11-09 10:00:00", index["SINV-2"].row_number, status="Paid"),
            ),
            appends=(write("SINV-4", "2026-11-09 11:00:00"),),
            deletes=(RowDelete("SINV-3", index["SINV-3"].row_number),),
        )
    )
    values = standin.values(spreadsheet, TRACKER_TAB)
    invoice, status = COLUMNS.index("invoice"), COLUMNS.index("status")
    assert [(line[invoice] if line else "") for line in values[1:]] == [
        "",
        "SINV-2",
        "SINV-1",
        "SINV-4",
    ]
    assert values[2][status] == "Paid"
    assert values[1][:2] == ["", "a note typed by hand"]


def test_removing_every_data_row_works_when_they_fill_the_grid(standin: SheetsStandIn) -> None:
    """Rows appended to the grid's end leave no empty row below them (a full sheet, or one a
    person tidied); Sheets refuses to delete every row below the frozen header."""
    spreadsheet = standin.create_spreadsheet(tabs=(TRACKER_TAB, SUMMARY_TAB, OVERHEAD_TAB), rows=2)
    set_up_sheet(GoogleSheetLayout(sheets_client(endpoint=standin.url), spreadsheet), CONFIG)
    sheet = tracker(standin, spreadsheet)
    names = ("SINV-1", "SINV-2", "SINV-3")
    sheet.apply(RowPlan(appends=tuple(write(name, "2026-11-01 10:00:00") for name in names)))
    assert (
        standin.sheet_state(spreadsheet, TRACKER_TAB)["properties"]["gridProperties"]["rowCount"]
        == 4
    )  # the header and the three rows, nothing below

    deleted = [
        invoice_facts(
            {"name": name, "modified": "2026-11-02 10:00:00"},
            doctype="Sales Invoice",
            user_full_name=None,
            project_manager=None,
            paid_date=None,
            deleted=True,
        )
        for name in names
    ]
    sheet.apply(plan_upsert(sheet.read_index(), deleted, CONFIG))

    assert sheet.read_index() == {}
    assert standin.values(spreadsheet, TRACKER_TAB) == [list(header_row(CONFIG))]
    sheet.apply(RowPlan(appends=(write("SINV-4", "2026-11-03 10:00:00"),)))
    assert sheet.read_index() == {"SINV-4": IndexedRow(2, "2026-11-03 10:00:00", None)}


def test_the_mismatch_highlight_marks_rows_whose_author_is_not_the_manager(
    standin: SheetsStandIn, spreadsheet: str
) -> None:
    sheet = tracker(standin, spreadsheet)
    sheet.apply(
        RowPlan(
            appends=(
                write(
                    "SINV-1", "t1", project="ACME", entered_by="Ann Lee", project_manager="Ann Lee"
                ),
                write(
                    "SINV-2", "t2", project="ACME", entered_by="Bob Roe", project_manager="Ann Lee"
                ),
                write(
                    "SINV-3", "t3", project="HQ", entered_by="Bob Roe", project_manager="Ann Lee"
                ),
                write(
                    "SINV-4", "t4", project="ACME", entered_by="ann lee", project_manager="Ann Lee"
                ),
                write("SINV-5", "t5", project="ACME", entered_by="Bob Roe", project_manager=""),
            )
        )
    )
    assert standin.highlighted_rows(spreadsheet, TRACKER_TAB) == [3]


def test_a_sheet_without_the_setup_is_a_configuration_error(standin: SheetsStandIn) -> None:
    spreadsheet = standin.create_spreadsheet(tabs=(TRACKER_TAB,))
    with pytest.raises(ConfigurationError, match="setup"):
        tracker(standin, spreadsheet).read_index()
    with pytest.raises(ConfigurationError, match="no tab"):
        GoogleInvoiceSheet(
            sheets_client(endpoint=standin.url), standin.create_spreadsheet(), CONFIG
        ).read_index()


def test_quota_faults_and_timeouts_are_transient_and_bad_requests_are_not(
    standin: SheetsStandIn, spreadsheet: str
) -> None:
    sheet = tracker(standin, spreadsheet, timeout_s=0.5)
    standin.faults.timeout_s = 1.0
    for fault in ("429", "500", "timeout"):
        standin.faults.fail_next(fault)
        with pytest.raises(UpstreamUnavailable, match="sheets"):
            sheet.read_index()
    with pytest.raises(UpstreamRejected, match="400"):
        sheet.apply(RowPlan(updates=(write("SINV-9", "t", row_number=5000),)))


def test_the_stand_in_enforces_sixty_reads_a_minute_per_user() -> None:
    minute = [0.0]
    with SheetsStandIn(clock=lambda: minute[0]) as standin:
        spreadsheet = standin.create_spreadsheet()
        sheet = GoogleInvoiceSheet(sheets_client(endpoint=standin.url), spreadsheet, CONFIG)
        with pytest.raises(ConfigurationError):
            sheet.read_index()  # one read: the tab lookup
        service = sheets_client(endpoint=standin.url)
        for _ in range(59):
            service().spreadsheets().get(spreadsheetId=spreadsheet).execute()
        with pytest.raises(UpstreamUnavailable, match="429"):
            GoogleSheetLayout(service, spreadsheet).read_state(CONFIG)
        assert standin.calls["refused:429"] == 1
        minute[0] = 60.0  # the next minute: the quota is whole again
        service().spreadsheets().get(spreadsheetId=spreadsheet).execute()
