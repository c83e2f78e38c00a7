"""sheets_sync: keeps the Invoice Tracker sheet equal to ERPNext. Wiring only; the work happens in shared/."""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent

from shared import bootstrap, runtime

bootstrap.settings("sheets_sync")  # fail fast at start when settings are missing


@functions_framework.cloud_event
def sync_invoice_sheet(cloud_event: CloudEvent) -> None:
    runtime.serve_event("sheets_sync", cloud_event.data, bootstrap.consumer("sheets_sync").handle)
