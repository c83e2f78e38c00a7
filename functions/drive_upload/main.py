"""drive_upload: copies ERPNext attachments to Google Drive. Wiring only; the work happens in shared/.

- `upload_attachment`: each File event from Pub/Sub (after_insert uploads, on_trash trashes);
- `backfill_attachments`: the Cloud Scheduler target (HTTP; in the cloud only the scheduler's
  OIDC identity may invoke it) that uploads every File still without a Drive copy;
- `download_attachment`: `GET ?file=<File name>` with the person's own ERPNext token
  (`Authorization: token key:secret`): the file from Drive if ERPNext lets them read its document.
"""

from __future__ import annotations

from urllib.parse import quote

import flask
import functions_framework
from cloudevents.http import CloudEvent

from shared.drive.filing import BACKFILL_JOB
from shared.platform import runtime
from shared.roots import drive_upload

_root = drive_upload.from_environment()  # fails fast at start when settings are missing
_project = _root.common.project


@functions_framework.cloud_event
def upload_attachment(cloud_event: CloudEvent) -> None:
    runtime.serve_event(
        "upload_attachment",
        "drive_upload",
        cloud_event.data,
        _root.consumer.handle,
    )


def _backfill(request: runtime.HttpRequest) -> runtime.HttpAnswer:
    _root.auth.verify(request.headers)
    return runtime.job_answer(_root.jobs.run(BACKFILL_JOB, _root.backfill.run))


@functions_framework.http
def backfill_attachments(request: flask.Request) -> runtime.HttpAnswer:
    return runtime.serve_http("backfill_attachments", _project, request, _backfill)


def _download(request: runtime.HttpRequest) -> runtime.HttpAnswer:
    scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
    found = _root.proxy.open(
        request.args.get("file") or "", token.strip() if scheme.lower() == "token" else None
    )
    disposition = "attachment; filename*=UTF-8''" + quote(found.file_name)
    headers = {"Content-Type": found.mimetype, "Content-Disposition": disposition}
    return found.chunks, 200, headers


@functions_framework.http
def download_attachment(request: flask.Request) -> runtime.HttpAnswer:
    return runtime.serve_http("download_attachment", _project, request, _download)
