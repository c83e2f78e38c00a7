"""drive_upload: copies ERPNext attachments to Google Drive. Wiring only; the work happens in shared/.

- `upload_attachment`: each File event from Pub/Sub (after_insert uploads, on_trash trashes);
- `backfill_attachments`: the Cloud Scheduler target (HTTP; in the cloud only the scheduler's
  OIDC identity may invoke it) that uploads every File still without a Drive copy.
"""

from __future__ import annotations

import flask
import functions_framework
from cloudevents.http import CloudEvent

from shared import bootstrap, runtime

_settings = bootstrap.settings("drive_upload")  # fail fast at start when settings are missing


@functions_framework.cloud_event
def upload_attachment(cloud_event: CloudEvent) -> None:
    runtime.serve_event("drive_upload", cloud_event.data, bootstrap.consumer("drive_upload").handle)


def _backfill(request: runtime.HttpRequest) -> runtime.HttpAnswer:
    return runtime.job_answer(bootstrap.drive_backfill().run())


@functions_framework.http
def backfill_attachments(request: flask.Request) -> runtime.HttpAnswer:
    return runtime.serve_http("backfill_attachments", _settings.project, request, _backfill)
