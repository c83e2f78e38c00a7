"""A whole function on fakes, through its composition root: no emulator, no stand-in, no reset.

The roots are what `functions/*/main.py` hold; here each is given in-memory stores, a fixed clock
and fakes of the outside services in place of the pieces it would build.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.core.routing import INVOICES
from shared.ingress.webhook import Accepted
from shared.platform.runtime import PubSubMessage
from shared.roots import read_settings
from shared.roots.erp_webhook import ErpWebhookRoot
from shared.roots.sheets_sync import SheetsSyncRoot
from tests.helpers.clocks import SettableClock
from tests.helpers.fakes import (
    InMemoryInvoiceDirectory,
    InMemoryInvoiceSheet,
    InMemoryPublisher,
    InMemoryStores,
)
from tests.helpers.frappe import frappe_signature, v15_body

SECRET = "roots-webhook-secret"
NOW = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)
ENV = {
    "GCP_PROJECT": "p",
    "ERP_SITE": "erp.example.com",
    "WEBHOOK_SECRET": SECRET,
    "ERPNEXT_URL": "https://erp.example.com",
    "ERPNEXT_API_KEY": "k",
    "ERPNEXT_API_SECRET": "s",
    "SHEETS_SPREADSHEET_ID": "tracker",
    "SHEETS_GATHER_SECONDS": "0.001",
}
INVOICE = {
    "doctype": "Sales Invoice",
    "name": "ACC-SINV-2026-00042",
    "customer": "Acme Builders",
    "project": "PROJ-0001",
    "posting_date": "2026-12-01",
    "grand_total": 1250.0,
    "currency": "EUR",
    "status": "Unpaid",
    "owner": "ana@example.com",
    "modified": "2026-12-04 09:29:58.000000",
}


def test_an_invoice_webhook_becomes_one_sheet_row_through_both_roots_on_fakes() -> None:
    clock = SettableClock(NOW)
    publisher = InMemoryPublisher()
    ingress = ErpWebhookRoot(
        read_settings("erp_webhook", ENV), publisher=publisher, clock=clock
    ).ingress
    sheet = InMemoryInvoiceSheet()
    sheets_sync = SheetsSyncRoot(
        read_settings("sheets_sync", ENV),
        stores=InMemoryStores(),
        sheet=sheet,
        directory=InMemoryInvoiceDirectory(full_names={"ana@example.com": "Ana Lopez"}),
        clock=clock,
        owner="instance-a",
    )

    body = v15_body(INVOICE)
    accepted = ingress.accept(body, frappe_signature(SECRET, body))
    assert isinstance(accepted, Accepted) and accepted.topics == (INVOICES,)
    [(topic, data, attributes)] = publisher.published
    assert topic == INVOICES
    message = PubSubMessage(data=data, attributes=attributes, message_id="1")
    first = sheets_sync.consumer.handle(message)
    again = sheets_sync.consumer.handle(message)  # Pub/Sub delivers at least once

    assert (first.name, again.name) == ("APPLIED", "DUPLICATE")
    row = sheet.by_name()["ACC-SINV-2026-00042"]
    assert "Acme Builders" in row and 1250.0 in row and "Ana Lopez" in row
    assert len(sheet.rows) == 1 and sheet.writes == 1
    assert json.loads(data)["event_id"] == accepted.envelope.event_id


def test_a_root_refuses_a_piece_it_does_not_build() -> None:
    with pytest.raises(TypeError, match="SheetsSyncRoot builds nothing called 'shet'"):
        SheetsSyncRoot(read_settings("sheets_sync", ENV), shet=InMemoryInvoiceSheet())


def test_each_root_builds_its_pieces_once_and_a_new_root_starts_afresh() -> None:
    settings = read_settings("sheets_sync", ENV)
    root = SheetsSyncRoot(settings, stores=InMemoryStores(), sheet=InMemoryInvoiceSheet())
    assert root.sync is root.sync and root.consumer.effect == root.sync.enqueue
    other = SheetsSyncRoot(settings, stores=InMemoryStores(), sheet=InMemoryInvoiceSheet())
    assert other.sync is not root.sync and other.stores is not root.stores
