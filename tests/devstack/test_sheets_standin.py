"""The Sheets stand-in through google-api-python-client: typed input read as Sheets reads it
(USER_ENTERED), and the row deletions Sheets refuses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from googleapiclient.errors import HttpError

from devstack.sheets import SheetsStandIn
from shared.adapters.sheets import sheets_service

TAB = "Sheet1"


@pytest.fixture
def standin() -> Iterator[SheetsStandIn]:
    with SheetsStandIn() as running:
        yield running


def client(standin: SheetsStandIn) -> Any:
    return sheets_service(endpoint=standin.url, timeout_s=5)


def enter(standin: SheetsStandIn, spreadsheet: str, value: object, option: str) -> None:
    client(standin).spreadsheets().values().update(
        spreadsheetId=spreadsheet,
        range=f"{TAB}!A1",
        valueInputOption=option,
        body={"values": [[value]]},
    ).execute()


def read(standin: SheetsStandIn, spreadsheet: str, render: str, **options: str) -> object:
    found = (
        client(standin)
        .spreadsheets()
        .values()
        .get(spreadsheetId=spreadsheet, range=f"{TAB}!A1", valueRenderOption=render, **options)
        .execute()
    )
    return found["values"][0][0]


def sheet_id(standin: SheetsStandIn, spreadsheet: str) -> int:
    return int(standin.sheet_state(spreadsheet, TAB)["properties"]["sheetId"])


def refusal(exc: pytest.ExceptionInfo[HttpError]) -> dict[str, Any]:
    error: dict[str, Any] = json.loads(exc.value.content)["error"]
    return error


@pytest.mark.parametrize(
    ("typed", "unformatted", "shown", "number_format"),
    [
        (("en_US", "2026-03-05"), 46086, "2026-03-05", {"type": "DATE", "pattern": "yyyy-mm-dd"}),
        (("en_US", "3/5/2026"), 46086, "3/5/2026", {"type": "DATE", "pattern": "m/d/yyyy"}),
        (("en_GB", "5/3/2026"), 46086, "5/3/2026", {"type": "DATE", "pattern": "d/m/yyyy"}),
        (("de_DE", "05.03.2026"), 46086, "05.03.2026", {"type": "DATE", "pattern": "dd.mm.yyyy"}),
        (("de_DE", "2026-03-05"), 46086, "2026-03-05", {"type": "DATE", "pattern": "yyyy-mm-dd"}),
        (("en_US", "5.3.2026"), "5.3.2026", "5.3.2026", None),  # not a date in this locale
        (("de_DE", "3/5/2026"), "3/5/2026", "3/5/2026", None),
        (("en_US", "2/30/2026"), "2/30/2026", "2/30/2026", None),  # no such day: text
        (("en_US", "1,234.50"), 1234.5, "1,234.50", {"type": "NUMBER", "pattern": "#,##0.00"}),
        (("de_DE", "1.234,50"), 1234.5, "1.234,50", {"type": "NUMBER", "pattern": "#,##0.00"}),
        (("en_US", "12.5%"), 0.125, "12.5%", {"type": "PERCENT", "pattern": "0.0%"}),
        (("en_US", "$1,200"), 1200, "$1,200.00", {"type": "CURRENCY", "pattern": '"$"#,##0.00'}),
        (("en_US", "42"), 42, "42", None),
        (("en_US", "TRUE"), True, "TRUE", None),
        (("en_US", "'2026-03-05"), "2026-03-05", "2026-03-05", None),  # the apostrophe: text
        (("en_US", "'0042"), "0042", "0042", None),
        (("en_US", "paid by cheque"), "paid by cheque", "paid by cheque", None),
    ],
)
def test_user_entered_input_is_stored_as_sheets_reads_typed_text(
    standin: SheetsStandIn,
    typed: tuple[str, str],
    unformatted: object,
    shown: str,
    number_format: dict[str, str] | None,
) -> None:
    """ValueInputOption USER_ENTERED: "parsed as if the user typed them into the UI", strings
    "may be converted to numbers, dates" (Google's ValueInputOption reference); a date is its
    serial number, days since 1899-12-30 (DateTimeRenderOption reference); UNFORMATTED_VALUE
    gives the number and FORMATTED_VALUE the text in the cell's format and the spreadsheet's
    locale (ValueRenderOption reference). Which forms each locale takes as a date, the date
    pattern Sheets gives the cell and the apostrophe dropped from the value are assumed, not
    checked against Google."""
    locale, text = typed
    spreadsheet = standin.create_spreadsheet(tabs=(TAB,), locale=locale)
    enter(standin, spreadsheet, text, "USER_ENTERED")
    assert read(standin, spreadsheet, "UNFORMATTED_VALUE") == unformatted
    assert read(standin, spreadsheet, "FORMATTED_VALUE") == shown
    assert (
        standin.cell(spreadsheet, TAB, 0, 0).get("userEnteredFormat", {}).get("numberFormat")
        == number_format
    )


def test_a_date_reads_as_its_serial_number_unless_formatted_strings_are_asked_for(
    standin: SheetsStandIn,
) -> None:
    """DateTimeRenderOption: SERIAL_NUMBER is the default, FORMATTED_STRING gives the date
    as its number format shows it (Google's DateTimeRenderOption reference)."""
    spreadsheet = standin.create_spreadsheet(tabs=(TAB,))
    enter(standin, spreadsheet, "11/20/2026", "USER_ENTERED")
    assert read(standin, spreadsheet, "UNFORMATTED_VALUE") == 46346
    assert read(standin, spreadsheet, "FORMULA") == 46346
    options = {"dateTimeRenderOption": "FORMATTED_STRING"}
    assert read(standin, spreadsheet, "UNFORMATTED_VALUE", **options) == "11/20/2026"


def test_raw_input_is_stored_as_given(standin: SheetsStandIn) -> None:
    """ValueInputOption RAW: "will not be parsed and will be stored as-is"."""
    spreadsheet = standin.create_spreadsheet(tabs=(TAB,))
    for typed in ("2026-03-05", "1,234.50", "=A2"):
        enter(standin, spreadsheet, typed, "RAW")
        assert read(standin, spreadsheet, "UNFORMATTED_VALUE") == typed
        assert standin.cell(spreadsheet, TAB, 0, 0) == {"userEnteredValue": {"stringValue": typed}}


def test_a_cell_formatted_as_plain_text_keeps_typed_input_as_text(standin: SheetsStandIn) -> None:
    """Format > Number > Plain text: what is typed stays text (assumed, not checked against
    Google)."""
    spreadsheet = standin.create_spreadsheet(tabs=(TAB,))
    client(standin).spreadsheets().batchUpdate(
        spreadsheetId=spreadsheet,
        body={
            "requests": [
                {
                    "repeatCell": {
                        "range": {
                            "sheetId": sheet_id(standin, spreadsheet),
                            "endRowIndex": 1,
                            "endColumnIndex": 1,
                        },
                        "cell": {"userEnteredFormat": {"numberFormat": {"type": "TEXT"}}},
                        "fields": "userEnteredFormat.numberFormat",
                    }
                }
            ]
        },
    ).execute()
    enter(standin, spreadsheet, "2026-03-05", "USER_ENTERED")
    assert read(standin, spreadsheet, "UNFORMATTED_VALUE") == "2026-03-05"


def test_a_person_typing_is_a_user_entered_write(standin: SheetsStandIn) -> None:
    spreadsheet = standin.create_spreadsheet(tabs=(TAB,), locale="de_DE")
    enter(standin, spreadsheet, "20.11.2026", "USER_ENTERED")
    by_api = standin.cell(spreadsheet, TAB, 0, 0)
    standin.person_types(spreadsheet, TAB, 2, 0, "20.11.2026")
    assert standin.cell(spreadsheet, TAB, 1, 0) == by_api
    assert by_api["userEnteredValue"] == {"numberValue": 46346}


def test_values_update_refuses_a_write_without_a_value_input_option(
    standin: SheetsStandIn,
) -> None:
    """Sheets refuses a values.update without valueInputOption with a 400 (assumed, not checked
    against Google: sheets.v4.json does not mark it required; the message is from memory)."""
    spreadsheet = standin.create_spreadsheet(tabs=(TAB,))
    request = (
        client(standin)
        .spreadsheets()
        .values()
        .update(spreadsheetId=spreadsheet, range=f"{TAB}!A1", body={"values": [["x"]]})
    )
    with pytest.raises(HttpError) as refused:
        request.execute()
    assert refused.value.resp.status == 400
    assert refusal(refused)["message"] == "'valueInputOption' is required but not specified"
    assert standin.cell(spreadsheet, TAB, 0, 0) == {}


def delete_rows(standin: SheetsStandIn, spreadsheet: str, start: int, end: int) -> None:
    tab_id = sheet_id(standin, spreadsheet)
    client(standin).spreadsheets().batchUpdate(
        spreadsheetId=spreadsheet,
        body={
            "requests": [
                {
                    "updateCells": {
                        "start": {"sheetId": tab_id, "rowIndex": 0, "columnIndex": 0},
                        "rows": [{"values": [{"userEnteredValue": {"stringValue": "changed"}}]}],
                        "fields": "userEnteredValue",
                    }
                },
                {
                    "deleteDimension": {
                        "range": {
                            "sheetId": tab_id,
                            "dimension": "ROWS",
                            "startIndex": start,
                            "endIndex": end,
                        }
                    }
                },
            ]
        },
    ).execute()


def freeze_first_row(standin: SheetsStandIn, spreadsheet: str) -> None:
    properties = {
        "sheetId": sheet_id(standin, spreadsheet),
        "gridProperties": {"frozenRowCount": 1},
    }
    client(standin).spreadsheets().batchUpdate(
        spreadsheetId=spreadsheet,
        body={
            "requests": [
                {
                    "updateSheetProperties": {
                        "properties": properties,
                        "fields": "gridProperties.frozenRowCount",
                    }
                }
            ]
        },
    ).execute()


def test_deleting_every_non_frozen_row_is_refused_and_the_batch_changes_nothing(
    standin: SheetsStandIn,
) -> None:
    """Sheets answers 400 INVALID_ARGUMENT "Invalid requests[N].deleteDimension: Sorry, it is not
    possible to delete all non-frozen rows." (the body as quoted in
    jlolling/talendcomp_tGoogleSheet issue 19, a real API answer), and a batchUpdate is all or
    nothing ("If any request is not valid then the entire request will fail and nothing will be
    applied": spreadsheets.batchUpdate in sheets.v4.json)."""
    spreadsheet = standin.create_spreadsheet(tabs=(TAB,), rows=4)
    freeze_first_row(standin, spreadsheet)
    before = standin.sheet_state(spreadsheet, TAB)
    with pytest.raises(HttpError) as refused:
        delete_rows(standin, spreadsheet, 1, 4)
    assert refused.value.resp.status == 400
    assert refusal(refused) == {
        "code": 400,
        "message": "Invalid requests[1].deleteDimension: Sorry, it is not possible to delete all "
        "non-frozen rows.",
        "status": "INVALID_ARGUMENT",
        "errors": [
            {
                "message": "Invalid requests[1].deleteDimension: Sorry, it is not possible to "
                "delete all non-frozen rows.",
                "domain": "global",
                "reason": "badRequest",
            }
        ],
    }
    assert standin.sheet_state(spreadsheet, TAB) == before  # the updateCells did not land either
    delete_rows(standin, spreadsheet, 2, 4)  # one non-frozen row left: allowed
    assert standin.sheet_state(spreadsheet, TAB)["properties"]["gridProperties"]["rowCount"] == 2


def test_deleting_every_row_of_a_sheet_without_frozen_rows_is_refused(
    standin: SheetsStandIn,
) -> None:
    """With no frozen rows the text is "You can't delete all the rows on the sheet." (as
    quoted in SteveWinward/GoogleSheetsWrapper issue 43, a real API answer)."""
    spreadsheet = standin.create_spreadsheet(tabs=(TAB,), rows=3)
    with pytest.raises(HttpError) as refused:
        delete_rows(standin, spreadsheet, 0, 3)
    assert refused.value.resp.status == 400
    assert refusal(refused)["message"] == (
        "Invalid requests[1].deleteDimension: You can't delete all the rows on the sheet."
    )
    assert standin.cell(spreadsheet, TAB, 0, 0) == {}
