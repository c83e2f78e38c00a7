"""The Invoice Tracker end to end below Pub/Sub: Firestore outbox and lease on the emulator, the
Sheets adapter through google-api-python-client, the quota-enforcing Sheets stand-in."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from devstack.sheets import Faults, SheetsStandIn
from shared.adapters.firestore import FirestoreStores
from shared.adapters.sheets import GoogleInvoiceSheet, GoogleSheetLayout, sheets_client
from shared.core.envelope import Envelope, document_envelope
from shared.platform.backoff import Backoff
from shared.sheets.layout import TRACKER_TAB
from shared.sheets.rows import TrackerConfig
from shared.sheets.sync import InvoiceSheetSync, set_up_sheet
from tests.helpers.fakes import InMemoryInvoiceDirectory

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CONFIG = TrackerConfig(site_url="https://erp.example.com")
INVOICE, STATUS, AMOUNT, PAID = (
    CONFIG.index_of(key) for key in ("invoice", "status", "amount", "paid_date")
)
DIRECTORY = InMemoryInvoiceDirectory(
    full_names={"ana@example.com": "Ana Lopez"}, managers={"PROJ-0001": "Ben Okafor"}
)


def invoice(number: int, version: int, *, modified: str | None = None) -> Envelope:
    doc = {
        "doctype": "Sales Invoice",
        "name": f"SINV-{number:05d}",
        "customer": "Acme Builders",
        "project": "PROJ-0001",
        "posting_date": "2026-11-20",
        "grand_total": 1000.0 * number + version,
        "currency": "USD",
        "status": "Paid" if version == 3 else "Unpaid",
        "owner": "ana@example.com",
        "modified": modified or f"2026-11-23 10:00:0{version}.000000",
        "docstatus": 1,
    }
    return document_envelope(
        doc, doctype="Sales Invoice", event="on_change", site="erp.example.com", received_at=NOW
    )


@pytest.fixture
def standin() -> Iterator[SheetsStandIn]:
    with SheetsStandIn(faults=Faults(timeout_s=0.6)) as running:
        yield running


def instance(
    standin: SheetsStandIn, spreadsheet: str, stores: FirestoreStores, owner: str
) -> InvoiceSheetSync:
    """One function instance: its own Sheets client, the shared Firestore outbox and lease."""
    service = sheets_client(endpoint=standin.url, timeout_s=0.4)
    return InvoiceSheetSync(
        outbox=stores.sheet_outbox,
        lease=stores.sheet_flush_lease,
        sheet=GoogleInvoiceSheet(service, spreadsheet, CONFIG),
        directory=DIRECTORY,
        errors=stores.errors,
        config=CONFIG,
        owner=owner,
        clock=lambda: datetime.now(UTC),
        gather_s=0.2,
        round_interval_s=0.5,
        backoff=Backoff(first_s=0.05, cap_s=0.4, budget_s=60),
    )


def deliver(events: list[Envelope], instances: list[InvoiceSheetSync]) -> None:
    """Deliveries spread over concurrent instances, as Pub/Sub pushes them."""
    queue = list(events)
    lock = threading.Lock()
    failures: list[BaseException] = []

    def work(sync: InvoiceSheetSync) -> None:
        while True:
            with lock:
                if not queue:
                    return
                envelope = queue.pop()
            try:
                sync.enqueue(envelope)
            except Exception as exc:  # a redelivery would follow in production; count it
                failures.append(exc)

    threads = [threading.Thread(target=work, args=(sync,)) for sync in instances]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[:3]


def tracker_rows(standin: SheetsStandIn, spreadsheet: str) -> dict[str, list[object]]:
    header, *rows = standin.values(spreadsheet, TRACKER_TAB)
    assert header[INVOICE] == "Invoice"
    names = [row[INVOICE] for row in rows]
    assert len(names) == len(set(names)), "an invoice has two rows"
    return {str(row[INVOICE]): row for row in rows}


def set_up(standin: SheetsStandIn, locale: str = "en_US") -> str:
    spreadsheet = standin.create_spreadsheet(locale=locale)
    set_up_sheet(GoogleSheetLayout(sheets_client(endpoint=standin.url), spreadsheet), CONFIG)
    return spreadsheet


def test_1000_invoices_shuffled_with_duplicates_and_stale_versions_end_as_1000_newest_rows(
    standin: SheetsStandIn, project_id: str
) -> None:
    spreadsheet = set_up(standin)
    stores = FirestoreStores(project_id, timeout_s=10)
    rng = random.Random(7)
    events = [invoice(n, 3) for n in range(1000)]  # the newest version of each
    events += [invoice(n, rng.choice((1, 2))) for n in rng.sample(range(1000), 500)]  # stale
    events += [invoice(n, 3) for n in rng.sample(range(1000), 300)]  # duplicates
    rng.shuffle(events)
    reads_before, writes_before = standin.calls["read"], standin.calls["write"]

    deliver(events, [instance(standin, spreadsheet, stores, f"i{k}") for k in range(6)])

    rows = tracker_rows(standin, spreadsheet)
    assert len(rows) == 1000
    assert all(row[STATUS] == "Paid" for row in rows.values())
    assert all(row[AMOUNT] == 1000.0 * int(name[5:]) + 3 for name, row in rows.items())
    assert standin.calls["refused:429"] == 0
    writes = standin.calls["write"] - writes_before
    reads = standin.calls["read"] - reads_before
    assert writes <= 60 and reads <= 60  # within one minute's quota; bench/ reports the figures
    assert stores.sheet_outbox.pending(1) == []


def test_30_percent_of_sheets_calls_failing_still_ends_equal_to_erpnext(
    standin: SheetsStandIn, project_id: str
) -> None:
    """30% of the Sheets calls fail, of every kind Google's fail with, and the tracker still
    ends equal to ERPNext; the stand-in's record of what it injected proves the mix happened."""
    spreadsheet = set_up(standin)
    stores = FirestoreStores(project_id, timeout_s=10)
    kinds = ("429", "500", "503", "timeout", "timeout_after_apply")
    standin.faults.kinds = kinds
    # However few calls the gathering leaves, the worst faults happen: an answer lost after the
    # write was applied, and a refusal; then 30% of the rest fail.
    standin.faults.fail_next("timeout_after_apply", "503")
    standin.faults.set_rate(0.3, seed=11)
    before = Counter(standin.calls)
    events = [invoice(n, version) for n in range(150) for version in (1, 2, 3)]
    random.Random(3).shuffle(events)
    instances = [instance(standin, spreadsheet, stores, f"i{k}") for k in range(3)]
    # In 18 waves, each flushed on its own: the gathering leaves enough calls (70 or more)
    # for a 30% share to mean something.
    for wave in range(0, len(events), 25):
        deliver(events[wave : wave + 25], instances)

    standin.faults.set_rate(0)
    rows = tracker_rows(standin, spreadsheet)
    assert sorted(rows) == [f"SINV-{n:05d}" for n in range(150)]
    assert all(row[STATUS] == "Paid" for row in rows.values())
    # The mix, as the stand-in recorded it. Each call it did not refuse for quota drew once
    # from the seeded faults; with seed 11, every run of 36 draws or more holds all five kinds
    # and 20-40% faults, whatever number of calls the timing gave.
    calls = Counter(standin.calls)
    calls.subtract(before)
    drawn = calls["requested:read"] + calls["requested:write"] - calls["refused:429"]
    injected = {kind: calls[f"fault:{kind}"] for kind in kinds}
    assert injected["timeout_after_apply"] >= 1 and injected["503"] >= 1  # the two queued
    random_draws, random_faults = drawn - 2, sum(injected.values()) - 2
    assert random_draws >= 36, calls
    assert all(injected.values()), injected
    assert 0.2 <= random_faults / random_draws <= 0.4, (random_faults, random_draws)


@pytest.mark.parametrize(
    ("locale", "typed"),
    [
        ("en_US", "11/20/2026"),
        ("en_GB", "20/11/2026"),
        ("de_DE", "20.11.2026"),
        ("en_US", "2026-11-20"),
    ],
)
def test_a_paid_date_a_person_types_is_kept_by_the_next_paid_event(
    standin: SheetsStandIn, project_id: str, locale: str, typed: str
) -> None:
    """Sheets stores a typed date as its serial number: the tracker reads it back as the paid
    date and a later save of the paid invoice keeps it, as it keeps its own."""
    spreadsheet = set_up(standin, locale)
    sync = instance(standin, spreadsheet, FirestoreStores(project_id, timeout_s=10), "i0")
    sync.enqueue(invoice(1, 3))  # seen paid on 2026-11-23
    assert tracker_rows(standin, spreadsheet)["SINV-00001"][PAID] == "2026-11-23"

    standin.person_types(spreadsheet, TRACKER_TAB, 2, PAID, typed)  # the day the money came
    assert tracker_rows(standin, spreadsheet)["SINV-00001"][PAID] == 46346  # its serial number
    sync.enqueue(invoice(1, 3, modified="2026-11-24 09:00:00.000000"))  # saved again, still paid

    row = tracker_rows(standin, spreadsheet)["SINV-00001"]
    assert row[PAID] == "2026-11-20"
    assert row[CONFIG.index_of("last_modified")] == "2026-11-24 09:00:00.000000"
