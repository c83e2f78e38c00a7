"""sheets_sync: keeps the Invoice Tracker sheet equal to ERPNext. Wiring only; the work happens in shared/.

- `sync_invoice_sheet`: each invoice event from Pub/Sub, queued and written in batches;
- `reconcile_invoices`: the Cloud Scheduler target (HTTP; in the cloud only the scheduler's
  OIDC identity may invoke it) that catches the changes ERPNext sends no webhook for.
"""

from __future__ import annotations

import flask
import functions_framework
from cloudevents.http import CloudEvent

from shared.platform import runtime
from shared.roots import sheets_sync
from shared.sheets.reconcile import JOB as RECONCILE_JOB

_root = sheets_sync.from_environment()  # fails fast at start when settings are missing
_project = _root.common.project


@functions_framework.cloud_event
def sync_invoice_sheet(cloud_event: CloudEvent) -> None:
    runtime.serve_event(
        "sync_invoice_sheet",
        "sheets_sync",
        cloud_event.data,
        _root.consumer.handle,
    )


def _reconcile(request: runtime.HttpRequest) -> runtime.HttpAnswer:
    _root.auth.verify(request.headers)
    return runtime.job_answer(_root.jobs.run(RECONCILE_JOB, _root.reconciliation.run))


@functions_framework.http
def reconcile_invoices(request: flask.Request) -> runtime.HttpAnswer:
    return runtime.serve_http("reconcile_invoices", _project, request, _reconcile)
