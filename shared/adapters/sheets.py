"""Google Sheets (v4, through google-api-python-client): the Invoice Tracker's rows and layout.

A row is found by its invoice cell, wherever people have sorted or moved it: one read
(`values.batchGet` of the header and the invoice, last-modified and paid-date columns) indexes
the whole tab, and a whole batch is one write (one `spreadsheets.batchUpdate`). Row developer
metadata would also move with rows, but Google caps a sheet's metadata at 30,000 characters
(from memory of Google's metadata guide, not checkable here), a few hundred invoices; the
invoice column has no such cap. Cells are written as `userEnteredValue.stringValue` or
`numberValue`: never parsed, the RAW way, so an ERPNext value starting with `=` stays text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httplib2
from googleapiclient.errors import HttpError

from shared.adapters.clients import discovery_client, per_thread
from shared.errors import ConfigurationError, UpstreamRejected, UpstreamUnavailable
from shared.platform import resilience
from shared.sheets.layout import (
    NUMBER_FORMAT,
    OVERHEAD_TAB,
    SUMMARY_TAB,
    TRACKER_TAB,
    LayoutState,
    number_columns,
)
from shared.sheets.rows import (
    FIRST_DATA_ROW,
    HEADER_ROW,
    CellValue,
    IndexedRow,
    RowPlan,
    SheetIndex,
    TrackerConfig,
    column_letter,
    header_row,
    paid_date_from_cell,
)

SERVICE = "sheets"
DEFAULT_TIMEOUT_S = 30.0

Request = dict[str, object]


def sheets_service(*, endpoint: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> Any:
    """A Sheets client: Google's own with default credentials, or a local stand-in at `endpoint`."""
    if endpoint:
        from google.auth.credentials import AnonymousCredentials

        credentials: Any = AnonymousCredentials()  # type: ignore[no-untyped-call]
    else:
        import google.auth

        credentials, _ = google.auth.default(
            scopes=["https://www.googleapis.com/auth/spreadsheets"]
        )
    return discovery_client("sheets", "v4", credentials, endpoint=endpoint, timeout_s=timeout_s)


def sheets_client(
    *, endpoint: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S
) -> Callable[[], Any]:
    """A Sheets client for each thread."""
    return per_thread(lambda: sheets_service(endpoint=endpoint, timeout_s=timeout_s))


@contextmanager
def translated(operation: str) -> Iterator[None]:
    """One attempt through the Sheets circuit breaker, its failures into the error tree; the
    retries are the callers' (sheets_sync retries a whole batch)."""
    with resilience.guarded(SERVICE, operation), _tree(operation):
        yield


@contextmanager
def _tree(operation: str) -> Iterator[None]:
    """Sheets failures into the error tree: 429, 5xx and timeouts retry; other 4xx are permanent."""
    try:
        yield
    except HttpError as exc:
        status = int(exc.resp.status)
        reason = exc.reason if isinstance(exc.reason, str) else ""
        message = f"sheets {operation}: HTTP {status} {reason[:200]}".strip()
        if status == 429 or status >= 500:
            raise UpstreamUnavailable(message, service=SERVICE) from None
        raise UpstreamRejected(message, service=SERVICE) from None
    except (TimeoutError, ConnectionError, httplib2.HttpLib2Error, OSError) as exc:
        raise UpstreamUnavailable(
            f"sheets {operation}: {type(exc).__name__}", service=SERVICE
        ) from None


def cell(value: CellValue) -> dict[str, object]:
    """One CellData; an empty value clears the cell (the API skips absent values, not empty ones)."""
    if value is None or value == "":
        return {}
    if isinstance(value, bool):
        return {"userEnteredValue": {"boolValue": value}}
    if isinstance(value, int | float):
        return {"userEnteredValue": {"numberValue": value}}
    return {"userEnteredValue": {"stringValue": value}}


def quoted(title: str) -> str:
    """A tab's name as A1 notation wants it: 'Invoice Tracker'."""
    return "'" + title.replace("'", "''") + "'"


class GoogleInvoiceSheet:
    """The InvoiceSheet port on the tracker tab of one spreadsheet."""

    def __init__(
        self,
        service: Callable[[], Any],
        spreadsheet_id: str,
        config: TrackerConfig,
        sheet_title: str = TRACKER_TAB,
    ) -> None:
        self._service = service
        self._spreadsheet_id = spreadsheet_id
        self._config = config
        self._sheet_title = sheet_title
        self._sheet_id: int | None = None

    def sheet_id(self) -> int:
        """The tab's numeric id, looked up once per instance."""
        if self._sheet_id is None:
            tabs = read_tabs(self._service, self._spreadsheet_id)
            if self._sheet_title not in tabs:
                raise ConfigurationError(
                    f"spreadsheet has no tab named {self._sheet_title!r}; run the sheet setup"
                )
            self._sheet_id = tabs[self._sheet_title]
        return self._sheet_id

    def read_index(self) -> SheetIndex:
        config = self._config
        keys = ["invoice", "last_modified"] + (
            ["paid_date"] if "paid_date" in config.columns else []
        )
        tab = quoted(self._sheet_title)
        ranges = [f"{tab}!{HEADER_ROW}:{HEADER_ROW}"] + [
            f"{tab}!{letter}{FIRST_DATA_ROW}:{letter}"
            for letter in (column_letter(config.index_of(key)) for key in keys)
        ]
        self.sheet_id()  # a missing tab is a configuration error, not an empty sheet
        with translated("read the row index"):
            found = (
                self._service()
                .spreadsheets()
                .values()
                .batchGet(
                    spreadsheetId=self._spreadsheet_id,
                    ranges=ranges,
                    majorDimension="ROWS",
                    # Numbers as numbers, and a date a person typed as its serial number
                    # (rows.paid_date_from_cell reads both), whatever the sheet's locale.
                    valueRenderOption="UNFORMATTED_VALUE",
                    dateTimeRenderOption="SERIAL_NUMBER",
                )
                .execute()
            )
        header_range, *column_ranges = found.get("valueRanges", [])
        header = (header_range.get("values") or [[]])[0]
        columns = [_column(part) for part in column_ranges]
        wanted = header_row(config)
        if tuple(str(text) for text in header[: len(wanted)]) != wanted:
            raise ConfigurationError(
                f"the {self._sheet_title!r} header is not the configured columns; run the sheet setup"
            )
        names, stamps = columns[0], columns[1]
        paid = columns[2] if len(columns) > 2 else []
        index: dict[str, IndexedRow] = {}
        for offset, name in enumerate(names):
            if not isinstance(name, str) or not name.strip() or name in index:
                continue  # an empty row, or a pasted copy: the first row stays the invoice's
            stamp = stamps[offset] if offset < len(stamps) else None
            index[name] = IndexedRow(
                FIRST_DATA_ROW + offset,
                stamp if isinstance(stamp, str) and stamp else None,
                paid_date_from_cell(paid[offset] if offset < len(paid) else None),
            )
        return index

    def apply(self, plan: RowPlan) -> None:
        """One batchUpdate: updates and clears in place, appends below the last row with data,
        deletes last."""
        sheet_id = self.sheet_id()
        requests: list[Request] = []
        for write in plan.updates:
            assert write.row_number is not None
            requests.append(_update_cells(sheet_id, write.row_number - 1, [write.cells]))
        empty = ("",) * len(self._config.columns)
        for clear in plan.clears:
            requests.append(_update_cells(sheet_id, clear.row_number - 1, [empty]))
        if plan.appends:
            requests.append(
                {
                    "appendCells": {
                        "sheetId": sheet_id,
                        "rows": [_row_data(write.cells) for write in plan.appends],
                        "fields": "userEnteredValue",
                    }
                }
            )
        for delete in sorted(plan.deletes, key=lambda d: d.row_number, reverse=True):
            span = {
                "sheetId": sheet_id,
                "dimension": "ROWS",
                "startIndex": delete.row_number - 1,
                "endIndex": delete.row_number,
            }
            requests.append({"deleteDimension": {"range": span}})
        if requests:
            batch_update(self._service, self._spreadsheet_id, requests, what="write rows")


class GoogleSheetLayout:
    """The layout side of the spreadsheet: what the setup reads and the requests it sends."""

    def __init__(self, service: Callable[[], Any], spreadsheet_id: str) -> None:
        self._service = service
        self._spreadsheet_id = spreadsheet_id

    def read_state(self, config: TrackerConfig) -> LayoutState:
        tabs = read_tabs(self._service, self._spreadsheet_id)
        if any(title not in tabs for title in (TRACKER_TAB, SUMMARY_TAB, OVERHEAD_TAB)):
            return LayoutState(tabs=tabs)
        ranges = [
            f"{quoted(TRACKER_TAB)}!1:{FIRST_DATA_ROW}",
            f"{quoted(SUMMARY_TAB)}!A1:D1",
            f"{quoted(OVERHEAD_TAB)}!A:A",
        ]
        fields = (
            "sheets(properties(title,gridProperties.frozenRowCount),conditionalFormats,"
            "data.rowData.values(userEnteredValue,userEnteredFormat.numberFormat))"
        )
        with translated("read the layout"):
            found = (
                self._service()
                .spreadsheets()
                .get(
                    spreadsheetId=self._spreadsheet_id,
                    ranges=ranges,
                    includeGridData=True,
                    fields=fields,
                )
                .execute()
            )
        by_title = {sheet["properties"]["title"]: sheet for sheet in found.get("sheets", [])}
        tracker = by_title.get(TRACKER_TAB, {})
        tracker_rows = _grid_rows(tracker)
        header = [_entered(cell) for cell in (tracker_rows[0] if tracker_rows else [])]
        first_data = tracker_rows[1] if len(tracker_rows) > 1 else []
        formatted = frozenset(
            column
            for column in number_columns(config)
            if column < len(first_data)
            and first_data[column].get("userEnteredFormat", {}).get("numberFormat") == NUMBER_FORMAT
        )
        rules = frozenset(
            str(value.get("userEnteredValue"))
            for rule in tracker.get("conditionalFormats", [])
            for value in rule.get("booleanRule", {}).get("condition", {}).get("values", [])
        )
        summary_rows = _grid_rows(by_title.get(SUMMARY_TAB, {}))
        summary = [_entered(cell) for cell in (summary_rows[0] if summary_rows else [])]
        summary += [""] * (4 - len(summary))
        overhead = [
            str(_entered(row[0])) for row in _grid_rows(by_title.get(OVERHEAD_TAB, {})) if row
        ]
        return LayoutState(
            tabs=tabs,
            header=tuple(header),
            frozen_rows=int(
                tracker.get("properties", {}).get("gridProperties", {}).get("frozenRowCount", 0)
            ),
            number_formatted=formatted,
            rule_formulas=rules,
            summary_formulas=tuple(summary),
            overhead_values=tuple(value for value in overhead if value),
        )

    def apply(self, requests: list[Request]) -> None:
        batch_update(self._service, self._spreadsheet_id, requests, what="set up the layout")


def read_tabs(service: Callable[[], Any], spreadsheet_id: str) -> dict[str, int]:
    """Tab titles to sheet ids."""
    with translated("read the tabs"):
        spreadsheet = (
            service()
            .spreadsheets()
            .get(spreadsheetId=spreadsheet_id, fields="sheets.properties(sheetId,title)")
            .execute()
        )
    return {
        str(sheet["properties"]["title"]): int(sheet["properties"].get("sheetId", 0))
        for sheet in spreadsheet.get("sheets", [])
    }


def batch_update(
    service: Callable[[], Any], spreadsheet_id: str, requests: list[Request], *, what: str
) -> None:
    with translated(what):
        (
            service()
            .spreadsheets()
            .batchUpdate(spreadsheetId=spreadsheet_id, body={"requests": requests})
            .execute()
        )


def _column(value_range: dict[str, Any]) -> list[CellValue]:
    """A one-column range read by rows: [[v], [], [v], ...] -> [v, None, v, ...]."""
    return [
        line[0] if line and isinstance(line[0], str | int | float | bool) else None
        for line in value_range.get("values", [])
    ]


def _grid_rows(sheet: dict[str, Any]) -> list[list[dict[str, Any]]]:
    data = sheet.get("data") or [{}]
    return [list(row.get("values", [])) for row in data[0].get("rowData", [])]


def _entered(cell: dict[str, Any]) -> object:
    value = cell.get("userEnteredValue") or {}
    for kind in ("stringValue", "numberValue", "boolValue", "formulaValue"):
        if kind in value:
            return value[kind]
    return ""


def _row_data(cells: tuple[CellValue, ...]) -> dict[str, object]:
    return {"values": [cell(value) for value in cells]}


def _update_cells(sheet_id: int, row_index: int, rows: list[tuple[CellValue, ...]]) -> Request:
    return {
        "updateCells": {
            "start": {"sheetId": sheet_id, "rowIndex": row_index, "columnIndex": 0},
            "rows": [_row_data(row) for row in rows],
            "fields": "userEnteredValue",
        }
    }
