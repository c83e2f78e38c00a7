"""Invoice Tracker rows as pure decisions: an invoice's facts, its rendered cells, and the upsert plan.

The sheets_sync consumer looks things up (user and project-manager names, the sheet's row index)
and writes; everything it decides about what to write is here, with no clock, SDK or environment.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal, TypeAlias

from shared.core.documents import desk_url, field_text
from shared.core.envelope import Envelope, Json
from shared.core.versions import parse_modified
from shared.errors import InvalidPayload, MappingError

CellValue: TypeAlias = str | float | int | bool | None
InvoiceDoctype: TypeAlias = Literal["Sales Invoice", "Purchase Invoice"]
DeletedPolicy: TypeAlias = Literal["remove", "mark"]

SALES_INVOICE: InvoiceDoctype = "Sales Invoice"
PURCHASE_INVOICE: InvoiceDoctype = "Purchase Invoice"
HEADER_ROW = 1
FIRST_DATA_ROW = HEADER_ROW + 1
TRASH_EVENT = "on_trash"
CANCELLED_DOCSTATUS = 2
SERIAL_EPOCH = date(1899, 12, 30)
"""Day 0 of Sheets' date serial numbers: a date cell reads as the days since (a double)."""

_TYPE_LABELS: Mapping[InvoiceDoctype, str] = {
    SALES_INVOICE: "client",
    PURCHASE_INVOICE: "subcontractor",
}
_COUNTERPARTY_FIELD: Mapping[InvoiceDoctype, str] = {
    SALES_INVOICE: "customer",
    PURCHASE_INVOICE: "supplier",
}


@dataclass(frozen=True, slots=True)
class IndexedRow:
    """Where an invoice's row is now (1-based; people sort and insert), and what it holds."""

    row_number: int
    modified: str | None
    paid_date: date | None = None


SheetIndex: TypeAlias = Mapping[str, IndexedRow]
"""What the sheet holds now, by invoice name."""
REQUIRED_COLUMNS = ("invoice", "status", "last_modified")
"""The row's key, how removals show, and the version newest-wins compares."""


@dataclass(frozen=True, slots=True)
class Column:
    """One Invoice Tracker column: its configuration key, its header text and how its cells read."""

    key: str
    header: str
    kind: Literal["text", "number", "date", "link"]


COLUMNS: tuple[Column, ...] = (
    Column("invoice", "Invoice", "text"),
    Column("type", "Type", "text"),
    Column("project", "Project", "text"),
    Column("counterparty", "Customer / Supplier", "text"),
    Column("month", "Month", "text"),
    Column("amount", "Amount", "number"),
    Column("currency", "Currency", "text"),
    Column("entered_by", "Entered by", "text"),
    Column("project_manager", "Project manager", "text"),
    Column("status", "Status", "text"),
    Column("paid_date", "Paid date", "date"),
    Column("outstanding", "Outstanding", "number"),
    Column("erpnext_link", "ERPNext link", "link"),
    Column("last_modified", "Last modified", "text"),
)
COLUMNS_BY_KEY: Mapping[str, Column] = {column.key: column for column in COLUMNS}
DEFAULT_COLUMNS: tuple[str, ...] = tuple(column.key for column in COLUMNS)


def _column_key(text: str) -> str:
    return "_".join(text.strip().lower().replace("-", " ").split())


def _check_columns(keys: tuple[str, ...]) -> None:
    unknown = [key for key in keys if key not in COLUMNS_BY_KEY]
    if unknown:
        raise ValueError(
            f"unknown Invoice Tracker column(s): {', '.join(unknown)}; "
            f"known columns: {', '.join(DEFAULT_COLUMNS)}"
        )
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ValueError(f"Invoice Tracker column(s) listed twice: {', '.join(repeated)}")
    if not keys:
        raise ValueError("the Invoice Tracker needs at least one column")


def parse_columns(text: str) -> tuple[str, ...]:
    """Column keys from a comma-separated setting; "Entered by" and "entered-by" mean entered_by.

    Raises ValueError naming every unknown column (the settings loader reports it at start).
    """
    keys = tuple(_column_key(part) for part in text.split(",") if part.strip())
    _check_columns(keys)
    return keys


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    """How the Invoice Tracker looks: which columns in which order, and how removals show.

    The REQUIRED_COLUMNS must be among them: the invoice is the row's key, the last-modified
    text is the version newest-wins compares, and cancelled (and, under "mark", deleted)
    invoices are told apart only by their status cell.
    """

    site_url: str
    columns: tuple[str, ...] = DEFAULT_COLUMNS
    deleted_policy: DeletedPolicy = "remove"
    cancelled_label: str = "Cancelled"
    deleted_label: str = "Deleted"
    overhead_projects: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        _check_columns(self.columns)
        missing = [key for key in REQUIRED_COLUMNS if key not in self.columns]
        if missing:
            raise ValueError(f"the Invoice Tracker columns must include {', '.join(missing)}")
        if self.deleted_policy not in ("remove", "mark"):
            raise ValueError(f"deleted_policy must be remove or mark, not {self.deleted_policy!r}")

    def index_of(self, key: str) -> int:
        """0-based position of a configured column; ValueError when it is not configured."""
        try:
            return self.columns.index(key)
        except ValueError:
            raise ValueError(f"column {key!r} is not in the configured columns") from None


def header_row(config: TrackerConfig) -> tuple[str, ...]:
    return tuple(COLUMNS_BY_KEY[key].header for key in config.columns)


@dataclass(frozen=True, slots=True)
class InvoiceFacts:
    """Everything one Invoice Tracker row shows, already typed; no ERPNext dict beyond this point."""

    name: str
    doctype: InvoiceDoctype
    project: str | None
    counterparty: str | None
    posting_date: date | None
    amount: float | None
    currency: str | None
    entered_by: str | None
    project_manager: str | None
    status: str | None
    docstatus: int | None
    paid_date: date | None
    outstanding: float | None
    modified: str | None
    deleted: bool = False

    @property
    def cancelled(self) -> bool:
        return self.docstatus == CANCELLED_DOCSTATUS or self.status == "Cancelled"


def _number_field(doc: Mapping[str, Json], key: str, name: str) -> float | None:
    value = doc.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, (bool, dict, list)):
        raise MappingError(f"{key} is not a number", name=name)
    try:
        number = float(value)
    except ValueError:
        raise MappingError(f"{key} {str(value)[:40]!r} is not a number", name=name) from None
    if not math.isfinite(number):
        raise MappingError(f"{key} is not a finite number", name=name)
    return number


def _date_field(doc: Mapping[str, Json], key: str, name: str) -> date | None:
    text = field_text(doc, key)
    if text is None:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise MappingError(f"{key} {text[:40]!r} is not a date", name=name) from None


def _docstatus(doc: Mapping[str, Json]) -> int | None:
    value = doc.get("docstatus")
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    try:
        return int(value)
    except ValueError:
        return None


def invoice_doctype(doctype: str) -> InvoiceDoctype:
    """The doctype as one of the two the tracker shows; anything else is a MappingError."""
    if doctype == SALES_INVOICE:
        return SALES_INVOICE
    if doctype == PURCHASE_INVOICE:
        return PURCHASE_INVOICE
    raise MappingError(f"{doctype!r} has no Invoice Tracker row", doctype=doctype)


def invoice_facts(
    doc: Mapping[str, Json],
    *,
    doctype: str,
    user_full_name: str | None,
    project_manager: str | None,
    paid_date: date | None,
    deleted: bool = False,
) -> InvoiceFacts:
    """Read one Sales or Purchase Invoice as ERPNext sent it.

    Amounts become floats: Sheets stores every number as a double and the API takes JSON numbers,
    so a Decimal would only be converted back at the adapter; ERPNext itself sends floats.
    `user_full_name` falls back to the `owner` user id when the name is unknown (a deleted user),
    so the cell never hides who entered the invoice. Missing project or manager stay None (empty).
    """
    kind = invoice_doctype(doctype)
    name = field_text(doc, "name")
    if name is None:
        raise MappingError("invoice has no name", doctype=doctype)
    return InvoiceFacts(
        name=name,
        doctype=kind,
        project=field_text(doc, "project"),
        counterparty=field_text(doc, _COUNTERPARTY_FIELD[kind]),
        posting_date=_date_field(doc, "posting_date", name),
        amount=_number_field(doc, "grand_total", name),
        currency=field_text(doc, "currency"),
        entered_by=(user_full_name or "").strip() or field_text(doc, "owner"),
        project_manager=(project_manager or "").strip() or None,
        status=field_text(doc, "status"),
        docstatus=_docstatus(doc),
        paid_date=paid_date,
        outstanding=_number_field(doc, "outstanding_amount", name),
        modified=field_text(doc, "modified"),
        deleted=deleted,
    )


def paid_date_for(
    previous_row_paid_date: date | None, doc: Mapping[str, Json], modified: str | None
) -> date | None:
    """The date an invoice became Paid, as far as the bridge can know it.

    ERPNext keeps no paid date on the invoice (it lives on the Payment Entry), so the first time
    the bridge sees status Paid it records the date part of `modified` (site time) and keeps that
    date on later updates (`previous_row_paid_date`, read back from the row). Any other status
    clears it: a cancelled payment makes the invoice Unpaid again, and a later payment is a new
    date. When Paid arrives late (reconciliation after other edits) the date is an upper bound.
    """
    if field_text(doc, "status") != "Paid":
        return None
    if previous_row_paid_date is not None:
        return previous_row_paid_date
    if modified is None:
        return None
    try:
        return parse_modified(modified).date()
    except InvalidPayload:
        return None


def date_of_serial(serial: float) -> date | None:
    """The date of a Sheets date serial number (its whole part; the fraction is the time of day)."""
    if not math.isfinite(serial):
        return None
    try:
        return SERIAL_EPOCH + timedelta(days=math.floor(serial))
    except OverflowError:
        return None


def paid_date_from_cell(cell: CellValue) -> date | None:
    """The paid date a row holds, as the adapter reads it (UNFORMATTED_VALUE, SERIAL_NUMBER).

    ISO text is what `render_row` writes; a number is a date someone typed into the sheet,
    which Sheets stores as its serial number. None when empty or not a date: other text is
    what the sheet's locale did not read as a date either, and guessing its day order would
    be worse than taking the date anew.
    """
    if isinstance(cell, bool):
        return None
    if isinstance(cell, int | float):
        return date_of_serial(cell)
    if not isinstance(cell, str) or not cell.strip():
        return None
    try:
        return date.fromisoformat(cell.strip()[:10])
    except ValueError:
        return None


def erpnext_link(facts: InvoiceFacts, config: TrackerConfig) -> str:
    return desk_url(config.site_url, facts.doctype, facts.name)


def _status_cell(facts: InvoiceFacts, config: TrackerConfig) -> str:
    if facts.deleted:
        return config.deleted_label
    if facts.cancelled:
        return config.cancelled_label
    return facts.status or ""


def _optional(value: str | float | None) -> CellValue:
    # An empty string, not None: the Sheets API skips null cells, which would leave an old value.
    return "" if value is None else value


_RENDERERS: Mapping[str, Callable[[InvoiceFacts, TrackerConfig], CellValue]] = {
    "invoice": lambda facts, _: facts.name,
    "type": lambda facts, _: _TYPE_LABELS[facts.doctype],
    "project": lambda facts, _: _optional(facts.project),
    "counterparty": lambda facts, _: _optional(facts.counterparty),
    "month": lambda facts, _: facts.posting_date.strftime("%Y-%m") if facts.posting_date else "",
    "amount": lambda facts, _: _optional(facts.amount),
    "currency": lambda facts, _: _optional(facts.currency),
    "entered_by": lambda facts, _: _optional(facts.entered_by),
    "project_manager": lambda facts, _: _optional(facts.project_manager),
    "status": _status_cell,
    "paid_date": lambda facts, _: facts.paid_date.isoformat() if facts.paid_date else "",
    "outstanding": lambda facts, _: _optional(facts.outstanding),
    "erpnext_link": erpnext_link,
    "last_modified": lambda facts, _: _optional(facts.modified),
}


def render_row(facts: InvoiceFacts, config: TrackerConfig) -> tuple[CellValue, ...]:
    """The row's cells in the configured order.

    The adapter writes them with valueInputOption RAW, so text is stored exactly as given: a
    customer named "=HYPERLINK(...)" stays that text and never becomes a formula; no escaping
    (a leading apostrophe) is needed or wanted. Empty cells are "" so a write clears old values;
    month and dates are ISO text ("2026-11", "2026-11-23"), which sorts correctly as text.
    """
    return tuple(_RENDERERS[key](facts, config) for key in config.columns)


def _version(modified: str | None) -> datetime | None:
    if modified is None:
        return None
    try:
        return parse_modified(modified)
    except InvalidPayload:
        return None


_UNKNOWN_VERSION = datetime.min.replace(tzinfo=UTC)
_NewerKey: TypeAlias = tuple[bool, datetime, bool, int, datetime, str, int]


def _newer_key(envelope: Envelope, position: int) -> _NewerKey:
    version = _version(envelope.modified)
    return (
        version is not None,
        version or _UNKNOWN_VERSION,
        envelope.event == TRASH_EVENT,
        _docstatus(envelope.doc) or 0,
        envelope.received_at,
        envelope.event_id,
        position,
    )


def coalesce(envelopes: Iterable[Envelope]) -> dict[str, Envelope]:
    """The newest envelope per invoice name.

    Newest means the greatest `modified`; a known `modified` beats an unknown or unreadable one.
    On equal `modified` (one save fires several webhooks; deleting keeps the last `modified`):
    on_trash wins, then the higher docstatus (submit, cancel), then the later `received_at`, then
    the greater `event_id` (arbitrary but fixed), then the later position in the input. So the
    result is the same for any delivery order; only copies of one change (same event id, same
    arrival time) are told apart by position, and those carry the same document.
    """
    best: dict[str, tuple[_NewerKey, Envelope]] = {}
    for position, envelope in enumerate(envelopes):
        key = _newer_key(envelope, position)
        current = best.get(envelope.name)
        if current is None or key > current[0]:
            best[envelope.name] = (key, envelope)
    return {name: envelope for name, (_, envelope) in best.items()}


@dataclass(frozen=True, slots=True)
class RowWrite:
    """Cells for one invoice: at `row_number` when updating in place, None when appending.

    `modified` is the version written, which the sheet keeps beside the row for stale checks.
    """

    name: str
    row_number: int | None
    cells: tuple[CellValue, ...]
    modified: str | None = None


@dataclass(frozen=True, slots=True)
class RowDelete:
    name: str
    row_number: int


@dataclass(frozen=True, slots=True)
class RowPlan:
    """What one batch does to the sheet.

    Apply `updates` and `clears`, then `appends`, then `deletes`: deletes come bottom-up
    (descending row numbers), so each leaves the row numbers of the ones after it, and of every
    update, valid. `clears` are removals done by emptying the row in place: Sheets refuses to
    delete every row below the frozen header, and then fails the whole batch. `stale` names
    updates older than the row (skipped); `ignored` names deletions of invoices the sheet does
    not hold under the "remove" policy (nothing to do).
    """

    updates: tuple[RowWrite, ...] = ()
    appends: tuple[RowWrite, ...] = ()
    deletes: tuple[RowDelete, ...] = ()
    stale: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    clears: tuple[RowDelete, ...] = ()


def plan_upsert(sheet: SheetIndex, batch: Iterable[InvoiceFacts], config: TrackerConfig) -> RowPlan:
    """Decide the writes that make the sheet hold `batch` (already coalesced: one per invoice).

    Stale means strictly older `modified` than the row's; an equal one is rewritten (idempotent,
    and it refreshes looked-up names such as a changed project manager). An unknown or unreadable
    version on either side is never stale. Cancelled invoices keep their row, showing
    `cancelled_label`; deleted ones are removed, or kept showing `deleted_label` under "mark"
    (appended if the sheet never had them, so every invoice that existed has a row). When
    every indexed row is removed and none appended, the top one is emptied, not deleted.
    """
    updates: list[RowWrite] = []
    appends: list[RowWrite] = []
    deletes: list[RowDelete] = []
    stale: list[str] = []
    ignored: list[str] = []
    seen: set[str] = set()
    for facts in batch:
        if facts.name in seen:
            raise ValueError(f"invoice {facts.name} appears twice in one batch; coalesce first")
        seen.add(facts.name)
        row = sheet.get(facts.name)
        if row is not None and _is_stale(facts.modified, row.modified):
            stale.append(facts.name)
            continue
        if facts.deleted and config.deleted_policy == "remove":
            if row is None:
                ignored.append(facts.name)
            else:
                deletes.append(RowDelete(facts.name, row.row_number))
            continue
        cells = render_row(facts, config)
        if row is None:
            appends.append(RowWrite(facts.name, None, cells, facts.modified))
        else:
            updates.append(RowWrite(facts.name, row.row_number, cells, facts.modified))
    deletes.sort(key=lambda delete: delete.row_number, reverse=True)
    clears: list[RowDelete] = []
    if deletes and not appends and len(deletes) == len(sheet):
        # Every row the sheet indexes goes: the top one is emptied instead, so a row stays
        # below the header whatever the grid holds (Sheets refuses to delete them all).
        clears.append(deletes.pop())
    return RowPlan(
        tuple(updates), tuple(appends), tuple(deletes), tuple(stale), tuple(ignored), tuple(clears)
    )


def _is_stale(incoming: str | None, on_sheet: str | None) -> bool:
    incoming_version, sheet_version = _version(incoming), _version(on_sheet)
    if incoming_version is None or sheet_version is None:
        return False
    return incoming_version < sheet_version


def column_letter(index: int) -> str:
    """A1 letters of a 0-based column index: 0 -> A, 25 -> Z, 26 -> AA, 701 -> ZZ, 702 -> AAA."""
    if index < 0:
        raise ValueError(f"column index must be >= 0, not {index}")
    letters = ""
    number = index + 1
    while number:
        number, remainder = divmod(number - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


def _formula_text(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def mismatch_formula(
    config: TrackerConfig,
    entered_by_col_letter: str,
    manager_col_letter: str,
    project_col_letter: str,
    overhead_range: str | None,
) -> str:
    """CUSTOM_FORMULA for rows whose "entered by" is not the project manager, overhead excepted.

    Written for a rule whose range starts at the first data row (row 2), so the references are
    relative to that row. Rows with either name empty are never highlighted. Overhead projects
    come from `overhead_range` (e.g. "Overhead!A:A"), read through INDIRECT because conditional
    formatting formulas may not reference another sheet directly; without a range, the
    configured `overhead_projects` are written into the formula. Sheets compares text without
    regard to case, so "ann lee" and "Ann Lee" are the same person here.
    """
    row = FIRST_DATA_ROW
    entered, manager, project = (
        f"${entered_by_col_letter}{row}",
        f"${manager_col_letter}{row}",
        f"${project_col_letter}{row}",
    )
    terms = [f'{entered}<>""', f'{manager}<>""', f"{entered}<>{manager}"]
    if overhead_range is not None:
        terms.append(f"COUNTIF(INDIRECT({_formula_text(overhead_range)}), {project})=0")
    else:
        terms.extend(
            f"{project}<>{_formula_text(name)}" for name in sorted(config.overhead_projects)
        )
    return f"=AND({', '.join(terms)})"


def mismatch_formula_for(config: TrackerConfig, overhead_range: str | None) -> str:
    """The mismatch formula with the column letters of the configured order."""
    return mismatch_formula(
        config,
        column_letter(config.index_of("entered_by")),
        column_letter(config.index_of("project_manager")),
        column_letter(config.index_of("project")),
        overhead_range,
    )
