"""A Google Sheets v4 stand-in, for the calls the bridge makes, as sheets.v4.json describes them.

Served: spreadsheets.create / get (ranges, includeGridData, `fields`) / batchUpdate,
developerMetadata.get / search, values.get / batchGet. batchUpdate knows addSheet,
updateSheetProperties, updateCells, appendCells, repeatCell, insertDimension, appendDimension,
deleteDimension, sortRange, create/update/deleteDeveloperMetadata and
add/deleteConditionalFormatRule; any other request is refused as Google refuses an unknown field.
A batch is atomic: all of it applies or none of it does.

Also values.update (valueInputOption RAW or USER_ENTERED, as another account or the browser
writes; `person_types` is the same).

Google's behaviour it keeps (docs/SERVICES.md, Google Sheets): 60 read and 60 write requests per minute per
user, refilled each minute, a batch counting once, 429 RESOURCE_EXHAUSTED beyond; writes beyond
the grid refused; deleting every row below the frozen ones (or every row) refused; row developer
metadata moving with its row and deleted with it; text stored as given (a string value starting
with "=" stays text, only formulaValue is a formula), while typed input (USER_ENTERED) is read in
the spreadsheet's locale (LOCALES): dates become serial numbers with a date format, numbers
lose their separators, "%" and currency; values read per valueRenderOption and
dateTimeRenderOption.
Conditional-format formulas are evaluated by devstack.sheet_formulas so tests can see which rows
a rule highlights. Not played: the per-project quota, QUERY and other formulas beyond that
evaluator (their cells read "#N/A"), formats other than number formats and bold text.

Assumptions, not checked against Google: sorting moves whole rows, their metadata included;
which typed forms each locale reads as dates and numbers, the number formats Sheets gives them,
and the leading apostrophe left out of the stored text.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from devstack.google_api import ApiError, Faults, parse_fields, selected
from devstack.httpserver import LoopbackServer, Reply
from shared.adapters.sheets import cell
from shared.sheets.rows import SERIAL_EPOCH, date_of_serial

DEFAULT_ROWS = 1000
DEFAULT_COLUMNS = 26
QUOTA_PER_MINUTE = 60
DEFAULT_LOCALE = "en_US"
USER_HEADER = "Authorization"

Cell = dict[str, Any]
Json = dict[str, Any]
Kind = Literal["read", "write"]


def _invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", message)


# ---------------------------------------------------------------------------------------------
# The model: spreadsheets, sheets, rows (which carry their metadata), cells.
# ---------------------------------------------------------------------------------------------


@dataclass
class Row:
    cells: list[Cell] = field(default_factory=list)
    metadata: list[int] = field(default_factory=list)

    def cell(self, column: int) -> Cell:
        return self.cells[column] if column < len(self.cells) else {}

    def put(self, column: int, value: Cell) -> None:
        if column >= len(self.cells):
            self.cells.extend({} for _ in range(column + 1 - len(self.cells)))
        self.cells[column] = value

    def has_data(self) -> bool:
        return any("userEnteredValue" in cell for cell in self.cells)

    def clone(self) -> Row:
        return Row([dict(cell) for cell in self.cells], list(self.metadata))


@dataclass
class Sheet:
    properties: Json
    rows: list[Row]
    conditional_formats: list[Json] = field(default_factory=list)

    @property
    def sheet_id(self) -> int:
        return int(self.properties["sheetId"])

    @property
    def title(self) -> str:
        return str(self.properties["title"])

    @property
    def column_count(self) -> int:
        return int(self.properties["gridProperties"]["columnCount"])

    def described(self) -> Json:
        properties = copy.deepcopy(self.properties)
        properties["gridProperties"]["rowCount"] = len(self.rows)
        return properties

    def clone(self) -> Sheet:
        return Sheet(
            copy.deepcopy(self.properties),
            [row.clone() for row in self.rows],
            copy.deepcopy(self.conditional_formats),
        )


@dataclass
class Spreadsheet:
    spreadsheet_id: str
    title: str
    sheets: list[Sheet]
    metadata: dict[int, Json] = field(default_factory=dict)
    """metadataId -> key, value, visibility, and `sheetId` for row metadata (its row holds the id)."""
    locale: str = DEFAULT_LOCALE
    """How typed input is read and numbers are shown (properties.locale)."""

    @property
    def reads_as(self) -> Locale:
        return LOCALES[self.locale]

    def sheet(self, sheet_id: int) -> Sheet:
        for sheet in self.sheets:
            if sheet.sheet_id == sheet_id:
                return sheet
        raise _invalid(f"No grid with id: {sheet_id}")

    def sheet_titled(self, title: str) -> Sheet:
        for sheet in self.sheets:
            if sheet.title.lower() == title.lower():
                return sheet
        raise _invalid(f"Unable to parse range: {title}")

    def clone(self) -> Spreadsheet:
        return Spreadsheet(
            self.spreadsheet_id,
            self.title,
            [sheet.clone() for sheet in self.sheets],
            copy.deepcopy(self.metadata),
            self.locale,
        )

    def located_metadata(self) -> list[Json]:
        """Every developer metadata with its current location (rows may have moved)."""
        found: list[Json] = []
        rows_of: dict[int, tuple[int, int]] = {}
        for sheet in self.sheets:
            for index, row in enumerate(sheet.rows):
                for metadata_id in row.metadata:
                    rows_of[metadata_id] = (sheet.sheet_id, index)
        for metadata_id, entry in sorted(self.metadata.items()):
            described = {
                "metadataId": metadata_id,
                "metadataKey": entry["metadataKey"],
                "visibility": entry.get("visibility", "DOCUMENT"),
            }
            if "metadataValue" in entry:
                described["metadataValue"] = entry["metadataValue"]
            if metadata_id in rows_of:
                sheet_id, index = rows_of[metadata_id]
                described["location"] = {
                    "locationType": "ROW",
                    "dimensionRange": {
                        "sheetId": sheet_id,
                        "dimension": "ROWS",
                        "startIndex": index,
                        "endIndex": index + 1,
                    },
                }
            elif "sheetId" in entry:
                described["location"] = {"locationType": "SHEET", "sheetId": entry["sheetId"]}
            else:
                described["location"] = {"locationType": "SPREADSHEET", "spreadsheet": True}
            found.append(described)
        return found


def _empty_sheet(sheet_id: int, title: str, index: int, rows: int, columns: int) -> Sheet:
    properties = {
        "sheetId": sheet_id,
        "title": title,
        "index": index,
        "sheetType": "GRID",
        "gridProperties": {"rowCount": rows, "columnCount": columns},
    }
    return Sheet(properties, [Row() for _ in range(rows)])


# ---------------------------------------------------------------------------------------------
# Values: what a cell holds and how it reads.
# ---------------------------------------------------------------------------------------------

Scalar = str | float | bool | None


def entered(cell: Cell) -> Scalar:
    value = cell.get("userEnteredValue") or {}
    for kind in ("stringValue", "numberValue", "boolValue"):
        if kind in value:
            return value[kind]  # type: ignore[no-any-return]
    if "formulaValue" in value:
        return str(value["formulaValue"])
    return None


def is_formula(cell: Cell) -> bool:
    return "formulaValue" in (cell.get("userEnteredValue") or {})


def number_format(cell: Cell) -> Json:
    return cell.get("userEnteredFormat", {}).get("numberFormat", {})  # type: ignore[no-any-return]


def formatted(value: Scalar, cell: Cell, locale: Locale | None = None) -> str:
    """The text a person sees: numbers through the cell's number format and the sheet's locale."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, str):
        return value
    shown = number_format(cell)
    if shown.get("type") == "DATE":
        return _date_text(value, str(shown.get("pattern", "yyyy-mm-dd")))
    pattern = str(shown.get("pattern", ""))
    if not pattern:
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return _number_text(value, pattern, locale or LOCALES[DEFAULT_LOCALE])


def _date_text(serial: float, pattern: str) -> str:
    day = date_of_serial(serial)
    if day is None:
        return "#NUM!"
    parts = {
        "yyyy": f"{day.year:04d}",
        "mm": f"{day.month:02d}",
        "m": str(day.month),
        "dd": f"{day.day:02d}",
        "d": str(day.day),
    }
    return re.sub(r"yyyy|mm|m|dd|d", lambda found: parts[found.group(0)], pattern)


def _number_text(value: float, pattern: str, locale: Locale) -> str:
    """'#,##0.00', '0.00%', '"$"#,##0.00', '#,##0.00 "€"': the patterns this stand-in sets."""
    body = re.sub(r'"[^"]*"', "", pattern).strip()
    decimals = re.search(r"\.(0+)", body)
    places = len(decimals.group(1)) if decimals else 0
    number = value * 100 if body.endswith("%") else value
    text = f"{number:,.{places}f}" if "," in body else f"{number:.{places}f}"
    text = text.translate({ord(","): locale.thousands, ord("."): locale.decimal})
    quoted = re.search(r'"([^"]*)"', pattern)
    if quoted:
        symbol = quoted.group(1)
        text = symbol + text if pattern.startswith('"') else f"{text} {symbol}"
    return text + "%" if body.endswith("%") else text


# ---------------------------------------------------------------------------------------------
# Typed input: what Sheets makes of a value entered as USER_ENTERED (or typed in the browser).
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Locale:
    """How a spreadsheet's locale reads typed numbers and dates."""

    decimal: str
    thousands: str
    day_first: bool
    date_separator: str
    currency: str
    currency_first: bool


LOCALES: Mapping[str, Locale] = {
    "en_US": Locale(
        decimal=".",
        thousands=",",
        day_first=False,
        date_separator="/",
        currency="$",
        currency_first=True,
    ),
    "en_GB": Locale(
        decimal=".",
        thousands=",",
        day_first=True,
        date_separator="/",
        currency="£",
        currency_first=True,
    ),
    "de_DE": Locale(
        decimal=",",
        thousands=".",
        day_first=True,
        date_separator=".",
        currency="€",
        currency_first=False,
    ),
}


def _typed_date(text: str, locale: Locale) -> tuple[int, str] | None:
    """(serial number, date pattern) of a typed date: ISO in every locale, else the locale's
    day/month order and separator."""
    iso = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", text)
    separator = re.escape(locale.date_separator)
    local = re.fullmatch(rf"(\d{{1,2}}){separator}(\d{{1,2}}){separator}(\d{{4}})", text)
    if iso:
        year, month, day = (int(part) for part in iso.groups())
        pattern = "yyyy-mm-dd"
    elif local:
        first, second, year = (int(part) for part in local.groups())
        day, month = (first, second) if locale.day_first else (second, first)
        letters = ("d", "m") if locale.day_first else ("m", "d")
        # as typed: 05.03.2026 shows as dd.mm.yyyy, 5.3.2026 as d.m.yyyy (assumed)
        order = [letter * len(part) for letter, part in zip(letters, local.groups(), strict=False)]
        pattern = locale.date_separator.join((*order, "yyyy"))
    else:
        return None
    try:
        typed = date(year, month, day)
    except ValueError:
        return None  # 2/30/2026 is text, as in Sheets
    return (typed - SERIAL_EPOCH).days, pattern


def _typed_number(text: str, locale: Locale) -> tuple[float, Json | None] | None:
    """(value, number format or None) of a typed number: signs, the locale's thousands
    separator and decimal mark, a trailing %, the locale's currency symbol."""
    rest, sign = text, 1
    if rest.startswith(("+", "-")):
        sign, rest = (-1 if rest[0] == "-" else 1), rest[1:].strip()
    currency = rest.startswith(locale.currency) or rest.endswith(locale.currency)
    rest = rest.removeprefix(locale.currency).removesuffix(locale.currency).strip()
    percent = rest.endswith("%")
    rest = rest[:-1].strip() if percent else rest
    group, mark = re.escape(locale.thousands), re.escape(locale.decimal)
    found = re.fullmatch(rf"(\d{{1,3}}(?:{group}\d{{3}})+|\d*)(?:{mark}(\d+))?", rest)
    if found is None or not (found.group(1) or found.group(2)):
        return None
    whole, fraction = found.group(1).replace(locale.thousands, "") or "0", found.group(2)
    number = sign * float(f"{whole}.{fraction or 0}")
    places = "." + "0" * len(fraction) if fraction else ""
    if percent:
        return number / 100, {"type": "PERCENT", "pattern": f"0{places}%"}
    if currency:
        symbol = f'"{locale.currency}"'
        money = f"{symbol}#,##0.00" if locale.currency_first else f"#,##0.00 {symbol}"
        return number, {"type": "CURRENCY", "pattern": money}
    if locale.thousands in found.group(1):
        return number, {"type": "NUMBER", "pattern": f"#,##0{places}"}
    return number, None


def _read_typed(typed: str, locale: Locale) -> tuple[Json, Json | None]:
    """(userEnteredValue, number format or None) of text typed into a cell."""
    text = typed.strip()
    if typed.startswith("'"):
        return {"stringValue": typed[1:]}, None
    if typed.startswith("="):
        return {"formulaValue": typed}, None
    if text.upper() in ("TRUE", "FALSE"):
        return {"boolValue": text.upper() == "TRUE"}, None
    as_date = _typed_date(text, locale)
    if as_date is not None:
        return {"numberValue": as_date[0]}, {"type": "DATE", "pattern": as_date[1]}
    as_number = _typed_number(text, locale)
    if as_number is not None:
        number, shown = as_number
        return {"numberValue": int(number) if number.is_integer() else number}, shown
    return {"stringValue": typed}, None


def user_entered(value: Scalar, current: Cell, locale: Locale) -> Cell:
    """The cell `current` becomes when `value` is entered USER_ENTERED: "=..." a formula, a
    leading apostrophe text (without it), TRUE/FALSE a boolean, a date its serial number with a
    date format, a number (separators, %, currency) a number; anything else text. A cell whose
    format is plain text keeps what is typed as text. The cell's other formats stay; "" clears
    its value."""
    result = {
        key: copy.deepcopy(item) for key, item in current.items() if key == "userEnteredFormat"
    }
    if value is None or value == "":
        return result
    shown: Json | None = None
    if not isinstance(value, str) or number_format(current).get("type") == "TEXT":
        result.update(cell(value))
    else:
        result["userEnteredValue"], shown = _read_typed(value, locale)
    if shown is not None:
        result.setdefault("userEnteredFormat", {})["numberFormat"] = shown
    return result


# ---------------------------------------------------------------------------------------------
# A1 notation and grid ranges.
# ---------------------------------------------------------------------------------------------

_CELL = re.compile(r"^\$?([A-Za-z]*)\$?(\d*)$")


@dataclass(frozen=True)
class Span:
    """A rectangle, 0-based, end exclusive; None end = to the grid's edge."""

    sheet: Sheet
    row_start: int = 0
    row_end: int | None = None
    col_start: int = 0
    col_end: int | None = None

    def rows(self) -> range:
        end = len(self.sheet.rows) if self.row_end is None else self.row_end
        return range(self.row_start, min(end, len(self.sheet.rows)))

    def columns(self) -> range:
        end = self.sheet.column_count if self.col_end is None else self.col_end
        return range(self.col_start, min(end, self.sheet.column_count))


def column_index(letters: str) -> int:
    number = 0
    for letter in letters.upper():
        number = number * 26 + (ord(letter) - ord("A") + 1)
    return number - 1


def column_letters(index: int) -> str:
    letters, number = "", index + 1
    while number:
        number, remainder = divmod(number - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


def quoted_title(title: str) -> str:
    return title if re.fullmatch(r"[A-Za-z0-9_]+", title) else "'" + title.replace("'", "''") + "'"


def parse_a1(book: Spreadsheet, text: str) -> Span:
    """'Invoice Tracker'!A2:C, Sheet1!A:A, Summary!A1:D1, Overhead, or a bare A1:B2 (first tab)."""
    title, _, cells = text.rpartition("!")
    if not title and not _CELL.match(cells.split(":")[0]):
        title, cells = cells, ""  # a tab's name alone
    if title.startswith("'") and title.endswith("'"):
        title = title[1:-1].replace("''", "'")
    sheet = book.sheet_titled(title) if title else book.sheets[0]
    if not cells:
        return Span(sheet)
    first, _, last = cells.partition(":")
    start, end = _CELL.match(first), _CELL.match(last or first)
    if start is None or end is None:
        raise _invalid(f"Unable to parse range: {text}")
    c0 = column_index(start.group(1)) if start.group(1) else 0
    r0 = int(start.group(2)) - 1 if start.group(2) else 0
    c1 = column_index(end.group(1)) + 1 if end.group(1) else None
    r1 = int(end.group(2)) if end.group(2) else None
    return Span(sheet, r0, r1, c0, c1)


def span_of(book: Spreadsheet, grid_range: Mapping[str, Any]) -> Span:
    sheet = book.sheet(int(grid_range.get("sheetId", 0)))
    return Span(
        sheet,
        int(grid_range.get("startRowIndex", 0)),
        grid_range.get("endRowIndex"),
        int(grid_range.get("startColumnIndex", 0)),
        grid_range.get("endColumnIndex"),
    )


def a1_of(span: Span, rows: int, columns: int) -> str:
    if rows == 0 or columns == 0:
        return (
            f"{quoted_title(span.sheet.title)}!{column_letters(span.col_start)}{span.row_start + 1}"
        )
    first = f"{column_letters(span.col_start)}{span.row_start + 1}"
    last = f"{column_letters(span.col_start + columns - 1)}{span.row_start + rows}"
    return f"{quoted_title(span.sheet.title)}!{first}:{last}"


# ---------------------------------------------------------------------------------------------
# Field masks ("userEnteredFormat.numberFormat", "sheets(properties,data)").
# ---------------------------------------------------------------------------------------------


def _copy_path(target: Json, source: Mapping[str, Any], path: Sequence[str]) -> Json:
    """`target` with `path` set from `source` (removed when absent there); copies, never mutates."""
    result = dict(target)
    head, rest = path[0], path[1:]
    if not rest:
        if head in source:
            result[head] = copy.deepcopy(source[head])
        else:
            result.pop(head, None)
        return result
    inner_source = source.get(head)
    inner_target = target.get(head)
    result[head] = _copy_path(
        inner_target if isinstance(inner_target, dict) else {},
        inner_source if isinstance(inner_source, Mapping) else {},
        rest,
    )
    return result


def masked(target: Json, source: Mapping[str, Any], fields: str) -> Json:
    if not fields:
        raise _invalid("At least one field must be specified in 'fields'.")
    if fields.strip() == "*":
        return copy.deepcopy(dict(source))
    for path in fields.split(","):
        target = _copy_path(target, source, path.strip().split("."))
    return target


# ---------------------------------------------------------------------------------------------
# Faults and quotas.
# ---------------------------------------------------------------------------------------------


@dataclass
class Quota:
    """Requests per user per window, the window refilled whole when it turns (as Google says)."""

    per_window: int = QUOTA_PER_MINUTE
    window_s: float = 60.0
    _used: Counter[tuple[str, Kind, int]] = field(default_factory=Counter)

    def admit(self, user: str, kind: Kind, now: float) -> bool:
        window = int(now // self.window_s)
        key = (user, kind, window)
        if self._used[key] >= self.per_window:
            return False
        self._used[key] += 1
        return True


_QUOTA_NAMES = {"read": "Read requests", "write": "Write requests"}


def _quota_error(kind: Kind) -> ApiError:
    name = _QUOTA_NAMES[kind]
    return ApiError(
        429,
        "RESOURCE_EXHAUSTED",
        f"Quota exceeded for quota metric '{name}' and limit '{name} per minute per user' "
        "of service 'sheets.googleapis.com' for consumer 'project_number:0'.",
    )


# ---------------------------------------------------------------------------------------------
# The service.
# ---------------------------------------------------------------------------------------------

_ROUTES: tuple[tuple[str, re.Pattern[str], str, Kind], ...] = (
    ("POST", re.compile(r"^/v4/spreadsheets$"), "create", "write"),
    ("GET", re.compile(r"^/v4/spreadsheets/([^/:]+)$"), "get", "read"),
    ("POST", re.compile(r"^/v4/spreadsheets/([^/:]+):batchUpdate$"), "batchUpdate", "write"),
    (
        "POST",
        re.compile(r"^/v4/spreadsheets/([^/:]+)/developerMetadata:search$"),
        "searchMetadata",
        "read",
    ),
    (
        "GET",
        re.compile(r"^/v4/spreadsheets/([^/:]+)/developerMetadata/(\d+)$"),
        "getMetadata",
        "read",
    ),
    ("GET", re.compile(r"^/v4/spreadsheets/([^/:]+)/values:batchGet$"), "batchGet", "read"),
    ("GET", re.compile(r"^/v4/spreadsheets/([^/:]+)/values/([^:]+)$"), "getValues", "read"),
    ("PUT", re.compile(r"^/v4/spreadsheets/([^/:]+)/values/([^:]+)$"), "updateValues", "write"),
)


class SheetsStandIn(LoopbackServer):
    """Google Sheets on 127.0.0.1 (`url` is the client's `api_endpoint`); `calls` counts what
    clients asked, by kind and by method."""

    name = "sheets-stand-in"

    def __init__(
        self,
        *,
        quota_per_minute: int = QUOTA_PER_MINUTE,
        quota_window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        faults: Faults | None = None,
    ) -> None:
        super().__init__()
        self.reads = Quota(quota_per_minute, quota_window_s)
        self.writes = Quota(quota_per_minute, quota_window_s)
        self.faults = faults or Faults()
        self.calls: Counter[str] = Counter()
        self._clock = clock
        self._books: dict[str, Spreadsheet] = {}
        self._lock = threading.RLock()
        self._ids = itertools.count(1)

    # -- what a test or the demo sets up and looks at ----------------------------------------
    def create_spreadsheet(
        self,
        title: str = "Invoice Tracker",
        tabs: Sequence[str] = ("Sheet1",),
        *,
        locale: str = DEFAULT_LOCALE,
        rows: int = DEFAULT_ROWS,
    ) -> str:
        """A spreadsheet of `tabs`, each `rows` by DEFAULT_COLUMNS; `locale` one of LOCALES."""
        if locale not in LOCALES:
            raise _invalid(f"The stand-in knows the locales {', '.join(LOCALES)}, not {locale}")
        with self._lock:
            spreadsheet_id = f"stand-in-{next(self._ids)}"
            sheets = [
                _empty_sheet(next(self._ids), tab, index, rows, DEFAULT_COLUMNS)
                for index, tab in enumerate(tabs)
            ]
            self._books[spreadsheet_id] = Spreadsheet(spreadsheet_id, title, sheets, locale=locale)
            return spreadsheet_id

    def values(self, spreadsheet_id: str, tab: str, render: str = "FORMULA") -> list[list[Scalar]]:
        """The tab's values as values.get renders them (FORMULA: formulas as typed, values raw;
        FORMATTED_VALUE: as a person sees them), trailing empty rows and cells trimmed."""
        with self._lock:
            book = self._book(spreadsheet_id)
            sheet = book.sheet_titled(tab)
            return _trimmed(
                [
                    [
                        _rendered(book, sheet, index, column, render)
                        for column in range(len(row.cells))
                    ]
                    for index, row in enumerate(sheet.rows)
                ]
            )

    def cell(self, spreadsheet_id: str, tab: str, row: int, column: int) -> Cell:
        """CellData at 0-based (row, column)."""
        with self._lock:
            sheet = self._book(spreadsheet_id).sheet_titled(tab)
            return copy.deepcopy(sheet.rows[row].cell(column))

    def sheet_state(self, spreadsheet_id: str, tab: str) -> Json:
        """Properties, rows' cells and conditional formats: to compare two states of a tab."""
        with self._lock:
            sheet = self._book(spreadsheet_id).sheet_titled(tab)
            return {
                "properties": sheet.described(),
                "cells": [row.cells for row in sheet.rows],
                "conditionalFormats": sheet.conditional_formats,
            }

    def highlighted_rows(self, spreadsheet_id: str, tab: str) -> list[int]:
        """1-based numbers of the rows with data a CUSTOM_FORMULA rule of the tab applies to."""
        from devstack.sheet_formulas import rule_matches

        with self._lock:
            book = self._book(spreadsheet_id)
            sheet = book.sheet_titled(tab)
            workbook = _Workbook(book, sheet)
            hits: set[int] = set()
            for rule in sheet.conditional_formats:
                condition = rule.get("booleanRule", {}).get("condition", {})
                if condition.get("type") != "CUSTOM_FORMULA":
                    continue
                formula = str(condition["values"][0]["userEnteredValue"])
                for grid_range in rule.get("ranges", []):
                    span = span_of(book, grid_range)
                    anchor = (span.row_start, span.col_start)
                    for index in span.rows():
                        if sheet.rows[index].has_data() and rule_matches(
                            formula, workbook, anchor=anchor, at=(index, span.col_start)
                        ):
                            hits.add(index + 1)
            return sorted(hits)

    # -- what a person does in the browser -----------------------------------------------------
    def person_sorts(
        self, spreadsheet_id: str, tab: str, column: int, *, descending: bool = False
    ) -> None:
        """Data > Sort range on every row below the frozen header, by a 0-based column."""
        with self._lock:
            sheet = self._book(spreadsheet_id).sheet_titled(tab)
            frozen = int(sheet.properties["gridProperties"].get("frozenRowCount", 0))
            _sort_rows(sheet, frozen, len(sheet.rows), [(column, descending)])

    def person_inserts_rows(
        self, spreadsheet_id: str, tab: str, before_row: int, rows: Sequence[Sequence[Scalar]]
    ) -> None:
        """Insert rows above the 1-based `before_row`, typed in by hand (read as USER_ENTERED)."""
        with self._lock:
            book = self._book(spreadsheet_id)
            sheet = book.sheet_titled(tab)
            new_rows = [
                Row([user_entered(value, {}, book.reads_as) for value in values]) for values in rows
            ]
            sheet.rows[before_row - 1 : before_row - 1] = new_rows

    def person_deletes_row(self, spreadsheet_id: str, tab: str, row: int) -> None:
        with self._lock:
            book = self._book(spreadsheet_id)
            _delete_rows(book, book.sheet_titled(tab), row - 1, row)

    def person_types(
        self, spreadsheet_id: str, tab: str, row: int, column: int, value: Scalar
    ) -> None:
        """Type `value` into the 1-based `row` and 0-based `column`: read as Sheets reads typed
        input in the spreadsheet's locale, as a values.update USER_ENTERED by another account."""
        with self._lock:
            book = self._book(spreadsheet_id)
            line = book.sheet_titled(tab).rows[row - 1]
            line.put(column, user_entered(value, line.cell(column), book.reads_as))

    # -- HTTP ---------------------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        url = urlsplit(raw_path)
        route = next(
            (
                (name, kind, match)
                for verb, pattern, name, kind in _ROUTES
                if verb == method and (match := pattern.match(url.path))
            ),
            None,
        )
        if route is None:
            return ApiError(404, "NOT_FOUND", f"Method not found: {method} {url.path}").reply()
        name, kind, match = route
        with self._lock:
            self.calls[f"requested:{kind}"] += 1
            quota = self.reads if kind == "read" else self.writes
            if not quota.admit(headers.get(USER_HEADER) or "anonymous", kind, self._clock()):
                self.calls["refused:429"] += 1
                return _quota_error(kind).reply()
            fault = self.faults.take()
            if fault is not None:
                self.calls[f"fault:{fault}"] += 1
                refusal = self.faults.refusal(fault, changes=kind == "write")
                if refusal is not None:
                    return refusal
            reply = self._answer(name, kind, match, parse_qs(url.query), body)
            return self.faults.delivered(fault, reply)

    def _answer(
        self, name: str, kind: Kind, match: re.Match[str], query: Json, body: bytes
    ) -> Reply:
        try:
            payload = json.loads(body) if body else {}
            args = [unquote(group) for group in match.groups()]
            answer = getattr(self, f"_{name}")(*args, query=query, body=payload)
        except ApiError as exc:
            return exc.reply()
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            return _invalid(f"Invalid request: {type(exc).__name__}: {exc}").reply()
        self.calls[kind] += 1
        self.calls[name] += 1
        return Reply.json(200, answer)

    def _book(self, spreadsheet_id: str) -> Spreadsheet:
        try:
            return self._books[spreadsheet_id]
        except KeyError:
            raise ApiError(404, "NOT_FOUND", "Requested entity was not found.") from None

    # -- the methods --------------------------------------------------------------------------
    def _create(self, *, query: Mapping[str, list[str]], body: Json) -> Json:
        properties = body.get("properties", {})
        title = properties.get("title", "Untitled spreadsheet")
        tabs = [sheet["properties"]["title"] for sheet in body.get("sheets", [])] or ["Sheet1"]
        created = self.create_spreadsheet(
            title, tabs, locale=properties.get("locale", DEFAULT_LOCALE)
        )
        return self._described(self._books[created], query)

    def _get(self, spreadsheet_id: str, *, query: Mapping[str, list[str]], body: Json) -> Json:
        return self._described(self._book(spreadsheet_id), query)

    def _described(self, book: Spreadsheet, query: Mapping[str, list[str]]) -> Json:
        with_grid = query.get("includeGridData", ["false"])[0] == "true"
        spans = [parse_a1(book, text) for text in query.get("ranges", [])]
        sheets = []
        for sheet in book.sheets:
            described: Json = {"properties": sheet.described()}
            if sheet.conditional_formats:
                described["conditionalFormats"] = copy.deepcopy(sheet.conditional_formats)
            mine = [span for span in spans if span.sheet is sheet]
            if spans and not mine:
                continue
            if with_grid:
                described["data"] = [_grid_data(span) for span in (mine or [Span(sheet)])]
            sheets.append(described)
        result: Json = {
            "spreadsheetId": book.spreadsheet_id,
            "properties": {"title": book.title, "locale": book.locale},
            "sheets": sheets,
            "spreadsheetUrl": f"{self.url}/spreadsheets/d/{book.spreadsheet_id}/edit",
        }
        if "fields" in query:
            result = selected(result, parse_fields(query["fields"][0]))
        return result

    def _getValues(
        self, spreadsheet_id: str, a1: str, *, query: Mapping[str, list[str]], body: Json
    ) -> Json:
        return _value_range(self._book(spreadsheet_id), a1, query)

    def _batchGet(self, spreadsheet_id: str, *, query: Mapping[str, list[str]], body: Json) -> Json:
        book = self._book(spreadsheet_id)
        ranges = [_value_range(book, a1, query) for a1 in query.get("ranges", [])]
        return {"spreadsheetId": spreadsheet_id, "valueRanges": ranges}

    def _updateValues(
        self, spreadsheet_id: str, a1: str, *, query: Mapping[str, list[str]], body: Json
    ) -> Json:
        """values.update: RAW stores values as given, USER_ENTERED reads them as typed input;
        a null leaves its cell alone, "" clears it (its format stays)."""
        option = query.get("valueInputOption", [""])[0]
        if option not in ("RAW", "USER_ENTERED"):
            raise _invalid(
                f"Invalid valueInputOption: {option}"
                if option
                else "'valueInputOption' is required but not specified"
            )
        book = self._book(spreadsheet_id)
        span = parse_a1(book, a1)
        rows = body.get("values", [])
        if body.get("majorDimension") == "COLUMNS":
            rows = [list(line) for line in zip(*rows, strict=False)]
        width = max((len(line) for line in rows), default=0)
        _check_grid(span, len(rows), width)
        for offset, line in enumerate(rows):
            row = span.sheet.rows[span.row_start + offset]
            for column_offset, value in enumerate(line):
                column = span.col_start + column_offset
                if value is None:
                    continue
                current = row.cell(column)
                if option == "USER_ENTERED":
                    row.put(column, user_entered(value, current, book.reads_as))
                else:
                    kept = {k: v for k, v in current.items() if k == "userEnteredFormat"}
                    row.put(column, {**kept, **cell(value)})
        return {
            "spreadsheetId": spreadsheet_id,
            "updatedRange": a1_of(span, len(rows), width),
            "updatedRows": len(rows),
            "updatedColumns": width,
            "updatedCells": sum(len(line) for line in rows),
        }

    def _getMetadata(
        self, spreadsheet_id: str, metadata_id: str, *, query: Mapping[str, list[str]], body: Json
    ) -> Json:
        for described in self._book(spreadsheet_id).located_metadata():
            if described["metadataId"] == int(metadata_id):
                return described
        raise ApiError(404, "NOT_FOUND", f"No developer metadata with ID: {metadata_id}")

    def _searchMetadata(
        self, spreadsheet_id: str, *, query: Mapping[str, list[str]], body: Json
    ) -> Json:
        book = self._book(spreadsheet_id)
        matched = []
        for data_filter in body.get("dataFilters", []):
            for described in _matching_metadata(book, data_filter):
                matched.append({"developerMetadata": described, "dataFilters": [data_filter]})
        return {"matchedDeveloperMetadata": matched} if matched else {}

    def _batchUpdate(
        self, spreadsheet_id: str, *, query: Mapping[str, list[str]], body: Json
    ) -> Json:
        book = self._book(spreadsheet_id)
        draft = book.clone()  # atomic: the batch works on a copy that replaces the book at the end
        replies = []
        for position, request in enumerate(body.get("requests", [])):
            if not isinstance(request, dict) or len(request) != 1:
                raise _invalid(f"requests[{position}]: exactly one kind of request is required")
            ((kind, arguments),) = request.items()
            apply = _BATCH_REQUESTS.get(kind)
            if apply is None:
                raise _invalid(
                    f'Invalid JSON payload received. Unknown name "{kind}" at '
                    f"'requests[{position}]': Cannot find field."
                )
            try:
                replies.append(apply(self, draft, arguments))
            except ApiError as exc:
                if exc.status != 400:
                    raise
                message = f"Invalid requests[{position}].{kind}: {exc.message}"
                raise ApiError(400, exc.code, message, reason="badRequest") from None
        self._books[spreadsheet_id] = draft
        return {"spreadsheetId": spreadsheet_id, "replies": replies}

    def next_id(self) -> int:
        return next(self._ids)


# ---------------------------------------------------------------------------------------------
# batchUpdate requests: each changes the draft and returns its reply.
# ---------------------------------------------------------------------------------------------


def _add_sheet(service: SheetsStandIn, book: Spreadsheet, arguments: Json) -> Json:
    properties = arguments.get("properties", {})
    title = properties.get("title") or f"Sheet{len(book.sheets) + 1}"
    if any(sheet.title.lower() == title.lower() for sheet in book.sheets):
        raise _invalid(
            f'A sheet with the name "{title}" already exists. Please enter another name.'
        )
    grid = properties.get("gridProperties", {})
    sheet = _empty_sheet(
        int(properties.get("sheetId") or service.next_id()),
        title,
        int(properties.get("index", len(book.sheets))),
        int(grid.get("rowCount", DEFAULT_ROWS)),
        int(grid.get("columnCount", DEFAULT_COLUMNS)),
    )
    book.sheets.insert(sheet.properties["index"], sheet)
    for index, each in enumerate(book.sheets):
        each.properties["index"] = index
    return {"addSheet": {"properties": sheet.described()}}


def _update_sheet_properties(service: SheetsStandIn, book: Spreadsheet, arguments: Json) -> Json:
    properties = arguments["properties"]
    sheet = book.sheet(int(properties.get("sheetId", 0)))
    sheet.properties = masked(sheet.properties, properties, arguments.get("fields", ""))
    return {}


def _check_grid(span: Span, rows: int, columns: int) -> None:
    if (
        span.row_start + rows > len(span.sheet.rows)
        or span.col_start + columns > span.sheet.column_count
    ):
        raise _invalid(
            f"Range ({quoted_title(span.sheet.title)}!"
            f"{column_letters(span.col_start + columns - 1)}{span.row_start + rows}) exceeds grid "
            f"limits. Max rows: {len(span.sheet.rows)}, max columns: {span.sheet.column_count}"
        )


def _write_rows(
    sheet: Sheet, first_row: int, first_column: int, rows: Sequence[Json], fields: str
) -> None:
    for offset, row_data in enumerate(rows):
        row = sheet.rows[first_row + offset]
        for column_offset, cell_data in enumerate(row_data.get("values", [])):
            column = first_column + column_offset
            row.put(column, masked(row.cell(column), cell_data, fields))


def _update_cells(service: SheetsStandIn, book: Spreadsheet, arguments: Json) -> Json:
    rows = arguments.get("rows", [])
    fields = arguments.get("fields", "")
    if "start" in arguments:
        start = arguments["start"]
        span = Span(
            book.sheet(int(start.get("sheetId", 0))),
            int(start.get("rowIndex", 0)),
            None,
            int(start.get("columnIndex", 0)),
        )
    else:
        span = span_of(book, arguments["range"])
    width = max((len(row.get("values", [])) for row in rows), default=0)
    _check_grid(span, len(rows), width)
    _write_rows(span.sheet, span.row_start, span.col_start, rows, fields)
    return {}


def _append_cells(service: SheetsStandIn, book: Spreadsheet, arguments: Json) -> Json:
    """After the last row with data, growing the grid as needed (new rows take the formats above)."""
    sheet = book.sheet(int(arguments.get("sheetId", 0)))
    rows = arguments.get("rows", [])
    last = max((index for index, row in enumerate(sheet.rows) if row.has_data()), default=-1)
    needed = last + 1 + len(rows) - len(sheet.rows)
    if needed > 0:
        _grow(sheet, len(sheet.rows), needed)
    width = max((len(row.get("values", [])) for row in rows), default=0)
    _check_grid(Span(sheet, last + 1), len(rows), width)
    _write_rows(sheet, last + 1, 0, rows, arguments.get("fields", ""))
    return {}


def _formats_of(row: Row) -> Row:
    return Row(
        [
            {"userEnteredFormat": cell["userEnteredFormat"]} if "userEnteredFormat" in cell else {}
            for cell in row.cells
        ]
    )


def _grow(sheet: Sheet, at: int, count: int, *, inherit_from_before: bool = True) -> None:
    source_index = at - 1 if inherit_from_before else at
    source = sheet.rows[source_index] if 0 <= source_index < len(sheet.rows) else Row()
    sheet.rows[at:at] = [_formats_of(source) for _ in range(count)]


def _repeat_cell(service: SheetsStandIn, book: Spreadsheet, arguments: Json) -> Json:
    span = span_of(book, arguments["range"])
    source = arguments.get("cell", {})
    fields = arguments.get("fields", "")
    for index in span.rows():
        row = span.sheet.rows[index]
        for column in span.columns():
            row.put(column, masked(row.cell(column), source, fields))
    return {}


def _dimension(book: Spreadsheet, arguments: Json) -> tuple[Sheet, str, int, int]:
    dimension_range = arguments["range"]
    sheet = book.sheet(int(dimension_range.get("sheetId", 0)))
    dimension = dimension_range["dimension"]
    if dimension not in ("ROWS", "COLUMNS"):
        raise _invalid(f"Invalid dimension: {dimension}")
    size = len(sheet.rows) if dimension == "ROWS" else sheet.column_count
    start = int(dimension_range.get("startIndex", 0))
    end = int(dimension_range.get("endIndex", size))
    if not 0 <= start < end:
        raise _invalid(f"Invalid dimension range: startIndex {start}, endIndex {end}")
    return sheet, dimension, start, end


def _insert_dimension(service: SheetsStandIn, book: Spreadsheet, arguments: Json) -> Json:
    sheet, dimension, start, end = _dimension(book, arguments)
    inherit = bool(arguments.get("inheritFromBefore", False))
    if dimension == "ROWS":
        if start > len(sheet.rows):
            raise _invalid(f"Invalid startIndex {start}: the sheet has {len(sheet.rows)} rows")
        if inherit and start == 0:
            raise _invalid("Cannot inherit from before when inserting at the start of the sheet.")
        _grow(sheet, start, end - start, inherit_from_before=inherit)
    else:
        for row in sheet.rows:
            if len(row.cells) > start:
                row.cells[start:start] = [{} for _ in range(end - start)]
        sheet.properties["gridProperties"]["columnCount"] += end - start
    return {}


def _append_dimension(service: SheetsStandIn, book: Spreadsheet, arguments: Json) -> Json:
    sheet = book.sheet(int(arguments.get("sheetId", 0)))
    length = int(arguments["length"])
    if arguments["dimension"] == "ROWS":
        _grow(sheet, len(sheet.rows), length)
    else:
        sheet.properties["gridProperties"]["columnCount"] += length
    return {}


def _delete_rows(book: Spreadsheet, sheet: Sheet, start: int, end: int) -> None:
    for row in sheet.rows[start:end]:
        for metadata_id in row.metadata:
            book.metadata.pop(metadata_id, None)  # deleted with its row, as in Sheets
    del sheet.rows[start:end]


def _delete_dimension(service: SheetsStandIn, book: Spreadsheet, arguments: Json) -> Json:
    sheet, dimension, start, end = _dimension(book, arguments)
    if dimension == "ROWS":
        if end > len(sheet.rows):
            raise _invalid(f"Invalid endIndex {end}: the sheet has {len(sheet.rows)} rows")
        frozen = int(sheet.properties["gridProperties"].get("frozenRowCount", 0))
        left = len(sheet.rows) - (end - start)
        if frozen and left <= frozen:
            raise _invalid("Sorry, it is not possible to delete all non-frozen rows.")
        if left == 0:
            raise _invalid("You can't delete all the rows on the sheet.")
        _delete_rows(book, sheet, start, end)
    else:
        for row in sheet.rows:
            del row.cells[start:end]
        sheet.properties["gridProperties"]["columnCount"] -= end - start
    return {}


def _sort_key(value: Scalar, descending: bool) -> tuple[int, Any]:
    """Sheets' order: numbers, then text (case-insensitive), then booleans; empty always last."""
    if value is None or value == "":
        return (1, 0)
    key: Any
    if isinstance(value, bool):
        rank, key = 2, int(value)
    elif isinstance(value, int | float):
        rank, key = 0, value
    else:
        rank, key = 1, value.lower()
    return (0, (-rank, _Reversed(key)) if descending else (rank, key))


@dataclass(frozen=True)
class _Reversed:
    key: Any

    def __lt__(self, other: _Reversed) -> bool:
        return bool(other.key < self.key)


def _sort_rows(sheet: Sheet, start: int, end: int, specs: Sequence[tuple[int, bool]]) -> None:
    block = sheet.rows[start:end]
    for column, descending in reversed(specs):
        block.sort(key=lambda row: _sort_key(entered(row.cell(column)), descending))
    sheet.rows[start:end] = block


def _sort_range(service: SheetsStandIn, book: Spreadsheet, arguments: Json) -> Json:
    span = span_of(book, arguments["range"])
    specs = [
        (int(spec.get("dimensionIndex", 0)), spec.get("sortOrder") == "DESCENDING")
        for spec in arguments.get("sortSpecs", [])
    ]
    _sort_rows(span.sheet, span.row_start, span.rows().stop, specs)
    return {}


def _create_metadata(service: SheetsStandIn, book: Spreadsheet, arguments: Json) -> Json:
    metadata = arguments["developerMetadata"]
    if not metadata.get("metadataKey"):
        raise _invalid("Developer metadata must always have a key specified.")
    metadata_id = int(metadata.get("metadataId") or service.next_id())
    if metadata_id in book.metadata:
        raise _invalid(f"Developer metadata with ID {metadata_id} already exists.")
    entry: Json = {
        "metadataKey": metadata["metadataKey"],
        "visibility": metadata.get("visibility", "DOCUMENT"),
    }
    if "metadataValue" in metadata:
        entry["metadataValue"] = metadata["metadataValue"]
    location = metadata.get("location", {})
    if "dimensionRange" in location:
        span = location["dimensionRange"]
        if span.get("dimension") != "ROWS" or int(span["endIndex"]) - int(span["startIndex"]) != 1:
            raise _invalid("The specified DimensionRange must represent a single row.")
        sheet = book.sheet(int(span.get("sheetId", 0)))
        sheet.rows[int(span["startIndex"])].metadata.append(metadata_id)
    elif "sheetId" in location:
        entry["sheetId"] = book.sheet(int(location["sheetId"])).sheet_id
    elif not location.get("spreadsheet"):
        raise _invalid("Developer metadata must have a location.")
    book.metadata[metadata_id] = entry
    described = next(m for m in book.located_metadata() if m["metadataId"] == metadata_id)
    return {"createDeveloperMetadata": {"developerMetadata": described}}


def _matching_metadata(book: Spreadsheet, data_filter: Json) -> list[Json]:
    lookup = data_filter.get("developerMetadataLookup")
    if lookup is None:
        raise _invalid("The stand-in searches developer metadata by developerMetadataLookup only.")
    found = []
    for described in book.located_metadata():
        if "metadataId" in lookup and described["metadataId"] != int(lookup["metadataId"]):
            continue
        if "metadataKey" in lookup and described["metadataKey"] != lookup["metadataKey"]:
            continue
        if "metadataValue" in lookup and described.get("metadataValue") != lookup["metadataValue"]:
            continue
        if "visibility" in lookup and described["visibility"] != lookup["visibility"]:
            continue
        if (
            "locationType" in lookup
            and described["location"]["locationType"] != lookup["locationType"]
        ):
            continue
        found.append(described)
    return found


def _update_metadata(service: SheetsStandIn, book: Spreadsheet, arguments: Json) -> Json:
    fields = arguments.get("fields", "")
    changed = []
    for data_filter in arguments.get("dataFilters", []):
        for described in _matching_metadata(book, data_filter):
            entry = book.metadata[described["metadataId"]]
            for path in fields.split(","):
                name = path.strip()
                if name not in ("metadataKey", "metadataValue", "visibility"):
                    raise _invalid(
                        f"The stand-in updates metadataKey/Value/visibility, not {name!r}"
                    )
                if name in arguments["developerMetadata"]:
                    entry[name] = arguments["developerMetadata"][name]
            changed.append(described["metadataId"])
    located = [m for m in book.located_metadata() if m["metadataId"] in changed]
    return {"updateDeveloperMetadata": {"developerMetadata": located}}


def _delete_metadata(service: SheetsStandIn, book: Spreadsheet, arguments: Json) -> Json:
    deleted = _matching_metadata(book, arguments["dataFilter"])
    for described in deleted:
        book.metadata.pop(described["metadataId"], None)
        for sheet in book.sheets:
            for row in sheet.rows:
                if described["metadataId"] in row.metadata:
                    row.metadata.remove(described["metadataId"])
    return {"deleteDeveloperMetadata": {"deletedDeveloperMetadata": deleted}}


def _add_conditional_format(service: SheetsStandIn, book: Spreadsheet, arguments: Json) -> Json:
    rule = arguments["rule"]
    ranges = rule.get("ranges") or []
    if not ranges:
        raise _invalid("A conditional format rule needs at least one range.")
    sheet = book.sheet(int(ranges[0].get("sheetId", 0)))
    index = int(arguments.get("index", 0))
    sheet.conditional_formats.insert(index, copy.deepcopy(rule))
    return {}


def _delete_conditional_format(service: SheetsStandIn, book: Spreadsheet, arguments: Json) -> Json:
    sheet = book.sheet(int(arguments.get("sheetId", 0)))
    index = int(arguments["index"])
    if not 0 <= index < len(sheet.conditional_formats):
        raise _invalid(f"No conditional format on sheet {sheet.sheet_id} at index {index}")
    return {"deleteConditionalFormatRule": {"rule": sheet.conditional_formats.pop(index)}}


_BATCH_REQUESTS: Mapping[str, Callable[[SheetsStandIn, Spreadsheet, Json], Json]] = {
    "addSheet": _add_sheet,
    "updateSheetProperties": _update_sheet_properties,
    "updateCells": _update_cells,
    "appendCells": _append_cells,
    "repeatCell": _repeat_cell,
    "insertDimension": _insert_dimension,
    "appendDimension": _append_dimension,
    "deleteDimension": _delete_dimension,
    "sortRange": _sort_range,
    "createDeveloperMetadata": _create_metadata,
    "updateDeveloperMetadata": _update_metadata,
    "deleteDeveloperMetadata": _delete_metadata,
    "addConditionalFormatRule": _add_conditional_format,
    "deleteConditionalFormatRule": _delete_conditional_format,
}


# ---------------------------------------------------------------------------------------------
# Reading values.
# ---------------------------------------------------------------------------------------------


class _Workbook:
    """The formula evaluator's view of a spreadsheet (devstack.sheet_formulas.Workbook)."""

    def __init__(self, book: Spreadsheet, home: Sheet) -> None:
        self._book, self._home = book, home

    def _sheet(self, title: str | None) -> Sheet:
        return self._home if title is None else self._book.sheet_titled(title)

    def value(self, sheet: str | None, row: int, col: int) -> Scalar:
        grid = self._sheet(sheet)
        if row >= len(grid.rows):
            return None
        cell = grid.rows[row].cell(col)
        return None if is_formula(cell) else entered(cell)

    def size(self, sheet: str | None) -> tuple[int, int]:
        grid = self._sheet(sheet)
        return len(grid.rows), grid.column_count


def _rendered(
    book: Spreadsheet,
    sheet: Sheet,
    index: int,
    column: int,
    option: str,
    *,
    dates: str = "SERIAL_NUMBER",
) -> Scalar:
    """A cell as values.get renders it: `option` a ValueRenderOption, `dates` the
    DateTimeRenderOption (ignored under FORMATTED_VALUE, where dates read as shown)."""
    cell = sheet.rows[index].cell(column)
    value = entered(cell)
    if is_formula(cell):
        if option == "FORMULA":
            return value
        try:
            from devstack.sheet_formulas import FormulaError, evaluate

            result = evaluate(
                str(value), _Workbook(book, sheet), anchor=(index, column), at=(index, column)
            )
        except (ImportError, FormulaError):
            return "#N/A"
        value = result if isinstance(result, str | int | float | bool) or result is None else "#N/A"
    if option == "FORMATTED_VALUE" or (
        dates == "FORMATTED_STRING" and number_format(cell).get("type") == "DATE"
    ):
        return formatted(value, cell, book.reads_as)
    return value


def _trimmed(rows: list[list[Scalar]]) -> list[list[Scalar]]:
    out: list[list[Scalar]] = []
    for row in rows:
        while row and row[-1] in (None, ""):
            row.pop()
        out.append(["" if value is None else value for value in row])
    while out and not out[-1]:
        out.pop()
    return out


def _value_range(book: Spreadsheet, a1: str, query: Mapping[str, list[str]]) -> Json:
    span = parse_a1(book, a1)
    option = query.get("valueRenderOption", ["FORMATTED_VALUE"])[0]
    dates = query.get("dateTimeRenderOption", ["SERIAL_NUMBER"])[0]
    by_columns = query.get("majorDimension", ["ROWS"])[0] == "COLUMNS"
    grid = [
        [
            _rendered(book, span.sheet, index, column, option, dates=dates)
            for column in span.columns()
        ]
        for index in span.rows()
    ]
    height = len(_trimmed([list(row) for row in grid]))
    width = max((len(row) for row in _trimmed([list(row) for row in grid])), default=0)
    if by_columns:
        grid = [list(column) for column in zip(*grid, strict=False)] if grid else []
    values = _trimmed(grid)
    result: Json = {
        "range": a1_of(span, height, width),
        "majorDimension": "COLUMNS" if by_columns else "ROWS",
    }
    if values:
        result["values"] = values
    return result


def _grid_data(span: Span) -> Json:
    rows = [
        {
            "values": [
                copy.deepcopy(span.sheet.rows[index].cell(column)) for column in span.columns()
            ]
        }
        for index in span.rows()
    ]
    while rows and not any(rows[-1]["values"]):
        rows.pop()
    for row in rows:
        while row["values"] and not row["values"][-1]:
            row["values"].pop()
    data: Json = {"startRow": span.row_start, "startColumn": span.col_start}
    if rows:
        data["rowData"] = rows
    return data
