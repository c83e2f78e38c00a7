"""sheets_sync: keeps the Invoice Tracker sheet equal to ERPNext. Wiring only; the work happens in shared/.

- `sync_invoice_sheet`: each invoice event from Pub/Sub, queued and written in batches;
- `reconcile_invoices`: the Cloud Scheduler target (HTTP; in the cloud only the scheduler's
  OIDC identity may invoke it) that catches the changes ERPNext sends no webhook for.
"""

from __future__ import annotations

import flask
import functions_framework
from cloudevents.http import CloudEvent

from shared import bootstrap
from shared.platform import runtime
from shared.sheets.reconcile import JOB as RECONCILE_JOB

_settings = bootstrap.settings("sheets_sync")  # fail fast at start when settings are missing


@functions_framework.cloud_event
def sync_invoice_sheet(cloud_event: CloudEvent) -> None:
    runtime.serve_event(
        "sync_invoice_sheet",
        "sheets_sync",
        cloud_event.data,
        bootstrap.consumer("sheets_sync").handle,
    )


def _reconcile(request: runtime.HttpRequest) -> runtime.HttpAnswer:
    bootstrap.admin_auth("sheets_sync").verify(request.headers)
    reconciliation = bootstrap.invoice_reconciliation()
    return runtime.job_answer(bootstrap.jobs("sheets_sync").run(RECONCILE_JOB, reconciliation.run))


@functions_framework.http
def reconcile_invoices(request: flask.Request) -> runtime.HttpAnswer:
    return runtime.serve_http("reconcile_invoices", _settings.project, request, _reconcile)
