"""The Invoice Tracker's layout as Sheets batchUpdate requests, only for what is missing.

Run twice, the second run asks for nothing: every request here is decided from the sheet's
current state (`LayoutState`), so setup is idempotent even for addConditionalFormatRule, which
adds one more rule per call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from shared.sheets.rows import (
    COLUMNS_BY_KEY,
    HEADER_ROW,
    TrackerConfig,
    column_letter,
    header_row,
    mismatch_formula_for,
)

TRACKER_TAB = "Invoice Tracker"
SUMMARY_TAB = "Summary"
OVERHEAD_TAB = "Overhead"
OVERHEAD_RANGE = f"{OVERHEAD_TAB}!$A:$A"
NUMBER_FORMAT = {"type": "NUMBER", "pattern": "#,##0.00"}
HIGHLIGHT = {"backgroundColor": {"red": 1.0, "green": 0.85, "blue": 0.8}}

Request = dict[str, object]


@dataclass(frozen=True)
class LayoutState:
    """What the spreadsheet has now: tab ids by title, the tracker's header, frozen rows, rules."""

    tabs: Mapping[str, int]
    header: Sequence[object] = ()
    frozen_rows: int = 0
    number_formatted: frozenset[int] = field(default_factory=frozenset)
    """Tracker columns (0-based) whose data cells already carry NUMBER_FORMAT."""
    rule_formulas: frozenset[str] = field(default_factory=frozenset)
    summary_formulas: Sequence[object] = ()
    """Summary!A1:D1 as formulas."""
    overhead_values: Sequence[str] = ()
    """Overhead!A:A, its title cell first."""


def summary_formulas(config: TrackerConfig) -> tuple[str, str]:
    """Totals per project and per month, as sheet formulas over the tracker (never our numbers)."""
    amount = column_letter(config.index_of("amount"))
    project = column_letter(config.index_of("project"))
    month = column_letter(config.index_of("month"))
    status = column_letter(config.index_of("status"))
    source = f"'{TRACKER_TAB}'!A:{column_letter(len(config.columns) - 1)}"
    excluded = f"{status} <> '{config.cancelled_label}' and {status} <> '{config.deleted_label}'"

    def total_by(key: str, label: str) -> str:
        query = (
            f"select {key}, sum({amount}) where {key} is not null and {excluded} "
            f"group by {key} order by {key} label {key} '{label}', sum({amount}) 'Total'"
        )
        return f'=QUERY({source}, "{query}", 1)'

    return total_by(project, "Project"), total_by(month, "Month")


def summary_row(config: TrackerConfig) -> tuple[str, str, str, str]:
    """Summary!A1:D1: totals by project from A, by month from D (each QUERY spills below)."""
    by_project, by_month = summary_formulas(config)
    return by_project, "", "", by_month


def layout_requests(state: LayoutState, config: TrackerConfig) -> list[Request]:
    """The batchUpdate requests that bring the sheet's layout up to `config`; [] when it is."""
    requests: list[Request] = []
    for title in (TRACKER_TAB, SUMMARY_TAB, OVERHEAD_TAB):
        if title not in state.tabs:
            requests.append({"addSheet": {"properties": {"title": title}}})
    if requests:
        return requests  # tabs first: the rest needs their ids, read after this batch
    tracker = state.tabs[TRACKER_TAB]
    headers = header_row(config)
    if tuple(state.header) != headers:
        requests.append(_row(tracker, HEADER_ROW - 1, headers, bold=True))
    if state.frozen_rows != HEADER_ROW:
        requests.append(
            {
                "updateSheetProperties": {
                    "properties": {
                        "sheetId": tracker,
                        "gridProperties": {"frozenRowCount": HEADER_ROW},
                    },
                    "fields": "gridProperties.frozenRowCount",
                }
            }
        )
    requests.extend(_column_formats(tracker, config, state.number_formatted))
    formula = mismatch_formula_for(config, OVERHEAD_RANGE)
    if formula not in state.rule_formulas:
        requests.append(_mismatch_rule(tracker, len(config.columns), formula))
    wanted = summary_row(config)
    if tuple(state.summary_formulas) != wanted:
        requests.append(_row(state.tabs[SUMMARY_TAB], 0, wanted, formulas=True))
    overhead = sorted(config.overhead_projects)
    if list(state.overhead_values) != ["Overhead projects", *overhead]:
        requests.append(
            {
                "updateCells": {
                    "start": {"sheetId": state.tabs[OVERHEAD_TAB], "rowIndex": 0, "columnIndex": 0},
                    "rows": [_cells(("Overhead projects",))]
                    + [_cells((name,)) for name in overhead],
                    "fields": "userEnteredValue",
                }
            }
        )
    return requests


def _cells(values: Sequence[str], *, formulas: bool = False, bold: bool = False) -> Request:
    kind = "formulaValue" if formulas else "stringValue"
    cells: list[Request] = []
    for value in values:
        cell: Request = {"userEnteredValue": {kind: value}} if value else {}
        if bold:
            cell["userEnteredFormat"] = {"textFormat": {"bold": True}}
        cells.append(cell)
    return {"values": cells}


def _row(
    sheet_id: int,
    row_index: int,
    values: Sequence[str],
    *,
    formulas: bool = False,
    bold: bool = False,
) -> Request:
    fields = "userEnteredValue,userEnteredFormat.textFormat.bold" if bold else "userEnteredValue"
    return {
        "updateCells": {
            "start": {"sheetId": sheet_id, "rowIndex": row_index, "columnIndex": 0},
            "rows": [_cells(values, formulas=formulas, bold=bold)],
            "fields": fields,
        }
    }


def number_columns(config: TrackerConfig) -> frozenset[int]:
    return frozenset(
        index for index, key in enumerate(config.columns) if COLUMNS_BY_KEY[key].kind == "number"
    )


def _column_formats(sheet_id: int, config: TrackerConfig, done: frozenset[int]) -> list[Request]:
    requests: list[Request] = []
    for index in sorted(number_columns(config) - done):
        requests.append(
            {
                "repeatCell": {
                    "range": {
                        "sheetId": sheet_id,
                        "startRowIndex": HEADER_ROW,
                        "startColumnIndex": index,
                        "endColumnIndex": index + 1,
                    },
                    "cell": {"userEnteredFormat": {"numberFormat": NUMBER_FORMAT}},
                    "fields": "userEnteredFormat.numberFormat",
                }
            }
        )
    return requests


def _mismatch_rule(sheet_id: int, column_count: int, formula: str) -> Request:
    return {
        "addConditionalFormatRule": {
            "index": 0,
            "rule": {
                "ranges": [
                    {
                        "sheetId": sheet_id,
                        "startRowIndex": HEADER_ROW,
                        "startColumnIndex": 0,
                        "endColumnIndex": column_count,
                    }
                ],
                "booleanRule": {
                    "condition": {
                        "type": "CUSTOM_FORMULA",
                        "values": [{"userEnteredValue": formula}],
                    },
                    "format": HIGHLIGHT,
                },
            },
        }
    }
