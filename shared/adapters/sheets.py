"""Google Sheets (v4, through google-api-python-client): the Invoice Tracker's rows.

Each invoice row carries row developer metadata (key `erp_invoice`, value `{"invoice", "modified"}`),
which moves with the row when people sort, filter or insert rows. So finding every row is one
read (a metadata search), and a whole batch is one write (one `spreadsheets.batchUpdate`).
Cells are written as `userEnteredValue.stringValue`/`numberValue`: never parsed, the RAW way, so
an ERPNext value starting with `=` stays text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import httplib2
from googleapiclient.errors import HttpError

from shared.core.invoice_rows import HEADER_ROW, CellValue, RowPlan, SheetIndex
from shared.errors import ConfigurationError, UpstreamRejected, UpstreamUnavailable

SERVICE = "sheets"
METADATA_KEY = "erp_invoice"
DEFAULT_TIMEOUT_S = 30.0

Request = dict[str, object]


def sheets_service(*, endpoint: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> Any:
    """A Sheets client: Google's own with default credentials, or a local stand-in at `endpoint`.

    The discovery document ships with the library (no network call to build the client).
    """
    from google_auth_httplib2 import AuthorizedHttp
    from googleapiclient.discovery import build

    if endpoint:
        from google.auth.credentials import AnonymousCredentials

        credentials: Any = AnonymousCredentials()  # type: ignore[no-untyped-call]
    else:
        import google.auth

        credentials, _ = google.auth.default(
            scopes=["https://www.googleapis.com/auth/spreadsheets"]
        )
    http = AuthorizedHttp(credentials, http=httplib2.Http(timeout=timeout_s))
    options = {"api_endpoint": endpoint} if endpoint else None
    return build(
        "sheets",
        "v4",
        http=http,
        static_discovery=True,
        client_options=options,
        cache_discovery=False,
    )


@contextmanager
def translated(operation: str) -> Iterator[None]:
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


class GoogleInvoiceSheet:
    """The InvoiceSheet port on one tab of one spreadsheet.

    `apply` places new rows right below the last tracked row, so it uses the row positions of
    the `read_index` call of the same batch: call them in that order, as InvoiceSheetSync does.
    """

    def __init__(self, service: Callable[[], Any], spreadsheet_id: str, sheet_title: str) -> None:
        self._service = service
        self._spreadsheet_id = spreadsheet_id
        self._sheet_title = sheet_title
        self._sheet_id: int | None = None
        self._metadata_ids: dict[str, int] = {}
        self._last_tracked_row = HEADER_ROW

    def sheet_id(self) -> int:
        """The tab's numeric id, looked up once per instance."""
        if self._sheet_id is None:
            with translated("get spreadsheet"):
                spreadsheet = (
                    self._service()
                    .spreadsheets()
                    .get(spreadsheetId=self._spreadsheet_id, fields="sheets.properties")
                    .execute()
                )
            for sheet in spreadsheet.get("sheets", []):
                properties = sheet.get("properties", {})
                if properties.get("title") == self._sheet_title:
                    self._sheet_id = int(properties["sheetId"])
                    break
            else:
                raise ConfigurationError(
                    f"spreadsheet has no tab named {self._sheet_title!r}; run the sheet setup"
                )
        return self._sheet_id

    def read_index(self) -> SheetIndex:
        sheet_id = self.sheet_id()
        body = {
            "dataFilters": [
                {"developerMetadataLookup": {"metadataKey": METADATA_KEY, "locationType": "ROW"}}
            ]
        }
        with translated("search row metadata"):
            found = (
                self._service()
                .spreadsheets()
                .developerMetadata()
                .search(spreadsheetId=self._spreadsheet_id, body=body)
                .execute()
            )
        index: dict[str, tuple[int, str | None]] = {}
        self._metadata_ids = {}
        self._last_tracked_row = HEADER_ROW
        for match in found.get("matchedDeveloperMetadata", []):
            metadata = match.get("developerMetadata", {})
            span = metadata.get("location", {}).get("dimensionRange", {})
            if span.get("sheetId", 0) != sheet_id:
                continue
            invoice, modified = _parse_value(metadata.get("metadataValue"))
            if invoice is None or invoice in index:
                continue  # a pasted copy of a row: the first one stays the invoice's row
            row_number = int(span.get("startIndex", 0)) + 1
            index[invoice] = (row_number, modified)
            self._metadata_ids[invoice] = int(metadata["metadataId"])
            self._last_tracked_row = max(self._last_tracked_row, row_number)
        return index

    def apply(self, plan: RowPlan) -> None:
        """One batchUpdate: updates in place, new rows below the last tracked row, deletes last."""
        sheet_id = self.sheet_id()
        requests: list[Request] = []
        for write in plan.updates:
            assert write.row_number is not None
            requests.append(_update_cells(sheet_id, write.row_number - 1, [write.cells]))
            requests.append(
                {
                    "updateDeveloperMetadata": {
                        "dataFilters": [
                            {
                                "developerMetadataLookup": {
                                    "metadataId": self._metadata_ids[write.name]
                                }
                            }
                        ],
                        "developerMetadata": {"metadataValue": _value(write.name, write.modified)},
                        "fields": "metadataValue",
                    }
                }
            )
        if plan.appends:
            first = self._last_tracked_row  # 0-based index of the row below the last tracked one
            count = len(plan.appends)
            span = {
                "sheetId": sheet_id,
                "dimension": "ROWS",
                "startIndex": first,
                "endIndex": first + count,
            }
            requests.append(
                {"insertDimension": {"range": span, "inheritFromBefore": first > HEADER_ROW}}
            )
            requests.append(_update_cells(sheet_id, first, [write.cells for write in plan.appends]))
            for offset, write in enumerate(plan.appends):
                requests.append(
                    {
                        "createDeveloperMetadata": {
                            "developerMetadata": {
                                "metadataKey": METADATA_KEY,
                                "metadataValue": _value(write.name, write.modified),
                                "visibility": "DOCUMENT",
                                "location": {
                                    "dimensionRange": {
                                        "sheetId": sheet_id,
                                        "dimension": "ROWS",
                                        "startIndex": first + offset,
                                        "endIndex": first + offset + 1,
                                    }
                                },
                            }
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
        if not requests:
            return
        with translated("write rows"):
            (
                self._service()
                .spreadsheets()
                .batchUpdate(spreadsheetId=self._spreadsheet_id, body={"requests": requests})
                .execute()
            )


def _update_cells(sheet_id: int, row_index: int, rows: list[tuple[CellValue, ...]]) -> Request:
    return {
        "updateCells": {
            "start": {"sheetId": sheet_id, "rowIndex": row_index, "columnIndex": 0},
            "rows": [{"values": [cell(value) for value in row]} for row in rows],
            "fields": "userEnteredValue",
        }
    }


def _value(invoice: str, modified: str | None) -> str:
    return json.dumps({"invoice": invoice, "modified": modified}, separators=(",", ":"))


def _parse_value(raw: object) -> tuple[str | None, str | None]:
    try:
        value = json.loads(str(raw))
    except json.JSONDecodeError:
        return None, None
    if not isinstance(value, dict) or not isinstance(value.get("invoice"), str):
        return None, None
    modified = value.get("modified")
    return cast(str, value["invoice"]), modified if isinstance(modified, str) else None
