"""sheets_sync's root: the Invoice Tracker's consumer, its batched writer and its reconciliation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from shared.platform.settings import AdminAccess, Common, EnvReader, ErpNextAccess
from shared.roots.base import Root
from shared.sheets.settings import SheetsSettings

if TYPE_CHECKING:
    from shared.platform.runtime import Consumer
    from shared.sheets.ports import InvoiceSheet
    from shared.sheets.reconcile import InvoiceReconciliation
    from shared.sheets.sync import InvoiceSheetSync


@dataclass(frozen=True, slots=True)
class Settings:
    common: Common
    erpnext: ErpNextAccess
    sheets: SheetsSettings
    admin: AdminAccess

    @classmethod
    def read(cls, env: EnvReader) -> Settings | None:
        """None when a section could not be read: its problems are noted in `env`."""
        common = Common.read(env)
        erpnext = ErpNextAccess.read(env, required=True)
        sheets = SheetsSettings.read(env, site_url=erpnext.public_url if erpnext else "")
        admin = AdminAccess.read(env)
        if erpnext is None or sheets is None:
            return None
        return cls(common, erpnext, sheets, admin)


class SheetsSyncRoot(Root[Settings]):
    @cached_property
    def sheets_service(self) -> Callable[[], Any]:
        """Makes the Sheets API client (one per thread: googleapiclient's are not thread-safe)."""
        from shared.adapters.sheets import sheets_client

        sheets = self.settings.sheets
        return sheets_client(endpoint=sheets.endpoint, timeout_s=sheets.timeout_s)

    @cached_property
    def sheet(self) -> InvoiceSheet:
        from shared.adapters.sheets import GoogleInvoiceSheet

        sheets = self.settings.sheets
        return GoogleInvoiceSheet(self.sheets_service, sheets.spreadsheet_id, sheets.tracker)

    @cached_property
    def sync(self) -> InvoiceSheetSync:
        from shared.sheets.sync import InvoiceSheetSync

        return InvoiceSheetSync(
            outbox=self.stores.sheet_outbox,
            lease=self.stores.sheet_flush_lease,
            sheet=self.sheet,
            directory=self.directory,
            errors=self.stores.errors,
            config=self.settings.sheets.tracker,
            owner=self.owner,
            clock=self.clock,
            gather_s=self.settings.sheets.gather_s,
        )

    @cached_property
    def reconciliation(self) -> InvoiceReconciliation:
        from shared.sheets.reconcile import InvoiceReconciliation

        return InvoiceReconciliation(
            erp=self.erpnext,
            outbox=self.stores.sheet_outbox,
            sync=self.sync,
            watermarks=self.stores.watermarks,
            site=self.site,
            clock=self.clock,
        )

    @cached_property
    def consumer(self) -> Consumer:
        return self.consumer_of("sheets_sync", self.sync.enqueue)


def from_environment() -> SheetsSyncRoot:
    """The root of this instance, from its environment; refuses to start on any bad setting."""
    from shared.roots import start

    return SheetsSyncRoot(start("sheets_sync"))
